//! The Python script host: each Text DAT a module (compiled when its text changes, its globals kept
//! until then), callbacks called with TouchDesigner's arguments under a time limit, `run()`'s
//! schedule, and each operator's `storage`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule, PyTuple};

use super::context::{self, with_world};
use super::convert::{op_handle, to_py, to_value};
use super::interpreter::{self, CallClock, Interp};
use crate::engine::{ScriptError, ScriptHost, ScriptOutcome, Value, World};
use crate::project::{NodeId, NodeMap, ScriptLimits};

/// Scheduled runs waiting at once, at most: `run()` in a loop must not grow memory without end.
const MAX_PENDING_RUNS: usize = 100_000;

/// What one project's scripts keep between callbacks. Shared with the API during a call.
#[derive(Default)]
pub struct HostState {
    modules: NodeMap<ModuleEntry>,
    stores: NodeMap<Py<PyDict>>,
    runs: VecDeque<PendingRun>,
    /// The Python handle of each operator scripts have seen.
    handles: NodeMap<Py<PyAny>>,
}

impl HostState {
    pub fn handle(&self, py: Python<'_>, id: NodeId) -> Option<Py<PyAny>> {
        self.handles.get(&id).map(|handle| handle.clone_ref(py))
    }

    pub fn keep_handle(&mut self, id: NodeId, handle: Py<PyAny>) {
        self.handles.insert(id, handle);
    }
}

struct ModuleEntry {
    /// The text last compiled; compared with the current text before every call.
    source: String,
    module: Result<Py<PyModule>, ScriptError>,
    /// Callbacks looked up so far: the function and how many arguments it takes. A callbacks
    /// DAT defines a handful, so a scan beats hashing the name on every call.
    callbacks: Vec<(String, Option<Arc<Callback>>)>,
    /// A compile error or a bad signature was reported already.
    reported: bool,
}

struct Callback {
    function: Py<PyAny>,
    /// The module's name, which its errors carry as their file name.
    filename: String,
    /// Positional parameters it declares, and whether it takes `*args`.
    params: usize,
    required: usize,
    varargs: bool,
}

struct PendingRun {
    due_frame: u64,
    due_at: Instant,
    function: Py<PyAny>,
    args: Py<PyTuple>,
    owner: NodeId,
}

pub struct PythonHost {
    state: Arc<Mutex<HostState>>,
    /// The project folder last put on `sys.path` (checked before every callback).
    sys_path_for: Option<std::path::PathBuf>,
    clock: Arc<CallClock>,
    time_limit_ms: u64,
}

impl PythonHost {
    pub fn new(limits: &ScriptLimits) -> Self {
        interpreter::start();
        Self {
            state: Arc::new(Mutex::new(HostState::default())),
            sys_path_for: None,
            clock: CallClock::new(),
            time_limit_ms: limits.time_limit_ms,
        }
    }

    /// Runs `f` with the GIL, the world lent, and the watchdog armed. (Module code compiled inside
    /// a callback, by `mod.x`, runs under that callback's clock.)
    fn enter<R>(
        &mut self,
        world: &mut Box<World>,
        owner: NodeId,
        f: impl for<'py> FnOnce(Python<'py>, &'static Interp) -> R,
        failed: impl FnOnce(ScriptError) -> R,
    ) -> R {
        Python::attach(|py| {
            let interp = match interpreter::get(py) {
                Ok(interp) => interp,
                Err(error) => return failed(error),
            };
            // Compared as bytes: `Path`'s own equality walks components.
            if self.sys_path_for.as_ref().map(|p| p.as_os_str()) != Some(world.base_dir.as_os_str())
            {
                add_to_sys_path(py, &world.base_dir);
                self.sys_path_for = Some(world.base_dir.clone());
            }
            context::with_world_lent(world, owner, &self.state, || {
                self.clock.arm(self.time_limit_ms);
                let result = f(py, interp);
                self.clock.disarm();
                result
            })
        })
    }
}

impl ScriptHost for PythonHost {
    fn call(
        &mut self,
        world: &mut Box<World>,
        owner: NodeId,
        text_node: NodeId,
        func: &str,
        args: Vec<Value>,
    ) -> ScriptOutcome {
        let limit_ms = self.time_limit_ms;
        self.enter(
            world,
            owner,
            |py, interp| {
                let callback = match callback(py, interp, text_node, func) {
                    Ok(found) => found,
                    Err(failure) => return failure,
                };
                let Some(callback) = callback else {
                    return ScriptOutcome::Missing;
                };
                if !callback.varargs && callback.required > args.len() {
                    return bad_signature(text_node, func, &callback, args.len());
                }
                let take = if callback.varargs {
                    args.len()
                } else {
                    callback.params.min(args.len())
                };
                let mut py_args = Vec::with_capacity(take);
                for value in args.into_iter().take(take) {
                    match to_py(py, interp, value) {
                        Ok(arg) => py_args.push(arg),
                        Err(e) => {
                            return failed(
                                describe(py, interp, &e, &callback.filename, None),
                                false,
                                true,
                            );
                        }
                    }
                }
                let outcome = PyTuple::new(py, py_args)
                    .and_then(|tuple| callback.function.bind(py).call1(tuple))
                    .and_then(|result| to_value(interp, &result));
                match outcome {
                    Ok(value) => ScriptOutcome::Done(value),
                    Err(e) => {
                        let fired = self_fired(&e, py, interp).then_some(limit_ms);
                        failed(
                            describe(py, interp, &e, &callback.filename, fired),
                            false,
                            true,
                        )
                    }
                }
            },
            |error| failed(error, false, true),
        )
    }

    fn compile(
        &mut self,
        world: &mut Box<World>,
        text_node: NodeId,
    ) -> Result<bool, (ScriptError, bool)> {
        let state = self.state.clone();
        self.enter(
            world,
            text_node,
            |py, interp| {
                let stale = with_world(|world, _| {
                    let text = world
                        .project
                        .node(text_node)
                        .and_then(|n| n.text.as_deref());
                    Ok(state
                        .lock()
                        .modules
                        .get(&text_node)
                        .is_none_or(|entry| Some(entry.source.as_str()) != text))
                })
                .unwrap_or(true);
                module(py, interp, text_node)
                    .map(|_| stale)
                    .map_err(|(e, reported)| (e, !reported))
            },
            |e| Err((e, true)),
        )
    }

    fn run_due(&mut self, world: &mut Box<World>) -> Vec<(NodeId, ScriptError)> {
        let now = Instant::now();
        let frame = world.frame;
        let due: Vec<PendingRun> = {
            let mut state = self.state.lock();
            if state.runs.is_empty() {
                return Vec::new();
            }
            let mut due = Vec::new();
            for run in std::mem::take(&mut state.runs) {
                if run.due_frame <= frame && run.due_at <= now {
                    due.push(run);
                } else {
                    state.runs.push_back(run);
                }
            }
            due
        };
        let mut errors = Vec::new();
        let limit_ms = self.time_limit_ms;
        for run in due {
            let owner = run.owner;
            let result = self.enter(
                world,
                owner,
                |py, interp| {
                    run.function
                        .bind(py)
                        .call1(run.args.bind(py).clone())
                        .map(|_| ())
                        .map_err(|e| {
                            let fired = self_fired(&e, py, interp).then_some(limit_ms);
                            describe(py, interp, &e, "", fired)
                        })
                },
                Err,
            );
            if let Err(error) = result {
                errors.push((owner, error));
            }
        }
        errors
    }

    fn session(&self) -> crate::engine::ScriptSession {
        // SAFETY: the interpreter was started in `new`; the state is released by the same
        // thread, when the session is dropped (ScriptSession is not Send).
        let gil = unsafe { pyo3::ffi::PyGILState_Ensure() };
        crate::engine::ScriptSession::new(move || unsafe { pyo3::ffi::PyGILState_Release(gil) })
    }

    fn forget(&mut self, node: NodeId) {
        let mut state = self.state.lock();
        state.modules.remove(&node);
        state.stores.remove(&node);
        state.handles.remove(&node);
    }

    fn set_limits(&mut self, limits: &ScriptLimits) {
        self.time_limit_ms = limits.time_limit_ms;
    }
}

fn failed(error: ScriptError, compiling: bool, first_report: bool) -> ScriptOutcome {
    ScriptOutcome::Failed {
        error,
        compiling,
        first_report,
    }
}

fn self_fired(error: &PyErr, py: Python<'_>, interp: &Interp) -> bool {
    error.is_instance(py, interp.timeout.bind(py))
}

/// A callback whose signature needs more arguments than TouchDesigner passes: said once.
fn bad_signature(
    text_node: NodeId,
    func: &str,
    callback: &Callback,
    given: usize,
) -> ScriptOutcome {
    let first = context::host_state().is_ok_and(|state| {
        state
            .lock()
            .modules
            .get_mut(&text_node)
            .is_some_and(|entry| !std::mem::replace(&mut entry.reported, true))
    });
    ScriptOutcome::Skipped {
        warning: format!(
            "{func} is not called: it needs {} arguments and datpatch passes {given} \
             (TouchDesigner's signature)",
            callback.required
        ),
        first_report: first,
    }
}

/// Whether a module's callback was looked up before, and what was found.
enum Lookup {
    NotYet,
    Found(Option<Arc<Callback>>),
}

/// What the lent world and the host state say of a Text DAT's module, read under one lock.
enum Cached<'py> {
    /// Compiled from the current text (with the callback asked for, when it was looked up).
    Module(Bound<'py, PyModule>, Lookup),
    Failed(ScriptError, bool),
    /// The text changed (or was never compiled): (name, text).
    Stale(String, String),
}

fn cached<'py>(
    py: Python<'py>,
    state: &Arc<Mutex<HostState>>,
    text_node: NodeId,
    func: Option<&str>,
) -> Result<Cached<'py>, String> {
    with_world(|world, _| {
        let node = world
            .project
            .node(text_node)
            .ok_or_else(|| format!("operator {text_node} no longer exists"))?;
        let text = node
            .text
            .as_deref()
            .ok_or_else(|| format!("\"{}\" holds no text, so it is no module", node.name))?;
        let mut state = state.lock();
        // Comparing the text costs less than hashing it, and this runs before every callback.
        Ok(match state.modules.get_mut(&text_node) {
            Some(entry) if entry.source == text => match &entry.module {
                Ok(module) => Cached::Module(
                    module.bind(py).clone(),
                    match func.and_then(|f| entry.callbacks.iter().find(|(name, _)| name == f)) {
                        Some((_, found)) => Lookup::Found(found.clone()),
                        None => Lookup::NotYet,
                    },
                ),
                Err(error) => {
                    Cached::Failed(error.clone(), std::mem::replace(&mut entry.reported, true))
                }
            },
            _ => Cached::Stale(node.name.clone(), text.to_string()),
        })
    })
}

/// The text of `text_node`'s module as a compiled, run module (compiling it when its text
/// changed). The error says whether it was reported before.
pub fn module<'py>(
    py: Python<'py>,
    interp: &Interp,
    text_node: NodeId,
) -> Result<Bound<'py, PyModule>, (ScriptError, bool)> {
    module_and_callback(py, interp, text_node, None).map(|(m, _)| m)
}

type Found<'py> = (Bound<'py, PyModule>, Option<Arc<Callback>>);

fn module_and_callback<'py>(
    py: Python<'py>,
    interp: &Interp,
    text_node: NodeId,
    func: Option<&str>,
) -> Result<Found<'py>, (ScriptError, bool)> {
    let fail = |message: String| {
        (
            ScriptError {
                message,
                line: None,
            },
            true,
        )
    };
    let state = context::host_state().map_err(fail)?;
    let (module, callback) = match cached(py, &state, text_node, func).map_err(fail)? {
        Cached::Module(module, callback) => (module, callback),
        Cached::Failed(error, reported) => return Err((error, reported)),
        Cached::Stale(name, source) => {
            // Compile and run it with the state unlocked: its module code may use other modules.
            let me = op_handle(py, interp, text_node)
                .map_err(|e| (describe(py, interp, &e, &name, None), false))?;
            let result = interpreter::new_module(py, interp, &name, me, &source)
                .map_err(|e| describe(py, interp, &e, &name, None));
            let entry = ModuleEntry {
                source,
                module: result
                    .as_ref()
                    .map(|m| m.clone().unbind())
                    .map_err(Clone::clone),
                callbacks: Vec::new(),
                reported: result.is_err(),
            };
            state.lock().modules.insert(text_node, entry);
            let module = result.map_err(|e| (e, false))?;
            (module, Lookup::NotYet)
        }
    };
    let callback = match (func, callback) {
        (_, Lookup::Found(callback)) => callback,
        (None, Lookup::NotYet) => None,
        (Some(func), Lookup::NotYet) => {
            let found = look_up(&module, func);
            if let Some(entry) = state.lock().modules.get_mut(&text_node) {
                entry.callbacks.push((func.to_string(), found.clone()));
            }
            found
        }
    };
    Ok((module, callback))
}

/// The callback `func` of `text_node`'s module, if it defines one.
fn callback(
    py: Python<'_>,
    interp: &Interp,
    text_node: NodeId,
    func: &str,
) -> Result<Option<Arc<Callback>>, ScriptOutcome> {
    module_and_callback(py, interp, text_node, Some(func))
        .map(|(_, callback)| callback)
        .map_err(|(error, reported)| failed(error, true, !reported))
}

fn look_up(module: &Bound<'_, PyModule>, func: &str) -> Option<Arc<Callback>> {
    const CO_VARARGS: u32 = 0x04;
    let function = module
        .getattr(func)
        .ok()
        .filter(PyAnyMethods::is_callable)?;
    let signature = || -> PyResult<(usize, usize, bool)> {
        let code = function.getattr("__code__")?;
        let params: usize = code.getattr("co_argcount")?.extract()?;
        let flags: u32 = code.getattr("co_flags")?.extract()?;
        let defaults = function
            .getattr("__defaults__")?
            .extract::<Option<Bound<'_, PyTuple>>>()?
            .map_or(0, |d| d.len());
        Ok((
            params,
            params.saturating_sub(defaults),
            flags & CO_VARARGS != 0,
        ))
    };
    // A callable without a code object (a class, a builtin) takes what it is given.
    let (params, required, varargs) = signature().unwrap_or((usize::MAX, 0, true));
    Some(Arc::new(Callback {
        filename: module.name().map(|n| n.to_string()).unwrap_or_default(),
        function: function.unbind(),
        params,
        required,
        varargs,
    }))
}

/// A Python error as a script error: its type and message, the DAT frames it passed, and the line
/// in `filename` (the DAT whose code ran). `timed_out` names the limit that stopped it.
pub fn describe(
    py: Python<'_>,
    interp: &Interp,
    error: &PyErr,
    filename: &str,
    timed_out: Option<u64>,
) -> ScriptError {
    let described = interp
        .describe
        .bind(py)
        .call1((error.value(py), filename, error.traceback(py)))
        .and_then(|r| r.extract::<(String, Option<usize>)>());
    let (text, line) = described.unwrap_or_else(|_| (error.to_string(), None));
    let message = match timed_out {
        Some(limit_ms) => {
            format!("stopped: ran past the time limit of {limit_ms} ms (project settings, script)")
        }
        None => text,
    };
    ScriptError { message, line }
}

/// Puts the project's folder on `sys.path`, so scripts import modules kept beside the project.
fn add_to_sys_path(py: Python<'_>, folder: &std::path::Path) {
    let folder = std::path::absolute(folder).unwrap_or_else(|_| folder.to_path_buf());
    let added = py.import("sys").and_then(|sys| {
        let path = sys.getattr("path")?;
        let text = folder.display().to_string();
        if !path.contains(&text)? {
            path.call_method1("append", (text,))?;
        }
        Ok(())
    });
    if let Err(e) = added {
        log::warn!("could not put {} on sys.path: {e}", folder.display());
    }
}

// ---- What the API (native.rs) asks of the host state ----

/// `op.storage`: the operator's dict, made on first use.
pub fn storage(py: Python<'_>, node: NodeId) -> Result<Bound<'_, PyDict>, String> {
    let state = context::host_state()?;
    let mut state = state.lock();
    let dict = state
        .stores
        .entry(node)
        .or_insert_with(|| PyDict::new(py).unbind());
    Ok(dict.bind(py).clone())
}

/// `run(...)`: calls `function(*args)` at frame `due_frame` or later, not before `due_at`.
pub fn schedule(
    function: Py<PyAny>,
    args: Py<PyTuple>,
    due_frame: u64,
    due_at: Instant,
    owner: NodeId,
) -> Result<(), String> {
    let state = context::host_state()?;
    let mut state = state.lock();
    if state.runs.len() >= MAX_PENDING_RUNS {
        return Err(format!(
            "run(): {MAX_PENDING_RUNS} runs are already waiting; not scheduling more"
        ));
    }
    state.runs.push_back(PendingRun {
        due_frame,
        due_at,
        function,
        args,
        owner,
    });
    Ok(())
}
