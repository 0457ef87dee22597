//! Rules that read a customer message: which order sub-intent, which order id, yes or no.
//!
//! Rules come first because they are exact, instant and explainable; the supervisor has already
//! decided the message belongs to the order route.

use std::sync::LazyLock;

use fenliu_tools_commerce::{CancelReason, normalize_order_id};
use regex::Regex;
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

/// Whether `keyword` occurs in `lower`. ASCII keywords must start a word (and, with `whole`, end
/// one too); Chinese keywords match anywhere, as Chinese has no spaces between words.
fn contains_keyword(lower: &str, keyword: &str, whole: bool) -> bool {
    if !keyword.is_ascii() {
        return lower.contains(keyword);
    }
    let is_word = |c: char| c.is_alphanumeric() && c.is_ascii();
    lower.match_indices(keyword).any(|(i, k)| {
        let starts = lower[..i].chars().next_back().is_none_or(|c| !is_word(c));
        let ends = lower[i + k.len()..].chars().next().is_none_or(|c| !is_word(c));
        starts && (!whole || ends)
    })
}

impl OrderIntent {
    /// The sub-intent a message expresses, if any keyword says so.
    pub fn detect(message: &str) -> Option<Self> {
        let lower = message.to_lowercase();
        let lower = lower.as_str();
        // A list request mentions "orders" without naming one; with an id it is about that order.
        RULES
            .iter()
            .find(|(_, keywords)| keywords.iter().any(|k| contains_keyword(lower, k, false)))
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

static ORDER_ID: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::expect_used)]
    // The id must not be glued to a preceding letter or digit ("HW12345") or followed by a digit.
    Regex::new(r"(?i)(?:^|[^a-z0-9])(#?\s?w\s?\d{5,12})(?:$|[^0-9])").expect("order id regex")
});

/// The first order id in a message (`W2611340`, `#w2611340`, `订单W2611340`), normalised.
pub fn extract_order_id(message: &str) -> Option<String> {
    // Bound the work on hostile input: order ids are short and appear early in real messages.
    let head: String = message.chars().take(2_000).collect();
    ORDER_ID
        .captures_iter(&head)
        .find_map(|c| c.get(1).and_then(|m| normalize_order_id(m.as_str())))
}

/// Reads a confirmation: `Some(true)` for yes, `Some(false)` for no, `None` if unclear.
pub(crate) fn confirmation(message: &str) -> Option<bool> {
    let lower = message.trim().to_lowercase();
    let lower = lower.trim_end_matches(['.', '!', '。', '！']);
    if lower.chars().count() > 80 {
        return None;
    }
    const NO: &[&str] =
        &["no", "nope", "don't", "do not", "stop", "wait", "不", "别", "算了", "否"];
    const YES: &[&str] = &[
        "yes",
        "y",
        "yeah",
        "yep",
        "sure",
        "ok",
        "okay",
        "confirm",
        "go ahead",
        "please do",
        "do it",
        "是",
        "好",
        "对",
        "确认",
        "可以",
        "行",
        "嗯",
    ];
    let says = |words: &[&str]| words.iter().any(|w| contains_keyword(lower, w, true));
    // Negation first: "不确认" and "no, don't" are refusals even though they contain a yes-word.
    if says(NO) {
        Some(false)
    } else if says(YES) {
        Some(true)
    } else {
        None
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
    fn order_ids() {
        assert_eq!(extract_order_id("it's W2611340").as_deref(), Some("#W2611340"));
        assert_eq!(extract_order_id("order #w2611340 please").as_deref(), Some("#W2611340"));
        assert_eq!(extract_order_id("订单W2611340到哪了").as_deref(), Some("#W2611340"));
        assert_eq!(extract_order_id("no id here, just W12"), None);
        assert_eq!(extract_order_id("model HW123456"), None);
        assert_eq!(extract_order_id("W2611340 and W1000001").as_deref(), Some("#W2611340"));
        assert_eq!(extract_order_id(&"W".repeat(100_000)), None);
    }

    #[test]
    fn confirmations() {
        for yes in ["yes", "Yes please", "ok", "确认", "好的", "是的", "go ahead."] {
            assert_eq!(confirmation(yes), Some(true), "{yes}");
        }
        for no in ["no", "No, don't", "不要", "算了", "不确认", "wait"] {
            assert_eq!(confirmation(no), Some(false), "{no}");
        }
        for unclear in ["what?", "", "tell me more about the refund", "yesterday it was late"] {
            assert_eq!(confirmation(unclear), None, "{unclear}");
        }
    }

    #[test]
    fn reasons() {
        assert_eq!(cancel_reason("I ordered it by mistake"), CancelReason::OrderedByMistake);
        assert_eq!(cancel_reason("买错了"), CancelReason::OrderedByMistake);
        assert_eq!(cancel_reason("don't need it"), CancelReason::NoLongerNeeded);
    }
}
