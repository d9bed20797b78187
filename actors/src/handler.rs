//! What a session actor runs for each user message: a [`TurnHandler`].
//!
//! The handler is synchronous and works on a *copy* of the session's dialog state: the session
//! actor commits the new state only once the turn is durable, so a handler that fails or panics
//! leaves the durable state untouched. The production handler is [`crate::engine::FlowEngine`]
//! (understanding + the flow interpreter); tests plug in their own.

use serde::{Serialize, de::DeserializeOwned};

use crate::api::{NluView, Reply};

/// One user message as the handler sees it.
#[derive(Debug, Clone, Copy)]
pub struct TurnContext<'a> {
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
}

/// A handler failure: the session restarts from its durable state and the user gets the polite
/// error reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("turn handler failed: {0}")]
pub struct HandlerError(pub String);

/// The brain of a session.
pub trait TurnHandler: Send + Sync + 'static {
    /// The dialog state kept per session, persisted as the session's snapshot. Keep it small:
    /// it lives in memory for every active session.
    type State: Serialize + DeserializeOwned + Default + Clone + Send + Sync + 'static;

    /// Advances `state` by one user message.
    fn handle(
        &self,
        state: &mut Self::State,
        turn: &TurnContext<'_>,
    ) -> Result<HandledTurn, HandlerError>;

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
