//! The user simulator interface for multi-turn conversations: a [`UserSimulator`] produces the
//! customer's next message from what the system last said. [`ScriptedUser`] plays a dataset's
//! turns (the default, deterministic and free); [`LlmUser`] role-plays a τ-style task's
//! instruction with any chat model, when a capable one is configured (`--user llm`).

use std::sync::Arc;

use fenliu_agent::{ChatMessage, ChatRequest, DynChatModel};
use fenliu_orchestrator::ReplyKind;
use futures::future::BoxFuture;

use crate::EvalError;
use crate::format::{Conversation, Expect, Role, TurnSpec};

/// What the system said last, as the user sees it.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The reply text.
    pub reply: String,
    /// How the turn ended.
    pub kind: ReplyKind,
}

impl Observation {
    /// Whether the system asked the user something.
    pub fn asked(&self) -> bool {
        matches!(self.kind, ReplyKind::AskSlot | ReplyKind::Clarify)
    }
}

/// The user's next message, with the labels it carries (scripted users only).
#[derive(Debug, Clone, PartialEq)]
pub struct UserMessage {
    /// What the user says.
    pub text: String,
    /// Labels of this turn.
    pub expect: Option<Expect>,
}

/// Produces the customer's side of a conversation.
pub trait UserSimulator: Send {
    /// The next message after `last` (None at the start); `Ok(None)` ends the conversation.
    fn next<'a>(
        &'a mut self,
        last: Option<&'a Observation>,
    ) -> BoxFuture<'a, Result<Option<UserMessage>, EvalError>>;
}

/// Plays the user turns of a transcript in order. A turn marked `if_asked` is sent only when the
/// system's last reply asked something, and skipped otherwise.
#[derive(Debug, Clone)]
pub struct ScriptedUser {
    turns: std::vec::IntoIter<TurnSpec>,
}

impl ScriptedUser {
    /// The script of `conversation`.
    pub fn new(conversation: &Conversation) -> Self {
        let turns: Vec<TurnSpec> =
            conversation.turns.iter().filter(|t| t.role == Role::User).cloned().collect();
        Self { turns: turns.into_iter() }
    }
}

impl UserSimulator for ScriptedUser {
    fn next<'a>(
        &'a mut self,
        last: Option<&'a Observation>,
    ) -> BoxFuture<'a, Result<Option<UserMessage>, EvalError>> {
        let asked = last.is_some_and(Observation::asked);
        let next = self
            .turns
            .find(|t| !t.if_asked || asked)
            .map(|t| UserMessage { text: t.text, expect: t.expect });
        Box::pin(async move { Ok(next) })
    }
}

/// The token an LLM user writes when its goal is met (τ-bench's convention).
pub const STOP: &str = "###STOP###";

/// A customer role-played by a chat model from a task's instruction (τ-bench's user
/// simulator): it reveals what it wants step by step and writes [`STOP`] when done. Sampling is
/// seeded, so a run is reproducible where the provider honours seeds.
pub struct LlmUser {
    model: Arc<dyn DynChatModel>,
    instruction: String,
    history: Vec<ChatMessage>,
    turns_left: u32,
    seed: u64,
    temperature: f32,
}

impl LlmUser {
    /// A user following `instruction` for at most `max_turns` messages.
    pub fn new(
        model: Arc<dyn DynChatModel>,
        instruction: impl Into<String>,
        max_turns: u32,
        seed: u64,
    ) -> Self {
        Self {
            model,
            instruction: instruction.into(),
            history: Vec::new(),
            turns_left: max_turns,
            seed,
            temperature: 0.0,
        }
    }

    /// Samples at `temperature` (default 0: greedy).
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.temperature = temperature;
        self
    }

    fn system_prompt(&self) -> String {
        format!(
            "You are a customer writing to an online shop's support chat. Your situation and goal:\n\
             {}\n\n\
             Rules:\n\
             - Write only the customer's next message: one or two short sentences, no role labels.\n\
             - Do not reveal everything at once; give details when the agent asks for them.\n\
             - Never invent order numbers or details that are not in your situation.\n\
             - When your goal is achieved, or cannot be achieved, write only {STOP}.",
            self.instruction
        )
    }
}

impl UserSimulator for LlmUser {
    fn next<'a>(
        &'a mut self,
        last: Option<&'a Observation>,
    ) -> BoxFuture<'a, Result<Option<UserMessage>, EvalError>> {
        Box::pin(async move {
            if self.turns_left == 0 {
                return Ok(None);
            }
            self.turns_left -= 1;
            // From the simulated user's side the agent is the "user" of the chat.
            match last {
                Some(o) => self.history.push(ChatMessage::user(o.reply.clone())),
                None => self.history.push(ChatMessage::user("Hello, how can I help you today?")),
            }
            let mut messages = vec![ChatMessage::system(self.system_prompt())];
            messages.extend(self.history.iter().cloned());
            let mut request = ChatRequest::new(messages);
            request.seed = Some(self.seed);
            request.temperature = Some(self.temperature);
            request.max_tokens = Some(200);
            let response =
                self.model.chat(request).await.map_err(|e| EvalError::Model(e.to_string()))?;
            let text = response.message.content.trim().to_owned();
            self.history.push(ChatMessage::assistant(text.clone()));
            if text.is_empty() || text.contains(STOP) {
                return Ok(None);
            }
            Ok(Some(UserMessage { text, expect: None }))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use fenliu_agent::test_utils::ScriptedChatModel;

    fn turn(text: &str, if_asked: bool) -> TurnSpec {
        TurnSpec { role: Role::User, text: text.into(), if_asked, expect: None }
    }

    #[tokio::test]
    async fn scripted_users_answer_only_when_asked() {
        let c = Conversation {
            id: "c".into(),
            customer: Default::default(),
            channel: Default::default(),
            tags: vec![],
            turns: vec![
                turn("cancel W1", false),
                TurnSpec {
                    role: Role::Assistant,
                    text: "Sure?".into(),
                    if_asked: false,
                    expect: None,
                },
                turn("yes", true),
                turn("thanks", false),
            ],
            task: None,
        };
        let mut user = ScriptedUser::new(&c);
        assert_eq!(user.next(None).await.unwrap().unwrap().text, "cancel W1");
        let answered = Observation { reply: "Done".into(), kind: ReplyKind::Answer };
        // Not asked: the confirmation is skipped.
        assert_eq!(user.next(Some(&answered)).await.unwrap().unwrap().text, "thanks");
        assert!(user.next(Some(&answered)).await.unwrap().is_none());

        let mut user = ScriptedUser::new(&c);
        user.next(None).await.unwrap();
        let asked = Observation { reply: "Sure?".into(), kind: ReplyKind::AskSlot };
        assert_eq!(user.next(Some(&asked)).await.unwrap().unwrap().text, "yes");
    }

    #[tokio::test]
    async fn llm_users_follow_the_model_and_stop() {
        let model = Arc::new(ScriptedChatModel::new([
            ScriptedChatModel::text("I want to cancel order #W1"),
            ScriptedChatModel::text("###STOP###"),
        ]));
        let mut user = LlmUser::new(model.clone(), "Cancel #W1.", 5, 7);
        let first = user.next(None).await.unwrap().unwrap();
        assert_eq!(first.text, "I want to cancel order #W1");
        let obs = Observation { reply: "Done.".into(), kind: ReplyKind::Answer };
        assert!(user.next(Some(&obs)).await.unwrap().is_none());
        let failing = Arc::new(ScriptedChatModel::new([]));
        let mut user = LlmUser::new(failing, "x", 5, 7);
        assert!(user.next(None).await.is_err());
        let mut user = LlmUser::new(model, "x", 0, 7);
        assert!(user.next(None).await.unwrap().is_none());
    }
}
