//! The one embedded CPython of the process: started on first use, with the native module
//! `_datpatch` and the `td` module (TouchDesigner's API, `td.py`) loaded, `sys.executable`
//! pointing at a real Python, and the watchdog that interrupts runaway callbacks.

use std::ffi::CString;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule, PyType};

use crate::engine::ScriptError;

/// Handles into the `td` module, made once.
pub struct Interp {
    /// `td._new_op(id, kind)`: a new handle object of an operator.
    pub new_op: Py<PyAny>,
    pub op_class: Py<PyType>,
    /// `td._describe(exc, only_in)` -> (text, line).
    pub describe: Py<PyAny>,
    pub timeout: Py<PyType>,
    /// What every DAT module starts with: `td.__all__` by name, and `__builtins__`.
    pub exports: Vec<(String, Py<PyAny>)>,
    pub builtins: Py<PyModule>,
}

static INTERP: PyOnceLock<Result<Interp, String>> = PyOnceLock::new();

/// Starts the interpreter if it is not running (releasing the GIL afterwards, so Python threads
/// run while the cook thread sleeps).
pub fn start() {
    Python::initialize();
}

pub fn get(py: Python<'_>) -> Result<&'static Interp, ScriptError> {
    INTERP
        .get_or_init(py, || load(py).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|message| ScriptError {
            message: format!("the Python interpreter did not start: {message}"),
            line: None,
        })
}

fn load(py: Python<'_>) -> PyResult<Interp> {
    let sys = py.import("sys")?;
    let native = PyModule::new(py, "_datpatch")?;
    super::native::register(&native)?;
    sys.getattr("modules")?.set_item("_datpatch", &native)?;
    // Scripts that start a `python3` (subprocess, multiprocessing) get a real one, not datpatch.
    let executable: String = py
        .eval(
            c"__import__('shutil').which('python%d.%d' % __import__('sys').version_info[:2], path=__import__('os').path.join(__import__('sys').base_prefix, 'bin')) or __import__('shutil').which('python3') or ''",
            None,
            None,
        )?
        .extract()?;
    if !executable.is_empty() {
        sys.setattr("executable", executable)?;
    }
    let source = CString::new(include_str!("td.py"))
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    let td = PyModule::from_code(py, &source, c"<td>", c"td")?;
    sys.getattr("modules")?.set_item("td", &td)?;
    let mut exports = Vec::new();
    for name in td.getattr("__all__")?.try_iter()? {
        let name: String = name?.extract()?;
        exports.push((name.clone(), td.getattr(name.as_str())?.unbind()));
    }
    start_watchdog();
    Ok(Interp {
        new_op: td.getattr("_new_op")?.unbind(),
        op_class: td.getattr("OP")?.cast_into::<PyType>()?.unbind(),
        describe: td.getattr("_describe")?.unbind(),
        timeout: td.getattr("ScriptTimeout")?.cast_into::<PyType>()?.unbind(),
        exports,
        builtins: py.import("builtins")?.unbind(),
    })
}

/// A fresh module for a Text DAT named `name`: TouchDesigner's names, then the DAT's code.
pub fn new_module<'py>(
    py: Python<'py>,
    interp: &Interp,
    name: &str,
    me: Bound<'py, PyAny>,
    source: &str,
) -> PyResult<Bound<'py, PyModule>> {
    let module = PyModule::new(py, name)?;
    let globals: Bound<'py, PyDict> = module.dict();
    globals.set_item("__builtins__", interp.builtins.bind(py))?;
    for (export, value) in &interp.exports {
        globals.set_item(export, value.bind(py))?;
    }
    globals.set_item("me", me)?;
    let builtins = interp.builtins.bind(py);
    let code = builtins.getattr("compile")?.call1((source, name, "exec"))?;
    builtins.getattr("exec")?.call1((code, &globals))?;
    Ok(module)
}

/// A callback's clock: the watchdog raises `ScriptTimeout` in its thread once its deadline
/// passes, and again every [`REPEAT`] while it keeps running (a bare `except:` may swallow one).
#[derive(Default)]
pub struct CallClock {
    /// Milliseconds since [`epoch`] when the call must end; 0 while no call runs.
    deadline_ms: AtomicU64,
    /// The Python thread id of the calling thread.
    thread: AtomicI64,
}

const REPEAT: Duration = Duration::from_millis(200);
const TICK: Duration = Duration::from_millis(10);
const TICK_MS: u64 = 10;

impl CallClock {
    pub fn new() -> Arc<CallClock> {
        let clock = Arc::new(CallClock::default());
        WATCHED.lock().push(Arc::downgrade(&clock));
        clock
    }

    /// Arms the clock for a call on this thread (which holds the GIL).
    pub fn arm(&self, limit_ms: u64) {
        // SAFETY: called with the GIL held, on the thread that runs the callback.
        let thread = unsafe { pyo3::ffi::PyThread_get_thread_ident() };
        self.thread.store(thread as i64, Ordering::Relaxed);
        let now = TICKED_MS.load(Ordering::Relaxed);
        // A tick may be one late: the limit counts from the tick before the call at the earliest.
        self.deadline_ms
            .store(now + limit_ms.max(1) + TICK_MS, Ordering::Release);
    }

    pub fn disarm(&self) {
        self.deadline_ms.store(0, Ordering::Release);
    }
}

static WATCHED: Mutex<Vec<Weak<CallClock>>> = Mutex::new(Vec::new());

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

/// [`now_ms`] as of the watchdog's last tick: arming a clock reads this instead of the system
/// clock (one call per callback), and the deadline is only as fine as the tick anyway.
static TICKED_MS: AtomicU64 = AtomicU64::new(0);

fn start_watchdog() {
    TICKED_MS.store(now_ms(), Ordering::Relaxed);
    // One thread for the process, owned here: it only reads the clocks and raises exceptions.
    #[allow(clippy::disallowed_methods)]
    let started = std::thread::Builder::new()
        .name("script-watchdog".into())
        .spawn(|| {
            loop {
                std::thread::sleep(TICK);
                let now = now_ms();
                TICKED_MS.store(now, Ordering::Relaxed);
                let mut due = Vec::new();
                WATCHED.lock().retain(|weak| match weak.upgrade() {
                    Some(clock) => {
                        let deadline = clock.deadline_ms.load(Ordering::Acquire);
                        if deadline != 0 && now >= deadline {
                            due.push(clock);
                        }
                        true
                    }
                    None => false,
                });
                for clock in due {
                    interrupt(&clock);
                }
            }
        });
    if let Err(e) = started {
        log::error!("no script watchdog thread ({e}): runaway callbacks will not be stopped");
    }
}

fn interrupt(clock: &CallClock) {
    // Taking the GIL waits for the runaway to reach a switch point (every 5 ms of bytecode).
    Python::attach(|py| {
        let Ok(interp) = get(py) else { return };
        // The call may have ended (and another begun) since the check: look again, under the GIL.
        let deadline = clock.deadline_ms.load(Ordering::Acquire);
        if deadline == 0 || now_ms() < deadline {
            return;
        }
        let thread = clock.thread.load(Ordering::Relaxed);
        // SAFETY: the GIL is held; the exception type is a live class object.
        unsafe {
            pyo3::ffi::PyThreadState_SetAsyncExc(
                thread as std::os::raw::c_long,
                interp.timeout.as_ptr(),
            );
        }
        clock
            .deadline_ms
            .store(now_ms() + REPEAT.as_millis() as u64, Ordering::Release);
    });
}
