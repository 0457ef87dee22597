//! Readers of public datasets in their own file formats, mapped onto the route taxonomy (see
//! `docs/evals.md` and the datasets README): Bitext, CLINC150, Banking77 and CrossWOZ become
//! single-turn routing sets; τ-bench retail tasks become multi-turn tasks with a scripted user
//! and expected actions. Each returns a [`Dataset`]; bad rows are reported with line numbers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use fenliu_agent::Route;
use fenliu_tools_commerce::ShopData;
use serde::{Deserialize, Serialize};

use crate::format::{
    Conversation, CustomerSpec, Dataset, Expect, ExpectedAction, Role, TaskSpec, TurnSpec,
    load_transcripts,
};
use crate::{EvalError, RowError, read_limited};

/// The dataset formats `fenliu eval` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetKind {
    /// The project's own transcript format (`docs/evals.md`).
    Transcripts,
    /// Bitext customer-support intents (CSV with `utterance` or `instruction`, and `intent`).
    Bitext,
    /// CLINC150 (JSON object of splits, each a list of `[text, intent]`).
    Clinc150,
    /// Banking77 (CSV `text,category`): near-domain out-of-scope.
    Banking77,
    /// CrossWOZ user turns (JSONL with `text`): Chinese out-of-scope.
    Crosswoz,
    /// τ-bench retail tasks (JSONL with `user_id`, `instruction`, `actions`).
    TauRetail,
}

impl DatasetKind {
    /// Every kind, for help texts.
    pub const ALL: [DatasetKind; 6] = [
        Self::Transcripts,
        Self::Bitext,
        Self::Clinc150,
        Self::Banking77,
        Self::Crosswoz,
        Self::TauRetail,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Transcripts => "transcripts",
            Self::Bitext => "bitext",
            Self::Clinc150 => "clinc150",
            Self::Banking77 => "banking77",
            Self::Crosswoz => "crosswoz",
            Self::TauRetail => "tau_retail",
        }
    }

    /// Parses a [`name`](Self::name).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Guesses the kind from a file name (`bitext*.csv`, `clinc*.json`, …); transcripts otherwise.
    pub fn detect(path: &Path) -> Self {
        let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
        if name.contains("bitext") {
            Self::Bitext
        } else if name.contains("clinc") {
            Self::Clinc150
        } else if name.contains("banking") {
            Self::Banking77
        } else if name.contains("crosswoz") {
            Self::Crosswoz
        } else if name.contains("tau") {
            Self::TauRetail
        } else {
            Self::Transcripts
        }
    }
}

/// Loads `path` as `kind`. `routes` are the routes labels may name; `shop` is needed by the
/// τ-bench loader (item names for the scripted user's messages).
pub fn load(
    path: &Path,
    kind: DatasetKind,
    routes: &BTreeSet<Route>,
    shop: &ShopData,
) -> Result<Dataset, EvalError> {
    match kind {
        DatasetKind::Transcripts => load_transcripts(path, routes),
        DatasetKind::Bitext => load_bitext(path),
        DatasetKind::Clinc150 => load_clinc150(path),
        DatasetKind::Banking77 => load_banking77(path),
        DatasetKind::Crosswoz => load_crosswoz(path),
        DatasetKind::TauRetail => load_tau_retail(path, shop),
    }
}

/// Bitext intents → routes (the mapping of the datasets README).
pub fn bitext_route(intent: &str) -> Option<Route> {
    Some(match intent {
        "cancel_order"
        | "change_order"
        | "track_order"
        | "delivery_period"
        | "change_shipping_address"
        | "set_up_shipping_address"
        | "get_refund"
        | "track_refund"
        | "check_invoice"
        | "check_invoices"
        | "get_invoice"
        | "payment_issue" => Route::ORDER,
        "place_order" | "newsletter_subscription" => Route::MARKETING,
        "complaint" => Route::COMPLAINT,
        "contact_human_agent" | "contact_customer_service" => Route::HUMAN,
        "create_account"
        | "delete_account"
        | "edit_account"
        | "recover_password"
        | "registration_problems"
        | "switch_account"
        | "check_payment_methods"
        | "delivery_options"
        | "check_refund_policy"
        | "check_cancellation_fee"
        | "review" => Route::FAQ,
        _ => return None,
    })
}

fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Reads a CSV with a header; calls `row` with (line, column lookup) for every record and
/// collects its conversations and errors.
fn read_csv(
    path: &Path,
    required: &[&[&str]],
    mut row: impl FnMut(u64, &[String]) -> Result<Option<Conversation>, String>,
) -> Result<Dataset, EvalError> {
    let bytes = read_limited(path)?;
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes.as_slice());
    let headers = reader
        .headers()
        .map_err(|e| EvalError::BadFile { path: path.to_owned(), message: e.to_string() })?
        .clone();
    let mut columns = Vec::new();
    for names in required {
        let found = headers
            .iter()
            .position(|h| names.contains(&h.trim_start_matches('\u{feff}').trim()))
            .ok_or_else(|| EvalError::BadFile {
                path: path.to_owned(),
                message: format!("the header needs a `{}` column", names.join("` or `")),
            })?;
        columns.push(found);
    }
    let mut data = Dataset { name: stem(path), ..Dataset::default() };
    for record in reader.byte_records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                data.errors.push(RowError { path: path.to_owned(), line, message: e.to_string() });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let mut fields = Vec::with_capacity(columns.len());
        let mut problem = None;
        for (&col, names) in columns.iter().zip(required) {
            match record.get(col).map(std::str::from_utf8) {
                Some(Ok(s)) if !s.trim().is_empty() => fields.push(s.trim().to_owned()),
                Some(Ok(_)) | None => {
                    problem = Some(format!("missing `{}`", names[0]));
                    break;
                }
                Some(Err(_)) => {
                    problem = Some("not valid UTF-8".to_owned());
                    break;
                }
            }
        }
        let result = match problem {
            Some(p) => Err(p),
            None => row(line, &fields),
        };
        match result {
            Ok(Some(c)) => data.conversations.push(c),
            Ok(None) => {}
            Err(message) => data.errors.push(RowError { path: path.to_owned(), line, message }),
        }
    }
    Ok(data)
}

/// Bitext (either release's columns); unknown intents are bad rows.
pub fn load_bitext(path: &Path) -> Result<Dataset, EvalError> {
    let name = stem(path);
    read_csv(path, &[&["utterance", "instruction"], &["intent"]], |line, f| {
        let route = bitext_route(&f[1]).ok_or_else(|| format!("unknown intent `{}`", f[1]))?;
        let tags = vec!["bitext".into(), "en".into(), f[1].clone()];
        Ok(Some(Conversation::single(format!("{name}:{line}"), f[0].clone(), route, tags)))
    })
}

/// Banking77: every message is out of scope for a shop (near-domain negatives).
pub fn load_banking77(path: &Path) -> Result<Dataset, EvalError> {
    let name = stem(path);
    read_csv(path, &[&["text"], &["category"]], |line, f| {
        let tags = vec!["banking77".into(), "en".into()];
        Ok(Some(Conversation::single(
            format!("{name}:{line}"),
            f[0].clone(),
            Route::OUT_OF_SCOPE,
            tags,
        )))
    })
}

/// CLINC150: `order_status` → `order`, every other intent and `oos` → `out_of_scope`. The file
/// is one JSON object of splits; a bad entry is reported by split and index.
pub fn load_clinc150(path: &Path) -> Result<Dataset, EvalError> {
    let bytes = read_limited(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| EvalError::BadFile {
        path: path.to_owned(),
        message: format!("not valid UTF-8 at byte {}", e.valid_up_to()),
    })?;
    let splits: BTreeMap<String, Vec<serde_json::Value>> =
        serde_json::from_str(text).map_err(|e| EvalError::BadFile {
            path: path.to_owned(),
            message: format!("line {}: not a CLINC150 object of splits: {e}", e.line()),
        })?;
    let mut data = Dataset { name: stem(path), ..Dataset::default() };
    for (split, rows) in &splits {
        for (i, row) in rows.iter().enumerate() {
            let pair = row.as_array().and_then(|a| match a.as_slice() {
                [t, intent] => Some((t.as_str()?, intent.as_str()?)),
                _ => None,
            });
            match pair {
                Some((t, intent)) if !t.trim().is_empty() => {
                    let route =
                        if intent == "order_status" { Route::ORDER } else { Route::OUT_OF_SCOPE };
                    let tags = vec!["clinc150".into(), "en".into(), intent.to_owned()];
                    data.conversations.push(Conversation::single(
                        format!("{}:{split}:{i}", data.name),
                        t.trim().to_owned(),
                        route,
                        tags,
                    ));
                }
                _ => data.errors.push(RowError {
                    path: path.to_owned(),
                    line: 0,
                    message: format!("{split}[{i}]: expected [text, intent], got {row}"),
                }),
            }
        }
    }
    Ok(data)
}

/// Reads JSONL, calling `row` per non-empty line.
fn read_jsonl(
    path: &Path,
    mut row: impl FnMut(u64, serde_json::Value) -> Result<Option<Conversation>, String>,
) -> Result<Dataset, EvalError> {
    let bytes = read_limited(path)?;
    let mut data = Dataset { name: stem(path), ..Dataset::default() };
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = i as u64 + 1;
        let result = match std::str::from_utf8(raw) {
            Err(_) => Err("not valid UTF-8".to_owned()),
            Ok(t) if t.trim().is_empty() => continue,
            Ok(t) => match serde_json::from_str(t.trim_start_matches('\u{feff}')) {
                Ok(v) => row(line, v),
                Err(e) => Err(format!("broken JSON: {e}")),
            },
        };
        match result {
            Ok(Some(c)) => data.conversations.push(c),
            Ok(None) => {}
            Err(message) => data.errors.push(RowError { path: path.to_owned(), line, message }),
        }
    }
    Ok(data)
}

/// CrossWOZ user turns: Chinese travel requests, all out of scope for a shop.
pub fn load_crosswoz(path: &Path) -> Result<Dataset, EvalError> {
    let name = stem(path);
    read_jsonl(path, |line, v| {
        let text = v
            .get("text")
            .and_then(|t| t.as_str())
            .filter(|t| !t.trim().is_empty())
            .ok_or("missing `text`")?;
        let tags = vec!["crosswoz".into(), "zh".into()];
        Ok(Some(Conversation::single(
            format!("{name}:{line}"),
            text.trim().to_owned(),
            Route::OUT_OF_SCOPE,
            tags,
        )))
    })
}

#[derive(Deserialize)]
struct TauTask {
    user_id: String,
    #[serde(default)]
    instruction: String,
    actions: Vec<TauAction>,
    #[serde(default)]
    task_index: Option<u64>,
}

#[derive(Deserialize)]
struct TauAction {
    name: String,
    #[serde(default)]
    kwargs: serde_json::Value,
}

/// τ-bench actions that only read; they change nothing and are not part of the expected state.
const READ_ONLY: [&str; 8] = [
    "find_user_id_by_email",
    "find_user_id_by_name_zip",
    "get_order_details",
    "get_product_details",
    "get_user_details",
    "list_all_product_types",
    "calculate",
    "think",
];

/// τ-bench write actions whose effect fenliu's tools can produce.
pub const SUPPORTED_ACTIONS: [&str; 5] = [
    "cancel_pending_order",
    "modify_pending_order_address",
    "return_delivered_order_items",
    "exchange_delivered_order_items",
    "transfer_to_human_agents",
];

/// τ-bench retail tasks. The user's messages are scripted from the expected actions (the LLM
/// user reads `instruction` instead); a task naming a write action fenliu cannot carry out, or
/// an order or customer the shop does not have, is a bad row.
pub fn load_tau_retail(path: &Path, shop: &ShopData) -> Result<Dataset, EvalError> {
    let name = stem(path);
    let orders: BTreeMap<&str, &fenliu_tools_commerce::Order> =
        shop.orders.iter().map(|o| (o.id.as_str(), o)).collect();
    let customers: BTreeSet<&str> = shop.customers.iter().map(|c| c.id.as_str()).collect();
    read_jsonl(path, |line, v| {
        let task: TauTask = serde_json::from_value(v).map_err(|e| e.to_string())?;
        if !customers.contains(task.user_id.as_str()) {
            return Err(format!("customer `{}` is not in the shop", task.user_id));
        }
        let mut turns = Vec::new();
        let mut actions = Vec::new();
        for a in task.actions.iter().filter(|a| !READ_ONLY.contains(&a.name.as_str())) {
            if !SUPPORTED_ACTIONS.contains(&a.name.as_str()) {
                return Err(format!("action `{}` is not supported by fenliu's tools", a.name));
            }
            let order_id = a.kwargs.get("order_id").and_then(|o| o.as_str());
            let order = match order_id {
                Some(id) => {
                    Some(orders.get(id).filter(|o| o.customer_id == task.user_id).ok_or_else(
                        || format!("order `{id}` of `{}` is not in the shop", task.user_id),
                    )?)
                }
                None => None,
            };
            turns.extend(script_for(&a.name, &a.kwargs, order.copied())?);
            actions.push(ExpectedAction { name: a.name.clone(), args: a.kwargs.clone() });
        }
        if turns.is_empty() {
            return Err("no write action to script".into());
        }
        let id = match task.task_index {
            Some(i) => format!("{name}:{i}"),
            None => format!("{name}:{line}"),
        };
        Ok(Some(Conversation {
            id,
            customer: CustomerSpec { id: Some(task.user_id), ..CustomerSpec::default() },
            channel: fenliu_agent::Channel::Web,
            tags: vec!["tau_retail".into(), "en".into()],
            turns,
            task: Some(TaskSpec { instruction: task.instruction, actions, max_turns: Some(12) }),
        }))
    })
}

fn user(text: String, route: Option<Route>) -> TurnSpec {
    TurnSpec {
        role: Role::User,
        text,
        if_asked: false,
        expect: route.map(|r| Expect { route: Some(r), ..Expect::default() }),
    }
}

fn if_asked(text: &str) -> TurnSpec {
    TurnSpec { role: Role::User, text: text.into(), if_asked: true, expect: None }
}

/// The scripted user's messages for one expected action.
fn script_for(
    action: &str,
    args: &serde_json::Value,
    order: Option<&fenliu_tools_commerce::Order>,
) -> Result<Vec<TurnSpec>, String> {
    let arg = |k: &str| args.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    let order_id = order.map(|o| o.id.clone()).unwrap_or_default();
    let item_name = || {
        let ids: Vec<&str> = args
            .get("item_ids")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        order
            .and_then(|o| o.items.iter().find(|i| ids.contains(&i.item_id.as_str())))
            .map(|i| i.name.to_lowercase())
            .ok_or_else(|| format!("{action}: no item of the order named in `item_ids`"))
    };
    Ok(match action {
        "cancel_pending_order" => {
            let why = if arg("reason").contains("mistake") {
                "I ordered it by mistake"
            } else {
                "I no longer need it"
            };
            vec![
                user(format!("Please cancel my order {order_id}, {why}."), Some(Route::ORDER)),
                if_asked("yes"),
            ]
        }
        "modify_pending_order_address" => {
            let address = [arg("address1"), arg("address2"), arg("city"), arg("state"), arg("zip")]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                user(
                    format!("Please change the shipping address of order {order_id} to {address}."),
                    Some(Route::ORDER),
                ),
                if_asked("yes"),
            ]
        }
        "return_delivered_order_items" => vec![
            user(
                format!(
                    "I want to return the {} from order {order_id}, it is not what I expected \
                     and I would like a refund.",
                    item_name()?
                ),
                Some(Route::AFTER_SALES),
            ),
            if_asked("return"),
            if_asked("yes"),
        ],
        "exchange_delivered_order_items" => vec![
            user(
                format!(
                    "I want to exchange the {} from order {order_id} for another option, it \
                     does not suit me.",
                    item_name()?
                ),
                Some(Route::AFTER_SALES),
            ),
            if_asked("exchange"),
            if_asked("yes"),
        ],
        "transfer_to_human_agents" => vec![TurnSpec {
            role: Role::User,
            text: "I want to talk to a human agent.".into(),
            if_asked: false,
            expect: Some(Expect {
                route: Some(Route::HUMAN),
                escalate: Some(true),
                ..Expect::default()
            }),
        }],
        other => return Err(format!("action `{other}` is not supported")),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn csv_loaders_report_bad_rows_with_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bitext.csv");
        let mut bytes =
            b"flags,utterance,category,intent\nB,where is my order,ORDER,track_order\n".to_vec();
        bytes.extend(b"B,,ORDER,track_order\n");
        bytes.extend(b"B,tell me a joke,X,tell_joke\n");
        bytes.extend(b"B,\xff\xfe bad,ORDER,track_order\n");
        bytes.extend(b"B,I want to complain,FEEDBACK,complaint\n");
        std::fs::write(&path, bytes).unwrap();
        let d = load_bitext(&path).unwrap();
        assert_eq!(d.conversations.len(), 2);
        let lines: Vec<(u64, &str)> =
            d.errors.iter().map(|e| (e.line, e.message.as_str())).collect();
        assert_eq!(
            lines,
            vec![
                (3, "missing `utterance`"),
                (4, "unknown intent `tell_joke`"),
                (5, "not valid UTF-8")
            ]
        );
        let no_header = dir.path().join("banking.csv");
        std::fs::write(&no_header, "a,b\n1,2\n").unwrap();
        assert!(load_banking77(&no_header).unwrap_err().to_string().contains("`text`"));
    }

    #[test]
    fn clinc_and_crosswoz_map_onto_routes() {
        let dir = tempfile::tempdir().unwrap();
        let clinc = dir.path().join("clinc.json");
        std::fs::write(
            &clinc,
            r#"{"val": [["where is my package", "order_status"], ["play jazz", "play_music"], [1, 2]], "oos_val": [["how old is the moon", "oos"]]}"#,
        )
        .unwrap();
        let d = load_clinc150(&clinc).unwrap();
        assert_eq!(d.conversations.len(), 3);
        assert_eq!(d.errors.len(), 1);
        assert!(d.errors[0].message.starts_with("val[2]"));
        let routes: Vec<&str> = d
            .conversations
            .iter()
            .map(|c| c.turns[0].expect.as_ref().unwrap().route.as_ref().unwrap().as_str())
            .collect();
        assert_eq!(routes, vec!["out_of_scope", "order", "out_of_scope"]);
        std::fs::write(&clinc, "{\"val\": [").unwrap();
        assert!(load_clinc150(&clinc).is_err());

        let woz = dir.path().join("crosswoz.jsonl");
        std::fs::write(&woz, "{\"text\": \"帮我找个酒店\"}\n{\"text\": \n\n{\"x\": 1}\n").unwrap();
        let d = load_crosswoz(&woz).unwrap();
        assert_eq!(d.conversations.len(), 1);
        assert_eq!(d.errors.iter().map(|e| e.line).collect::<Vec<_>>(), vec![2, 4]);
    }

    #[test]
    fn tau_tasks_become_scripted_tasks_and_unsupported_ones_are_reported() {
        let shop = fenliu_tools_commerce::test_utils::fixture_shop();
        let pending = shop.orders.iter().find(|o| o.status.as_str() == "pending").unwrap();
        let owner = pending.customer_id.clone();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tau.jsonl");
        let ok = serde_json::json!({"user_id": owner, "instruction": "cancel it", "task_index": 7,
            "actions": [{"name": "get_order_details", "kwargs": {"order_id": pending.id}},
                        {"name": "cancel_pending_order", "kwargs": {"order_id": pending.id, "reason": "ordered by mistake"}}]});
        let unsupported = serde_json::json!({"user_id": owner, "actions": [
            {"name": "modify_pending_order_items", "kwargs": {"order_id": pending.id}}]});
        let stranger = serde_json::json!({"user_id": "nobody", "actions": []});
        std::fs::write(&path, format!("{ok}\n{unsupported}\n{stranger}\n")).unwrap();
        let d = load_tau_retail(&path, &shop).unwrap();
        assert_eq!(d.conversations.len(), 1);
        let c = &d.conversations[0];
        assert_eq!(c.id, "tau:7");
        assert!(c.turns[0].text.contains(&pending.id) && c.turns[0].text.contains("mistake"));
        assert!(c.turns[1].if_asked);
        assert_eq!(c.task.as_ref().unwrap().actions.len(), 1, "read-only actions dropped");
        assert_eq!(d.errors.iter().map(|e| e.line).collect::<Vec<_>>(), vec![2, 3]);
        assert!(d.errors[0].message.contains("modify_pending_order_items"));
    }
}
