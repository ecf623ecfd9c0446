//! FIFO DAT append benchmark (run in release: `cargo bench --bench fifo`).
//!
//! Prints figures, asserts nothing about speed: the cost of one `appendRow` from a Python script
//! into a FIFO DAT clamped at Maximum Lines, after 10,000, 100,000 and 1,000,000 appends (constant
//! per append if the clamp is O(1)), beside the pattern the examples used before the FIFO DAT, a
//! Table DAT trimmed with `deleteRow(1)` after each append. Timed inside the script with
//! `time.perf_counter()`, so the figures are the script's own cost per row.
// The bench waits on its runner from the main thread.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::time::Duration;

use datpatch::project::load_str;
use datpatch::runner::Runner;

const SCRIPT: &str = r"
import time

def timed(label, rows, keep, append):
    start = time.perf_counter()
    for i in range(rows):
        append(i)
    ns = (time.perf_counter() - start) / rows * 1e9
    op('results').appendRow([label, rows, keep, round(ns)])

def onStart():
    fifo = op('fifo')
    for rows in (10000, 100000, 1000000):
        fifo.clear()
        timed('FIFO DAT appendRow', rows, fifo.par.maxlines.eval(), lambda i: fifo.appendRow([i, 'x']))
    table = op('table')
    keep = fifo.par.maxlines.eval()
    def append_and_trim(i):
        table.appendRow([i, 'x'])
        if table.numRows > keep:
            table.deleteRow(0)
    for rows in (10000, 100000):
        table.clear()
        timed('Table DAT appendRow + deleteRow', rows, keep, append_and_trim)
";

fn main() {
    for max_lines in [100, 10_000] {
        let text = format!(
            r#"(
    version: 2,
    settings: (script: (time_limit_ms: 600000)),
    nodes: [
        (id: 1, name: "fifo", kind: Fifo, params: {{"maxlines": {max_lines}}}),
        (id: 2, name: "table", kind: Table),
        (id: 3, name: "results", kind: Table),
        (id: 4, name: "bench", kind: Execute, text: {SCRIPT:?}),
    ],
)"#
        );
        let project =
            load_str(&text, Path::new("fifo-bench.ron")).unwrap_or_else(|e| panic!("{e}"));
        let dir = std::env::temp_dir();
        let runner = Runner::start(project, &dir, None).unwrap();
        let results = || {
            runner
                .engine
                .lock()
                .project()
                .node_by_name("results")
                .and_then(|n| n.table.clone())
                .map(|t| t.rows)
                .unwrap_or_default()
        };
        let deadline = std::time::Instant::now() + Duration::from_mins(10);
        while results().len() < 5 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        for row in results() {
            println!(
                "{:<32} {:>9} appends, {:>6} rows kept: {:>6} ns per append",
                row[0], row[1], row[2], row[3]
            );
        }
        for line in runner.engine.lock().world().console.lines() {
            println!("console: {line}");
        }
    }
}
