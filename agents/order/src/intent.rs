//! Rules that read a customer message: which order sub-intent, which order id, yes or no.
//!
//! Rules come first because they are exact, instant and explainable; the supervisor has already
//! decided the message belongs to the order route.

pub(crate) use fenliu_agent::text::confirmation;
use fenliu_agent::text::{Match, contains_keyword};
use fenliu_tools_commerce::CancelReason;
pub use fenliu_tools_commerce::find_order_id as extract_order_id;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the customer wants done with an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderIntent {
    /// Status, tracking, delivery date.
    Status,
    /// The list of their orders.
    List,
    /// Cancel a pending order.
    Cancel,
    /// Change the shipping address.
    ChangeAddress,
    /// Refund status.
    Refund,
    /// Invoice or receipt.
    Invoice,
}

/// Keyword rules, checked in order: the first intent with a matching keyword wins. Lowercased
/// English keywords match on word starts; Chinese keywords match anywhere.
const RULES: &[(OrderIntent, &[&str])] = &[
    (OrderIntent::Cancel, &["cancel", "取消", "不要了", "不想要"]),
    (OrderIntent::ChangeAddress, &["address", "ship to", "deliver to", "地址", "收货地"]),
    (OrderIntent::Refund, &["refund", "money back", "退款", "退钱", "钱退"]),
    (OrderIntent::Invoice, &["invoice", "receipt", "bill", "发票", "收据"]),
    (
        OrderIntent::List,
        &[
            "my orders",
            "all orders",
            "all my orders",
            "list",
            "order history",
            "我的订单",
            "所有订单",
            "订单列表",
            "历史订单",
        ],
    ),
    (
        OrderIntent::Status,
        &[
            "status",
            "track",
            "where",
            "when",
            "arriv",
            "deliver",
            "ship",
            "eta",
            "状态",
            "物流",
            "到哪",
            "什么时候",
            "到了",
            "发货",
            "快递",
            "查",
        ],
    ),
];

impl OrderIntent {
    /// The sub-intent a message expresses, if any keyword says so.
    pub fn detect(message: &str) -> Option<Self> {
        let lower = message.to_lowercase();
        let lower = lower.as_str();
        // A list request mentions "orders" without naming one; with an id it is about that order.
        RULES
            .iter()
            .find(|(_, keywords)| {
                keywords.iter().any(|k| contains_keyword(lower, k, Match::Prefix))
            })
            .map(|(intent, _)| *intent)
            .map(|intent| {
                if intent == Self::List && extract_order_id(message).is_some() {
                    Self::Status
                } else {
                    intent
                }
            })
    }
}

/// The cancellation reason a message gives (the policy knows two).
pub(crate) fn cancel_reason(message: &str) -> CancelReason {
    let lower = message.to_lowercase();
    if ["mistake", "accident", "wrong", "买错", "下错", "拍错", "误"]
        .iter()
        .any(|k| lower.contains(k))
    {
        CancelReason::OrderedByMistake
    } else {
        CancelReason::NoLongerNeeded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents() {
        let cases = [
            ("Where is my order #W2611340?", Some(OrderIntent::Status)),
            ("I want to cancel W2611340", Some(OrderIntent::Cancel)),
            ("请帮我取消订单", Some(OrderIntent::Cancel)),
            ("我的快递到哪了", Some(OrderIntent::Status)),
            ("show me all my orders", Some(OrderIntent::List)),
            ("my orders", Some(OrderIntent::List)),
            ("Has my refund for #W1000001 been processed?", Some(OrderIntent::Refund)),
            ("I need an invoice", Some(OrderIntent::Invoice)),
            ("change the shipping address", Some(OrderIntent::ChangeAddress)),
            ("hello", None),
            ("", None),
        ];
        for (msg, want) in cases {
            assert_eq!(OrderIntent::detect(msg), want, "{msg}");
        }
        // "ship" inside another word does not count as a word start.
        assert_eq!(OrderIntent::detect("relationship advice"), None);
    }

    #[test]
    fn reasons() {
        assert_eq!(cancel_reason("I ordered it by mistake"), CancelReason::OrderedByMistake);
        assert_eq!(cancel_reason("买错了"), CancelReason::OrderedByMistake);
        assert_eq!(cancel_reason("don't need it"), CancelReason::NoLongerNeeded);
    }
}
