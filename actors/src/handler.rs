//! What a session actor runs for each user message: a [`TurnHandler`].
//!
//! The handler is async, so a turn can await skill calls (order look-ups, remote actions) in the
//! middle of a flow step. It works on a *copy* of the session's dialog state: the session actor
//! commits the new state only once the turn is durable, so a handler that fails, panics (the
//! panic is caught around the handler's future) or is still mid-way when it fails leaves the
//! durable state untouched. A slow turn delays only its own session: every session is its own
//! actor, so other conversations keep flowing. The production handler is
//! [`crate::engine::FlowEngine`] (understanding + the flow interpreter); tests plug in their own.

use std::future::Future;

use kefu_models::llm::ChatMessage;
use serde::{Serialize, de::DeserializeOwned};

use crate::api::{NluView, Reply, TurnStream};

/// The tenant of conversations whose channel did not name one.
pub const DEFAULT_TENANT: &str = "default";

/// One user message as the handler sees it. Together with the locale the engine detects, these
/// fields are everything a skill's `Caller` is built from: identity comes from here, never from
/// the text.
#[derive(Debug, Clone, Copy)]
pub struct TurnContext<'a> {
    /// The tenant the conversation belongs to ([`DEFAULT_TENANT`] when not configured).
    pub tenant: &'a str,
    /// The conversation's key.
    pub session: &'a str,
    /// The user the conversation belongs to.
    pub user: &'a str,
    /// The channel it came through.
    pub channel: &'a str,
    /// The text as sent.
    pub text: &'a str,
    /// The message id.
    pub message_id: &'a str,
    /// The user's tags sent with this message (`vip`, ...), `None` when it sent none (the
    /// handler keeps the last ones); see [`crate::api::Inbound::tags`].
    pub tags: Option<&'a [String]>,
    /// Where generated text that is said may be streamed while the model runs (WebSocket
    /// turns); `None` when the channel takes whole replies only.
    pub stream: Option<&'a TurnStream>,
    /// The latest messages of the conversation before this one, oldest first (user and bot
    /// texts), as many as [`TurnHandler::history_window`] asked for; empty when it asked none.
    pub history: &'a [ChatMessage],
}

/// What a handler produced for one turn.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HandledTurn {
    /// Replies to send, in order.
    pub replies: Vec<Reply>,
    /// What was understood, for the API and the transcript.
    pub nlu: Option<NluView>,
    /// The active flow after the turn.
    pub active_flow: Option<String>,
    /// How each LLM generation of the turn was answered, and why the rungs above did not (e.g.
    /// `fallback (remote: timeout; local: not_configured)`): stored with the turn
    /// ([`crate::events::SessionEvent::Generation`]) and shown in the transcript.
    pub generations: Vec<String>,
}

/// A handler failure: the session restarts from its durable state and the user gets the polite
/// error reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("turn handler failed: {0}")]
pub struct HandlerError(pub String);

/// The brain of a session.
///
/// Implementations write `async fn handle(&self, state: &mut Self::State, turn: &TurnContext<'_>)
/// -> Result<HandledTurn, HandlerError>`; the future must be `Send` because it runs inside the
/// session actor.
pub trait TurnHandler: Send + Sync + 'static {
    /// The dialog state kept per session, persisted as the session's snapshot. Keep it small:
    /// it lives in memory for every active session.
    type State: Serialize + DeserializeOwned + Default + Clone + Send + Sync + 'static;

    /// Advances `state` by one user message. `state` is a copy: on `Err` (or a panic) the
    /// session discards it, so the handler need not undo half-made changes.
    fn handle(
        &self,
        state: &mut Self::State,
        turn: &TurnContext<'_>,
    ) -> impl Future<Output = Result<HandledTurn, HandlerError>> + Send;

    /// How many recent messages (user and bot) the handler wants in [`TurnContext::history`].
    /// The session keeps them in memory only (read from the store when it activates), so the
    /// default 0 costs nothing; a handler that generates text with a language model asks for
    /// a few.
    fn history_window(&self) -> usize {
        0
    }

    /// Called by the session registry when a new user message for `session` is accepted while
    /// a turn with a *different* message id is running there, before the new message queues
    /// behind it: the user has moved on, so work the running turn is waiting for (a language
    /// model generating its answer) may be cut short. It must be cheap and must not block: it
    /// runs on the sender's path, outside the session actor. The default does nothing; the flow
    /// engine cancels the session's generation.
    fn interrupt(&self, tenant: &str, session: &str) {
        let _ = (tenant, session);
    }

    /// The reply a user gets when their message made the session fail. Bilingual by default.
    fn polite_error(&self, text: &str) -> String {
        if is_chinese(text) {
            "抱歉，系统刚刚出了点问题，您的消息已记录，请稍后再试。".to_owned()
        } else {
            "Sorry, something went wrong on our side. Your message is recorded; please try again in a moment.".to_owned()
        }
    }

    /// The reply a user gets when the session is parked after repeated failures.
    fn parked_notice(&self, text: &str) -> String {
        if is_chinese(text) {
            "抱歉，我们遇到了一些问题，已为您转接人工客服，请稍候。".to_owned()
        } else {
            "Sorry, we keep running into a problem here, so we've passed your conversation to a colleague who will get back to you.".to_owned()
        }
    }
}

/// The language of a canned reply: the models' detector, so it agrees with the engine's.
fn is_chinese(text: &str) -> bool {
    kefu_models::detect_lang_or(text, kefu_models::Lang::En) == kefu_models::Lang::Zh
}
