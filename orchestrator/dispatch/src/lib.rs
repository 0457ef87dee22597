//! The human dispatcher of fenliu: when the AI front line escalates a conversation, who gets it,
//! how long the customer waits, and whether urgent and VIP work overtakes the rest.
//!
//! The shared map places the dispatcher in the orchestrator. It lives in this companion crate
//! (`orchestrator/dispatch`) so that sqlx and the simulator stay out of the turn loop's core:
//! `fenliu-orchestrator` produces [`fenliu_agent::EscalationPackage`]s, and whoever assembles the
//! runtime turns them into [`NewWorkItem`]s ([`NewWorkItem::from_escalation`]) for a [`Backend`].
//!
//! # Layout
//! - [`model`]: people ([`HumanAgent`]: skills with levels, per-medium [`Capacity`], status,
//!   [`Performance`]) and work ([`WorkItem`]);
//! - [`policy`]: priority points, aging, the bypass class, SLA targets, workflow steps;
//! - [`dispatcher`]: the pure state machine ([`Dispatcher`]) — one queue across channels,
//!   offers that expire, decline, transfer, wrap-up, SLA events; time is always passed in;
//! - [`erlang`]: Erlang C staffing;
//! - [`sim`]: the discrete-event simulator behind `fenliu simulate`;
//! - [`backend`]: the [`DispatchBackend`] trait, the embedded backend (the state machine,
//!   persisted to SQLite) and the PostgreSQL backend (`FOR UPDATE SKIP LOCKED`, LISTEN/NOTIFY),
//!   and the conformance suite both pass;
//! - [`bench`](mod@bench): `fenliu bench dispatch`.

pub mod backend;
pub mod bench;
pub mod dispatcher;
pub mod erlang;
mod error;
pub mod event;
pub mod model;
pub mod policy;
pub mod sim;

pub use backend::{
    Backend, Clock, DispatchBackend, EmbeddedBackend, ManualClock, PostgresBackend, SystemClock,
    hand_off,
};
pub use dispatcher::{Changes, Dispatcher, EstimateMethod, WaitEstimate};
pub use error::{DispatchError, DispatchResult};
pub use event::{Event, EventKind, SlaKind};
pub use model::{
    AgentId, AgentStatus, Capacity, HumanAgent, ItemId, ItemState, Level, Load, Medium,
    NewWorkItem, Outcome, Performance, Skills, TransferNote, WorkItem,
};
pub use policy::{Policy, QueueKey, SlaPolicy, SlaTarget, WorkflowStep};
