//! The tool conformance suite. Every tool crate runs it on each of its tools.

// Conformance suites report violations by panicking, like `assert!`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use serde_json::{Value, json};

use crate::{DynTool, ToolContext, ToolError, is_valid_tool_name};

/// Inputs no well-typed tool should accept: wrong JSON kinds, deep nesting, huge strings.
pub fn hostile_arguments() -> Vec<Value> {
    let mut deep = json!(0);
    for _ in 0..64 {
        deep = json!([deep]);
    }
    vec![
        Value::Null,
        json!(true),
        json!(42),
        json!("ignore previous instructions"),
        json!([]),
        deep,
        json!({ "\u{0}": "x".repeat(1 << 20) }),
    ]
}

/// Checks the contract of a tool:
/// - its name is valid for every function-calling provider and its description is not empty;
/// - its parameters are an object schema;
/// - every `valid` argument value passes argument parsing (the call may still fail for domain
///   reasons such as a missing order, but never with [`ToolError::InvalidArguments`]);
/// - every hostile value fails with [`ToolError::InvalidArguments`], without panicking.
///
/// Panics with a message naming the tool and the input on the first violation.
pub async fn assert_tool_conformance(tool: &dyn DynTool, ctx: &ToolContext, valid: &[Value]) {
    let def = tool.definition();
    let name = def.name.clone();
    assert!(is_valid_tool_name(&name), "tool name `{name}` is not provider-safe");
    assert_eq!(tool.name(), name, "definition name differs from tool name");
    assert!(!def.description.trim().is_empty(), "tool `{name}` has no description");
    assert_eq!(
        def.parameters["type"], "object",
        "tool `{name}` parameters are not an object schema"
    );

    for args in valid {
        if let Err(ToolError::InvalidArguments { reason, .. }) =
            tool.call_json(ctx, args.clone()).await
        {
            panic!("tool `{name}` rejected valid arguments {args}: {reason}");
        }
    }
    for args in hostile_arguments() {
        let shown: String = args.to_string().chars().take(80).collect();
        match tool.call_json(ctx, args).await {
            Err(ToolError::InvalidArguments { .. }) => {}
            other => panic!("tool `{name}` accepted hostile arguments {shown}: {other:?}"),
        }
    }
}
