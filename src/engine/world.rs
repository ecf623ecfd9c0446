//! What scripts and the GUI see of a running project: the document plus per-node runtime state.

use std::time::Instant;

use std::any::Any;

use super::console::{Console, Level};
use super::fifo_table::FifoTable;
use super::info::CookInfo;
use super::operator::{Badge, OpState, Registry};
use crate::project::{NodeId, NodeMap, ParValue, Project, Table};
use crate::schema::{Input, OpKind, ParKind};

/// The running project. The engine owns it; during a callback it is lent to the script host.
#[derive(Debug)]
pub struct World {
    pub project: Project,
    pub nodes: NodeMap<NodeState>,
    pub console: Console,
    /// Frames cooked since the engine started (TouchDesigner's absTime.frame).
    pub frame: u64,
    pub started: Instant,
    /// Increases on every change to the document, so a viewer can tell it is unsaved.
    pub revision: u64,
    /// Folder that relative file parameters are read from: the project file's folder.
    pub base_dir: std::path::PathBuf,
    /// Each kind's operator: how a node cooks, what it shows, which script methods it has.
    pub operators: Registry,
}

impl Default for World {
    fn default() -> Self {
        Self {
            project: Project::default(),
            nodes: NodeMap::default(),
            console: Console::default(),
            frame: 0,
            started: Instant::now(),
            revision: 0,
            base_dir: std::path::PathBuf::from("."),
            operators: Registry::default(),
        }
    }
}

/// An error shown on a node: where it came from and, for script errors, the line.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeError {
    pub text: String,
    /// The Text DAT whose script failed, if a script failed.
    pub script_node: Option<NodeId>,
    pub line: Option<usize>,
    pub time_ms: i64,
}

/// Runtime state of one node, keyed by node id in [`World::nodes`].
#[derive(Debug, Default)]
pub struct NodeState {
    pub cook: CookInfo,
    /// Errors and warnings reported on this node since the project started.
    pub errors: u64,
    pub warnings: u64,
    pub last_error: Option<NodeError>,
    /// A lasting problem with the node's setup (missing `$ENV`, port in use); cleared when fixed.
    pub status_error: Option<String>,
    /// On a Text DAT: the last error its script raised, for the editor to mark.
    pub script_error: Option<NodeError>,
    /// On a script DAT: the content revision last compiled (None: not yet).
    pub compiled_rev: Option<u64>,
    /// On a script DAT: an edited revision waiting to compile, and when it was first seen (edits
    /// compile once the text rests, so a half-typed line is not reported at every key).
    pub edit_seen: Option<(u64, std::time::Instant)>,
    /// Increases when the node's table or text changes.
    pub content_rev: u64,
    /// Parameters changed since the runtime last reconciled.
    pub needs_reconcile: bool,
    /// The runtime has reconciled at least once (start-of-project work is done).
    pub initialized: bool,
    /// Pulses fired (from the GUI or scripts), handled at the next frame.
    pub pulses: Vec<String>,
    /// The operator's own state (a server handle, a received-messages table), of the type its
    /// `ops/` folder defines; reached through [`World::runtime`] and [`World::runtime_mut`].
    pub runtime: Option<Box<dyn OpState>>,
}

/// Read access to a DAT's contents, whatever kind of DAT it is.
pub enum DatRef<'a> {
    Table(&'a Table),
    Text(&'a str),
    Fifo(&'a FifoTable),
}

impl DatRef<'_> {
    pub fn num_rows(&self) -> usize {
        match self {
            DatRef::Table(t) => t.num_rows(),
            DatRef::Text(s) => s.lines().count(),
            DatRef::Fifo(f) => f.num_rows(),
        }
    }

    pub fn num_cols(&self) -> usize {
        match self {
            DatRef::Table(t) => t.num_cols(),
            DatRef::Text(s) => usize::from(!s.is_empty()),
            DatRef::Fifo(f) => f.num_cols(),
        }
    }

    pub fn cell(&self, row: usize, col: usize) -> Option<String> {
        match self {
            DatRef::Table(t) => t.cell(row, col).map(str::to_string),
            DatRef::Text(s) if col == 0 => s.lines().nth(row).map(str::to_string),
            DatRef::Text(_) => None,
            DatRef::Fifo(f) => f.cell(row, col),
        }
    }

    /// TouchDesigner's `dat.text`: tables as tab-separated rows.
    pub fn text(&self) -> String {
        match self {
            DatRef::Table(t) => t.to_text(),
            DatRef::Text(s) => s.to_string(),
            DatRef::Fifo(f) => {
                let mut out = String::new();
                for r in 0..f.num_rows() {
                    let row: Vec<String> = (0..f.num_cols()).filter_map(|c| f.cell(r, c)).collect();
                    out.push_str(&row.join("\t"));
                    out.push('\n');
                }
                out
            }
        }
    }

    /// Index of the first row whose first cell is `name`.
    pub fn row_named(&self, name: &str) -> Option<usize> {
        (0..self.num_rows()).find(|&r| self.cell(r, 0).as_deref() == Some(name))
    }

    pub fn col_named(&self, name: &str) -> Option<usize> {
        (0..self.num_cols()).find(|&c| self.cell(0, c).as_deref() == Some(name))
    }
}

/// `$NAME` reads environment variable NAME; `$$` starts a literal `$`.
pub fn resolve_env(value: &str) -> Result<String, String> {
    if let Some(rest) = value.strip_prefix("$$") {
        return Ok(format!("${rest}"));
    }
    let Some(name) = value.strip_prefix('$') else {
        return Ok(value.to_string());
    };
    let looks_like_name = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !looks_like_name {
        return Ok(value.to_string());
    }
    std::env::var(name)
        .map_err(|_| format!("environment variable {name} is not set (the parameter says ${name})"))
}

impl World {
    pub fn node_name(&self, id: NodeId) -> &str {
        self.project.node(id).map_or("", |n| n.name.as_str())
    }

    pub fn state(&self, id: NodeId) -> Option<&NodeState> {
        self.nodes.get(&id)
    }

    pub fn state_mut(&mut self, id: NodeId) -> &mut NodeState {
        self.nodes.entry(id).or_default()
    }

    pub fn log(&mut self, level: Level, node: Option<NodeId>, text: impl Into<String>) {
        let name = node.map(|id| self.node_name(id).to_string());
        self.console.log(level, node.zip(name.as_deref()), text);
    }

    /// Logs an error and counts it on the node.
    pub fn report_error(&mut self, node: NodeId, error: NodeError) {
        let state = self.state_mut(node);
        state.errors += 1;
        state.last_error = Some(error.clone());
        let where_ = match error.line {
            Some(line) => format!("line {line}: "),
            None => String::new(),
        };
        self.log(Level::Error, Some(node), format!("{where_}{}", error.text));
    }

    pub fn report_warning(&mut self, node: NodeId, text: impl Into<String>) {
        self.state_mut(node).warnings += 1;
        self.log(Level::Warn, Some(node), text);
    }

    /// Sets or clears the node's lasting error; logs only when it changes.
    pub fn set_status_error(&mut self, node: NodeId, error: Option<String>) {
        if self.state(node).and_then(|s| s.status_error.as_ref()) == error.as_ref() {
            return;
        }
        if let Some(text) = &error {
            self.state_mut(node).errors += 1;
            self.log(Level::Error, Some(node), text.clone());
        }
        self.state_mut(node).status_error = error;
    }

    pub fn dat(&self, id: NodeId) -> Option<DatRef<'_>> {
        let node = self.project.node(id)?;
        if let Some(table) = &node.table {
            return Some(DatRef::Table(table));
        }
        if let Some(text) = &node.text {
            return Some(DatRef::Text(text));
        }
        self.operators.get(node.kind).dat(self, id)
    }

    /// The node's runtime state, if it has one of type `T`.
    pub fn runtime<T: OpState>(&self, id: NodeId) -> Option<&T> {
        let state: &dyn Any = self.nodes.get(&id)?.runtime.as_deref()?;
        state.downcast_ref()
    }

    /// The node's runtime state of type `T`, made with `T::default()` when it has none yet.
    pub fn runtime_mut<T: OpState + Default>(&mut self, id: NodeId) -> &mut T {
        let slot = &mut self.state_mut(id).runtime;
        let is_t = slot.as_deref().is_some_and(|s| (s as &dyn Any).is::<T>());
        if !is_t {
            *slot = Some(Box::new(T::default()));
        }
        let state: Option<&mut dyn Any> = slot.as_deref_mut().map(|s| s as &mut dyn Any);
        match state.and_then(|s| s.downcast_mut::<T>()) {
            Some(state) => state,
            None => unreachable!("a T was stored just above"),
        }
    }

    /// What the node's state badge shows.
    pub fn badge(&self, id: NodeId) -> Badge {
        let Some(node) = self.project.node(id) else {
            return Badge::Idle;
        };
        if self.state(id).is_some_and(|s| s.status_error.is_some()) {
            return Badge::Error;
        }
        self.operators.get(node.kind).badge(self, id)
    }

    /// Messages the node has received so far (the GUI derives the message rate from it).
    pub fn messages_in(&self, id: NodeId) -> u64 {
        self.project
            .node(id)
            .map_or(0, |n| self.operators.get(n.kind).messages_in(self, id))
    }

    /// The stored (unresolved) value of a parameter.
    pub fn par(&self, id: NodeId, token: &str) -> Option<&ParValue> {
        let node = self.project.node(id)?;
        // A misspelt token would silently read as missing: catch it in tests.
        debug_assert!(
            node.kind.param(token).is_some(),
            "{} has no parameter `{token}`",
            node.kind.label()
        );
        node.params.get(token)
    }

    pub fn par_bool(&self, id: NodeId, token: &str) -> bool {
        match self.par(id, token) {
            Some(ParValue::Bool(b)) => *b,
            Some(ParValue::Int(i)) => *i != 0,
            _ => false,
        }
    }

    pub fn par_int(&self, id: NodeId, token: &str) -> i64 {
        match self.par(id, token) {
            Some(ParValue::Int(i)) => *i,
            Some(ParValue::Float(f)) => *f as i64,
            Some(ParValue::Bool(b)) => i64::from(*b),
            _ => 0,
        }
    }

    pub fn par_f64(&self, id: NodeId, token: &str) -> f64 {
        match self.par(id, token) {
            Some(ParValue::Float(f)) => *f,
            Some(ParValue::Int(i)) => *i as f64,
            _ => 0.0,
        }
    }

    /// A string parameter with `$NAME` resolved from the environment.
    pub fn par_str(&self, id: NodeId, token: &str) -> Result<String, String> {
        match self.par(id, token) {
            Some(ParValue::Str(s)) => resolve_env(s),
            Some(other) => Ok(other.to_string()),
            None => Ok(String::new()),
        }
    }

    /// A file parameter as a path: `$NAME` resolved, relative paths taken from the project's folder.
    pub fn file_par(&self, id: NodeId, token: &str) -> Result<std::path::PathBuf, String> {
        let value = self.par_str(id, token)?;
        if value.is_empty() {
            return Err(format!("parameter `{token}` names no file"));
        }
        Ok(self.base_dir.join(value))
    }

    /// The node wired into a pin, by parameter token (`callbacks`, `headers`, `source`).
    pub fn input_node(&self, id: NodeId, token: &str) -> Option<NodeId> {
        let node = self.project.node(id)?;
        let def = node.kind.param(token)?;
        match def.kind {
            ParKind::Op(input) => self.project.input_of(id, input),
            _ => None,
        }
    }

    /// The Text DAT whose functions are `id`'s callbacks: its own text for an Execute DAT,
    /// else the DAT wired into its callbacks pin.
    pub fn callbacks_node(&self, id: NodeId) -> Option<NodeId> {
        match self.project.node(id)?.kind {
            OpKind::Execute => Some(id),
            _ => self.project.input_of(id, Input::Callbacks),
        }
    }

    /// Whether the node's text is a Python script: an Execute DAT, a Text DAT wired into a
    /// callbacks pin, or one whose Language says Python.
    pub fn is_script(&self, id: NodeId) -> bool {
        let Some(node) = self.project.node(id) else {
            return false;
        };
        match node.kind {
            OpKind::Execute => true,
            OpKind::Text => {
                matches!(node.params.get("language"), Some(ParValue::Str(l)) if l == "python")
                    || self
                        .project
                        .wires
                        .iter()
                        .any(|w| w.from == id && w.input == Input::Callbacks)
            }
            _ => false,
        }
    }

    /// The Text DAT's script works again (it compiled, or a callback of it returned): its marker
    /// goes, and so does the "last error" it left on itself and on the nodes using it.
    pub fn clear_script_error(&mut self, text_node: NodeId) {
        if let Some(state) = self.nodes.get_mut(&text_node) {
            state.script_error = None;
        }
        for state in self.nodes.values_mut() {
            if state
                .last_error
                .as_ref()
                .is_some_and(|e| e.script_node == Some(text_node))
            {
                state.last_error = None;
            }
        }
    }

    /// Records a change of a node's contents: bumps its revision and the document's.
    pub fn touch_content(&mut self, id: NodeId) {
        self.revision += 1;
        self.state_mut(id).content_rev += 1;
    }

    /// The Table DAT's table, for writing; marks it changed.
    pub fn table_mut(&mut self, id: NodeId) -> Result<&mut Table, String> {
        let has_table = self.project.node(id).is_some_and(|n| n.table.is_some());
        if !has_table {
            let name = self.node_name(id).to_string();
            return Err(format!("\"{name}\" is not an editable table"));
        }
        self.touch_content(id);
        self.project
            .node_mut(id)
            .and_then(|n| n.table.as_mut())
            .ok_or_else(|| "table vanished".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_references_resolve() {
        // SAFETY of the test: set_var is unsafe in edition 2024 because of other threads reading the
        // environment; this variable name is used by no other test.
        unsafe { std::env::set_var("DATPATCH_WORLD_TEST", "secret") };
        assert_eq!(resolve_env("$DATPATCH_WORLD_TEST").unwrap(), "secret");
        assert_eq!(resolve_env("plain").unwrap(), "plain");
        assert_eq!(resolve_env("$$literal").unwrap(), "$literal");
        assert_eq!(resolve_env("$5 off").unwrap(), "$5 off");
        let err = resolve_env("$DATPATCH_SURELY_UNSET").unwrap_err();
        assert!(err.contains("DATPATCH_SURELY_UNSET"), "{err}");
    }
}
