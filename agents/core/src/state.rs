//! Conversation state between turns: who owns the conversation, the owner's slots, the turns.
//!
//! [`ConversationStore`] is the persistence contract (SQLite and PostgreSQL implement it in
//! `fenliu-store-sql`); [`MemoryConversationStore`] keeps state in process. Once state lives in a
//! shared database any replica can serve any conversation, and a restart loses nothing.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::conversation::{Route, Turn};

/// Conversation state could not be loaded or saved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("conversation store: {0}")]
pub struct StateError(pub String);

/// Turns kept in the state; older ones are summarised away by later work and dropped here so a
/// long conversation cannot grow without bound.
pub const MAX_TURNS_KEPT: usize = 50;

/// The state of one conversation between turns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationState {
    /// Conversation id.
    pub id: String,
    /// The customer it is with; a conversation never changes hands between customers.
    pub customer_id: String,
    /// The agent that owns the next turn, if any.
    pub owner: Option<String>,
    /// The route of the owner.
    pub route: Option<Route>,
    /// The owner's slots.
    pub slots: serde_json::Value,
    /// Clarifying questions asked in a row.
    pub clarifications: u8,
    /// Whether the conversation has been handed to a person.
    pub escalated: bool,
    /// Turns, oldest first (at most [`MAX_TURNS_KEPT`]).
    pub turns: Vec<Turn>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl ConversationState {
    /// A fresh conversation.
    pub fn new(id: String, customer_id: String) -> Self {
        Self {
            id,
            customer_id,
            owner: None,
            route: None,
            slots: serde_json::Value::Null,
            clarifications: 0,
            escalated: false,
            turns: Vec::new(),
            updated_at: Utc::now(),
        }
    }

    /// Appends a turn, dropping the oldest beyond [`MAX_TURNS_KEPT`].
    pub fn push_turn(&mut self, turn: Turn) {
        self.turns.push(turn);
        if self.turns.len() > MAX_TURNS_KEPT {
            let excess = self.turns.len() - MAX_TURNS_KEPT;
            self.turns.drain(..excess);
        }
    }
}

/// Where conversation state lives between turns.
pub trait ConversationStore: Send + Sync {
    /// The state of a conversation, if it exists.
    fn load(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<ConversationState>, StateError>> + Send;
    /// Saves (inserts or replaces) a conversation's state.
    fn save(
        &self,
        state: &ConversationState,
    ) -> impl Future<Output = Result<(), StateError>> + Send;
}

/// Conversation state in process memory.
#[derive(Debug, Default)]
pub struct MemoryConversationStore {
    states: Mutex<HashMap<String, ConversationState>>,
}

impl MemoryConversationStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ConversationStore for MemoryConversationStore {
    async fn load(&self, id: &str) -> Result<Option<ConversationState>, StateError> {
        Ok(self.states.lock().unwrap_or_else(|e| e.into_inner()).get(id).cloned())
    }

    async fn save(&self, state: &ConversationState) -> Result<(), StateError> {
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(state.id.clone(), state.clone());
        Ok(())
    }
}
