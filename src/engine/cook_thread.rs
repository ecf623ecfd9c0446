//! The cook thread: cooks at the project's cook rate and wakes at once when a network event
//! arrives, so servers answer while the GUI is busy, hidden or absent.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::{Engine, EventReceiver};

/// The engine as the GUI and the cook thread share it. Hold the lock briefly.
pub type SharedEngine = Arc<Mutex<Engine>>;

/// Called after the engine changed (e.g. the GUI's request_repaint); must not block.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Events handled under one lock before the GUI gets a chance to read: at most this many, and
/// no more once this much time has gone (slow callbacks must not freeze the GUI).
const EVENTS_PER_LOCK: usize = 256;
const LOCK_BUDGET: Duration = Duration::from_millis(4);

pub struct CookThread {
    stop: Arc<Notify>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the engine's operators and cooks it on a new thread until [`CookThread::stop`].
pub fn spawn_cook_thread(
    engine: SharedEngine,
    mut events: EventReceiver,
    waker: Option<Waker>,
) -> std::io::Result<CookThread> {
    let stop = Arc::new(Notify::new());
    let stop_rx = stop.clone();
    let rt = engine.lock().net().rt.clone();
    // The cook thread is one of the few threads datpatch owns (clippy.toml).
    #[allow(clippy::disallowed_methods)]
    let thread = std::thread::Builder::new()
        .name("cook".into())
        .spawn(move || {
            engine.lock().start();
            let wake = || {
                if let Some(w) = &waker {
                    w();
                }
            };
            let mut next_frame = Instant::now();
            let mut shown_stamp = None;
            loop {
                enum Woke {
                    Event(crate::net::NetEvent),
                    Frame,
                    Stop,
                }
                let deadline = tokio::time::Instant::from_std(next_frame);
                // A frame that is due comes first: under a flood of events there is always one
                // waiting, and frames (Execute DATs, cook info) must still run at their rate.
                let woke = if Instant::now() >= next_frame {
                    Woke::Frame
                } else {
                    rt.block_on(async {
                        tokio::select! {
                            biased;
                            () = stop_rx.notified() => Woke::Stop,
                            event = events.recv() => event.map_or(Woke::Stop, Woke::Event),
                            () = tokio::time::sleep_until(deadline) => Woke::Frame,
                        }
                    })
                };
                match woke {
                    Woke::Stop => break,
                    Woke::Event(first) => {
                        // Events are what the window shows (messages, connections): always wake.
                        let mut engine = engine.lock();
                        let locked_at = Instant::now();
                        let _session = engine.script_session();
                        engine.handle_event(first);
                        for _ in 1..EVENTS_PER_LOCK {
                            if locked_at.elapsed() >= LOCK_BUDGET {
                                break;
                            }
                            match events.try_recv() {
                                Ok(event) => engine.handle_event(event),
                                Err(_) => break,
                            }
                        }
                    }
                    Woke::Frame => {
                        let (period, stamp) = {
                            let mut engine = engine.lock();
                            let _session = engine.script_session();
                            engine.cook_frame();
                            (engine.frame_period(), engine.view_stamp())
                        };
                        // Keep a steady rate, but after a stall start afresh instead of cooking a burst.
                        next_frame += period;
                        let now = Instant::now();
                        if next_frame < now {
                            next_frame = now + period;
                        }
                        // A frame that changed nothing visible does not wake the window.
                        if shown_stamp.replace(stamp) == Some(stamp) {
                            continue;
                        }
                    }
                }
                wake();
            }
        })?;
    Ok(CookThread {
        stop,
        thread: Some(thread),
    })
}

impl CookThread {
    /// Stops cooking and waits for the thread; the engine keeps its state (call `shutdown` on it
    /// to stop its operators).
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for CookThread {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
