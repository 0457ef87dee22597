//! The tool contract of fenliu.
//!
//! A *tool* is an action a specialist agent (or a model acting for it) may take: look up an order,
//! open a ticket, search the knowledge base. This crate owns the contract and nothing else:
//!
//! - [`Tool`]: the natural, statically typed trait. Arguments are a Rust type that derives
//!   `serde::Deserialize` and `schemars::JsonSchema`, so the JSON Schema a model sees is derived from
//!   the very type that validates its answer; it is never written by hand.
//! - [`DynTool`]: the object-safe twin, implemented for every [`Tool`], speaking JSON in and out.
//!   Typed errors become model-safe [`ToolError`]s only at this boundary.
//! - [`ToolSet`]: a registry of tools with an allow-list view per agent. A call outside the
//!   allow-list is refused before any argument is parsed.
//! - [`ToolContext`]: who the call is made for. Tools read the customer from here, never from their
//!   arguments, so a model (or a prompt injection) cannot act for another customer.
//!
//! The crate has no runtime, I/O or database dependency.
//!
//! # Layout
//! - `lib.rs`: the traits, [`ToolSet`], [`ToolError`] and the call record.
//! - `test_utils` (feature `test-utils`): small tools and the conformance suite every tool runs.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[cfg(any(test, feature = "test-utils"))]
pub mod test_utils;

/// A boxed, sendable future: what the object-safe twins of our async traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Longest tool name accepted. OpenAI-compatible function calling limits names to 64 characters of
/// `[A-Za-z0-9_-]`; we keep to that so every tool can be offered to every provider.
pub const MAX_TOOL_NAME_LEN: usize = 64;

/// On whose behalf a tool call is made. Built by the orchestrator from the authenticated session,
/// never from model output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolContext {
    /// Tenant (shop) the conversation belongs to; stores and knowledge are partitioned by it.
    pub tenant: String,
    /// The authenticated customer. Tools that read or change customer data scope to this id.
    pub customer_id: String,
    /// Conversation the call belongs to, for audit records.
    pub conversation_id: String,
}

/// Errors a tool call can end with, phrased so they can be shown to a model or a customer.
///
/// Typed tool errors convert into this enum at the [`DynTool`] boundary; agents look at the variant
/// to decide between asking again, refusing and escalating.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ToolError {
    /// No tool of that name is registered.
    #[error("unknown tool `{name}`")]
    UnknownTool {
        /// The requested name.
        name: String,
    },
    /// The tool exists but is not on the calling agent's allow-list.
    #[error("tool `{name}` is not allowed here")]
    NotAllowed {
        /// The requested name.
        name: String,
    },
    /// The arguments do not match the tool's schema.
    #[error("invalid arguments for `{tool}`: {reason}")]
    InvalidArguments {
        /// Tool name.
        tool: String,
        /// What was wrong, from the deserializer.
        reason: String,
    },
    /// The caller may not do this (for example: the order belongs to another customer).
    #[error("`{tool}` refused: {reason}")]
    Denied {
        /// Tool name.
        tool: String,
        /// Why, safe to show to the customer.
        reason: String,
    },
    /// The thing the call is about does not exist.
    #[error("`{tool}`: {what} not found")]
    NotFound {
        /// Tool name.
        tool: String,
        /// What was looked for, e.g. `order #W123`.
        what: String,
    },
    /// The call is valid but the current state forbids it (e.g. cancelling a delivered order).
    #[error("`{tool}` cannot proceed: {reason}")]
    Conflict {
        /// Tool name.
        tool: String,
        /// Why, safe to show to the customer.
        reason: String,
    },
    /// A dependency of the tool failed; the details are logged, not shown.
    #[error("`{tool}` is unavailable right now")]
    Unavailable {
        /// Tool name.
        tool: String,
    },
}

impl ToolError {
    /// Whether a human should take over because of this failure (as opposed to the customer or the
    /// model correcting the request).
    pub fn needs_escalation(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// A tool with typed arguments and output.
///
/// ```
/// use fenliu_tool::{Tool, ToolContext, ToolError};
/// use schemars::JsonSchema;
/// use serde::Deserialize;
///
/// /// Adds two numbers.
/// struct Add;
///
/// #[derive(Deserialize, JsonSchema)]
/// struct AddArgs { a: i64, b: i64 }
///
/// impl Tool for Add {
///     const NAME: &'static str = "add";
///     type Args = AddArgs;
///     type Output = i64;
///     type Error = ToolError;
///     fn description(&self) -> &str { "Adds two integers." }
///     async fn call(&self, _ctx: &ToolContext, args: AddArgs) -> Result<i64, ToolError> {
///         Ok(args.a + args.b)
///     }
/// }
/// ```
pub trait Tool: Send + Sync + 'static {
    /// Name offered to models: `[A-Za-z0-9_-]{1,64}`.
    const NAME: &'static str;
    /// Arguments; their JSON Schema is what models see.
    type Args: DeserializeOwned + JsonSchema + Send;
    /// Result, serialized to JSON for models and records.
    type Output: Serialize + Send;
    /// Typed failure, converted to a model-safe [`ToolError`] at the dyn boundary.
    type Error: Into<ToolError> + Send;

    /// One or two sentences telling a model when to use the tool.
    fn description(&self) -> &str;

    /// Runs the tool for the customer in `ctx`.
    fn call(
        &self,
        ctx: &ToolContext,
        args: Self::Args,
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;
}

/// What a model is told about a tool: the function-calling definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// Tool name.
    pub name: String,
    /// When to use it.
    pub description: String,
    /// JSON Schema of the arguments (an object schema).
    pub parameters: serde_json::Value,
}

/// The object-safe twin of [`Tool`]: JSON in, JSON out. Implemented for every [`Tool`].
pub trait DynTool: Send + Sync {
    /// Tool name.
    fn name(&self) -> &str;
    /// Definition offered to models.
    fn definition(&self) -> ToolDefinition;
    /// Parses `args` against the tool's argument type and runs it.
    fn call_json<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: serde_json::Value,
    ) -> BoxFuture<'a, Result<serde_json::Value, ToolError>>;
    /// Checks `args` against the tool's argument type without running the tool (used before
    /// asking a customer to confirm a write a model proposed).
    fn check_args(&self, args: &serde_json::Value) -> Result<(), ToolError>;
}

/// JSON Schema for a tool's argument type, as an object schema suitable for function calling.
pub fn parameters_schema<A: JsonSchema>() -> serde_json::Value {
    let schema = schemars::schema_for!(A);
    let mut value = schema.to_value();
    // Function-calling APIs want a bare object schema; the `$schema` URI is noise to a model.
    if let Some(map) = value.as_object_mut() {
        map.remove("$schema");
    }
    value
}

fn parse_args<T: Tool>(args: serde_json::Value) -> Result<T::Args, ToolError> {
    // Function-calling arguments are always a JSON object; refusing anything else up front
    // keeps serde's lenient sequence-as-struct decoding away from model output.
    if !args.is_object() {
        return Err(ToolError::InvalidArguments {
            tool: T::NAME.to_owned(),
            reason: "arguments must be a JSON object".to_owned(),
        });
    }
    serde_json::from_value(args).map_err(|e| ToolError::InvalidArguments {
        tool: T::NAME.to_owned(),
        reason: e.to_string(),
    })
}

impl<T: Tool> DynTool for T {
    fn name(&self) -> &str {
        T::NAME
    }

    fn check_args(&self, args: &serde_json::Value) -> Result<(), ToolError> {
        parse_args::<T>(args.clone()).map(|_| ())
    }

    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: T::NAME.to_owned(),
            description: self.description().to_owned(),
            parameters: parameters_schema::<T::Args>(),
        }
    }

    fn call_json<'a>(
        &'a self,
        ctx: &'a ToolContext,
        args: serde_json::Value,
    ) -> BoxFuture<'a, Result<serde_json::Value, ToolError>> {
        Box::pin(async move {
            let args = parse_args::<T>(args)?;
            let output = self.call(ctx, args).await.map_err(Into::into)?;
            serde_json::to_value(output)
                .map_err(|_| ToolError::Unavailable { tool: T::NAME.to_owned() })
        })
    }
}

/// Whether `name` is a valid tool name for every function-calling provider.
pub fn is_valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TOOL_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Errors building a [`ToolSet`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolSetError {
    /// Two tools share a name.
    #[error("tool `{0}` is registered twice")]
    Duplicate(String),
    /// A name providers would reject.
    #[error("tool name `{0}` must be 1-64 characters of [A-Za-z0-9_-]")]
    InvalidName(String),
    /// An allow-list names a tool that is not registered.
    #[error("allow-list names unknown tool `{0}`")]
    UnknownInAllowList(String),
}

/// A record of one tool call, kept in replies, audit logs and eval transcripts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRecord {
    /// Tool name as requested.
    pub name: String,
    /// Arguments as requested.
    pub arguments: serde_json::Value,
    /// What came back.
    pub outcome: ToolOutcome,
    /// Wall time of the call in microseconds.
    pub duration_us: u64,
}

/// The result part of a [`ToolCallRecord`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ToolOutcome {
    /// The tool returned this value.
    Ok {
        /// JSON output.
        output: serde_json::Value,
    },
    /// The tool failed.
    Err {
        /// The failure.
        error: ToolError,
    },
}

impl ToolCallRecord {
    /// The output, when the call succeeded.
    pub fn output(&self) -> Option<&serde_json::Value> {
        match &self.outcome {
            ToolOutcome::Ok { output } => Some(output),
            ToolOutcome::Err { .. } => None,
        }
    }
}

/// A set of tools, cheap to clone, optionally restricted to an allow-list.
///
/// The full set is built once at start-up; each agent gets [`ToolSet::restrict`]ed view of it.
#[derive(Clone, Default)]
pub struct ToolSet {
    tools: Arc<BTreeMap<String, Arc<dyn DynTool>>>,
    /// `None`: every registered tool is allowed.
    allowed: Option<Arc<[String]>>,
}

impl fmt::Debug for ToolSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolSet").field("allowed", &self.names()).finish()
    }
}

impl ToolSet {
    /// Builds a set from tools; names must be valid and unique.
    pub fn new(tools: impl IntoIterator<Item = Arc<dyn DynTool>>) -> Result<Self, ToolSetError> {
        let mut map = BTreeMap::new();
        for tool in tools {
            let name = tool.name().to_owned();
            if !is_valid_tool_name(&name) {
                return Err(ToolSetError::InvalidName(name));
            }
            if map.insert(name.clone(), tool).is_some() {
                return Err(ToolSetError::Duplicate(name));
            }
        }
        Ok(Self { tools: Arc::new(map), allowed: None })
    }

    /// A view of this set that only allows `names` (intersected with any existing restriction).
    pub fn restrict<S: AsRef<str>>(&self, names: &[S]) -> Result<Self, ToolSetError> {
        let mut allowed = Vec::with_capacity(names.len());
        for name in names {
            let name = name.as_ref();
            if !self.tools.contains_key(name) {
                return Err(ToolSetError::UnknownInAllowList(name.to_owned()));
            }
            if self.is_allowed(name) && !allowed.iter().any(|a: &String| a == name) {
                allowed.push(name.to_owned());
            }
        }
        Ok(Self { tools: Arc::clone(&self.tools), allowed: Some(allowed.into()) })
    }

    fn is_allowed(&self, name: &str) -> bool {
        self.allowed.as_ref().is_none_or(|allowed| allowed.iter().any(|a| a == name))
    }

    /// Names callable through this view, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.tools.keys().map(String::as_str).filter(|n| self.is_allowed(n)).collect()
    }

    /// Definitions of the callable tools, for a model's function-calling request.
    pub fn definitions(&self) -> Vec<ToolDefinition> {
        self.tools
            .iter()
            .filter(|(name, _)| self.is_allowed(name))
            .map(|(_, tool)| tool.definition())
            .collect()
    }

    /// Checks a call without making it: the tool must be on the allow-list and `arguments` must
    /// parse as its argument type.
    pub fn check(&self, name: &str, arguments: &serde_json::Value) -> Result<(), ToolError> {
        match self.tools.get(name) {
            None => Err(ToolError::UnknownTool { name: truncate_name(name) }),
            Some(_) if !self.is_allowed(name) => {
                Err(ToolError::NotAllowed { name: name.to_owned() })
            }
            Some(tool) => tool.check_args(arguments),
        }
    }

    /// Calls a tool by name, refusing anything outside the allow-list, and records the call.
    pub async fn call(
        &self,
        ctx: &ToolContext,
        name: &str,
        arguments: serde_json::Value,
    ) -> ToolCallRecord {
        let started = Instant::now();
        let result = match self.tools.get(name) {
            None => Err(ToolError::UnknownTool { name: truncate_name(name) }),
            Some(_) if !self.is_allowed(name) => {
                Err(ToolError::NotAllowed { name: name.to_owned() })
            }
            Some(tool) => tool.call_json(ctx, arguments.clone()).await,
        };
        let outcome = match result {
            Ok(output) => ToolOutcome::Ok { output },
            Err(error) => ToolOutcome::Err { error },
        };
        ToolCallRecord {
            name: truncate_name(name),
            arguments,
            outcome,
            duration_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        }
    }

    /// Calls a tool with typed arguments and parses its typed output.
    ///
    /// Used by deterministic agent policies, which decide the call in code but still go through the
    /// allow-list and leave the same record a model-driven call would.
    pub async fn call_typed<T: Tool>(
        &self,
        ctx: &ToolContext,
        args: impl Serialize,
    ) -> (ToolCallRecord, Result<T::Output, ToolError>)
    where
        T::Output: DeserializeOwned,
    {
        let arguments = match serde_json::to_value(args) {
            Ok(v) => v,
            Err(e) => {
                let error =
                    ToolError::InvalidArguments { tool: T::NAME.into(), reason: e.to_string() };
                let record = ToolCallRecord {
                    name: T::NAME.into(),
                    arguments: serde_json::Value::Null,
                    outcome: ToolOutcome::Err { error: error.clone() },
                    duration_us: 0,
                };
                return (record, Err(error));
            }
        };
        let record = self.call(ctx, T::NAME, arguments).await;
        let result = match &record.outcome {
            ToolOutcome::Ok { output } => serde_json::from_value(output.clone())
                .map_err(|_| ToolError::Unavailable { tool: T::NAME.to_owned() }),
            ToolOutcome::Err { error } => Err(error.clone()),
        };
        (record, result)
    }
}

/// Names in records and errors are echoed from model output: cap them so a hostile model cannot
/// blow up logs.
fn truncate_name(name: &str) -> String {
    name.chars().take(MAX_TOOL_NAME_LEN).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Add;

    #[derive(Debug, Deserialize, Serialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct AddArgs {
        a: i64,
        b: i64,
    }

    impl Tool for Add {
        const NAME: &'static str = "add";
        type Args = AddArgs;
        type Output = i64;
        type Error = ToolError;
        fn description(&self) -> &str {
            "Adds two integers."
        }
        async fn call(&self, _ctx: &ToolContext, args: AddArgs) -> Result<i64, ToolError> {
            args.a
                .checked_add(args.b)
                .ok_or(ToolError::Conflict { tool: Self::NAME.into(), reason: "overflow".into() })
        }
    }

    fn ctx() -> ToolContext {
        ToolContext { tenant: "t".into(), customer_id: "c".into(), conversation_id: "x".into() }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    #[test]
    fn schema_comes_from_the_args_type() {
        let def = Add.definition();
        assert_eq!(def.name, "add");
        assert_eq!(def.parameters["type"], "object");
        assert_eq!(def.parameters["properties"]["a"]["type"], "integer");
        assert!(def.parameters.get("$schema").is_none());
    }

    #[test]
    fn allow_list_is_enforced_before_parsing() {
        let set = ToolSet::new([Arc::new(Add) as Arc<dyn DynTool>]).unwrap();
        let none = set.restrict::<&str>(&[]).unwrap();
        let rec = block_on(none.call(&ctx(), "add", serde_json::json!({"a": 1, "b": 2})));
        assert!(matches!(rec.outcome, ToolOutcome::Err { error: ToolError::NotAllowed { .. } }));
        assert!(none.definitions().is_empty());

        let rec = block_on(set.call(&ctx(), "add", serde_json::json!({"a": 1, "b": 2})));
        assert_eq!(rec.output(), Some(&serde_json::json!(3)));
    }

    #[test]
    fn check_validates_without_calling() {
        let set = ToolSet::new([Arc::new(Add) as Arc<dyn DynTool>]).unwrap();
        assert_eq!(set.check("add", &serde_json::json!({"a": 1, "b": 2})), Ok(()));
        assert!(matches!(
            set.check("add", &serde_json::json!({"a": 1})),
            Err(ToolError::InvalidArguments { .. })
        ));
        assert!(matches!(
            set.check("add", &serde_json::json!("{\"a\":1,\"b\":2}")),
            Err(ToolError::InvalidArguments { .. })
        ));
        assert!(matches!(
            set.check("nope", &serde_json::json!({})),
            Err(ToolError::UnknownTool { .. })
        ));
        let none = set.restrict::<&str>(&[]).unwrap();
        assert!(matches!(
            none.check("add", &serde_json::json!({"a": 1, "b": 2})),
            Err(ToolError::NotAllowed { .. })
        ));
    }

    #[test]
    fn restriction_only_narrows() {
        let set = ToolSet::new([Arc::new(Add) as Arc<dyn DynTool>]).unwrap();
        let none = set.restrict::<&str>(&[]).unwrap();
        let again = none.restrict(&["add"]).unwrap();
        assert!(again.names().is_empty());
        assert_eq!(
            set.restrict(&["nope"]).unwrap_err(),
            ToolSetError::UnknownInAllowList("nope".into())
        );
    }

    #[test]
    fn hostile_arguments_are_typed_errors() {
        let set = ToolSet::new([Arc::new(Add) as Arc<dyn DynTool>]).unwrap();
        for bad in [
            serde_json::json!(null),
            serde_json::json!([1, 2]),
            serde_json::json!({"a": "1", "b": 2}),
            serde_json::json!({"a": 1, "b": 2, "customer_id": "someone_else"}),
            serde_json::json!({"a": 1}),
        ] {
            let rec = block_on(set.call(&ctx(), "add", bad.clone()));
            assert!(
                matches!(
                    rec.outcome,
                    ToolOutcome::Err { error: ToolError::InvalidArguments { .. } }
                ),
                "{bad} gave {rec:?}"
            );
        }
        let long = "x".repeat(10_000);
        let rec = block_on(set.call(&ctx(), &long, serde_json::json!({})));
        assert_eq!(rec.name.len(), MAX_TOOL_NAME_LEN);
    }

    #[test]
    fn duplicate_and_invalid_names_are_rejected() {
        let err = ToolSet::new([Arc::new(Add) as Arc<dyn DynTool>, Arc::new(Add)]).unwrap_err();
        assert_eq!(err, ToolSetError::Duplicate("add".into()));
        assert!(!is_valid_tool_name("has space"));
        assert!(!is_valid_tool_name(""));
        assert!(is_valid_tool_name("get_order-status2"));
    }

    #[test]
    fn typed_calls_round_trip() {
        let set = ToolSet::new([Arc::new(Add) as Arc<dyn DynTool>]).unwrap();
        let (rec, out) = block_on(set.call_typed::<Add>(&ctx(), AddArgs { a: 2, b: 3 }));
        assert_eq!(out, Ok(5));
        assert_eq!(rec.arguments, serde_json::json!({"a": 2, "b": 3}));
        let (_, out) = block_on(set.call_typed::<Add>(&ctx(), AddArgs { a: i64::MAX, b: 1 }));
        assert!(matches!(out, Err(ToolError::Conflict { .. })));
    }
}
