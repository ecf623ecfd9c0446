//! A project running: its tokio runtime (2 workers), its engine and its cook thread. The GUI,
//! headless runs and tests all start projects this way.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::engine::{
    CookThread, Engine, EngineParts, EventReceiver, SharedEngine, Waker, spawn_cook_thread,
};
use crate::project::Project;

/// An engine for `project` with this build's operators and script host, not yet started (tests
/// and benchmarks that drive an engine by hand start here).
pub fn new_engine(project: Project, rt: tokio::runtime::Handle) -> (Engine, EventReceiver) {
    let parts = EngineParts {
        operators: crate::ops::registry(),
        new_scripts: crate::script::new_host,
    };
    Engine::new(project, rt, parts)
}

/// The longest a stop waits for network tasks to finish their closing handshakes.
const NET_GOODBYE: Duration = Duration::from_millis(1200);

pub struct Runner {
    pub engine: SharedEngine,
    cook: Option<CookThread>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Runner {
    /// Starts `project`; relative file parameters are read from `base_dir`.
    pub fn start(
        project: Project,
        base_dir: &Path,
        waker: Option<Waker>,
    ) -> std::io::Result<Runner> {
        Runner::start_with(project, base_dir, waker, |_| Ok(())).map_err(std::io::Error::other)
    }

    /// Like [`Runner::start`], with `setup` run on the engine before any operator starts (the
    /// place for `--set` overrides and console echo, so nothing happens before them).
    pub fn start_with(
        project: Project,
        base_dir: &Path,
        waker: Option<Waker>,
        setup: impl FnOnce(&mut Engine) -> Result<(), String>,
    ) -> Result<Runner, String> {
        // The cook thread keeps a core busy under load; network workers take the rest. On two
        // cores one worker served about 15% more requests/s than two (`cargo bench --bench
        // webserver`): two workers and the cook thread just took turns on two cores.
        let network_workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get().saturating_sub(1))
            .max(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(network_workers)
            .thread_name("net")
            .enable_all()
            .build()
            .map_err(|e| format!("starting the network runtime: {e}"))?;
        let (mut engine, events) = new_engine(project, runtime.handle().clone());
        engine.world_mut().base_dir = base_dir.to_path_buf();
        setup(&mut engine)?;
        let engine = Arc::new(Mutex::new(engine));
        let cook = spawn_cook_thread(engine.clone(), events, waker)
            .map_err(|e| format!("starting the cook thread: {e}"))?;
        Ok(Runner {
            engine,
            cook: Some(cook),
            runtime: Some(runtime),
        })
    }

    /// Loads and starts a project file; see [`Runner::start_with`] for `setup`.
    pub fn start_file(
        path: &Path,
        waker: Option<Waker>,
        setup: impl FnOnce(&mut Engine) -> Result<(), String>,
    ) -> Result<Runner, String> {
        let project = crate::project::load_file(path).map_err(|e| e.to_string())?;
        let base_dir = path.parent().unwrap_or(Path::new("."));
        Runner::start_with(project, base_dir, waker, setup)
    }

    pub fn runtime(&self) -> Option<&tokio::runtime::Handle> {
        self.runtime.as_ref().map(tokio::runtime::Runtime::handle)
    }

    /// Stops cooking, stops every operator (onExit / onServerStop run), and ends the runtime.
    pub fn stop(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        if let Some(cook) = self.cook.take() {
            cook.stop();
            self.engine.lock().shutdown();
        }
        if let Some(runtime) = self.runtime.take() {
            // Stopped operators finish their goodbyes (WebSocket close frames, 1001) in network
            // tasks; shutting the runtime down would cancel them mid-way, so wait for the tasks
            // they started to end first. This runs on the GUI or caller's thread, outside the
            // runtime, so blocking on it is fine. (The timeout is made inside the async block:
            // its timer needs the runtime's context, which only `block_on` provides here.)
            let tasks = self.engine.lock().net().tasks.clone();
            tasks.tracker.close();
            let _ = runtime
                .block_on(async { tokio::time::timeout(NET_GOODBYE, tasks.tracker.wait()).await });
            tasks.cancel.cancel();
            runtime.shutdown_timeout(Duration::from_millis(500));
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.stop_all();
    }
}
