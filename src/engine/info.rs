//! Info channels (TouchDesigner's Info CHOP): common operator and DAT channels, plus each
//! operator's own.

use super::world::World;
use crate::project::NodeId;

/// When and how long a node last cooked.
#[derive(Debug, Default, Clone)]
pub struct CookInfo {
    pub total_cooks: u64,
    pub cook_time_ms: f64,
    pub cook_frame: u64,
    /// Milliseconds into the frame at which the last cook started and ended.
    pub cook_start_time_ms: f64,
    pub cook_end_time_ms: f64,
}

impl CookInfo {
    pub fn record(&mut self, frame: u64, start_in_frame_ms: f64, duration_ms: f64) {
        self.total_cooks += 1;
        self.cook_frame = frame;
        self.cook_time_ms = duration_ms;
        self.cook_start_time_ms = start_in_frame_ms;
        self.cook_end_time_ms = start_in_frame_ms + duration_ms;
    }
}

/// All info channels of a node, in display order.
pub fn channels(world: &World, id: NodeId) -> Vec<(&'static str, f64)> {
    let Some(state) = world.state(id) else {
        return Vec::new();
    };
    let cook = &state.cook;
    let mut out = vec![
        ("total_cooks", cook.total_cooks as f64),
        ("cook_time", cook.cook_time_ms),
        // There is no component timeline: the component frame is the absolute frame.
        ("cook_frame", cook.cook_frame as f64),
        ("cook_abs_frame", cook.cook_frame as f64),
        ("cook_start_time", cook.cook_start_time_ms),
        ("cook_end_time", cook.cook_end_time_ms),
        (
            "cooked_this_frame",
            f64::from(u8::from(
                cook.total_cooks > 0 && cook.cook_frame == world.frame,
            )),
        ),
        ("warnings", state.warnings as f64),
        ("errors", state.errors as f64),
    ];
    if let Some(dat) = world.dat(id) {
        out.push(("num_rows", dat.num_rows() as f64));
        out.push(("num_cols", dat.num_cols() as f64));
    }
    if let Some(node) = world.project.node(id) {
        world.operators.get(node.kind).info(world, id, &mut out);
    }
    out
}

pub fn channel(world: &World, id: NodeId, name: &str) -> Option<f64> {
    channels(world, id)
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}
