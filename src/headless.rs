//! `datpatch run`: a project without a window, until Ctrl+C or SIGTERM; the console goes to stderr.

use std::path::Path;

use crate::runner::Runner;

pub fn run(path: &Path, overrides: &[(String, String)]) -> Result<(), String> {
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
    eprintln!(
        "datpatch: running {} (Ctrl+C or SIGTERM stops)",
        path.display()
    );
    signal_runtime.block_on(stop_signal.wait())?;
    eprintln!("datpatch: stopping");
    runner.stop();
    Ok(())
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
