//! Training phrases for the `membership_points` route, in English and Chinese, written for this
//! example. Questions about VIP tiers and their benefits stay with `faq` (the shop's membership
//! page); these are about the points balance.

/// Example messages the supervisor learns the `membership_points` route from.
pub(crate) const PHRASES: &[&str] = &[
    "How many points do I have?",
    "What is my membership points balance?",
    "Check my reward points",
    "How many loyalty points have I earned?",
    "Show me my points",
    "Did I get points for my last order?",
    "When will I get the points for my order?",
    "How do I earn membership points?",
    "Can I redeem my points?",
    "My points balance looks wrong",
    "How many points will my pending orders give me?",
    "Points balance please",
    "我有多少积分？",
    "查一下我的会员积分",
    "我的积分余额是多少",
    "帮我看看我的积分",
    "上一笔订单给我积分了吗",
    "订单的积分什么时候到账",
    "积分是怎么计算的",
    "怎么赚会员积分",
    "积分可以兑换吗",
    "我的积分好像不对",
    "还没收货的订单能拿多少积分",
    "查询积分",
];
