//! `datpatch run`: a project without a window, until Ctrl+C or SIGTERM; the console goes to stderr.

use std::path::Path;

use crate::runner::Runner;

pub fn run(path: &Path, overrides: &[(String, String)]) -> Result<(), String> {
    let runner = Runner::start_file(path, None, overrides)?;
    runner.engine.lock().console_mut().echo_to_stderr = true;
    eprintln!(
        "datpatch: running {} (Ctrl+C or SIGTERM stops)",
        path.display()
    );
    let signal_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    signal_runtime.block_on(wait_for_stop_signal())?;
    eprintln!("datpatch: stopping");
    runner.stop();
    Ok(())
}

async fn wait_for_stop_signal() -> Result<(), String> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        tokio::select! {
            _ = term.recv() => {}
            result = tokio::signal::ctrl_c() => result.map_err(|e| e.to_string())?,
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    Ok(())
}
