//! The command line: open the GUI, run a project headless, or check a project file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Patch network operators (Web Server, WebSocket, Table, Text DATs) in a node graph.
#[derive(Parser, Debug)]
#[command(
    name = "datpatch",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Project to open in the GUI (default: the chat example).
    pub project: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run a project without a window until Ctrl+C or SIGTERM, printing the console to stderr.
    Run {
        project: PathBuf,
        /// Override a parameter before anything starts, e.g. `--set web.port=8080` (repeatable).
        #[arg(long = "set", value_name = "NODE.PAR=VALUE", value_parser = parse_override)]
        overrides: Vec<(String, String)>,
        /// Keep running when a Web Server DAT cannot start (by default the run exits non-zero,
        /// so that a service manager learns of it).
        #[arg(long)]
        keep_going: bool,
        /// Serve every node's info channels and the process's figures at
        /// http://ADDR/metrics in the Prometheus text format (e.g. `--metrics 127.0.0.1:9100`;
        /// port 0 picks a free one).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Validate a project file; exits non-zero with the error (file:line:column) if it is bad.
    Check {
        project: PathBuf,
        /// Also rewrite the file as a save would (canonical order and layout).
        #[arg(long)]
        write: bool,
    },
}

/// The project opened when none is given: looked up beside the working directory, then in the
/// source tree this binary was built from.
pub fn default_project() -> PathBuf {
    let relative = PathBuf::from("projects").join(crate::DEFAULT_PROJECT);
    if relative.exists() {
        return relative;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Cmd::Run {
            project,
            overrides,
            keep_going,
            metrics,
        }) => crate::headless::run(&project, &overrides, keep_going, metrics),
        Some(Cmd::Check { project, write }) => check(&project, write),
        None => crate::ui::run(cli.project.unwrap_or_else(default_project)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("datpatch: {message}");
            ExitCode::FAILURE
        }
    }
}

fn parse_override(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(target, value)| (target.trim().to_string(), value.to_string()))
        .ok_or_else(|| format!("\"{text}\": write NODE.PARAMETER=VALUE"))
}

fn check(path: &std::path::Path, write: bool) -> Result<(), String> {
    let project = crate::project::load_file(path).map_err(|e| e.to_string())?;
    if write {
        crate::project::save_file(&project, path).map_err(|e| e.to_string())?;
    }
    println!(
        "{}: ok ({} nodes, {} wires)",
        path.display(),
        project.nodes.len(),
        project.wires.len()
    );
    Ok(())
}
