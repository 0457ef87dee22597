//! Conversation vocabulary shared by every crate: routes, languages, channels, customers and turns.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

/// Where a message is sent: one of the routes of the taxonomy, or a route an extension agent adds.
///
/// Routes are lowercase identifiers (`[a-z][a-z0-9_]{0,31}`), so they are safe in metrics labels,
/// config keys and prompts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct Route(Cow<'static, str>);

impl Route {
    /// Order status, tracking, delivery, cancel/modify pending orders, invoices, refunds.
    pub const ORDER: Route = Route(Cow::Borrowed("order"));
    /// Faults, repair, warranty, returns and exchanges of delivered items, troubleshooting.
    pub const AFTER_SALES: Route = Route(Cow::Borrowed("after_sales"));
    /// Complaints about service, staff, delays, quality; formal claims.
    pub const COMPLAINT: Route = Route(Cow::Borrowed("complaint"));
    /// Product questions and recommendations before purchase, promotions, newsletter.
    pub const MARKETING: Route = Route(Cow::Borrowed("marketing"));
    /// Policies and how-to answered from the knowledge base.
    pub const FAQ: Route = Route(Cow::Borrowed("faq"));
    /// The customer asks for a person.
    pub const HUMAN: Route = Route(Cow::Borrowed("human"));
    /// Anything the shop does not handle.
    pub const OUT_OF_SCOPE: Route = Route(Cow::Borrowed("out_of_scope"));

    /// The seven routes of the built-in taxonomy.
    pub const TAXONOMY: [Route; 7] = [
        Self::ORDER,
        Self::AFTER_SALES,
        Self::COMPLAINT,
        Self::MARKETING,
        Self::FAQ,
        Self::HUMAN,
        Self::OUT_OF_SCOPE,
    ];

    /// Parses and validates a route name.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidRoute> {
        let name = name.into();
        let mut bytes = name.bytes();
        let valid = name.len() <= 32
            && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
            && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if valid {
            Ok(Self(Cow::Owned(name)))
        } else {
            Err(InvalidRoute(name.chars().take(40).collect()))
        }
    }

    /// The route name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Route {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Route::new(s).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Route {
    type Err = InvalidRoute;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Route::new(s)
    }
}

/// A route name that is not `[a-z][a-z0-9_]{0,31}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid route name {0:?}: use 1-32 characters of [a-z0-9_], starting with a letter")]
pub struct InvalidRoute(pub String);

/// Language of a message or a template. The shop serves English and Chinese.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// English.
    #[default]
    En,
    /// Chinese (Simplified).
    Zh,
}

impl Language {
    /// Detects the language of a message: Chinese if it contains CJK ideographs, English otherwise.
    ///
    /// Mixed messages ("我的order到哪了") count as Chinese: a customer who writes any Chinese is
    /// answered in Chinese.
    pub fn detect(text: &str) -> Self {
        if text.chars().any(is_cjk) { Self::Zh } else { Self::En }
    }

    /// `"en"` or `"zh"`.
    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Zh => "zh",
        }
    }
}

/// Whether `c` is a CJK ideograph (the blocks Chinese text is written in).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0xF900..=0xFAFF)
}

/// The channel a conversation arrives on. One queue serves them all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The web chat widget.
    #[default]
    Web,
    /// The mobile app.
    App,
    /// A messaging platform (WhatsApp, WeChat, …).
    Messaging,
    /// A phone call, as a transcript.
    Phone,
    /// E-mail.
    Email,
    /// A direct API integration.
    Api,
}

/// Customer tier, which changes priority and escalation policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CustomerTier {
    /// Everyone.
    #[default]
    Regular,
    /// High-value customers: priority support.
    Vip,
}

/// The authenticated customer a conversation is with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CustomerRef {
    /// Customer id in the shop's store.
    pub id: String,
    /// Display name for greetings.
    pub name: String,
    /// Tier.
    pub tier: CustomerTier,
    /// Preferred language, used when a message gives no hint.
    pub language: Language,
}

/// Who said something in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    /// The customer.
    Customer,
    /// An AI agent.
    Agent,
    /// A human agent.
    Human,
}

/// One message in a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// Who spoke.
    pub speaker: Speaker,
    /// What was said.
    pub text: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The agent that produced or handled the turn, if any.
    pub agent: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_validate() {
        assert_eq!(Route::new("order").unwrap(), Route::ORDER);
        assert_eq!("after_sales".parse::<Route>().unwrap(), Route::AFTER_SALES);
        for bad in ["", "Order", "1x", "has space", "x".repeat(33).as_str(), "路由"] {
            assert!(Route::new(bad).is_err(), "{bad:?} accepted");
        }
        let r: Result<Route, _> = serde_json::from_str("\"DROP TABLE\"");
        assert!(r.is_err());
        assert_eq!(serde_json::to_string(&Route::FAQ).unwrap(), "\"faq\"");
    }

    #[test]
    fn language_detection() {
        assert_eq!(Language::detect("Where is my order?"), Language::En);
        assert_eq!(Language::detect("我的订单到哪了"), Language::Zh);
        assert_eq!(Language::detect("my order 到了吗"), Language::Zh);
        assert_eq!(Language::detect(""), Language::En);
    }
}
