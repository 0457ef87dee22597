//! The fenliu server and command-line tool.
//!
//! This crate owns everything that faces the outside world:
//! - [`config`]: layered configuration (defaults → `fenliu.toml` → `FENLIU__SECTION__KEY`);
//! - [`agent_settings`]: the per-agent settings files, loaded at start and reloaded on change;
//! - [`runtime`]: assembling store, models, tools, agents and the orchestrator from configuration
//!   (and the one list of built-in agents, [`runtime::agents`]);
//! - [`app`]: the HTTP API (axum);
//! - [`console`]: the human-agent console's endpoints on the dispatcher;
//! - [`tickets`]: staff endpoints for department ticket queues, the SLA sweep and the delivery of
//!   ticket notifications into customers' conversations;
//! - [`handoff`]: queueing escalations in the human dispatcher, with the customer's wait estimate;
//! - [`knowledge`]: the knowledge base (`[knowledge]`, seeding, `fenliu ingest` and `fenliu kb`)
//!   and [`bench_knowledge`];
//! - [`bench_turns`]: `fenliu bench turns`, the cost of a model-driven turn;
//! - [`eval`]: `fenliu eval` and `fenliu eval compare` over `fenliu-evals`;
//! - the `fenliu` binary (`src/main.rs`): `serve` and `chat`.
//!
//! Nothing depends on this crate.

pub mod agent_settings;
pub mod app;
pub mod bench_knowledge;
pub mod bench_turns;
pub mod commands;
pub mod config;
pub mod console;
pub mod eval;
pub mod handoff;
pub mod knowledge;
pub mod openai_api;
pub mod runtime;
pub mod tickets;
