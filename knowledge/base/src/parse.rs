//! Reading files into structured documents: Markdown, HTML, plain text, Q&A pairs (CSV, JSONL)
//! and the product catalogue (JSON).
//!
//! Parsing keeps the structure the chunker needs: a heading path per section, and blocks
//! (paragraphs, list items, Q&A pairs, products) that are never split across sections.

use std::path::Path;

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use serde::Deserialize;

use crate::IngestError;

/// A parsed document before chunking.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedDoc {
    /// Title (first heading, `<title>`, or the file stem).
    pub title: String,
    /// Document type: `policy`, `faq`, `product`, `manual`, `promotion`.
    pub doc_type: String,
    /// Sections in document order.
    pub sections: Vec<Section>,
}

/// A run of blocks under one heading path.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Heading path, outermost first, joined with " › ".
    pub heading: String,
    /// Language of this section when the source says so (Q&A rows); otherwise detected later.
    pub language: Option<String>,
    /// Paragraphs, list items, table rows or records.
    pub blocks: Vec<String>,
    /// Records (a Q&A pair, a product) are chunks of their own and are never merged.
    pub atomic: bool,
}

/// The format of a file, from its extension (and for JSON, its shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.md`, `.markdown`
    Markdown,
    /// `.html`, `.htm`
    Html,
    /// `.txt`
    Text,
    /// `.csv` with `question` and `answer` columns.
    QaCsv,
    /// `.jsonl` with `question` and `answer` fields per line.
    QaJsonl,
    /// `.json`: an array of products with `name` and `variants` or `description`.
    Catalogue,
}

impl Format {
    /// The format of `path`, or `None` for files the knowledge base does not read.
    pub fn of(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "md" | "markdown" => Self::Markdown,
            "html" | "htm" => Self::Html,
            "txt" => Self::Text,
            "csv" => Self::QaCsv,
            "jsonl" => Self::QaJsonl,
            "json" => Self::Catalogue,
            _ => return None,
        })
    }
}

/// Parses `bytes` read from `path`.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<ParsedDoc, IngestError> {
    let format = Format::of(path).ok_or(IngestError::UnsupportedFormat)?;
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(IngestError::Empty);
    }
    if bytes.contains(&0) {
        return Err(IngestError::Binary);
    }
    let text =
        std::str::from_utf8(bytes).map_err(|e| IngestError::NotUtf8 { offset: e.valid_up_to() })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let stem = file_stem(path);
    let mut doc = match format {
        Format::Markdown => markdown(text, &stem),
        Format::Html => html(text, &stem),
        Format::Text => plain(text, &stem),
        Format::QaCsv => qa_csv(text, &stem)?,
        Format::QaJsonl => qa_jsonl(text, &stem)?,
        Format::Catalogue => catalogue(text, &stem)?,
    };
    doc.sections.retain(|s| !s.blocks.is_empty());
    if doc.sections.is_empty() {
        return Err(IngestError::Empty);
    }
    if doc.doc_type.is_empty() {
        doc.doc_type = doc_type_from_name(&path.to_string_lossy()).to_owned();
    }
    Ok(doc)
}

/// File name without the extension and without a language suffix (`returns-policy.en.md` →
/// `returns-policy`).
fn file_stem(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("document");
    match stem.rsplit_once('.') {
        Some((base, lang)) if is_language_code(lang) => base.to_owned(),
        _ => stem.to_owned(),
    }
}

fn is_language_code(s: &str) -> bool {
    matches!(s, "en" | "zh" | "zh-cn" | "zh-tw" | "ja" | "ko" | "de" | "fr" | "es")
}

/// The language a file name declares (`*.zh.md` → `zh`).
pub fn language_from_name(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    let (_, lang) = stem.rsplit_once('.')?;
    let lang = lang.to_ascii_lowercase();
    is_language_code(&lang).then(|| lang.split('-').next().unwrap_or("en").to_owned())
}

/// Document type from words in the path: manuals, promotions, policies.
fn doc_type_from_name(name: &str) -> &'static str {
    let name = name.to_ascii_lowercase();
    if ["manual", "troubleshoot", "workflow", "guide"].iter().any(|w| name.contains(w)) {
        "manual"
    } else if name.contains("promotion") {
        "promotion"
    } else {
        "policy"
    }
}

/// Detects `zh` when a noticeable share of the letters are CJK ideographs, `en` otherwise.
pub fn detect_language(text: &str) -> &'static str {
    let (mut cjk, mut letters) = (0usize, 0usize);
    for c in text.chars() {
        if is_cjk(c) {
            cjk += 1;
            letters += 1;
        } else if c.is_alphabetic() {
            letters += 1;
        }
    }
    if letters > 0 && cjk * 5 >= letters { "zh" } else { "en" }
}

/// Whether `c` is written without spaces between words (Han, kana, Hangul).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF     // Hiragana, Katakana
        | 0x3400..=0x4DBF   // CJK Extension A
        | 0x4E00..=0x9FFF   // CJK Unified Ideographs
        | 0xAC00..=0xD7AF   // Hangul syllables
        | 0xF900..=0xFAFF   // CJK compatibility ideographs
        | 0x20000..=0x2FA1F)
}

/// Collects sections while walking a document: headings open sections, blocks fill them.
struct Builder {
    title: Option<String>,
    headings: Vec<(u8, String)>,
    sections: Vec<Section>,
}

impl Builder {
    fn new() -> Self {
        Self { title: None, headings: Vec::new(), sections: Vec::new() }
    }

    fn heading(&mut self, level: u8, text: String) {
        let text = collapse(&text);
        if text.is_empty() {
            return;
        }
        if self.title.is_none() {
            self.title = Some(text.clone());
        }
        self.headings.retain(|(l, _)| *l < level);
        self.headings.push((level, text));
    }

    fn block(&mut self, text: &str) {
        let text = collapse(text);
        if text.is_empty() {
            return;
        }
        let heading = self.headings.iter().map(|(_, h)| h.as_str()).collect::<Vec<_>>().join(" › ");
        match self.sections.last_mut() {
            Some(s) if s.heading == heading => s.blocks.push(text),
            _ => self.sections.push(Section {
                heading,
                language: None,
                blocks: vec![text],
                atomic: false,
            }),
        }
    }

    fn finish(self, stem: &str) -> ParsedDoc {
        ParsedDoc {
            title: self.title.unwrap_or_else(|| stem.to_owned()),
            doc_type: String::new(),
            sections: self.sections,
        }
    }
}

/// Collapses runs of whitespace into one space (keeping no space between CJK characters that a
/// line break separated).
fn collapse(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            let prev_cjk = out.chars().next_back().is_some_and(is_cjk);
            if !(prev_cjk && is_cjk(c)) {
                out.push(' ');
            }
            pending_space = false;
        }
        out.push(c);
    }
    out
}

fn markdown(text: &str, stem: &str) -> ParsedDoc {
    let mut b = Builder::new();
    let mut buf = String::new();
    let mut heading: Option<u8> = None;
    let mut item_depth = 0usize;
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    for event in Parser::new_ext(text, options) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                flush(&mut b, &mut buf);
                heading = Some(level_number(level));
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some(level) = heading.take() {
                    b.heading(level, std::mem::take(&mut buf));
                }
            }
            Event::Start(Tag::Item) => {
                if item_depth == 0 {
                    flush(&mut b, &mut buf);
                }
                item_depth += 1;
            }
            Event::End(TagEnd::Item) => {
                item_depth = item_depth.saturating_sub(1);
                if item_depth == 0 {
                    flush(&mut b, &mut buf);
                } else {
                    buf.push(' ');
                }
            }
            Event::End(
                TagEnd::Paragraph | TagEnd::CodeBlock | TagEnd::TableRow | TagEnd::TableHead,
            ) if item_depth == 0 => {
                flush(&mut b, &mut buf);
            }
            Event::End(TagEnd::TableCell) => buf.push_str(" | "),
            Event::Text(t) | Event::Code(t) => buf.push_str(&t),
            Event::SoftBreak | Event::HardBreak => buf.push('\n'),
            // Tags are markup, not content; text between them comes as `Text`.
            Event::Html(h) | Event::InlineHtml(h) if !h.trim_start().starts_with('<') => {
                buf.push_str(&h);
            }
            _ => {}
        }
    }
    flush(&mut b, &mut buf);
    b.finish(stem)
}

fn flush(b: &mut Builder, buf: &mut String) {
    let text = std::mem::take(buf);
    b.block(text.trim_end_matches([' ', '|']));
}

fn level_number(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

fn html(text: &str, stem: &str) -> ParsedDoc {
    let document = scraper::Html::parse_document(text);
    let mut b = Builder::new();
    let title = scraper::Selector::parse("title")
        .ok()
        .and_then(|sel| document.select(&sel).next())
        .map(|t| collapse(&t.text().collect::<String>()))
        .filter(|t| !t.is_empty());
    // Block-level elements in document order; a block nested in another selected block (a `p`
    // inside an `li`) is read with its parent only.
    let Ok(selector) =
        scraper::Selector::parse("h1, h2, h3, h4, h5, h6, p, li, pre, blockquote, tr, dt, dd")
    else {
        return b.finish(stem);
    };
    let blocks = ["p", "li", "pre", "blockquote", "tr", "dt", "dd"];
    for element in document.select(&selector) {
        let name = element.value().name();
        let nested = element.ancestors().filter_map(scraper::ElementRef::wrap).any(|a| {
            let n = a.value().name();
            blocks.contains(&n) || n.starts_with('h') && n.len() == 2
        });
        if nested {
            continue;
        }
        let text: String = if name == "tr" {
            element
                .children()
                .filter_map(scraper::ElementRef::wrap)
                .map(|c| c.text().collect::<String>())
                .collect::<Vec<_>>()
                .join(" | ")
        } else {
            element.text().collect()
        };
        match name.strip_prefix('h').and_then(|l| l.parse::<u8>().ok()) {
            Some(level) => b.heading(level, text),
            None => b.block(&text),
        }
    }
    let mut doc = b.finish(stem);
    if let Some(title) = title {
        doc.title = title;
    }
    doc
}

fn plain(text: &str, stem: &str) -> ParsedDoc {
    let mut b = Builder::new();
    for paragraph in text.split("\n\n") {
        b.block(paragraph);
    }
    b.finish(stem)
}

/// One question/answer pair as CSV or JSONL carry it.
#[derive(Debug, Deserialize)]
struct QaRow {
    question: String,
    answer: String,
    #[serde(default)]
    language: Option<String>,
    #[serde(default, alias = "category")]
    section: Option<String>,
}

fn qa_section(row: QaRow) -> Option<Section> {
    let (q, a) = (collapse(&row.question), collapse(&row.answer));
    if q.is_empty() || a.is_empty() {
        return None;
    }
    let heading = match row.section.map(|s| collapse(&s)).filter(|s| !s.is_empty()) {
        Some(s) => format!("{s} › {q}"),
        None => q.clone(),
    };
    let language = row.language.map(|l| l.trim().to_ascii_lowercase()).filter(|l| !l.is_empty());
    Some(Section { heading, language, blocks: vec![format!("Q: {q}\nA: {a}")], atomic: true })
}

fn qa_csv(text: &str, stem: &str) -> Result<ParsedDoc, IngestError> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| IngestError::Malformed(e.to_string()))?.clone();
    for required in ["question", "answer"] {
        if !headers.iter().any(|h| h.trim().eq_ignore_ascii_case(required)) {
            return Err(IngestError::Malformed(format!(
                "CSV needs a `{required}` column (found: {})",
                headers.iter().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let headers = csv::StringRecord::from(
        headers.iter().map(|h| h.trim().to_ascii_lowercase()).collect::<Vec<_>>(),
    );
    reader.set_headers(headers);
    let mut sections = Vec::new();
    for (i, row) in reader.deserialize::<QaRow>().enumerate() {
        let row = row.map_err(|e| IngestError::Malformed(format!("row {}: {e}", i + 2)))?;
        sections.extend(qa_section(row));
    }
    Ok(ParsedDoc { title: stem.to_owned(), doc_type: "faq".into(), sections })
}

fn qa_jsonl(text: &str, stem: &str) -> Result<ParsedDoc, IngestError> {
    let mut sections = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: QaRow = serde_json::from_str(line)
            .map_err(|e| IngestError::Malformed(format!("line {}: {e}", i + 1)))?;
        sections.extend(qa_section(row));
    }
    Ok(ParsedDoc { title: stem.to_owned(), doc_type: "faq".into(), sections })
}

/// A catalogue product, as `data/demo/products.json` stores it.
#[derive(Debug, Deserialize)]
struct Product {
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    warranty_months: Option<u32>,
    #[serde(default)]
    variants: Vec<Variant>,
}

#[derive(Debug, Deserialize)]
struct Variant {
    #[serde(default)]
    options: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    available: Option<bool>,
    #[serde(default)]
    price: Option<f64>,
}

fn catalogue(text: &str, stem: &str) -> Result<ParsedDoc, IngestError> {
    let products: Vec<Product> = serde_json::from_str(text).map_err(|e| {
        IngestError::Malformed(format!("expected a JSON array of products with a `name`: {e}"))
    })?;
    let sections = products.into_iter().filter_map(product_section).collect();
    Ok(ParsedDoc { title: stem.to_owned(), doc_type: "product".into(), sections })
}

fn product_section(p: Product) -> Option<Section> {
    let name = collapse(&p.name);
    if name.is_empty() {
        return None;
    }
    let mut text = name.clone();
    if let Some(c) = p.category.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        text.push_str(&format!(" ({})", c.replace('_', " ")));
    }
    text.push('.');
    if let Some(d) = p.description.as_deref().map(collapse).filter(|d| !d.is_empty()) {
        text.push(' ');
        text.push_str(&d);
    }
    match p.warranty_months {
        Some(0) => text.push_str(" No manufacturer warranty."),
        Some(m) => text.push_str(&format!(" Warranty: {m} months.")),
        None => {}
    }
    // Option names and their values across variants, in first-seen order.
    let mut options: Vec<(String, Vec<String>)> = Vec::new();
    for v in &p.variants {
        for (k, val) in &v.options {
            let val = match val {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            match options.iter_mut().find(|(name, _)| name == k) {
                Some((_, vals)) if !vals.contains(&val) => vals.push(val),
                Some(_) => {}
                None => options.push((k.clone(), vec![val])),
            }
        }
    }
    if !options.is_empty() {
        let shown: Vec<String> =
            options.iter().map(|(k, vals)| format!("{k}: {}", vals.join(", "))).collect();
        text.push_str(&format!(" Options: {}.", shown.join("; ")));
    }
    let prices: Vec<f64> = p.variants.iter().filter_map(|v| v.price).collect();
    if let (Some(min), Some(max)) =
        (prices.iter().copied().reduce(f64::min), prices.iter().copied().reduce(f64::max))
    {
        text.push_str(&format!(" Price: {min:.2} to {max:.2} USD."));
    }
    if !p.variants.is_empty() {
        let available = p.variants.iter().filter(|v| v.available == Some(true)).count();
        text.push_str(&format!(" {available} of {} variants in stock.", p.variants.len()));
    }
    if let Some(id) = p.id {
        text.push_str(&format!(" Product id {id}."));
    }
    Some(Section { heading: name, language: Some("en".into()), blocks: vec![text], atomic: true })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn markdown_keeps_heading_paths_and_list_items() {
        let md = "# Returns\n\nIntro **bold** text.\n\n## Refunds\n\n- Gift cards: immediately.\n- Cards: 5 to 7 days.\n\n### Note\n\nA note.\n\n## Exchanges\n\nSame rules.";
        let doc = parse(Path::new("returns.en.md"), md.as_bytes()).unwrap();
        assert_eq!(doc.title, "Returns");
        let shown: Vec<(&str, usize)> =
            doc.sections.iter().map(|s| (s.heading.as_str(), s.blocks.len())).collect();
        assert_eq!(
            shown,
            vec![
                ("Returns", 1),
                ("Returns › Refunds", 2),
                ("Returns › Refunds › Note", 1),
                ("Returns › Exchanges", 1)
            ]
        );
        assert_eq!(doc.sections[0].blocks[0], "Intro bold text.");
        assert_eq!(doc.doc_type, "policy");
    }

    #[test]
    fn html_reads_blocks_under_headings() {
        let html = "<html><head><title>Help</title><script>var x = 1;</script></head><body>\
            <h1>Shipping</h1><p>We ship <b>fast</b>.</p><ul><li><p>UPS</p></li><li>FedEx</li></ul>\
            <h2>Costs</h2><table><tr><td>Standard</td><td>free</td></tr></table></body></html>";
        let doc = parse(Path::new("help.html"), html.as_bytes()).unwrap();
        assert_eq!(doc.title, "Help");
        assert_eq!(doc.sections[0].heading, "Shipping");
        assert_eq!(doc.sections[0].blocks, vec!["We ship fast.", "UPS", "FedEx"]);
        assert_eq!(doc.sections[1].heading, "Shipping › Costs");
        assert_eq!(doc.sections[1].blocks, vec!["Standard | free"]);
        assert!(!doc.sections.iter().flat_map(|s| &s.blocks).any(|b| b.contains("var x")));
    }

    #[test]
    fn qa_pairs_from_csv_and_jsonl() {
        let csv = "question,answer,language,section\nCan I cancel?,\"Yes, if pending.\",en,orders\n能取消吗？,可以。,zh,orders\n";
        let doc = parse(Path::new("faq.csv"), csv.as_bytes()).unwrap();
        assert_eq!(doc.doc_type, "faq");
        assert_eq!(doc.sections.len(), 2);
        assert!(doc.sections.iter().all(|s| s.atomic));
        assert_eq!(doc.sections[1].language.as_deref(), Some("zh"));
        assert_eq!(doc.sections[0].heading, "orders › Can I cancel?");

        let jsonl = "{\"question\":\"Q1?\",\"answer\":\"A1.\"}\n\n{\"question\":\"Q2?\",\"answer\":\"A2.\"}\n";
        assert_eq!(parse(Path::new("faq.jsonl"), jsonl.as_bytes()).unwrap().sections.len(), 2);
        let bad = "{\"question\":\"Q1?\",\"answer\":\"A1.\"}\n{oops\n";
        let err = parse(Path::new("faq.jsonl"), bad.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        let err = parse(Path::new("faq.csv"), b"q,a\nx,y\n").unwrap_err();
        assert!(err.to_string().contains("question"), "{err}");
    }

    #[test]
    fn catalogue_products_become_records() {
        let json = r#"[{"id":"1","name":"Electric Kettle","category":"appliances","description":"Boils fast.","warranty_months":12,
            "variants":[{"options":{"color":"white","capacity":"1L"},"available":true,"price":10.5},
                        {"options":{"color":"black","capacity":"1L"},"available":false,"price":12}]}]"#;
        let doc = parse(Path::new("products.json"), json.as_bytes()).unwrap();
        assert_eq!(doc.doc_type, "product");
        let text = &doc.sections[0].blocks[0];
        assert!(text.starts_with("Electric Kettle (appliances). Boils fast. Warranty: 12 months."));
        assert!(text.contains("color: white, black; capacity: 1L"), "{text}");
        assert!(text.contains("Price: 10.50 to 12.00 USD. 1 of 2 variants in stock."), "{text}");
        assert!(parse(Path::new("products.json"), b"{\"not\": \"a list\"}").is_err());
    }

    #[test]
    fn hostile_files_get_clear_errors() {
        assert!(matches!(parse(Path::new("a.md"), b""), Err(IngestError::Empty)));
        assert!(matches!(parse(Path::new("a.md"), b" \n\t\n"), Err(IngestError::Empty)));
        assert!(matches!(parse(Path::new("a.md"), b"# Title only\n"), Err(IngestError::Empty)));
        assert!(matches!(parse(Path::new("a.md"), b"ab\0cd"), Err(IngestError::Binary)));
        assert!(matches!(
            parse(Path::new("a.txt"), &[0x66, 0xff, 0xfe, 0x41]),
            Err(IngestError::NotUtf8 { offset: 1 })
        ));
        assert!(matches!(parse(Path::new("a.pdf"), b"%PDF"), Err(IngestError::UnsupportedFormat)));
    }

    #[test]
    fn names_and_text_give_languages_and_types() {
        assert_eq!(
            language_from_name(Path::new("docs/returns-policy.zh.md")).as_deref(),
            Some("zh")
        );
        assert_eq!(language_from_name(Path::new("docs/returns-policy.md")), None);
        assert_eq!(detect_language("退货政策是什么？"), "zh");
        assert_eq!(detect_language("What is your return policy? 退"), "en");
        assert_eq!(doc_type_from_name("telecom/tech_support_manual.md"), "manual");
        assert_eq!(doc_type_from_name("docs/promotions.en.md"), "promotion");
        assert_eq!(collapse("第一行\n第二行  and\n more"), "第一行第二行 and more");
    }
}
