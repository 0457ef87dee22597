//! Retrieval quality on a labelled question set: hit@k for questions the documents answer, and
//! "no answer" for questions they do not cover (`data/knowledge/questions.jsonl`).

use std::path::Path;

use fenliu_knowledge::RetrievalQuery;
use serde::Deserialize;

use crate::{KbError, KnowledgeBase};

/// One labelled question.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelledQuestion {
    /// The question.
    pub question: String,
    /// Its language.
    pub language: String,
    /// File names of the documents that answer it (a hit from any counts); `None` for a
    /// question the documents do not cover.
    pub sources: Option<Vec<String>>,
    /// A heading the answering chunk must be under, when one section is meant.
    #[serde(default)]
    pub section: Option<String>,
}

impl LabelledQuestion {
    fn accepts(&self, source: &str, section: &str) -> bool {
        let file = source.rsplit('/').next().unwrap_or(source);
        self.sources.as_ref().is_some_and(|s| s.iter().any(|want| want == file))
            && self.section.as_ref().is_none_or(|want| section.contains(want.as_str()))
    }
}

/// Reads a JSONL question file.
pub fn load_questions(path: &Path) -> Result<Vec<LabelledQuestion>, KbError> {
    let err = |reason: String| KbError::Catalog { path: path.to_owned(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| err(format!("line {}: {e}", i + 1))))
        .collect()
}

/// The outcome for one question.
#[derive(Debug, Clone, PartialEq)]
pub struct QuestionResult {
    /// The question.
    pub question: LabelledQuestion,
    /// Rank (1-based) of the first accepted hit within k, if any.
    pub rank: Option<usize>,
    /// Whether the knowledge base answered "no answer".
    pub no_answer: bool,
    /// Citation of the first hit, for the report.
    pub first: Option<String>,
    /// Best dense similarity.
    pub best_dense: Option<f32>,
    /// Best lexical coverage.
    pub best_coverage: Option<f32>,
}

impl QuestionResult {
    /// Whether the result is what the label asks for.
    pub fn correct(&self) -> bool {
        match self.question.sources {
            Some(_) => self.rank.is_some() && !self.no_answer,
            None => self.no_answer,
        }
    }
}

/// Aggregate figures.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// k of hit@k.
    pub k: usize,
    /// Per question.
    pub results: Vec<QuestionResult>,
}

impl EvalReport {
    fn share(
        &self,
        pick: impl Fn(&QuestionResult) -> bool,
        ok: impl Fn(&QuestionResult) -> bool,
    ) -> (usize, usize) {
        let picked: Vec<&QuestionResult> = self.results.iter().filter(|r| pick(r)).collect();
        (picked.iter().filter(|r| ok(r)).count(), picked.len())
    }

    /// (hits, answerable questions) in `language` (`None`: all).
    pub fn hits(&self, language: Option<&str>) -> (usize, usize) {
        self.share(
            |r| r.question.sources.is_some() && language.is_none_or(|l| r.question.language == l),
            QuestionResult::correct,
        )
    }

    /// hit@k over answerable questions in `language` (`None`: all).
    pub fn hit_rate(&self, language: Option<&str>) -> f64 {
        let (hits, n) = self.hits(language);
        if n == 0 { 0.0 } else { hits as f64 / n as f64 }
    }

    /// (correct "no answer", uncovered questions).
    pub fn no_answers(&self) -> (usize, usize) {
        self.share(|r| r.question.sources.is_none(), QuestionResult::correct)
    }
}

/// Asks every question of `questions` for `tenant` and scores the top `k` hits.
pub async fn evaluate(
    kb: &KnowledgeBase,
    tenant: &str,
    questions: &[LabelledQuestion],
    k: usize,
) -> Result<EvalReport, KbError> {
    let mut results = Vec::with_capacity(questions.len());
    for q in questions {
        let mut query = RetrievalQuery::new(tenant, q.question.clone());
        query.top_k = k;
        let outcome = kb.search(&query).await?;
        let no_answer = !kb.is_relevant(&outcome);
        let rank = outcome
            .hits
            .iter()
            .position(|h| q.accepts(&h.citation.source, &h.citation.section))
            .map(|p| p + 1);
        results.push(QuestionResult {
            question: q.clone(),
            rank,
            no_answer,
            first: outcome.hits.first().map(|h| h.citation.to_string()),
            best_dense: outcome.best_dense,
            best_coverage: outcome.best_coverage,
        });
    }
    Ok(EvalReport { k, results })
}
