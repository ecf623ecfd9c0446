//! Network tasks (tokio only). They never import egui or the engine: they send [`NetEvent`]s into
//! a bounded channel and take commands from the engine over bounded channels.

use crate::project::NodeId;

/// Events queued between the network and the cook thread. When full, network tasks wait (TCP
/// backpressure) instead of buffering without limit.
pub const EVENT_QUEUE_CAPACITY: usize = 4096;

/// Something that happened on an operator's connection.
#[derive(Debug)]
pub struct NetEvent {
    pub node: NodeId,
    /// Which start of the operator's task sent it; events from a stopped run are ignored.
    pub run: u64,
    pub kind: NetEventKind,
}

#[derive(Debug)]
pub enum NetEventKind {}
