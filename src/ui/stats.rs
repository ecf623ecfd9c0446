//! An optional frame timer: with `DATPATCH_FRAME_STATS=1` the app prints, every few seconds, how
//! many UI passes (repaints) it drew per second and how long they took (engine lock, drawing,
//! applying actions; not the GPU). Used to check that the GUI stays smooth while operators ingest
//! at full rate, and that it does not redraw when nothing changes.

use std::time::{Duration, Instant};

const REPORT_EVERY: Duration = Duration::from_secs(5);

pub struct FrameStats {
    samples_us: Vec<u64>,
    since: Instant,
}

impl FrameStats {
    pub fn from_env() -> Option<FrameStats> {
        std::env::var_os("DATPATCH_FRAME_STATS").map(|_| FrameStats {
            samples_us: Vec::new(),
            since: Instant::now(),
        })
    }

    /// Records one UI pass. Returns when the next report is due, so an idle window still draws
    /// one frame to print it (those frames are counted: an idle window shows 0.2/s).
    pub fn record(&mut self, pass: Duration) -> Duration {
        self.samples_us.push(pass.as_micros() as u64);
        let elapsed = self.since.elapsed();
        if elapsed < REPORT_EVERY {
            return REPORT_EVERY.saturating_sub(elapsed);
        }
        let samples = &mut self.samples_us;
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
        eprintln!(
            "ui frames: {} in {:.1}s ({:.0}/s), pass p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            samples.len(),
            elapsed.as_secs_f64(),
            samples.len() as f64 / elapsed.as_secs_f64(),
            at(0.5),
            at(0.99),
            at(1.0),
        );
        samples.clear();
        self.since = Instant::now();
        REPORT_EVERY
    }
}
