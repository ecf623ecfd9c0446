//! Undo and redo as snapshots of the document: before each user edit the whole [`Project`] is
//! kept, and undo hands it back to `Command::SetDocument`, which restarts only what differs.
//!
//! Snapshots are simple and cover every kind of edit (create, delete, wire, move, rename,
//! parameter, cell, text) without an inverse per command. Edits that arrive in a burst (a drag,
//! typing, a dragged number) share one snapshot when they carry the same [`Merge`] key.

use std::time::{Duration, Instant};

use crate::project::{NodeId, Project};

/// Steps kept; older ones are dropped first (a snapshot may hold a large table).
const MAX_STEPS: usize = 200;

/// Edits with the same key within this time are one undo step (typing, dragging a value).
const MERGE_WINDOW: Duration = Duration::from_millis(1500);

/// Which edits may share an undo step with the one before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    /// Moving these nodes (one drag).
    Move(Vec<NodeId>),
    /// Changing one parameter (dragging a number).
    Param(NodeId, &'static str),
    /// Typing in a text.
    Text(NodeId),
}

struct Step {
    project: Project,
    /// The document state this snapshot is (for the unsaved marker).
    state: u64,
}

/// The undo and redo stacks, plus an id for the current document state: the unsaved marker
/// compares it with the state last saved.
// `Undo { undo, redo }` reads as what it is.
#[allow(clippy::struct_field_names)]
pub struct Undo {
    undo: Vec<Step>,
    redo: Vec<Step>,
    /// Key and time of the last edit, while further edits may merge into its step.
    open_group: Option<(Merge, Instant)>,
    state: u64,
    next_state: u64,
}

impl Default for Undo {
    fn default() -> Self {
        Self {
            undo: Vec::new(),
            redo: Vec::new(),
            open_group: None,
            state: 0,
            next_state: 1,
        }
    }
}

impl Undo {
    /// Called before an edit is applied. Takes a snapshot (from `before`, only called when
    /// needed) unless the edit merges into the previous step. Returns whether it took one.
    pub fn checkpoint(&mut self, merge: Option<Merge>, before: impl FnOnce() -> Project) -> bool {
        let now = Instant::now();
        let merges = match (&merge, &self.open_group) {
            (Some(key), Some((open, at))) => key == open && now.duration_since(*at) < MERGE_WINDOW,
            _ => false,
        };
        self.open_group = merge.map(|key| (key, now));
        if merges {
            return false;
        }
        self.undo.push(Step {
            project: before(),
            state: self.state,
        });
        if self.undo.len() > MAX_STEPS {
            self.undo.remove(0);
        }
        self.redo.clear();
        self.state = self.next_state;
        self.next_state += 1;
        true
    }

    /// Drops the snapshot just taken: the edit changed nothing (a refused rename, say).
    pub fn discard_last(&mut self) {
        if let Some(step) = self.undo.pop() {
            self.state = step.state;
        }
        self.open_group = None;
    }

    /// Ends the current burst: the next edit gets its own step even with the same key.
    pub fn close_group(&mut self) {
        self.open_group = None;
    }

    /// The document to go back to; `current` is kept for redo.
    pub fn undo(&mut self, current: Project) -> Option<Project> {
        let step = self.undo.pop()?;
        self.redo.push(Step {
            project: current,
            state: self.state,
        });
        self.state = step.state;
        self.open_group = None;
        Some(step.project)
    }

    pub fn redo(&mut self, current: Project) -> Option<Project> {
        let step = self.redo.pop()?;
        self.undo.push(Step {
            project: current,
            state: self.state,
        });
        self.state = step.state;
        self.open_group = None;
        Some(step.project)
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    /// Forgets all history (a new or opened document); returns the fresh state id.
    pub fn clear(&mut self) -> u64 {
        self.undo.clear();
        self.redo.clear();
        self.open_group = None;
        self.state = self.next_state;
        self.next_state += 1;
        self.state
    }

    /// Identifies the document as edited by the user: equal ids mean equal documents.
    pub fn state(&self) -> u64 {
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(n: u32) -> Project {
        Project {
            version: n,
            ..Project::default()
        }
    }

    #[test]
    fn steps_merge_by_key_and_states_track_the_document() {
        let mut u = Undo::default();
        let s0 = u.state();
        assert!(u.checkpoint(Some(Merge::Text(NodeId(1))), || project(0)));
        let s1 = u.state();
        assert!(!u.checkpoint(Some(Merge::Text(NodeId(1))), || project(1)));
        assert_eq!(u.state(), s1);
        assert!(u.checkpoint(None, || project(2)));
        assert_eq!(u.undo(project(3)).map(|p| p.version), Some(2));
        assert_eq!(u.state(), s1);
        assert_eq!(u.undo(project(2)).map(|p| p.version), Some(0));
        assert_eq!(u.state(), s0);
        assert!(u.undo(project(0)).is_none());
        assert_eq!(u.redo(project(0)).map(|p| p.version), Some(2));
        assert_eq!(u.state(), s1);
        u.close_group();
        assert!(u.checkpoint(Some(Merge::Text(NodeId(1))), || project(4)));
        assert!(!u.can_redo());
    }
}
