//! Message rates of network operators, derived in the GUI from their received-message counters
//! (`ops::messages_in`): the node shows the current rate, the Info panel a sparkline of the last
//! minute.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::engine::World;
use crate::project::NodeId;
use crate::schema::OpKind;

/// How often a rate is computed; shorter makes a jumpy number.
const SAMPLE_PERIOD: Duration = Duration::from_millis(500);
/// Samples kept for the sparkline: one minute.
const HISTORY: usize = 120;

struct Meter {
    last_count: u64,
    last_time: Instant,
    rate_per_s: f64,
    /// (seconds since the meter started, messages per second).
    history: VecDeque<[f64; 2]>,
    started: Instant,
}

#[derive(Default)]
pub struct Rates {
    meters: HashMap<NodeId, Meter>,
}

impl Rates {
    /// Reads every network operator's counter; cheap enough to run every frame.
    pub fn sample(&mut self, world: &World) {
        let now = Instant::now();
        self.meters
            .retain(|id, _| world.project.node(*id).is_some());
        for node in &world.project.nodes {
            if !matches!(node.kind, OpKind::WebServer | OpKind::WebSocket) {
                continue;
            }
            let count = world.messages_in(node.id);
            let meter = self.meters.entry(node.id).or_insert_with(|| Meter {
                last_count: count,
                last_time: now,
                rate_per_s: 0.0,
                history: VecDeque::new(),
                started: now,
            });
            let elapsed = now.duration_since(meter.last_time);
            if elapsed < SAMPLE_PERIOD {
                continue;
            }
            // A restarted operator starts counting from zero again.
            let delta = count.saturating_sub(meter.last_count);
            meter.rate_per_s = delta as f64 / elapsed.as_secs_f64();
            meter.last_count = count;
            meter.last_time = now;
            let t = now.duration_since(meter.started).as_secs_f64();
            meter.history.push_back([t, meter.rate_per_s]);
            if meter.history.len() > HISTORY {
                meter.history.pop_front();
            }
        }
    }

    /// When the shown rates need another sample although nothing wakes the window: while any
    /// rate is not yet zero (it falls to zero one sample after the messages stop).
    pub fn next_sample(&self) -> Option<Duration> {
        let now = Instant::now();
        self.meters
            .values()
            .filter(|m| m.rate_per_s > 0.0)
            .map(|m| (m.last_time + SAMPLE_PERIOD).saturating_duration_since(now))
            .min()
    }

    /// Messages per second over the last sample period, if the node is a network operator.
    pub fn rate(&self, id: NodeId) -> Option<f64> {
        self.meters.get(&id).map(|m| m.rate_per_s)
    }

    /// The last minute of rates as plot points.
    pub fn history(&self, id: NodeId) -> Vec<[f64; 2]> {
        self.meters
            .get(&id)
            .map(|m| m.history.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// `1234.5` → "1.2k msg/s": short enough for a node.
pub fn format_rate(rate: f64) -> String {
    if rate >= 1_000_000.0 {
        format!("{:.1}M msg/s", rate / 1_000_000.0)
    } else if rate >= 1_000.0 {
        format!("{:.1}k msg/s", rate / 1_000.0)
    } else if rate >= 10.0 || rate == 0.0 {
        format!("{rate:.0} msg/s")
    } else {
        format!("{rate:.1} msg/s")
    }
}
