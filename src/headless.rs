//! `datpatch run`: a project without a window, until Ctrl+C or SIGTERM; the console goes to stderr.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::runner::Runner;
use crate::schema::OpKind;

/// How long a run waits for its first frame (when every operator has started) before checking
/// that its servers listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);

pub fn run(
    path: &Path,
    overrides: &[(String, String)],
    keep_going: bool,
    metrics: Option<std::net::SocketAddr>,
) -> Result<(), String> {
    let signal_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // Handlers first: a SIGTERM that arrives while the project starts still stops it cleanly.
    let stop_signal = signal_runtime.block_on(async { StopSignal::install() })?;
    let runner = Runner::start_file(path, None, |engine| {
        engine.console_mut().echo_to_stderr = true;
        for (target, value) in overrides {
            engine.set_par_by_path(target, value)?;
        }
        Ok(())
    })?;
    if let Some(failed) = servers_that_failed(&runner)
        && !keep_going
    {
        runner.stop();
        return Err(format!(
            "{failed}; stopping (pass --keep-going to run without it)"
        ));
    }
    if let Some(addr) = metrics {
        let Some(rt) = runner.runtime().cloned() else {
            return Err("the project's runtime is gone".into());
        };
        match rt.block_on(crate::metrics::serve(addr, runner.engine.clone())) {
            Ok(bound) => eprintln!("datpatch: metrics on http://{bound}/metrics"),
            Err(error) => {
                runner.stop();
                return Err(error);
            }
        }
    }
    eprintln!(
        "datpatch: running {} (Ctrl+C or SIGTERM stops)",
        path.display()
    );
    signal_runtime.block_on(stop_signal.wait())?;
    eprintln!("datpatch: stopping");
    runner.stop();
    Ok(())
}

/// Once the first frame has cooked (every operator started): the Web Server DATs that could not
/// start (a port in use, a bad certificate), as "name: why" lines.
fn servers_that_failed(runner: &Runner) -> Option<String> {
    let deadline = Instant::now() + START_TIMEOUT;
    while runner.engine.lock().world().frame < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let engine = runner.engine.lock();
    let world = engine.world();
    let failed: Vec<String> = world
        .project
        .nodes
        .iter()
        .filter(|n| n.kind == OpKind::WebServer)
        .filter_map(|n| {
            let error = world.state(n.id)?.status_error.as_ref()?;
            Some(format!("{}: {error}", n.name))
        })
        .collect();
    (!failed.is_empty()).then(|| failed.join("; "))
}

struct StopSignal {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl StopSignal {
    fn install() -> Result<StopSignal, String> {
        Ok(StopSignal {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(|e| e.to_string())?,
        })
    }

    async fn wait(mut self) -> Result<(), String> {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            result = tokio::signal::ctrl_c() => result.map_err(|e| e.to_string())?,
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
        Ok(())
    }
}
