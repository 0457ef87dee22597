//! Rules that read a customer message: order and ticket ids, the kind of request (repair, return,
//! exchange), whether it describes a fault, which item it means, yes or no.
//!
//! Rules come first because they are exact, instant and explainable; the supervisor has already
//! decided the message belongs to the after-sales route.

pub(crate) use fenliu_agent::text::confirmation;
use fenliu_agent::text::{Match, contains_keyword, head_lower};
pub use fenliu_tools_commerce::find_order_id as extract_order_id;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the customer wants done with a delivered item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// Repair under warranty.
    Repair,
    /// Return for a refund (within 30 days of delivery).
    Return,
    /// Exchange for another variant of the same product (within 30 days of delivery).
    Exchange,
}

fn any_keyword(lower: &str, keywords: &[&str]) -> bool {
    keywords.iter().any(|k| contains_keyword(lower, k, Match::Prefix))
}

const EXCHANGE: &[&str] = &[
    "exchange",
    "swap",
    "different size",
    "another size",
    "bigger size",
    "smaller size",
    "different colo",
    "another colo",
    "换货",
    "调换",
    "换一个",
    "换个",
    "换尺码",
    "换颜色",
    "换成",
];
const RETURN: &[&str] =
    &["return", "send it back", "send back", "take it back", "退货", "退回", "退掉", "退了"];
const REPAIR: &[&str] =
    &["repair", "fix", "warranty claim", "维修", "修理", "修一下", "修好", "报修", "送修", "保修"];

/// The kind of request a message expresses, if any keyword says so. Mentions of both return and
/// exchange ("退换") are left undecided.
pub(crate) fn request_kind(message: &str) -> Option<RequestKind> {
    let lower = head_lower(message);
    let exchange = any_keyword(&lower, EXCHANGE);
    let ret = any_keyword(&lower, RETURN);
    if lower.contains("退换") || (exchange && ret) {
        return None;
    }
    if exchange {
        Some(RequestKind::Exchange)
    } else if ret {
        Some(RequestKind::Return)
    } else if any_keyword(&lower, REPAIR) {
        Some(RequestKind::Repair)
    } else {
        None
    }
}

/// Whether the message asks how an existing ticket (repair, return, exchange) is getting on.
pub(crate) fn is_status_request(message: &str) -> bool {
    const STATUS: &[&str] = &[
        "status",
        "progress",
        "update on",
        "any update",
        "how is my",
        "how's my",
        "what happened to my",
        "进度",
        "状态",
        "怎么样了",
        "到哪一步",
        "处理得",
        "有消息",
        "多久能好",
    ];
    const TICKETS: &[&str] = &[
        "ticket", "repair", "return", "exchange", "claim", "case", "request", "工单", "维修",
        "报修", "售后", "退货", "换货", "申请",
    ];
    let lower = head_lower(message);
    any_keyword(&lower, STATUS) && any_keyword(&lower, TICKETS)
}

/// Words that describe something wrong with an item (or a reason to return or exchange it).
const FAULT: &[&str] = &[
    "broke",
    "break",
    "not work",
    "doesn't work",
    "does not work",
    "don't work",
    "isn't working",
    "stopped",
    "won't",
    "wont ",
    "will not",
    "can't",
    "cannot",
    "dead",
    "fault",
    "defect",
    "damage",
    "crack",
    "shatter",
    "scratch",
    "dent",
    "noise",
    "noisy",
    "rattl",
    "buzz",
    "leak",
    "overheat",
    "too hot",
    "smok",
    "spark",
    "burn",
    "shock",
    "battery",
    "charg",
    "screen",
    "flicker",
    "turn on",
    "power",
    "error",
    "glitch",
    "freez",
    "crash",
    "loose",
    "wobbl",
    "stuck",
    "jam",
    "peel",
    "ripped",
    "torn",
    "tear",
    "stain",
    "missing",
    "malfunction",
    "problem",
    "issue",
    "trouble",
    "disconnect",
    "pair",
    "no sound",
    "sound",
    "too small",
    "too big",
    "too large",
    "too tight",
    "doesn't fit",
    "does not fit",
    "wrong size",
    "wrong colo",
    "size",
    "don't like",
    "do not like",
    "not as described",
    "no longer",
    "click",
    "lag",
    "drift",
    "slow",
    "keeps",
    "randomly",
    "weird",
    "strange",
    "faded",
    "bent",
    "warped",
    "坏",
    "不工作",
    "不能用",
    "用不了",
    "不能",
    "无法",
    "没反应",
    "没有反应",
    "开不了机",
    "不开机",
    "充不进",
    "充不上",
    "故障",
    "问题",
    "毛病",
    "漏",
    "裂",
    "破",
    "碎",
    "响",
    "噪音",
    "发烫",
    "过热",
    "冒烟",
    "起火",
    "火花",
    "触电",
    "黑屏",
    "死机",
    "卡住",
    "断",
    "松",
    "掉",
    "失灵",
    "不亮",
    "不转",
    "没声音",
    "连不上",
    "尺码",
    "太大",
    "太小",
    "大了",
    "小了",
    "不合适",
    "不喜欢",
    "颜色不对",
    "质量",
    "划痕",
    "瑕疵",
];

/// Whether the message itself describes a fault or a reason for the request.
pub(crate) fn describes_fault(message: &str) -> bool {
    any_keyword(&head_lower(message), FAULT)
}

/// Whether a message that asks for a repair, return or exchange also says enough to serve as the
/// description ("the mouse double clicks, please repair it"): five words or six Chinese characters.
pub(crate) fn is_detailed_request(message: &str) -> bool {
    let head: String = message.chars().take(2_000).collect();
    request_kind(&head).is_some()
        && (head.split_whitespace().count() >= 5
            || head.chars().filter(|c| fenliu_agent::conversation::is_cjk(*c)).count() >= 6)
}

/// Whether a fault is a safety risk (heat, smoke, fire, electricity): the ticket becomes urgent and
/// the customer is told to stop using the item.
pub(crate) fn is_safety_risk(text: &str) -> bool {
    const SAFETY: &[&str] = &[
        "smok",
        "fire",
        "flame",
        "spark",
        "burn",
        "melt",
        "explod",
        "overheat",
        "electric shock",
        "shocked me",
        "got a shock",
        "冒烟",
        "起火",
        "着火",
        "火花",
        "烧",
        "爆炸",
        "触电",
        "漏电",
        "电到",
        "过热",
        "发烫",
        "烫手",
    ];
    any_keyword(&head_lower(text), SAFETY)
}

/// Whether the message is a formal complaint rather than an after-sales request: a legal threat,
/// an injury, fraud, a regulator or the media. Such messages go to the complaint agent.
pub(crate) fn is_formal_complaint(message: &str) -> bool {
    const FORMAL: &[&str] = &[
        "sue ",
        "suing",
        "lawsuit",
        "lawyer",
        "attorney",
        "legal action",
        "court",
        "scam",
        "fraud",
        "consumer protection",
        "injur",
        "hurt me",
        "hurt my",
        "起诉",
        "律师",
        "法院",
        "诈骗",
        "骗子",
        "欺诈",
        "消协",
        "消费者协会",
        "12315",
        "曝光",
        "媒体",
        "受伤",
        "伤到",
        "烫伤",
        "烧伤",
    ];
    let lower = head_lower(message);
    // "sue" at the very end of a message has no trailing space.
    any_keyword(&lower, FORMAL) || lower.trim_end_matches(['.', '!', '?']).ends_with(" sue")
}

/// Whether a customer told that an item is out of warranty insists on a free repair or a person.
pub(crate) fn insists(message: &str) -> bool {
    const INSIST: &[&str] = &[
        "insist",
        "unfair",
        "not fair",
        "ridiculous",
        "unacceptable",
        "not acceptable",
        "should be free",
        "for free",
        "free repair",
        "still covered",
        "must repair",
        "must fix",
        "manager",
        "supervisor",
        "坚持",
        "不合理",
        "凭什么",
        "免费",
        "必须",
        "不公平",
        "不接受",
        "找经理",
        "还在保修",
    ];
    any_keyword(&head_lower(message), INSIST)
}

/// A short description for a ticket: control and direction-override characters removed, at most
/// `max` characters.
pub(crate) fn clean_description(message: &str, max: usize) -> String {
    let cleaned: String = message
        .chars()
        .filter(|c| {
            !c.is_control()
                && !matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
        })
        .take(max)
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether a message has enough content to serve as a fault description when one was asked for.
pub(crate) fn is_substantive(message: &str) -> bool {
    let cleaned = clean_description(message, 500);
    cleaned.chars().filter(|c| c.is_alphanumeric()).count() >= 3 && confirmation(&cleaned).is_none()
}

/// Chinese words customers use for products, mapped to a word of the (English) product names.
const ZH_PRODUCT_WORDS: &[(&str, &str)] = &[
    ("耳机", "headphones"),
    ("蓝牙耳机", "earbuds"),
    ("手表", "watch"),
    ("电水壶", "kettle"),
    ("烧水壶", "kettle"),
    ("水壶", "kettle"),
    ("鼠标", "mouse"),
    ("键盘", "keyboard"),
    ("背包", "backpack"),
    ("双肩包", "backpack"),
    ("书包", "backpack"),
    ("手机", "smartphone"),
    ("笔记本电脑", "laptop"),
    ("电脑", "laptop"),
    ("平板", "tablet"),
    ("相机", "camera"),
    ("摄像头", "camera"),
    ("音箱", "speaker"),
    ("音响", "speaker"),
    ("吸尘器", "vacuum"),
    ("咖啡机", "coffee"),
    ("台灯", "lamp"),
    ("灯泡", "bulb"),
    ("椅子", "chair"),
    ("办公椅", "chair"),
    ("充电宝", "charger"),
    ("牙刷", "toothbrush"),
    ("水杯", "bottle"),
    ("水瓶", "bottle"),
    ("自行车", "bicycle"),
    ("头盔", "helmet"),
    ("滑板", "skateboard"),
    ("行李箱", "luggage"),
    ("墨镜", "sunglasses"),
    ("太阳镜", "sunglasses"),
    ("跑鞋", "shoes"),
    ("运动鞋", "sneakers"),
    ("靴子", "boots"),
    ("夹克", "jacket"),
    ("净化器", "purifier"),
    ("温控器", "thermostat"),
    ("阅读器", "e-reader"),
    ("烤炉", "grill"),
    ("烤架", "grill"),
    ("哑铃", "dumbbell"),
    ("瑜伽垫", "yoga"),
    ("挂钟", "clock"),
    ("书架", "bookshelf"),
    ("水管", "hose"),
    ("遮阳伞", "umbrella"),
];

/// Which of `items` (id, product name) the message means: by item id, by a word of the product
/// name, by a Chinese product word, or by position ("2", "the second", "第二个"). `None` unless
/// exactly one item fits.
pub(crate) fn pick_item(message: &str, items: &[(&str, &str)]) -> Option<usize> {
    let lower = head_lower(message);
    let unique = |hits: Vec<usize>| if hits.len() == 1 { hits.first().copied() } else { None };

    let by_id: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, (id, _))| {
            !id.is_empty() && contains_keyword(&lower, &id.to_lowercase(), Match::Word)
        })
        .map(|(i, _)| i)
        .collect();
    if let Some(i) = unique(by_id) {
        return Some(i);
    }
    // By name: each item scores the words of its name the message mentions (short words such as
    // "pet" or "bed" as whole words, longer ones also as prefixes of plurals); the single best
    // score wins, so "pet bed" picks the Pet Bed even when another item is also a bed.
    let score = |name: &str| -> usize {
        let name_lower = name.to_lowercase();
        let english = name_lower
            .split(|c: char| !c.is_alphanumeric() && c != '-')
            .filter(|w| w.len() >= 3)
            .filter(|w| {
                if w.len() >= 4 {
                    contains_keyword(&lower, w.trim_end_matches('s'), Match::Prefix)
                } else {
                    contains_keyword(&lower, w, Match::Word)
                }
            })
            .count();
        let chinese = ZH_PRODUCT_WORDS
            .iter()
            .filter(|(zh, en)| lower.contains(zh) && name_lower.contains(en))
            .count();
        english + chinese
    };
    let scores: Vec<usize> = items.iter().map(|(_, name)| score(name)).collect();
    if let Some(&best) = scores.iter().max()
        && best > 0
    {
        let winners: Vec<usize> =
            scores.iter().enumerate().filter(|&(_, &s)| s == best).map(|(i, _)| i).collect();
        if let Some(i) = unique(winners) {
            return Some(i);
        }
        // Several items fit equally well: only a position ("the second one") decides.
    }
    position(&lower, items.len())
}

/// A position answer ("2", "#2", "the second one", "第二个") within `1..=n`, as an index.
fn position(lower: &str, n: usize) -> Option<usize> {
    const EN: &[&str] = &["first", "second", "third", "fourth", "fifth"];
    const ZH: &[&str] = &["一", "二", "三", "四", "五"];
    let trimmed = lower.trim().trim_start_matches('#').trim_end_matches(['.', '!', '。']);
    let index = if let Ok(k) = trimmed.parse::<usize>() {
        k.checked_sub(1)
    } else if let Some(k) = EN.iter().position(|w| contains_keyword(lower, w, Match::Word)) {
        Some(k)
    } else if let Some(rest) = lower.split('第').nth(1) {
        let first = rest.chars().next().map(String::from).unwrap_or_default();
        ZH.iter()
            .position(|w| *w == first)
            .or_else(|| first.parse::<usize>().ok().and_then(|k| k.checked_sub(1)))
    } else if contains_keyword(lower, "last", Match::Word) || lower.contains("最后") {
        n.checked_sub(1)
    } else {
        None
    };
    index.filter(|i| *i < n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_kinds() {
        let cases = [
            ("I want to return the kettle", Some(RequestKind::Return)),
            ("can I exchange it for a bigger size?", Some(RequestKind::Exchange)),
            ("please repair my watch", Some(RequestKind::Repair)),
            ("我想退货", Some(RequestKind::Return)),
            ("想换个颜色", Some(RequestKind::Exchange)),
            ("手表坏了，能维修吗", Some(RequestKind::Repair)),
            ("能退换吗", None),
            ("it stopped working", None),
        ];
        for (msg, want) in cases {
            assert_eq!(request_kind(msg), want, "{msg}");
        }
    }

    #[test]
    fn status_requests() {
        for yes in ["status of my repair?", "any update on my return request", "我的维修单进度"]
        {
            assert!(is_status_request(yes), "{yes}");
        }
        for no in ["status of my order", "my watch is broken", "进度条卡住了"] {
            assert!(!is_status_request(no), "{no}");
        }
    }

    #[test]
    fn faults_and_safety() {
        assert!(describes_fault("my headphones stopped working"));
        assert!(describes_fault("耳机坏了"));
        assert!(describes_fault("the shoes are too small"));
        assert!(describes_fault("the mouse double clicks"));
        assert!(is_detailed_request("the strap came off the watch, please repair it"));
        assert!(!is_detailed_request("repair please"));
        assert!(!describes_fault("order W1000002"));
        assert!(is_safety_risk("the charger started smoking"));
        assert!(is_safety_risk("水壶漏电"));
        assert!(!is_safety_risk("the strap is loose"));
        assert!(insists("That's unfair, I want a free repair"));
        assert!(insists("不合理，必须免费修"));
        assert!(!insists("ok, never mind"));
        assert!(is_substantive("the screen flickers"));
        assert!(!is_substantive("yes"));
        assert!(!is_substantive(" \u{0}💥 "));
        assert_eq!(clean_description("a\u{202e}b\n  c", 10), "ab c");
    }

    #[test]
    fn formal_complaints() {
        for yes in [
            "I will sue you, the kettle is garbage",
            "I'll sue",
            "产品漏电差点伤到孩子",
            "你们是骗子",
        ] {
            assert!(is_formal_complaint(yes), "{yes}");
        }
        for no in ["there is an issue with my watch", "the charger is smoking", "耳机坏了"] {
            assert!(!is_formal_complaint(no), "{no}");
        }
    }

    #[test]
    fn items() {
        let items = [("1", "Electric Kettle"), ("2", "Gaming Mouse"), ("3", "Backpack")];
        assert_eq!(pick_item("the mouse stopped clicking", &items), Some(1));
        assert_eq!(pick_item("鼠标坏了", &items), Some(1));
        assert_eq!(pick_item("kettles", &items), Some(0));
        assert_eq!(pick_item("2", &items), Some(1));
        assert_eq!(pick_item("the third one", &items), Some(2));
        assert_eq!(pick_item("第一个", &items), Some(0));
        assert_eq!(pick_item("my headphones", &items), None);
        assert_eq!(pick_item("9", &items), None);
        assert_eq!(pick_item("", &items), None);
        // Short name words count as whole words, and the most specific name wins.
        let beds = [("b1", "Pet Bed"), ("b2", "Bed Frame"), ("c1", "Action Camera")];
        assert_eq!(pick_item("the pet bed please", &beds), Some(0));
        assert_eq!(pick_item("the bed frame", &beds), Some(1));
        assert_eq!(pick_item("the bed", &beds), None);
        assert_eq!(pick_item("a bedtime story", &beds), None);
        assert_eq!(pick_item("the camera", &beds), Some(2));
    }

    #[test]
    fn ids_and_confirmations() {
        assert_eq!(extract_order_id("from order W7678072 it").as_deref(), Some("#W7678072"));
        assert_eq!(extract_order_id("订单W2611340坏了").as_deref(), Some("#W2611340"));
        assert_eq!(extract_order_id("model HW123456"), None);
        for yes in ["yes", "ok", "确认", "好的", "yes please"] {
            assert_eq!(confirmation(yes), Some(true), "{yes}");
        }
        for no in ["no", "不用了", "算了", "never mind"] {
            assert_eq!(confirmation(no), Some(false), "{no}");
        }
        assert_eq!(confirmation("what does it cost?"), None);
    }
}
