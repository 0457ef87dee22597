//! Marketing tools: product search over the catalogue and the newsletter preference.
//!
//! - [`ProductCatalog`] embeds every product once (name, category, description and the option
//!   values of its variants) with any [`DynEmbedder`] — MiniLM in production, the hashing embedder
//!   in unit tests — and answers [`ProductQuery`]s by cosine similarity plus a boost for product
//!   names the query mentions, after attribute filters (category, price range, variant options,
//!   availability). Prices and options come from the variants, so a recommendation never shows a
//!   price the shop does not charge.
//! - [`SearchProducts`] (`search_products`) is the typed tool over it.
//! - [`GetNewsletter`] / [`SetNewsletter`] read and record the customer's newsletter choice in a
//!   [`PreferenceStore`](crate::PreferenceStore), always for the authenticated customer. Agents
//!   call the setter only after the customer confirmed.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::Utc;
use fenliu_knowledge::{DynEmbedder, KnowledgeError, cosine};
use fenliu_tool::{DynTool, Tool, ToolContext, ToolError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::{Product, Variant};
use crate::store::{DynOrderStore, DynPreferenceStore, Preferences, StoreError};
use crate::tools::store_error;

/// Longest query accepted, in characters: a product question is a sentence, not a document.
pub const MAX_QUERY_CHARS: usize = 1_000;
/// Most hits a search returns.
pub const MAX_LIMIT: usize = 10;
/// Hits returned when the caller does not say.
pub const DEFAULT_LIMIT: usize = 3;
/// Below this score a product is not a match. Cosine similarities of unrelated sentences with
/// MiniLM sit around 0–0.15; the name boost lifts every product the query names well above it.
pub const MIN_SCORE: f32 = 0.2;
/// Added (scaled by the share of the name's words present) when the query names the product:
/// "headphones" must find the Headphones before a semantically close speaker.
const NAME_BOOST: f32 = 0.35;
/// Variants shown per hit.
const VARIANTS_SHOWN: usize = 3;

/// Why the catalogue could not be built or searched.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CatalogError {
    /// The products could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The embedder failed.
    #[error(transparent)]
    Embedding(#[from] KnowledgeError),
    /// The embedder returned a different number of vectors than texts.
    #[error("the embedder returned {got} vectors for {expected} texts")]
    EmbeddingCount {
        /// Texts sent.
        expected: usize,
        /// Vectors received.
        got: usize,
    },
}

struct Entry {
    product: Product,
    vector: Vec<f32>,
    /// Lowercased words of the product name (for the name boost).
    name_words: Vec<String>,
}

/// The shop's products, embedded for semantic search.
pub struct ProductCatalog {
    embedder: Arc<dyn DynEmbedder>,
    entries: RwLock<Arc<Vec<Entry>>>,
}

impl std::fmt::Debug for ProductCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProductCatalog")
            .field("embedder", &self.embedder.model_id())
            .field("products", &self.len())
            .finish()
    }
}

/// The text a product is embedded from.
fn product_text(p: &Product) -> String {
    let mut options: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for v in &p.variants {
        for (k, val) in &v.options {
            let values = options.entry(k.as_str()).or_default();
            if !values.contains(&val.as_str()) && values.len() < 8 {
                values.push(val.as_str());
            }
        }
    }
    let options: Vec<String> =
        options.into_iter().map(|(k, vs)| format!("{k}: {}", vs.join(", "))).collect();
    format!("{}. Category: {}. {} {}", p.name, p.category, p.description, options.join("; "))
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 3)
        .map(str::to_lowercase)
        .collect()
}

impl ProductCatalog {
    /// Embeds `products` with `embedder`.
    pub async fn new(
        products: Vec<Product>,
        embedder: Arc<dyn DynEmbedder>,
    ) -> Result<Self, CatalogError> {
        let entries = Self::embed(products, embedder.as_ref()).await?;
        Ok(Self { embedder, entries: RwLock::new(Arc::new(entries)) })
    }

    /// Reads every product of `store` and embeds it.
    pub async fn from_store(
        store: &dyn DynOrderStore,
        embedder: Arc<dyn DynEmbedder>,
    ) -> Result<Self, CatalogError> {
        Self::new(store.products().await?, embedder).await
    }

    /// Re-reads and re-embeds the products of `store` (after a catalogue import); searches in
    /// flight keep the old index.
    pub async fn refresh(&self, store: &dyn DynOrderStore) -> Result<(), CatalogError> {
        let entries = Self::embed(store.products().await?, self.embedder.as_ref()).await?;
        *self.entries.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(entries);
        Ok(())
    }

    async fn embed(
        products: Vec<Product>,
        embedder: &dyn DynEmbedder,
    ) -> Result<Vec<Entry>, CatalogError> {
        let texts: Vec<String> = products.iter().map(product_text).collect();
        let vectors = if texts.is_empty() { Vec::new() } else { embedder.embed(&texts).await? };
        if vectors.len() != products.len() {
            return Err(CatalogError::EmbeddingCount {
                expected: products.len(),
                got: vectors.len(),
            });
        }
        Ok(products
            .into_iter()
            .zip(vectors)
            .map(|(product, vector)| Entry { name_words: words(&product.name), product, vector })
            .collect())
    }

    /// Number of products indexed.
    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    /// Whether the catalogue is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn snapshot(&self) -> Arc<Vec<Entry>> {
        Arc::clone(&self.entries.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The distinct categories, sorted.
    pub fn categories(&self) -> Vec<String> {
        let mut c: Vec<String> =
            self.snapshot().iter().map(|e| e.product.category.clone()).collect();
        c.sort();
        c.dedup();
        c
    }

    /// Searches the catalogue. The query must already be validated ([`ProductQuery::validate`]).
    pub async fn search(&self, query: &ProductQuery) -> Result<Vec<ProductHit>, CatalogError> {
        let text = query.query.trim();
        let qvec = if text.is_empty() {
            None
        } else {
            self.embedder.embed(&[text.to_owned()]).await?.into_iter().next()
        };
        let qwords = words(text);
        let entries = self.snapshot();
        let mut hits: Vec<ProductHit> = entries
            .iter()
            .filter(|e| {
                query.category.as_ref().is_none_or(|c| e.product.category.eq_ignore_ascii_case(c))
            })
            .filter_map(|e| {
                let mut variants: Vec<&Variant> =
                    e.product.variants.iter().filter(|v| query.accepts(v)).collect();
                if variants.is_empty() {
                    return None;
                }
                let score = match &qvec {
                    None => 1.0,
                    Some(q) => {
                        let named = e
                            .name_words
                            .iter()
                            .filter(|w| {
                                qwords.iter().any(|q| q == *w || q.trim_end_matches('s') == *w)
                            })
                            .count();
                        let boost = if e.name_words.is_empty() {
                            0.0
                        } else {
                            NAME_BOOST * named as f32 / e.name_words.len() as f32
                        };
                        cosine(q, &e.vector) + boost
                    }
                };
                if score < MIN_SCORE {
                    return None;
                }
                variants.sort_by(|a, b| a.price.total_cmp(&b.price));
                let prices = variants.iter().map(|v| v.price);
                let price_from = prices.clone().fold(f64::INFINITY, f64::min);
                let price_to = prices.fold(f64::NEG_INFINITY, f64::max);
                Some(ProductHit {
                    product_id: e.product.id.clone(),
                    name: e.product.name.clone(),
                    category: e.product.category.clone(),
                    description: e.product.description.clone(),
                    score,
                    price_from,
                    price_to,
                    matching_variants: variants.len(),
                    variants: variants
                        .iter()
                        .take(VARIANTS_SHOWN)
                        .map(|v| VariantHit {
                            item_id: v.item_id.clone(),
                            options: v.options.clone(),
                            price: v.price,
                            available: v.available,
                        })
                        .collect(),
                })
            })
            .collect();
        hits.sort_by(|a, b| {
            b.score.total_cmp(&a.score).then_with(|| a.price_from.total_cmp(&b.price_from))
        });
        hits.truncate(query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT));
        Ok(hits)
    }
}

/// Arguments of `search_products`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductQuery {
    /// What the customer is looking for, in English, e.g. `noise cancelling headphones for
    /// travel`. Empty: browse by the filters alone.
    #[serde(default)]
    pub query: String,
    /// Only this category (e.g. `electronics`).
    #[serde(default)]
    pub category: Option<String>,
    /// Lowest price of a variant, in dollars.
    #[serde(default)]
    pub min_price: Option<f64>,
    /// Highest price of a variant, in dollars.
    #[serde(default)]
    pub max_price: Option<f64>,
    /// Variant options that must match, e.g. `{"color": "black"}` (case-insensitive).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Include variants that cannot be ordered now (default: only available ones).
    #[serde(default)]
    pub include_unavailable: bool,
    /// Hits to return, 1–10 (default 3).
    #[serde(default)]
    pub limit: Option<usize>,
}

impl ProductQuery {
    /// A query for `text` with no filters.
    pub fn text(text: impl Into<String>) -> Self {
        Self { query: text.into(), ..Self::default() }
    }

    /// Checks the arguments, naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.query.chars().count() > MAX_QUERY_CHARS {
            return Err(format!("query must be at most {MAX_QUERY_CHARS} characters"));
        }
        for (name, v) in [("min_price", self.min_price), ("max_price", self.max_price)] {
            if let Some(v) = v
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(format!("{name} must be a non-negative number"));
            }
        }
        if let (Some(lo), Some(hi)) = (self.min_price, self.max_price)
            && lo > hi
        {
            return Err("min_price must not exceed max_price".into());
        }
        if self.limit.is_some_and(|l| l == 0 || l > MAX_LIMIT) {
            return Err(format!("limit must be in 1..={MAX_LIMIT}"));
        }
        if self.options.len() > 8
            || self.options.iter().any(|(k, v)| k.chars().count() > 64 || v.chars().count() > 64)
        {
            return Err("options: at most 8 entries of at most 64 characters".into());
        }
        if self.category.as_ref().is_some_and(|c| c.chars().count() > 64) {
            return Err("category must be at most 64 characters".into());
        }
        Ok(())
    }

    fn accepts(&self, v: &Variant) -> bool {
        (self.include_unavailable || v.available)
            && self.min_price.is_none_or(|lo| v.price >= lo)
            && self.max_price.is_none_or(|hi| v.price <= hi)
            && self.options.iter().all(|(k, want)| {
                v.options.iter().any(|(name, value)| {
                    name.eq_ignore_ascii_case(k) && value.eq_ignore_ascii_case(want)
                })
            })
    }
}

/// One variant of a hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VariantHit {
    /// Item id (what an order would reference).
    pub item_id: String,
    /// Options such as colour and size.
    pub options: BTreeMap<String, String>,
    /// Price.
    pub price: f64,
    /// Whether it can be ordered now.
    pub available: bool,
}

/// A product that matches a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProductHit {
    /// Product id.
    pub product_id: String,
    /// Name.
    pub name: String,
    /// Category.
    pub category: String,
    /// Description.
    pub description: String,
    /// Relevance (cosine similarity plus the name boost).
    pub score: f32,
    /// Cheapest matching variant.
    pub price_from: f64,
    /// Dearest matching variant.
    pub price_to: f64,
    /// How many variants pass the filters.
    pub matching_variants: usize,
    /// The cheapest matching variants (at most three).
    pub variants: Vec<VariantHit>,
}

/// `search_products`: semantic search over the shop's catalogue with attribute filters.
pub struct SearchProducts {
    catalog: Arc<ProductCatalog>,
}

impl SearchProducts {
    /// The tool over a catalogue.
    pub fn new(catalog: Arc<ProductCatalog>) -> Self {
        Self { catalog }
    }
}

impl Tool for SearchProducts {
    const NAME: &'static str = "search_products";
    type Args = ProductQuery;
    type Output = Vec<ProductHit>;
    type Error = ToolError;

    fn description(&self) -> &str {
        "Search the shop's product catalogue by meaning (English query), optionally filtered by \
         category, price range and variant options. Returns products with real prices and \
         variants; use it for product questions and recommendations."
    }

    async fn call(
        &self,
        _ctx: &ToolContext,
        args: ProductQuery,
    ) -> Result<Vec<ProductHit>, ToolError> {
        args.validate()
            .map_err(|reason| ToolError::InvalidArguments { tool: Self::NAME.into(), reason })?;
        self.catalog.search(&args).await.map_err(|e| {
            tracing::error!(error = %e, "product search failed");
            ToolError::Unavailable { tool: Self::NAME.into() }
        })
    }
}

/// Arguments of `get_newsletter_subscription` (none).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// `get_newsletter_subscription`: the customer's newsletter choice.
pub struct GetNewsletter {
    store: Arc<dyn DynPreferenceStore>,
}

impl GetNewsletter {
    /// The tool over a store.
    pub fn new(store: Arc<dyn DynPreferenceStore>) -> Self {
        Self { store }
    }
}

impl Tool for GetNewsletter {
    const NAME: &'static str = "get_newsletter_subscription";
    type Args = NoArgs;
    type Output = Preferences;
    type Error = ToolError;

    fn description(&self) -> &str {
        "Read whether the customer is subscribed to the newsletter (null: never chose)."
    }

    async fn call(&self, ctx: &ToolContext, _args: NoArgs) -> Result<Preferences, ToolError> {
        self.store.preferences(&ctx.customer_id).await.map_err(|e| store_error(Self::NAME, e))
    }
}

/// Arguments of `set_newsletter_subscription`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetNewsletterArgs {
    /// `true` to subscribe, `false` to unsubscribe.
    pub subscribed: bool,
}

/// `set_newsletter_subscription`: records the customer's newsletter opt-in or opt-out.
pub struct SetNewsletter {
    store: Arc<dyn DynPreferenceStore>,
}

impl SetNewsletter {
    /// The tool over a store.
    pub fn new(store: Arc<dyn DynPreferenceStore>) -> Self {
        Self { store }
    }
}

impl Tool for SetNewsletter {
    const NAME: &'static str = "set_newsletter_subscription";
    type Args = SetNewsletterArgs;
    type Output = Preferences;
    type Error = ToolError;

    fn description(&self) -> &str {
        "Subscribe the customer to the newsletter or unsubscribe them. Only after the customer \
         explicitly confirmed the change."
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        args: SetNewsletterArgs,
    ) -> Result<Preferences, ToolError> {
        self.store
            .set_newsletter(&ctx.customer_id, args.subscribed, Utc::now())
            .await
            .map_err(|e| store_error(Self::NAME, e))
    }
}

/// The marketing tools, ready for a [`ToolSet`](fenliu_tool::ToolSet).
pub fn marketing_tools(
    catalog: Arc<ProductCatalog>,
    preferences: Arc<dyn DynPreferenceStore>,
) -> Vec<Arc<dyn DynTool>> {
    vec![
        Arc::new(SearchProducts::new(catalog)),
        Arc::new(GetNewsletter::new(Arc::clone(&preferences))),
        Arc::new(SetNewsletter::new(preferences)),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::test_utils::{MemoryShopStore, fixture_shop};
    use crate::{OrderStore, PreferenceStore};
    use fenliu_knowledge::test_utils::HashingEmbedder;
    use fenliu_tool::ToolSet;
    use fenliu_tool::test_utils::assert_tool_conformance;

    fn ctx(customer: &str) -> ToolContext {
        ToolContext {
            tenant: "t".into(),
            customer_id: customer.into(),
            conversation_id: "c".into(),
        }
    }

    async fn setup() -> (Arc<MemoryShopStore>, ToolSet) {
        let store = Arc::new(MemoryShopStore::new());
        OrderStore::import(store.as_ref(), &fixture_shop()).await.unwrap();
        let catalog = ProductCatalog::from_store(
            store.as_ref(),
            Arc::new(HashingEmbedder::new(256)) as Arc<dyn DynEmbedder>,
        )
        .await
        .unwrap();
        let tools = ToolSet::new(marketing_tools(Arc::new(catalog), store.clone())).unwrap();
        (store, tools)
    }

    async fn search(
        tools: &ToolSet,
        args: serde_json::Value,
    ) -> Result<Vec<ProductHit>, ToolError> {
        let record = tools.call(&ctx("alice"), SearchProducts::NAME, args).await;
        match record.outcome {
            fenliu_tool::ToolOutcome::Ok { output } => Ok(serde_json::from_value(output).unwrap()),
            fenliu_tool::ToolOutcome::Err { error } => Err(error),
        }
    }

    #[tokio::test]
    async fn finds_named_products_with_real_prices() {
        let (_, tools) = setup().await;
        let hits = search(&tools, serde_json::json!({"query": "a smart watch"})).await.unwrap();
        assert_eq!(hits[0].name, "Smart Watch");
        assert_eq!(hits[0].price_from, 300.0);
        assert_eq!(hits[0].variants[0].item_id, "i-watch");
        let hits = search(&tools, serde_json::json!({"query": "water bottles", "limit": 1}))
            .await
            .unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].name, "Water Bottle");
        assert_eq!((hits[0].price_from, hits[0].price_to), (20.5, 21.0));
    }

    #[tokio::test]
    async fn filters_apply_to_variants() {
        let (_, tools) = setup().await;
        let hits = search(&tools, serde_json::json!({"query": "", "max_price": 50})).await.unwrap();
        assert_eq!(hits.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["Water Bottle"]);
        let hits =
            search(&tools, serde_json::json!({"query": "bottle", "options": {"Color": "RED"}}))
                .await
                .unwrap();
        assert_eq!(hits[0].matching_variants, 1);
        assert_eq!(hits[0].variants[0].item_id, "i-red");
        let hits = search(&tools, serde_json::json!({"category": "electronics"})).await.unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].name, "Smart Watch");
        let none = search(&tools, serde_json::json!({"query": "bottle", "min_price": 1000}))
            .await
            .unwrap();
        assert!(none.is_empty());
        let none = search(&tools, serde_json::json!({"query": "zzzz qqqq xxxx"})).await.unwrap();
        assert!(none.is_empty(), "nothing relevant: no hits, not the least bad ones");
    }

    #[tokio::test]
    async fn hostile_search_arguments_are_typed_errors() {
        let (_, tools) = setup().await;
        for bad in [
            serde_json::json!({"query": "x".repeat(MAX_QUERY_CHARS + 1)}),
            serde_json::json!({"query": "a", "max_price": -1}),
            serde_json::json!({"query": "a", "min_price": 10, "max_price": 5}),
            serde_json::json!({"query": "a", "limit": 0}),
            serde_json::json!({"query": "a", "limit": 11}),
            serde_json::json!({"query": "a", "customer_id": "bob"}),
            serde_json::json!({"query": 5}),
            serde_json::json!(["a"]),
        ] {
            let err = search(&tools, bad.clone()).await.unwrap_err();
            assert!(matches!(err, ToolError::InvalidArguments { .. }), "{bad}: {err:?}");
        }
        let hits = search(&tools, serde_json::json!({"query": "\u{0}💥 手表"})).await;
        assert!(hits.is_ok(), "odd text is searched, not failed");
    }

    #[tokio::test]
    async fn newsletter_choice_is_the_callers_own() {
        let (store, tools) = setup().await;
        let rec = tools
            .call(&ctx("alice"), SetNewsletter::NAME, serde_json::json!({"subscribed": true}))
            .await;
        assert_eq!(rec.output().unwrap()["newsletter"], true);
        let alice = PreferenceStore::preferences(store.as_ref(), "alice").await.unwrap();
        assert!(alice.newsletter_subscribed());
        let bob = PreferenceStore::preferences(store.as_ref(), "bob").await.unwrap();
        assert_eq!(bob.newsletter, None);
        let rec = tools.call(&ctx("alice"), GetNewsletter::NAME, serde_json::json!({})).await;
        assert_eq!(rec.output().unwrap()["newsletter"], true);
        // Nobody can choose for someone else: there is no customer argument to abuse.
        let rec = tools
            .call(
                &ctx("alice"),
                SetNewsletter::NAME,
                serde_json::json!({"subscribed": false, "customer_id": "bob"}),
            )
            .await;
        assert!(rec.output().is_none());
        let rec = tools
            .call(&ctx("ghost"), SetNewsletter::NAME, serde_json::json!({"subscribed": true}))
            .await;
        assert!(matches!(
            rec.outcome,
            fenliu_tool::ToolOutcome::Err { error: ToolError::NotFound { .. } }
        ));
    }

    #[tokio::test]
    async fn memory_preference_store_conforms() {
        let store = MemoryShopStore::new();
        OrderStore::import(&store, &fixture_shop()).await.unwrap();
        crate::test_utils::assert_preference_store_conformance(&store).await;
    }

    #[tokio::test]
    async fn tools_conform() {
        let (store, _) = setup().await;
        let catalog = Arc::new(
            ProductCatalog::from_store(store.as_ref(), Arc::new(HashingEmbedder::new(64)))
                .await
                .unwrap(),
        );
        let valid = [
            serde_json::json!({"query": "watch"}),
            serde_json::json!({}),
            serde_json::json!({"category": "kitchen", "max_price": 30.0, "limit": 10}),
        ];
        assert_tool_conformance(&SearchProducts::new(catalog), &ctx("alice"), &valid).await;
        let valid = [serde_json::json!({})];
        assert_tool_conformance(&GetNewsletter::new(store.clone()), &ctx("alice"), &valid).await;
        let valid = [serde_json::json!({"subscribed": true})];
        assert_tool_conformance(&SetNewsletter::new(store), &ctx("alice"), &valid).await;
    }
}
