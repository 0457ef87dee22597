//! Routes the orchestrator owns itself: `human` (handed to the dispatcher) and `out_of_scope`
//! (politely declined), with their training phrases and texts.

use fenliu_agent::{Language, Route, TrainingPhrase};

/// Training phrases of the `human` route.
const HUMAN: &[&str] = &[
    "I want to talk to a human",
    "Can I speak to a real person?",
    "agent please",
    "connect me to customer service",
    "Let me talk to your manager",
    "I need a representative",
    "Transfer me to a live agent",
    "is there a person I can talk to",
    "Stop the bot, get me someone",
    "I'd like to speak with customer support staff",
    "转人工",
    "我要人工客服",
    "帮我转接人工服务",
    "能不能让真人来回答",
    "我要找你们经理",
    "别用机器人了，叫人来",
    "请转接客服人员",
    "有没有人工可以聊",
    "接人工",
    "我想和客服人员通话",
];

/// Training phrases of the `out_of_scope` route: requests a shop does not handle.
const OUT_OF_SCOPE: &[&str] = &[
    "What's the weather like tomorrow?",
    "Tell me a joke",
    "Book me a flight to Paris",
    "What is the capital of Australia?",
    "How do I transfer money to another bank account?",
    "What's my credit card limit?",
    "Recommend a good restaurant nearby",
    "Who won the football game last night?",
    "Can you help me with my math homework?",
    "What's the stock price of Apple?",
    "Set an alarm for 7 am",
    "How do I reset my router's wifi password?",
    "Translate hello into French",
    "What time is it in Tokyo?",
    "Play some music",
    "明天天气怎么样？",
    "给我讲个笑话",
    "帮我订一张去上海的机票",
    "附近有什么好吃的餐厅？",
    "北京有什么好玩的景点？",
    "帮我查一下股票行情",
    "我的信用卡额度是多少？",
    "帮我写作业",
    "现在东京几点了？",
    "推荐一家便宜的酒店",
    "怎么去火车站？",
    "今天的新闻有什么？",
    "帮我翻译这句话",
    "放首歌听听",
    "地铁几点停运？",
];

/// The built-in routes' phrases, for training the supervisor.
pub fn phrases() -> Vec<(Route, TrainingPhrase)> {
    HUMAN
        .iter()
        .map(|p| (Route::HUMAN, TrainingPhrase::new(*p)))
        .chain(OUT_OF_SCOPE.iter().map(|p| (Route::OUT_OF_SCOPE, TrainingPhrase::new(*p))))
        .collect()
}

/// Descriptions of the built-in routes for the LLM routing stage.
pub fn descriptions() -> Vec<(Route, String)> {
    vec![
        (Route::HUMAN, "The customer explicitly asks to talk to a person, a human agent or a manager.".into()),
        (
            Route::OUT_OF_SCOPE,
            "Anything an online shop's customer service does not handle: weather, travel, banking, \
             trivia, jokes, homework."
                .into(),
        ),
    ]
}

/// What the customer is told when a conversation goes to a person.
pub fn handing_to_human(language: Language) -> String {
    match language {
        Language::En => "I'm connecting you with a colleague now; they will see our conversation so you won't need to repeat yourself.".into(),
        Language::Zh => "正在为您转接人工客服，客服会看到我们之前的对话，您无需重复说明。".into(),
    }
}

/// The polite refusal for out-of-scope messages.
pub fn out_of_scope(language: Language) -> String {
    match language {
        Language::En => "Sorry, that's not something I can help with here. I can help with your orders, deliveries, returns and repairs, products, and our shop's policies.".into(),
        Language::Zh => "抱歉，这个问题超出了我能处理的范围。我可以帮您处理订单、物流、退换货与维修、商品咨询以及本店政策相关的问题。".into(),
    }
}

/// The clarifying question asked when the supervisor is unsure.
pub fn clarify(language: Language) -> String {
    match language {
        Language::En => "Sorry, I'm not sure I understood. Is this about an existing order, a problem with a product, a complaint, a product you'd like to buy, or one of our policies?".into(),
        Language::Zh => "抱歉，我没有完全理解。请问您是想咨询已有订单、商品故障、投诉、购买新商品，还是本店的相关政策？".into(),
    }
}
