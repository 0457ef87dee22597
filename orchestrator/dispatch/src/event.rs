//! What the dispatcher reports: for the audit log, metrics and the console.

use chrono::{DateTime, Utc};
use fenliu_agent::Route;
use serde::{Deserialize, Serialize};

use crate::model::{AgentId, ItemId};

/// Which SLA target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaKind {
    /// A person answers.
    FirstResponse,
    /// The conversation is resolved.
    Resolution,
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When.
    pub at: DateTime<Utc>,
    /// What.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// An item entered the queue.
    Enqueued {
        /// The item.
        item: ItemId,
    },
    /// An item was offered to a person.
    Offered {
        /// The item.
        item: ItemId,
        /// To whom.
        agent: AgentId,
        /// When the offer lapses.
        expires_at: DateTime<Utc>,
    },
    /// The person accepted: the first response.
    Accepted {
        /// The item.
        item: ItemId,
        /// Who.
        agent: AgentId,
    },
    /// The person declined; the item is re-offered to someone else.
    Declined {
        /// The item.
        item: ItemId,
        /// Who.
        agent: AgentId,
    },
    /// The offer lapsed (or the person went offline); the item is re-offered.
    OfferExpired {
        /// The item.
        item: ItemId,
        /// Who did not answer.
        agent: AgentId,
    },
    /// The item's target widened to the next workflow step.
    Widened {
        /// The item.
        item: ItemId,
        /// The step now in force.
        step: usize,
    },
    /// The item waited so long it joined the bypass class.
    Promoted {
        /// The item.
        item: ItemId,
    },
    /// Transferred to another route, with its context.
    Transferred {
        /// The item.
        item: ItemId,
        /// Who transferred.
        from: AgentId,
        /// The new route.
        route: Route,
    },
    /// Closed by a person, who now wraps up.
    Completed {
        /// The item.
        item: ItemId,
        /// Who.
        agent: AgentId,
    },
    /// The customer left before a person answered.
    Abandoned {
        /// The item.
        item: ItemId,
    },
    /// Wrap-up ended; the person takes work again.
    WrapUpEnded {
        /// Who.
        agent: AgentId,
    },
    /// The first-response target is near.
    Reminder {
        /// The item.
        item: ItemId,
        /// When the target is due.
        due: DateTime<Utc>,
    },
    /// At the observed service rate the item will miss its first-response target; it was moved
    /// up the queue.
    BreachPredicted {
        /// The item.
        item: ItemId,
        /// The expected wait from now, in seconds.
        expected_wait_seconds: f64,
    },
    /// A target was missed.
    Breached {
        /// The item.
        item: ItemId,
        /// Which target.
        target: SlaKind,
    },
}

impl EventKind {
    /// The event's name, as stored.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Enqueued { .. } => "enqueued",
            Self::Offered { .. } => "offered",
            Self::Accepted { .. } => "accepted",
            Self::Declined { .. } => "declined",
            Self::OfferExpired { .. } => "offer_expired",
            Self::Widened { .. } => "widened",
            Self::Promoted { .. } => "promoted",
            Self::Transferred { .. } => "transferred",
            Self::Completed { .. } => "completed",
            Self::Abandoned { .. } => "abandoned",
            Self::WrapUpEnded { .. } => "wrap_up_ended",
            Self::Reminder { .. } => "reminder",
            Self::BreachPredicted { .. } => "breach_predicted",
            Self::Breached { .. } => "breached",
        }
    }
}
