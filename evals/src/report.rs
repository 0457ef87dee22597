//! Reports of a run: JSON (machine, the input of `fenliu eval compare`), a Markdown summary, and
//! a self-contained HTML page whose charts are SVG drawn with plotters (confusion heatmap,
//! per-route bars, latency histogram, stage mix), with every error listed with its text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::metrics::{Metrics, Ratio, compute};
use crate::runner::{ConversationRecord, EvalRun, RunInfo};
use crate::{EvalError, RowError};

/// Name of the report format, checked when a report is read back.
pub const REPORT_FORMAT: &str = "fenliu-eval-report";
/// Version of the report format.
pub const REPORT_VERSION: u32 = 1;

/// Something that went wrong in a conversation, with the text needed to fix it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorItem {
    /// `misroute`, `tools`, `escalation`, `kind`, `facts`, `slots`, `task`, `run`.
    pub category: String,
    /// Dataset.
    pub dataset: String,
    /// Conversation id.
    pub conversation: String,
    /// 1-based turn (0: the whole conversation).
    pub turn: usize,
    /// The customer's message.
    pub text: String,
    /// What was expected.
    pub expected: String,
    /// What happened.
    pub got: String,
}

/// A whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`REPORT_FORMAT`].
    pub format: String,
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// How the run was made.
    pub info: RunInfo,
    /// Metrics over everything.
    pub overall: Metrics,
    /// Metrics per dataset.
    pub per_dataset: BTreeMap<String, Metrics>,
    /// Errors, with texts.
    pub errors: Vec<ErrorItem>,
    /// Rows the loaders skipped.
    pub bad_rows: Vec<RowError>,
    /// Every recorded conversation.
    pub conversations: Vec<ConversationRecord>,
}

fn fmt_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Lists what went wrong in each conversation.
pub fn errors(records: &[ConversationRecord]) -> Vec<ErrorItem> {
    let mut out = Vec::new();
    for r in records.iter().filter(|r| r.trial == 0) {
        let item =
            |category: &str, turn: usize, text: &str, expected: String, got: String| ErrorItem {
                category: category.into(),
                dataset: r.dataset.clone(),
                conversation: r.id.clone(),
                turn,
                text: text.to_owned(),
                expected,
                got,
            };
        for (i, t) in r.turns.iter().enumerate() {
            let Some(e) = &t.expect else { continue };
            if let Some(route) = &e.route
                && *route != t.route
            {
                let got = format!("{} ({:.2}, {})", t.route, t.confidence, t.stage);
                out.push(item("misroute", i + 1, &t.text, route.to_string(), got));
            }
            if let Some(want) = &e.tools
                && !crate::metrics::tools_match(t, want)
            {
                let show = |calls: Vec<(String, String)>| {
                    calls
                        .into_iter()
                        .map(|(n, a)| format!("{n}({a})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let expected =
                    show(want.iter().map(|c| (c.name.clone(), c.args.to_string())).collect());
                let got =
                    show(t.tools.iter().map(|c| (c.name.clone(), c.args.to_string())).collect());
                out.push(item("tools", i + 1, &t.text, expected, got));
            }
            if let Some(want) = e.escalate
                && want != t.escalated
            {
                let got = format!("escalated: {}", t.escalated);
                out.push(item("escalation", i + 1, &t.text, format!("escalated: {want}"), got));
            }
            if let Some(kind) = e.kind
                && kind != t.kind
            {
                out.push(item(
                    "kind",
                    i + 1,
                    &t.text,
                    format!("{kind:?}"),
                    format!("{:?}", t.kind),
                ));
            }
            let reply = t.reply.to_lowercase();
            let missing: Vec<&str> = e
                .facts
                .iter()
                .filter(|f| !reply.contains(&f.to_lowercase()))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                out.push(item("facts", i + 1, &t.text, missing.join(", "), t.reply.clone()));
            }
            let slots: Vec<String> = e
                .slots
                .iter()
                .filter(|(k, v)| !crate::metrics::slot_found(t, k, v))
                .map(|(k, v)| format!("{k}={}", fmt_value(v)))
                .collect();
            if !slots.is_empty() {
                out.push(item("slots", i + 1, &t.text, slots.join(", "), t.slots.to_string()));
            }
        }
        if let Some(task) = r.task.as_ref().filter(|t| !t.passed) {
            let first = r.turns.first().map(|t| t.text.as_str()).unwrap_or_default();
            let got = r.turns.last().map(|t| t.reply.clone()).unwrap_or_default();
            out.push(item("task", 0, first, task.diff.join("; "), got));
        }
        if let Some(e) = &r.error {
            out.push(item("run", 0, "", "the conversation runs to the end".into(), e.clone()));
        }
    }
    out
}

impl Report {
    /// Scores a run.
    pub fn new(run: EvalRun) -> Self {
        let mut per_dataset = BTreeMap::new();
        for name in run.info.datasets.keys() {
            let records: Vec<ConversationRecord> =
                run.conversations.iter().filter(|r| &r.dataset == name).cloned().collect();
            per_dataset.insert(name.clone(), compute(&records));
        }
        Self {
            format: REPORT_FORMAT.into(),
            version: REPORT_VERSION,
            overall: compute(&run.conversations),
            errors: errors(&run.conversations),
            per_dataset,
            info: run.info,
            bad_rows: run.bad_rows,
            conversations: run.conversations,
        }
    }

    /// Reads a JSON report, checking its format and version.
    pub fn load(path: &Path) -> Result<Self, EvalError> {
        let bytes = crate::read_limited(path)?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            EvalError::BadFile { path: path.to_owned(), message: format!("not JSON: {e}") }
        })?;
        let format = value.get("format").and_then(|v| v.as_str()).unwrap_or_default();
        let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or_default();
        if format != REPORT_FORMAT || version != u64::from(REPORT_VERSION) {
            return Err(EvalError::BadFile {
                path: path.to_owned(),
                message: format!(
                    "not a {REPORT_FORMAT} version {REPORT_VERSION} report (format `{format}`, \
                     version {version})"
                ),
            });
        }
        serde_json::from_value(value).map_err(|e| EvalError::BadFile {
            path: path.to_owned(),
            message: format!("damaged report: {e}"),
        })
    }

    /// Writes `<stem>.json`, `<stem>.md` and `<stem>.html` into `dir`; returns their paths.
    pub fn write_all(&self, dir: &Path, stem: &str) -> Result<[PathBuf; 3], EvalError> {
        std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))?;
        let paths = [
            dir.join(format!("{stem}.json")),
            dir.join(format!("{stem}.md")),
            dir.join(format!("{stem}.html")),
        ];
        let json =
            serde_json::to_string_pretty(self).map_err(|e| EvalError::Report(e.to_string()))?;
        let contents = [json, self.markdown(), self.html()?];
        for (path, text) in paths.iter().zip(contents) {
            std::fs::write(path, text).map_err(|e| EvalError::io(path, e))?;
        }
        Ok(paths)
    }

    /// The headline metrics as (name, value) rows, as printed and compared.
    pub fn headline(m: &Metrics) -> Vec<(&'static str, String)> {
        let pct = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.1}%", v * 100.0));
        let ratio = |r: &Ratio| match r.value {
            Some(v) => format!("{:.1}% ({}/{})", v * 100.0, r.hits, r.total),
            None => "-".into(),
        };
        let mut rows = vec![
            ("conversations", m.conversations.to_string()),
            ("turns", m.turns.to_string()),
            ("routing accuracy", pct(m.accuracy)),
            ("macro-F1", pct(m.macro_f1)),
            ("out-of-scope precision", pct(m.out_of_scope.map(|p| p.precision))),
            ("out-of-scope recall", pct(m.out_of_scope.map(|p| p.recall))),
            ("escalation precision", pct(m.escalation.map(|p| p.precision))),
            ("escalation recall", pct(m.escalation.map(|p| p.recall))),
            ("automation rate", ratio(&m.automation_rate)),
            ("tool-call exact match", ratio(&m.tool_call_exact_match)),
            ("slot accuracy", ratio(&m.slot_accuracy)),
            ("fact recall", ratio(&m.fact_recall)),
            ("reply kind accuracy", ratio(&m.kind_accuracy)),
            ("LLM calls / turn", format!("{:.2}", m.llm_calls_per_turn)),
            ("tokens / turn", format!("{:.1}", m.tokens_per_turn)),
            (
                "latency p50 / p90 / p99 ms",
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    m.latency_ms.p50, m.latency_ms.p90, m.latency_ms.p99
                ),
            ),
            ("failed conversations", m.failed_conversations.to_string()),
        ];
        for (k, v) in &m.pass_k {
            let name: &'static str = match k {
                1 => "pass^1",
                2 => "pass^2",
                3 => "pass^3",
                4 => "pass^4",
                _ => "pass^k (k≥5)",
            };
            let passed = m.tasks.iter().filter(|t| t.passed == t.trials).count();
            rows.push((
                name,
                format!("{:.1}% ({} tasks, {passed} always passed)", v * 100.0, m.tasks.len()),
            ));
        }
        rows
    }

    /// A plain-text table for the terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let names: Vec<&String> = self.per_dataset.keys().collect();
        let _ = write!(out, "{:<28} {:>22}", "metric", "all");
        for n in &names {
            let _ = write!(out, " {:>22}", truncate(n, 22));
        }
        out.push('\n');
        let overall = Self::headline(&self.overall);
        let per: Vec<Vec<(&str, String)>> = self.per_dataset.values().map(Self::headline).collect();
        for (i, (name, value)) in overall.iter().enumerate() {
            let _ = write!(out, "{name:<28} {value:>22}");
            for p in &per {
                let v = p.iter().find(|(n, _)| n == name).map_or("-", |(_, v)| v.as_str());
                let _ = i;
                let _ = write!(out, " {:>22}", truncate(v, 22));
            }
            out.push('\n');
        }
        if !self.overall.per_route.is_empty() {
            let _ = writeln!(
                out,
                "\n{:<14} {:>9} {:>9} {:>9} {:>8}",
                "route", "precision", "recall", "f1", "support"
            );
            for (route, s) in &self.overall.per_route {
                let _ = writeln!(
                    out,
                    "{:<14} {:>9.3} {:>9.3} {:>9.3} {:>8}",
                    route.as_str(),
                    s.precision,
                    s.recall,
                    s.f1,
                    s.support
                );
            }
        }
        let stages: Vec<String> = self
            .overall
            .stage_mix
            .iter()
            .map(|(s, n)| {
                format!("{s} {:.1}%", 100.0 * *n as f64 / self.overall.turns.max(1) as f64)
            })
            .collect();
        let _ = writeln!(out, "decided by: {}", stages.join(", "));
        let _ = writeln!(
            out,
            "{} errors listed, {} bad rows skipped",
            self.errors.len(),
            self.bad_rows.len()
        );
        out
    }

    /// The Markdown summary.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# fenliu eval report\n");
        let _ = writeln!(
            md,
            "Run {} · {:.1} s · seed {} · {} trial(s) · {} jobs · model `{}` · user `{}`\n",
            self.info.started_at,
            self.info.seconds,
            self.info.seed,
            self.info.trials,
            self.info.jobs,
            self.info.model,
            self.info.user
        );
        let names: Vec<&String> = self.per_dataset.keys().collect();
        let _ = write!(md, "| metric | all |");
        for n in &names {
            let _ = write!(md, " {n} |");
        }
        let _ = write!(md, "\n|---|---|");
        for _ in &names {
            md.push_str("---|");
        }
        md.push('\n');
        let per: Vec<Vec<(&str, String)>> = self.per_dataset.values().map(Self::headline).collect();
        for (name, value) in Self::headline(&self.overall) {
            let _ = write!(md, "| {name} | {value} |");
            for p in &per {
                let v = p.iter().find(|(n, _)| *n == name).map_or("-", |(_, v)| v.as_str());
                let _ = write!(md, " {v} |");
            }
            md.push('\n');
        }
        if !self.overall.per_route.is_empty() {
            let _ = writeln!(
                md,
                "\n## Routes\n\n| route | precision | recall | F1 | support |\n|---|---|---|---|---|"
            );
            for (route, s) in &self.overall.per_route {
                let _ = writeln!(
                    md,
                    "| {route} | {:.3} | {:.3} | {:.3} | {} |",
                    s.precision, s.recall, s.f1, s.support
                );
            }
            let _ = writeln!(md, "\n## Most frequent confusions\n");
            for (n, what) in top_confusions(&self.overall, 10) {
                let _ = writeln!(md, "- {what}: {n}");
            }
        }
        if !self.overall.tasks.is_empty() {
            let _ = writeln!(md, "\n## Tasks\n\n| dataset | task | passed |\n|---|---|---|");
            for t in &self.overall.tasks {
                let _ = writeln!(md, "| {} | {} | {}/{} |", t.dataset, t.id, t.passed, t.trials);
            }
        }
        let _ = writeln!(md, "\n## Errors ({})\n", self.errors.len());
        for e in self.errors.iter().take(100) {
            let _ = writeln!(
                md,
                "- **{}** `{}` turn {}: “{}” — expected {}, got {}",
                e.category,
                e.conversation,
                e.turn,
                md_escape(&e.text),
                md_escape(&e.expected),
                md_escape(&truncate(&e.got, 160))
            );
        }
        if self.errors.len() > 100 {
            let _ =
                writeln!(md, "- … {} more in the JSON and HTML reports", self.errors.len() - 100);
        }
        let _ = writeln!(md, "\n## Bad rows skipped ({})\n", self.bad_rows.len());
        for r in self.bad_rows.iter().take(50) {
            let _ = writeln!(md, "- `{r}`");
        }
        md
    }

    /// The self-contained HTML report.
    pub fn html(&self) -> Result<String, EvalError> {
        let m = &self.overall;
        let mut h = String::new();
        h.push_str("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>fenliu eval report</title><style>\
            body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;max-width:1200px}\
            table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;font-size:13px}\
            th{background:#f4f4f4}.charts{display:flex;flex-wrap:wrap;gap:16px}.chart{border:1px solid #eee;padding:4px}\
            .cat{font-weight:600}.muted{color:#777}td.num{text-align:right}</style></head><body>");
        let _ = write!(
            h,
            "<h1>fenliu eval report</h1><p class=\"muted\">Run {} · {:.1} s · seed {} · {} trial(s) · model <code>{}</code> · user <code>{}</code></p>",
            esc(&self.info.started_at),
            self.info.seconds,
            self.info.seed,
            self.info.trials,
            esc(&self.info.model),
            esc(&self.info.user)
        );
        h.push_str("<h2>Summary</h2><table><tr><th>metric</th><th>all</th>");
        for n in self.per_dataset.keys() {
            let _ = write!(h, "<th>{}</th>", esc(n));
        }
        h.push_str("</tr>");
        let per: Vec<Vec<(&str, String)>> = self.per_dataset.values().map(Self::headline).collect();
        for (name, value) in Self::headline(m) {
            let _ = write!(h, "<tr><td>{}</td><td class=\"num\">{}</td>", esc(name), esc(&value));
            for p in &per {
                let v = p.iter().find(|(n, _)| *n == name).map_or("-", |(_, v)| v.as_str());
                let _ = write!(h, "<td class=\"num\">{}</td>", esc(v));
            }
            h.push_str("</tr>");
        }
        h.push_str("</table><h2>Charts</h2><div class=\"charts\">");
        if !m.confusion.is_empty() {
            let _ = write!(h, "<div class=\"chart\" id=\"confusion\">{}</div>", confusion_svg(m)?);
            let _ = write!(h, "<div class=\"chart\" id=\"routes\">{}</div>", route_bars_svg(m)?);
        }
        let latencies: Vec<f64> =
            self.conversations.iter().flat_map(|c| c.turns.iter().map(|t| t.latency_ms)).collect();
        let _ = write!(h, "<div class=\"chart\" id=\"latency\">{}</div>", latency_svg(&latencies)?);
        let _ = write!(h, "<div class=\"chart\" id=\"stages\">{}</div>", stage_svg(m)?);
        h.push_str("</div>");
        if !m.per_route.is_empty() {
            h.push_str("<h2>Routes</h2><table><tr><th>route</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>");
            for (route, s) in &m.per_route {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td class=\"num\">{:.3}</td><td class=\"num\">{:.3}</td><td class=\"num\">{:.3}</td><td class=\"num\">{}</td></tr>",
                    esc(route.as_str()),
                    s.precision,
                    s.recall,
                    s.f1,
                    s.support
                );
            }
            h.push_str("</table>");
        }
        if !m.tasks.is_empty() {
            h.push_str(
                "<h2>Tasks</h2><table><tr><th>dataset</th><th>task</th><th>passed</th></tr>",
            );
            for t in &m.tasks {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td class=\"num\">{}/{}</td></tr>",
                    esc(&t.dataset),
                    esc(&t.id),
                    t.passed,
                    t.trials
                );
            }
            h.push_str("</table>");
        }
        let _ = write!(
            h,
            "<h2>Errors ({})</h2><table><tr><th>category</th><th>dataset</th><th>conversation</th><th>turn</th><th>message</th><th>expected</th><th>got</th></tr>",
            self.errors.len()
        );
        for e in &self.errors {
            let _ = write!(
                h,
                "<tr><td class=\"cat\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.category),
                esc(&e.dataset),
                esc(&e.conversation),
                e.turn,
                esc(&e.text),
                esc(&e.expected),
                esc(&truncate(&e.got, 300))
            );
        }
        let _ = write!(
            h,
            "</table><h2>Bad rows skipped ({})</h2><table><tr><th>file</th><th>line</th><th>problem</th></tr>",
            self.bad_rows.len()
        );
        for r in &self.bad_rows {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                esc(&r.path.display().to_string()),
                r.line,
                esc(&r.message)
            );
        }
        h.push_str("</table></body></html>\n");
        Ok(h)
    }
}

/// The `n` most frequent confusions as (count, "truth → predicted").
pub fn top_confusions(m: &Metrics, n: usize) -> Vec<(usize, String)> {
    let mut all: Vec<(usize, String)> = m
        .confusion
        .iter()
        .flat_map(|(truth, row)| {
            row.iter()
                .filter(move |(p, _)| *p != truth)
                .map(move |(p, c)| (*c, format!("{truth} → {p}")))
        })
        .collect();
    all.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    all.truncate(n);
    all
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn chart_err(e: impl std::fmt::Display) -> EvalError {
    EvalError::Report(format!("drawing a chart: {e}"))
}

/// The confusion matrix as a heatmap (rows: true route, columns: predicted; colour: share of
/// the row).
fn confusion_svg(m: &Metrics) -> Result<String, EvalError> {
    let mut routes: Vec<String> = m.confusion.keys().map(|r| r.to_string()).collect();
    routes.extend(m.confusion.values().flat_map(|r| r.keys().map(|k| k.to_string())));
    routes.sort();
    routes.dedup();
    let n = routes.len();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let labels = routes.clone();
        let labels_y = routes.clone();
        let mut chart = ChartBuilder::on(&root)
            .caption("Confusion matrix (row-normalised)", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(60)
            .y_label_area_size(100)
            .build_cartesian_2d(0f64..n as f64, 0f64..n as f64)
            .map_err(chart_err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(n * 2 + 1)
            .y_labels(n * 2 + 1)
            .x_label_formatter(&move |v| center_label(*v, &labels))
            .y_label_formatter(&move |v| center_label(f64::from(n as u32) - *v, &labels_y))
            .x_desc("predicted")
            .y_desc("true")
            .draw()
            .map_err(chart_err)?;
        for (i, truth) in routes.iter().enumerate() {
            let row = m.confusion.iter().find(|(r, _)| r.as_str() == truth).map(|(_, row)| row);
            let total: usize = row.map_or(0, |r| r.values().sum());
            for (j, pred) in routes.iter().enumerate() {
                let count = row
                    .and_then(|r| r.iter().find(|(p, _)| p.as_str() == pred).map(|(_, c)| *c))
                    .unwrap_or(0);
                let share = if total == 0 { 0.0 } else { count as f64 / total as f64 };
                let y = (n - 1 - i) as f64;
                let shade = (255.0 - share * 200.0) as u8;
                let color = if i == j {
                    RGBColor(shade, 255 - (share * 60.0) as u8, shade)
                } else {
                    RGBColor(255, shade, shade)
                };
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(j as f64, y), (j as f64 + 1.0, y + 1.0)],
                        color.filled(),
                    )))
                    .map_err(chart_err)?;
                if count > 0 {
                    chart
                        .draw_series(std::iter::once(Text::new(
                            count.to_string(),
                            (j as f64 + 0.4, y + 0.6),
                            ("sans-serif", 13),
                        )))
                        .map_err(chart_err)?;
                }
            }
        }
        root.present().map_err(chart_err)?;
    }
    Ok(svg)
}

/// A label at the centre of a cell: the formatter is called at half-integers and integers.
fn center_label(v: f64, labels: &[String]) -> String {
    let frac = v - v.floor();
    if (frac - 0.5).abs() > 1e-6 {
        return String::new();
    }
    labels.get(v.floor() as usize).cloned().unwrap_or_default()
}

/// Precision, recall and F1 per route as grouped bars.
fn route_bars_svg(m: &Metrics) -> Result<String, EvalError> {
    let routes: Vec<String> = m.per_route.keys().map(|r| r.to_string()).collect();
    let n = routes.len();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let labels = routes.clone();
        let mut chart = ChartBuilder::on(&root)
            .caption("Per-route precision / recall / F1", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(60)
            .y_label_area_size(40)
            .build_cartesian_2d(0f64..n as f64, 0f64..1.05f64)
            .map_err(chart_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n * 2 + 1)
            .x_label_formatter(&move |v| center_label(*v, &labels))
            .draw()
            .map_err(chart_err)?;
        let colors = [RGBColor(66, 133, 244), RGBColor(219, 68, 55), RGBColor(15, 157, 88)];
        let names = ["precision", "recall", "F1"];
        for (k, (color, name)) in colors.into_iter().zip(names).enumerate() {
            let bars = m.per_route.values().enumerate().map(|(i, s)| {
                let v = [s.precision, s.recall, s.f1][k];
                let x = i as f64 + 0.1 + k as f64 * 0.27;
                Rectangle::new([(x, 0.0), (x + 0.25, v)], color.filled())
            });
            chart.draw_series(bars).map_err(chart_err)?.label(name).legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
            });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(chart_err)?;
        root.present().map_err(chart_err)?;
    }
    Ok(svg)
}

/// A histogram of turn latencies (20 buckets up to the 99th percentile; the rest in the last).
fn latency_svg(latencies: &[f64]) -> Result<String, EvalError> {
    let mut sorted = latencies.to_vec();
    sorted.sort_by(f64::total_cmp);
    let top = sorted
        .get(((sorted.len() as f64 - 1.0) * 0.99).round().max(0.0) as usize)
        .copied()
        .unwrap_or(1.0)
        .max(0.001);
    const BUCKETS: usize = 20;
    let width = top / BUCKETS as f64;
    let mut counts = [0usize; BUCKETS];
    for v in &sorted {
        let b = ((v / width) as usize).min(BUCKETS - 1);
        counts[b] += 1;
    }
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Turn latency (ms)", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..top, 0f64..(max as f64 * 1.1))
            .map_err(chart_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("ms")
            .y_desc("turns")
            .draw()
            .map_err(chart_err)?;
        chart
            .draw_series(counts.iter().enumerate().map(|(i, c)| {
                let x = i as f64 * width;
                Rectangle::new(
                    [(x, 0.0), (x + width * 0.9, *c as f64)],
                    RGBColor(66, 133, 244).filled(),
                )
            }))
            .map_err(chart_err)?;
        root.present().map_err(chart_err)?;
    }
    Ok(svg)
}

/// Share of turns decided by each stage.
fn stage_svg(m: &Metrics) -> Result<String, EvalError> {
    let stages: Vec<(String, usize)> = m.stage_mix.iter().map(|(s, n)| (s.clone(), *n)).collect();
    let n = stages.len().max(1);
    let total = m.turns.max(1) as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let labels: Vec<String> = stages.iter().map(|(s, _)| s.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption("Deciding stage (share of turns)", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..n as f64, 0f64..1.05f64)
            .map_err(chart_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n * 2 + 1)
            .x_label_formatter(&move |v| center_label(*v, &labels))
            .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
            .draw()
            .map_err(chart_err)?;
        chart
            .draw_series(stages.iter().enumerate().map(|(i, (_, c))| {
                let share = *c as f64 / total;
                Rectangle::new(
                    [(i as f64 + 0.15, 0.0), (i as f64 + 0.85, share)],
                    RGBColor(244, 160, 0).filled(),
                )
            }))
            .map_err(chart_err)?;
        root.present().map_err(chart_err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::format::Expect;
    use crate::runner::TurnRecord;
    use fenliu_agent::Route;
    use fenliu_orchestrator::ReplyKind;

    pub(crate) fn sample_run() -> EvalRun {
        let turn = |text: &str, want: Route, got: Route, ms: f64| TurnRecord {
            text: text.into(),
            expect: Some(Expect { route: Some(want), ..Expect::default() }),
            route: got,
            confidence: 0.8,
            stage: "semantic".into(),
            kind: ReplyKind::Answer,
            agent: None,
            reply: "ok <b>".into(),
            tools: vec![],
            escalated: false,
            escalation_reason: None,
            slots: serde_json::Value::Null,
            latency_ms: ms,
            llm_calls: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
        };
        let rec = |id: &str, t: TurnRecord| ConversationRecord {
            dataset: "d".into(),
            id: id.into(),
            trial: 0,
            tags: vec![],
            customer: "c".into(),
            turns: vec![t],
            task: None,
            error: None,
        };
        EvalRun {
            info: RunInfo { datasets: [("d".to_owned(), 3)].into(), ..RunInfo::default() },
            conversations: vec![
                rec("a", turn("where is <my> order", Route::ORDER, Route::ORDER, 3.0)),
                rec("b", turn("tell me a joke", Route::OUT_OF_SCOPE, Route::ORDER, 5.0)),
                rec("c", turn("agent please", Route::HUMAN, Route::HUMAN, 0.5)),
            ],
            bad_rows: vec![RowError {
                path: "x.jsonl".into(),
                line: 4,
                message: "broken JSON".into(),
            }],
        }
    }

    #[test]
    fn reports_are_written_and_read_back() {
        let report = Report::new(sample_run());
        assert_eq!(report.errors.len(), 1);
        assert_eq!(report.errors[0].text, "tell me a joke");
        let dir = tempfile::tempdir().unwrap();
        let [json, md, html] = report.write_all(dir.path(), "r").unwrap();
        let back = Report::load(&json).unwrap();
        assert_eq!(back, report);
        let md = std::fs::read_to_string(md).unwrap();
        assert!(md.contains("| routing accuracy | 66.7% |") && md.contains("x.jsonl:4"), "{md}");
        let html = std::fs::read_to_string(html).unwrap();
        assert_eq!(html.matches("<svg").count(), 4);
        assert!(html.contains("where is &lt;my&gt; order") || html.contains("tell me a joke"));
        assert!(!html.contains("<b>"), "reply text is escaped");
        assert!(report.table().contains("routing accuracy"));

        std::fs::write(dir.path().join("bad.json"), "{\"format\": \"other\"}").unwrap();
        assert!(
            Report::load(&dir.path().join("bad.json"))
                .unwrap_err()
                .to_string()
                .contains("not a fenliu-eval-report")
        );
        std::fs::write(dir.path().join("broken.json"), "{").unwrap();
        assert!(Report::load(&dir.path().join("broken.json")).is_err());
    }
}
