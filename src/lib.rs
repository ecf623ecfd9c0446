//! datpatch: patch network operators (TouchDesigner-style DATs) in a node graph, with a GUI or headless.
//!
//! The library holds everything; `main.rs` only parses the command line. See ARCHITECTURE.md.

// User input must never panic the app: no unwrap/expect outside tests.
#![warn(clippy::unwrap_used, clippy::expect_used)]

/// mimalloc for the app and everything that links the library (tests, benches): the cook thread
/// frees what the network threads allocate, a pattern glibc malloc handles poorly. The WebSocket
/// DAT's ingest went from 1.45 to 3.0 million messages/s with it (BENCHMARKS.md). Not under
/// `cargo fuzz`, whose sanitizers watch the system allocator.
#[cfg(not(fuzzing))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod cli;
pub mod engine;
pub mod headless;
pub mod metrics;
pub mod net;
pub mod ops;
pub mod project;
pub mod runner;
pub mod schema;
pub mod script;
pub mod ui;

/// The example project opened when the app starts without one (in `projects/`).
pub const DEFAULT_PROJECT: &str = "chat.ron";
