//! The engine's side of the script host: what it asks of the script language (run a callback,
//! forget a Text DAT, take new limits), so that only `script/` names the language.

use super::{Value, World};
use crate::project::{NodeId, ScriptLimits};

/// A failed compile or call, with the script line when known.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ScriptError {
    pub message: String,
    pub line: Option<usize>,
}

/// What running one callback came to.
#[derive(Debug)]
pub enum ScriptOutcome {
    /// The Text DAT does not define the function (with that many parameters): nothing ran.
    Missing,
    Done(Value),
    /// The function exists but cannot take TouchDesigner's arguments: not called.
    Skipped {
        warning: String,
        /// False when this was said already for the same text.
        first_report: bool,
    },
    Failed {
        error: ScriptError,
        /// The text did not compile (rather than the call failing).
        compiling: bool,
        /// False when the same compile error was already reported: report each once.
        first_report: bool,
    },
}

/// Held by the cook thread while it handles a batch of events or cooks a frame: the host may keep
/// the interpreter to itself across the batch's callbacks instead of taking it for each one.
/// Dropping it ends the session (on the thread that started it).
#[must_use]
pub struct ScriptSession(Option<Box<dyn FnOnce()>>);

impl ScriptSession {
    pub fn new(end: impl FnOnce() + 'static) -> Self {
        Self(Some(Box::new(end)))
    }

    pub fn none() -> Self {
        Self(None)
    }
}

impl Drop for ScriptSession {
    fn drop(&mut self) {
        if let Some(end) = self.0.take() {
            end();
        }
    }
}

/// The script language, as the engine uses it. `script/` implements it.
pub trait ScriptHost: Send {
    /// Calls `func` of `text_node`'s script (compiled when its text changed) with `world` lent to
    /// the script API for the length of the call; `owner` is the operator whose callback it is.
    fn call(
        &mut self,
        world: &mut Box<World>,
        owner: NodeId,
        text_node: NodeId,
        func: &str,
        args: Vec<Value>,
    ) -> ScriptOutcome;

    /// Compiles `text_node`'s text now (when it was edited), running its module code, so that a
    /// syntax error shows at once rather than at the next callback. `Ok(true)`: compiled anew
    /// (`false`: this text was compiled before); the error says whether it is reported for the
    /// first time.
    fn compile(
        &mut self,
        world: &mut Box<World>,
        text_node: NodeId,
    ) -> Result<bool, (ScriptError, bool)>;

    /// Runs what scripts scheduled (`run(..., delayFrames=)`) for this frame or earlier; returns
    /// the errors with the operator that scheduled each.
    fn run_due(&mut self, world: &mut Box<World>) -> Vec<(NodeId, ScriptError)>;

    /// Starts a session for a batch of callbacks on this thread (see [`ScriptSession`]).
    fn session(&self) -> ScriptSession {
        ScriptSession::none()
    }

    /// Drops what is kept for a deleted node (its module, its storage).
    fn forget(&mut self, node: NodeId);

    fn set_limits(&mut self, limits: &ScriptLimits);
}
