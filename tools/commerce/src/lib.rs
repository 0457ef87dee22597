//! The commerce side of fenliu: the shop's data and the tools agents use on it.
//!
//! This crate owns:
//! - the domain types in [`domain`]: customers (with tiers), products with variants, orders in every
//!   status, tickets with their lifecycle;
//! - the store contracts in [`store`]: [`OrderStore`], [`TicketStore`] and [`PreferenceStore`]
//!   (+ object-safe twins),
//!   whose writes check ownership and state themselves;
//! - the shop loader in [`demo`], reading `data/demo/` (derived from τ-bench retail, MIT);
//! - the order tools in [`tools`] (`get_order`, `list_orders`, `cancel_order`,
//!   `change_order_address`), scoped to the authenticated customer;
//! - the ticket and warranty tools in [`ticket_tools`] (`create_ticket`, `get_ticket`,
//!   `list_tickets`, `check_warranty`), scoped the same way;
//! - the marketing tools in [`marketing`]: `search_products` (semantic search over the catalogue
//!   with an [`Embedder`](fenliu_knowledge::Embedder), plus price/category/availability filters)
//!   and the newsletter preference tools over a [`PreferenceStore`].
//!
//! It has no database dependency: SQLite and PostgreSQL implementations live in `fenliu-store-sql`;
//! the `test-utils` feature adds an in-memory store and the conformance suites both must pass.

pub mod demo;
pub mod domain;
pub mod marketing;
pub mod store;
#[cfg(any(test, feature = "test-utils"))]
pub mod test_utils;
pub mod ticket_tools;
pub mod tools;

pub use demo::ShopLoadError;
pub use domain::*;
pub use store::{
    CancelReason, DynOrderStore, DynPreferenceStore, DynTicketStore, ImportStats, OrderStore,
    PreferenceStore, Preferences, ShopData, StoreError, StoreResult, TicketChange, TicketStore,
    TicketUpdate,
};
