//! Reading a product request: sub-intent, what is wanted (in English, for the catalogue search),
//! budget and colour — by rules, in English and Chinese.
//!
//! The catalogue is in English and the embedding model is English-first, so Chinese product words
//! are mapped to the English product vocabulary here (the agent's own bilingual lexicon), and the
//! Chinese names are used again when the answer is written.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use fenliu_agent::text::{Match, contains_keyword, head_lower};
use fenliu_tools_commerce::marketing::ProductQuery;
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the customer wants from the marketing agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MarketingIntent {
    /// Product questions and recommendations.
    Products,
    /// Current promotions and codes.
    Promotions,
    /// Newsletter opt-in.
    Subscribe,
    /// Newsletter opt-out.
    Unsubscribe,
    /// Whether they are subscribed.
    NewsletterStatus,
}

impl MarketingIntent {
    /// The sub-intent the message signals, if any.
    pub fn detect(message: &str) -> Option<Self> {
        let lower = head_lower(message);
        let any = |words: &[&str], how| words.iter().any(|w| contains_keyword(&lower, w, how));
        let newsletter = any(
            &[
                "newsletter",
                "marketing email",
                "marketing e-mail",
                "promotional email",
                "promotional e-mail",
                "mailing list",
                "通讯",
                "营销邮件",
                "促销邮件",
                "新闻邮件",
                "推送邮件",
            ],
            Match::Prefix,
        );
        let unsubscribe = any(
            &[
                "unsubscribe",
                "opt out",
                "opt me out",
                "stop sending",
                "退订",
                "取消订阅",
                "别再",
                "不要再",
            ],
            Match::Prefix,
        );
        let subscribe =
            any(&["subscribe", "sign up", "sign me up", "opt in", "订阅"], Match::Prefix);
        let status = any(
            &["am i subscribed", "是否订阅", "订阅了吗", "订阅了会员", "有没有订阅"],
            Match::Prefix,
        ) || (lower.contains("subscribed") && lower.contains('?'));
        if newsletter || unsubscribe || (subscribe && !lower.contains("subscription box")) {
            return Some(if status {
                Self::NewsletterStatus
            } else if unsubscribe {
                Self::Unsubscribe
            } else if subscribe || newsletter {
                Self::Subscribe
            } else {
                Self::NewsletterStatus
            });
        }
        if any(
            &[
                "promotion",
                "promo",
                "discount",
                "coupon",
                "voucher",
                "deal",
                "sale",
                "offer",
                "code",
                "优惠",
                "促销",
                "折扣",
                "打折",
                "活动",
                "优惠券",
                "优惠码",
                "特价",
            ],
            Match::Prefix,
        ) {
            return Some(Self::Promotions);
        }
        None
    }
}

/// Chinese product words and the catalogue's English names, longest first where they overlap
/// (`无线耳机` before `耳机`). The English side is what the search embeds; the product name is also
/// how a hit is shown in Chinese.
pub(crate) const LEXICON: &[(&str, &str)] = &[
    ("电水壶", "Electric Kettle"),
    ("烧水壶", "Electric Kettle"),
    ("机械键盘", "Mechanical Keyboard"),
    ("键盘", "Mechanical Keyboard"),
    ("吸尘器", "Vacuum Cleaner"),
    ("手机", "Smartphone"),
    ("拼图", "Jigsaw Puzzle"),
    ("滑板", "Skateboard"),
    ("挂钟", "Wall Clock"),
    ("背包", "Backpack"),
    ("双肩包", "Backpack"),
    ("灯泡", "LED Light Bulb"),
    ("宠物床", "Pet Bed"),
    ("笔记本电脑", "Laptop"),
    ("笔记本", "Notebook"),
    ("监控摄像头", "Indoor Security Camera"),
    ("摄像头", "Indoor Security Camera"),
    ("运动相机", "Action Camera"),
    ("电子书", "E-Reader"),
    ("阅读器", "E-Reader"),
    ("空气净化器", "Air Purifier"),
    ("意式咖啡机", "Espresso Machine"),
    ("浓缩咖啡", "Espresso Machine"),
    ("瑜伽垫", "Yoga Mat"),
    ("电脑", "Laptop"),
    ("蓝牙音箱", "Bluetooth Speaker"),
    ("音箱", "Bluetooth Speaker"),
    ("办公椅", "Office Chair"),
    ("椅子", "Office Chair"),
    ("温控器", "Smart Thermostat"),
    ("化妆品", "Makeup Kit"),
    ("化妆", "Makeup Kit"),
    ("行李箱", "Luggage Set"),
    ("旅行箱", "Luggage Set"),
    ("游戏鼠标", "Gaming Mouse"),
    ("鼠标", "Gaming Mouse"),
    ("智能手表", "Smart Watch"),
    ("手表", "Wristwatch"),
    ("腕表", "Wristwatch"),
    ("水管", "Garden Hose"),
    ("台灯", "Desk Lamp"),
    ("烧烤", "Grill"),
    ("香水", "Perfume"),
    ("跑鞋", "Running Shoes"),
    ("跑步鞋", "Running Shoes"),
    ("充电宝", "Portable Charger"),
    ("移动电源", "Portable Charger"),
    ("无线耳机", "Wireless Earbuds"),
    ("蓝牙耳机", "Wireless Earbuds"),
    ("头戴耳机", "Headphones"),
    ("耳机", "Headphones"),
    ("哑铃", "Dumbbell Set"),
    ("太阳镜", "Sunglasses"),
    ("墨镜", "Sunglasses"),
    ("电动牙刷", "Electric Toothbrush"),
    ("牙刷", "Electric Toothbrush"),
    ("登山靴", "Hiking Boots"),
    ("徒步", "Hiking Boots"),
    ("运动鞋", "Sneakers"),
    ("头盔", "Cycling Helmet"),
    ("咖啡机", "Coffee Maker"),
    ("咖啡", "Coffee Maker"),
    ("平板", "Tablet"),
    ("水杯", "Water Bottle"),
    ("水壶", "Water Bottle"),
    ("保温杯", "Water Bottle"),
    ("抓绒", "Fleece Jacket"),
    ("夹克", "Fleece Jacket"),
    ("外套", "Fleece Jacket"),
    ("书架", "Bookshelf"),
    ("相机", "Digital Camera"),
    ("T恤", "T-Shirt"),
    ("t恤", "T-Shirt"),
    ("遮阳伞", "Patio Umbrella"),
    ("自行车", "Bicycle"),
    ("单车", "Bicycle"),
    ("茶壶", "Tea Kettle"),
];

/// The Chinese name shown for a product: the first lexicon entry naming it.
pub(crate) fn chinese_name(product: &str) -> Option<&'static str> {
    LEXICON.iter().find(|(_, en)| *en == product).map(|(zh, _)| *zh)
}

const COLOURS: &[(&str, &str)] = &[
    ("黑色", "black"),
    ("白色", "white"),
    ("红色", "red"),
    ("蓝色", "blue"),
    ("绿色", "green"),
    ("银色", "silver"),
    ("金色", "gold"),
    ("灰色", "grey"),
    ("粉色", "pink"),
    ("棕色", "brown"),
    ("紫色", "purple"),
];

/// Words that say "I want something" without saying what.
const GENERIC_EN: &[&str] = &[
    "recommend",
    "recommendation",
    "suggest",
    "suggestion",
    "something",
    "anything",
    "product",
    "products",
    "buy",
    "want",
    "looking",
    "look",
    "need",
    "have",
    "sell",
    "carry",
    "can",
    "could",
    "you",
    "please",
    "the",
    "for",
    "what",
    "which",
    "good",
    "best",
    "nice",
    "some",
    "any",
    "gift",
    "present",
    "idea",
    "ideas",
    "would",
    "should",
    "get",
    "shop",
    "store",
    "your",
    "new",
    "cheap",
    "under",
    "below",
    "less",
    "than",
    "dollars",
    "dollar",
    "usd",
    "budget",
    "around",
    "about",
    "and",
    "with",
    "that",
    "this",
    "there",
    "are",
    "show",
    "tell",
    "like",
    "love",
    "help",
    "find",
    "options",
    "option",
    "thing",
    "things",
    "stuff",
    "item",
    "items",
    "its",
    "it's",
    "i'm",
    "i'd",
    "i'll",
    "i've",
    "hello",
    "thanks",
    "thank",
    "hey",
    "maybe",
    "just",
    "really",
    "got",
    "one",
    "ones",
    "kind",
    "sort",
    "type",
    "what's",
    "how",
    "much",
    "cost",
    "price",
];

/// A product request read from one message.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ProductRequest {
    /// English search text (empty: nothing concrete asked for).
    pub(crate) query: String,
    /// Budget cap.
    pub(crate) max_price: Option<f64>,
    /// Colour wanted.
    pub(crate) colour: Option<String>,
}

impl ProductRequest {
    /// Whether the message names something to search for.
    pub(crate) fn is_concrete(&self) -> bool {
        !self.query.is_empty()
    }

    /// The tool arguments.
    pub(crate) fn to_query(&self, with_colour: bool) -> ProductQuery {
        let mut options = BTreeMap::new();
        if let (true, Some(c)) = (with_colour, &self.colour) {
            options.insert("color".to_owned(), c.clone());
        }
        ProductQuery {
            query: self.query.clone(),
            max_price: self.max_price,
            options,
            limit: Some(3),
            ..ProductQuery::default()
        }
    }
}

static PRICE_EN: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?:under|below|less than|up to|max(?:imum)?|no more than|within|budget(?: of| is)?)\s*(?:\$|usd\s*)?(\d{1,6}(?:\.\d{1,2})?)",
    )
    .ok()
});
static PRICE_ZH: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?:(?:不超过|低于|少于|预算|以内|以下)\s*\$?(\d{1,6}(?:\.\d{1,2})?))|(?:\$?(\d{1,6}(?:\.\d{1,2})?)\s*(?:美元|美金|块|元|刀)?\s*(?:以内|以下|之内|左右))",
    )
    .ok()
});

/// Reads what, how much and which colour from a message.
pub(crate) fn read_request(message: &str) -> ProductRequest {
    let lower = head_lower(message);
    let mut request = ProductRequest::default();
    let price = PRICE_EN
        .as_ref()
        .and_then(|re| re.captures(&lower))
        .and_then(|c| c.get(1))
        .or_else(|| {
            PRICE_ZH
                .as_ref()
                .and_then(|re| re.captures(&lower))
                .and_then(|c| c.get(1).or_else(|| c.get(2)))
        })
        .and_then(|m| m.as_str().parse::<f64>().ok());
    request.max_price = price.filter(|p| *p > 0.0);

    request.colour = COLOURS
        .iter()
        .find(|(zh, en)| lower.contains(zh) || contains_keyword(&lower, en, Match::Word))
        .map(|(_, en)| (*en).to_owned());

    // Chinese (or mixed) text: the lexicon's product words, longest match first, each once.
    let mut terms: Vec<&str> = Vec::new();
    let mut rest = lower.clone();
    for (zh, en) in LEXICON {
        if rest.contains(&zh.to_lowercase()) {
            rest = rest.replace(&zh.to_lowercase(), " ");
            if !terms.contains(en) {
                terms.push(en);
            }
        }
    }
    // English words that are not just "I want something".
    let english: Vec<&str> = lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '\''))
        .filter(|w| w.len() >= 3 && !w.chars().all(|c| c.is_ascii_digit()))
        .filter(|w| !GENERIC_EN.contains(w))
        .filter(|w| !COLOURS.iter().any(|(_, en)| en == w))
        .collect();
    let mut query: Vec<String> = terms.iter().map(|t| (*t).to_owned()).collect();
    if !english.is_empty() {
        // The whole English message carries the use ("for travel", "for pet hair") that the
        // embedding model understands; the lexicon terms lead.
        let english_text: String = message.chars().take(300).collect();
        query.push(english_text);
    }
    request.query = query.join(" ").trim().to_owned();
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents() {
        use MarketingIntent::*;
        for (m, want) in [
            ("Subscribe me to your newsletter", Some(Subscribe)),
            ("please unsubscribe me from marketing emails", Some(Unsubscribe)),
            ("Stop sending me promotional emails", Some(Unsubscribe)),
            ("Am I subscribed to the newsletter?", Some(NewsletterStatus)),
            ("帮我订阅会员通讯", Some(Subscribe)),
            ("请帮我退订营销邮件", Some(Unsubscribe)),
            ("我订阅了会员通讯吗？", Some(NewsletterStatus)),
            ("any promo codes?", Some(Promotions)),
            ("现在有什么优惠活动吗？", Some(Promotions)),
            ("recommend headphones", None),
            ("推荐一款耳机", None),
        ] {
            assert_eq!(MarketingIntent::detect(m), want, "{m}");
        }
    }

    #[test]
    fn requests() {
        let r = read_request("Can you recommend black headphones under $400?");
        assert_eq!(r.max_price, Some(400.0));
        assert_eq!(r.colour.as_deref(), Some("black"));
        assert!(r.query.contains("headphones"), "{r:?}");
        let r = read_request("推荐一款200美元以内的无线耳机，黑色的");
        assert_eq!(r.max_price, Some(200.0));
        assert_eq!(r.colour.as_deref(), Some("black"));
        assert_eq!(r.query, "Wireless Earbuds");
        let r = read_request("预算300买个智能手表");
        assert_eq!(r.max_price, Some(300.0));
        assert_eq!(r.query, "Smart Watch");
        assert!(!read_request("Can you recommend something?").is_concrete());
        assert!(!read_request("有什么推荐的吗？").is_concrete());
        assert!(!read_request("").is_concrete());
        let long = read_request(&"headphones ".repeat(100_000));
        assert!(long.query.chars().count() <= 300);
        assert_eq!(chinese_name("Wireless Earbuds"), Some("无线耳机"));
    }
}
