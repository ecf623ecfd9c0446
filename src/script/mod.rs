//! The Python host: CPython embedded through PyO3, the only place that names PyO3's types. Each
//! Text DAT is a module; callbacks get TouchDesigner's arguments and API (DESIGN §4, README).

mod context;
mod convert;
mod host;
mod interpreter;
mod native;

pub use host::PythonHost;

use crate::engine::ScriptHost;
use crate::project::ScriptLimits;

/// The script host the engine runs callbacks with (`EngineParts::new_scripts`). Operators' own
/// methods are found through the lent world's registry, so the host needs nothing else.
pub fn new_host(limits: &ScriptLimits) -> Box<dyn ScriptHost> {
    Box::new(PythonHost::new(limits))
}
