//! The parent of every session actor.
//!
//! ractor's default supervisor stops itself when a child fails; ours must not, since one failing
//! conversation may never take the others down. Restart is on demand: a failed session has already
//! recorded its failure and left the registry (see `session.rs`), so the next message for it
//! activates a fresh actor from the store. The supervisor logs what happened.

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::{debug, warn};

/// The supervisor has no messages of its own; it only receives supervision events.
pub enum SupervisorMsg {}

/// Supervises session actors.
pub struct SessionSupervisor;

impl Actor for SessionSupervisor {
    type Msg = SupervisorMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _args: (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                warn!(actor = %cell.get_id(), error = %err, "Session actor failed; it restarts from the store on its next message");
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                debug!(actor = %cell.get_id(), reason = ?reason, "Session actor stopped");
            }
            _ => {}
        }
        Ok(())
    }
}
