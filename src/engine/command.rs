//! Edits to the document. The GUI, undo/redo and tests all change the project through
//! [`Engine::apply`], so every edit goes through one place that keeps the runtime in step.

use super::{Engine, NodeState, World};
use crate::project::{Node, NodeId, ParValue, Project, Settings, Table, View, Wire, validate};
use crate::schema::{Input, OpKind, ParKind};

#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Command {
    /// Creates a node (and, for network operators, its callbacks Text DAT, wired in).
    AddNode {
        kind: OpKind,
        name: Option<String>,
        pos: (f32, f32),
    },
    RemoveNode {
        id: NodeId,
    },
    RenameNode {
        id: NodeId,
        name: String,
    },
    MoveNode {
        id: NodeId,
        pos: (f32, f32),
    },
    SetParam {
        id: NodeId,
        token: String,
        value: ParValue,
    },
    /// Wires `from` into `to`'s `input` pin (replacing any wire there), or unwires it with `None`.
    SetInput {
        to: NodeId,
        input: Input,
        from: Option<NodeId>,
    },
    Pulse {
        id: NodeId,
        token: String,
    },
    SetCell {
        id: NodeId,
        row: usize,
        col: usize,
        value: String,
    },
    SetTable {
        id: NodeId,
        table: Table,
    },
    SetText {
        id: NodeId,
        text: String,
    },
    SetView(View),
    SetSettings(Settings),
    /// Replaces the whole document (undo/redo): only nodes whose parameters, wires or contents
    /// differ are touched, so servers and clients that did not change keep running.
    SetDocument(Project),
    /// Closes one WebSocket client of a Web Server DAT (the Info panel's close button).
    CloseClient {
        id: NodeId,
        client: String,
    },
}

/// What a command did, when the caller needs to know (the ids of created nodes).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Applied {
    pub created: Vec<NodeId>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    #[error("no node {0}")]
    NoSuchNode(NodeId),
    #[error("{0}")]
    Invalid(String),
}

impl Engine {
    pub fn apply(&mut self, command: Command) -> Result<Applied, CommandError> {
        let mut applied = Applied::default();
        match command {
            Command::AddNode { kind, name, pos } => {
                applied.created = self.world_mut().create(kind, name.as_deref(), pos)?;
            }
            Command::RemoveNode { id } => {
                self.require(id)?;
                self.stop_node(id);
                let world = self.world_mut();
                world.project.nodes.retain(|n| n.id != id);
                world.project.wires.retain(|w| w.from != id && w.to != id);
                world.nodes.remove(&id);
                world.revision += 1;
                self.scripts_mut().forget(id);
            }
            Command::RenameNode { id, name } => {
                self.require(id)?;
                if !validate::is_valid_name(&name) {
                    return Err(CommandError::Invalid(format!(
                        "\"{name}\" is not a valid name: use letters, digits and _, not starting with a digit"
                    )));
                }
                let world = self.world_mut();
                if world
                    .project
                    .nodes
                    .iter()
                    .any(|n| n.name == name && n.id != id)
                {
                    return Err(CommandError::Invalid(format!(
                        "a node named \"{name}\" already exists"
                    )));
                }
                if let Some(node) = world.project.node_mut(id) {
                    node.name = name;
                }
                world.revision += 1;
            }
            Command::MoveNode { id, pos } => {
                let node = self
                    .world_mut()
                    .project
                    .node_mut(id)
                    .ok_or(CommandError::NoSuchNode(id))?;
                node.pos = pos;
                self.world_mut().revision += 1;
            }
            Command::SetParam { id, token, value } => {
                self.world_mut().set_param(id, &token, value)?;
            }
            Command::SetInput { to, input, from } => self.world_mut().set_input(to, input, from)?,
            Command::Pulse { id, token } => {
                let kind = self.require(id)?;
                match kind.param(&token).map(|d| d.kind) {
                    Some(ParKind::Pulse) => self.world_mut().state_mut(id).pulses.push(token),
                    _ => {
                        return Err(CommandError::Invalid(format!(
                            "{} has no pulse `{token}`",
                            kind.label()
                        )));
                    }
                }
            }
            Command::SetCell {
                id,
                row,
                col,
                value,
            } => {
                self.require(id)?;
                self.world_mut()
                    .table_mut(id)
                    .map_err(CommandError::Invalid)?
                    .set_cell(row, col, value);
            }
            Command::SetTable { id, table } => {
                self.require(id)?;
                *self
                    .world_mut()
                    .table_mut(id)
                    .map_err(CommandError::Invalid)? = table;
            }
            Command::SetText { id, text } => {
                let node = self
                    .world_mut()
                    .project
                    .node_mut(id)
                    .ok_or(CommandError::NoSuchNode(id))?;
                let slot = node.text.as_mut().ok_or_else(|| {
                    CommandError::Invalid(format!("\"{}\" holds no text", node.name))
                })?;
                *slot = text;
                self.world_mut().touch_content(id);
            }
            Command::SetView(view) => {
                self.world_mut().project.view = view;
                self.world_mut().revision += 1;
            }
            Command::SetDocument(project) => self.set_document(project)?,
            Command::CloseClient { id, client } => {
                let kind = self.require(id)?;
                let world = self.world_mut();
                world
                    .operators
                    .get(kind)
                    .close_client(world, id, &client)
                    .map_err(CommandError::Invalid)?;
                // A close by hand leaves a trace, as the closes a script asks for do.
                world.log(
                    crate::engine::Level::Info,
                    Some(id),
                    format!("closed client {client} by hand"),
                );
            }
            Command::SetSettings(settings) => {
                let mut probe = self.project().clone();
                probe.settings = settings.clone();
                validate::validate(&mut probe).map_err(|e| CommandError::Invalid(e.message))?;
                self.scripts_mut().set_limits(&settings.script);
                self.world_mut().project.settings = settings;
                self.world_mut().revision += 1;
            }
        }
        Ok(applied)
    }

    fn require(&self, id: NodeId) -> Result<OpKind, CommandError> {
        self.world().require(id)
    }

    /// Sets `node.par` from text, as the command line's `--set web.port=0` does.
    pub fn set_par_by_path(&mut self, target: &str, value: &str) -> Result<(), String> {
        let (node, token) = target.split_once('.').ok_or_else(|| {
            format!("--set {target}: write NODE.PARAMETER=VALUE, e.g. web.port=8080")
        })?;
        let id = self
            .project()
            .node_by_name(node)
            .map(|n| n.id)
            .ok_or_else(|| format!("--set {target}: no node named \"{node}\""))?;
        self.world_mut()
            .set_param(id, token, ParValue::Str(value.to_string()))
            .map_err(|e| format!("--set {target}={value}: {e}"))
    }

    fn set_document(&mut self, mut project: Project) -> Result<(), CommandError> {
        validate::validate(&mut project).map_err(|e| CommandError::Invalid(e.message))?;
        let old_ids: Vec<NodeId> = self.project().nodes.iter().map(|n| n.id).collect();
        for id in old_ids {
            let same_kind =
                project.node(id).map(|n| n.kind) == self.project().node(id).map(|n| n.kind);
            if !same_kind {
                self.stop_node(id);
                self.world_mut().nodes.remove(&id);
                self.scripts_mut().forget(id);
            }
        }
        self.scripts_mut().set_limits(&project.settings.script);
        let world = self.world_mut();
        for node in &project.nodes {
            let old = world.project.node(node.id);
            let inputs_changed = |w: &World| {
                let wires = |p: &crate::project::Project| {
                    p.wires
                        .iter()
                        .filter(|x| x.to == node.id)
                        .cloned()
                        .collect::<Vec<_>>()
                };
                wires(&w.project) != wires(&project)
            };
            let params_changed =
                old.is_none_or(|o| o.params != node.params) || inputs_changed(world);
            let content_changed = old.is_none_or(|o| o.text != node.text || o.table != node.table);
            let state = world.state_mut(node.id);
            state.needs_reconcile |= params_changed;
            if content_changed {
                state.content_rev += 1;
            }
        }
        world.project = project;
        world.revision += 1;
        Ok(())
    }
}

/// The Language parameter of the callbacks DATs created with network operators.
const SCRIPT_LANGUAGE: &str = "python";

impl World {
    /// Creates a node of `kind` named `name` (or the next free `<stem>N`), with default
    /// parameters; a network operator comes with its callbacks Text DAT, wired in, as in
    /// TouchDesigner. Returns the new nodes' ids.
    fn create(
        &mut self,
        kind: OpKind,
        name: Option<&str>,
        pos: (f32, f32),
    ) -> Result<Vec<NodeId>, CommandError> {
        let name = match name {
            Some(name) => {
                if !validate::is_valid_name(name) {
                    return Err(CommandError::Invalid(format!(
                        "\"{name}\" is not a valid name"
                    )));
                }
                if self.project.node_by_name(name).is_some() {
                    return Err(CommandError::Invalid(format!(
                        "a node named \"{name}\" already exists"
                    )));
                }
                name.to_string()
            }
            None => self.project.unique_name(&format!("{}1", kind.name_stem())),
        };
        let operator = self.operators.get(kind);
        let id = self.add_node(kind, name, pos, operator.default_text());
        let mut created = vec![id];
        if let Some(template) = operator.callbacks_template() {
            let text_name = self
                .project
                .unique_name(&format!("{}_callbacks", self.node_name(id)));
            let text_id = self.add_node(
                OpKind::Text,
                text_name,
                (pos.0, pos.1 + 180.0),
                Some(template),
            );
            if let Some(node) = self.project.node_mut(text_id) {
                node.params
                    .insert("language".into(), ParValue::Str(SCRIPT_LANGUAGE.into()));
            }
            self.project.wires.push(Wire {
                from: text_id,
                to: id,
                input: Input::Callbacks,
            });
            self.project.wires.sort();
            created.push(text_id);
        }
        self.revision += 1;
        Ok(created)
    }

    fn add_node(
        &mut self,
        kind: OpKind,
        name: String,
        pos: (f32, f32),
        text: Option<&str>,
    ) -> NodeId {
        let id = self.project.next_id();
        self.project.nodes.push(Node {
            id,
            name,
            kind,
            pos,
            params: kind
                .params()
                .iter()
                .filter_map(|d| Some((d.token.to_string(), d.default_value()?)))
                .collect(),
            text: kind
                .has_text()
                .then(|| text.unwrap_or_default().to_string()),
            table: kind.has_table().then(Default::default),
        });
        self.nodes.insert(
            id,
            NodeState {
                needs_reconcile: true,
                ..NodeState::default()
            },
        );
        id
    }

    fn require(&self, id: NodeId) -> Result<OpKind, CommandError> {
        self.project
            .node(id)
            .map(|n| n.kind)
            .ok_or(CommandError::NoSuchNode(id))
    }

    /// Sets a parameter from the GUI or a script. Pulses fire; pin parameters rewire.
    pub(crate) fn set_param(
        &mut self,
        id: NodeId,
        token: &str,
        value: ParValue,
    ) -> Result<(), CommandError> {
        let kind = self.require(id)?;
        let def = kind.param(token).ok_or_else(|| {
            CommandError::Invalid(format!("{} has no parameter `{token}`", kind.label()))
        })?;
        match def.kind {
            ParKind::Pulse => {
                self.state_mut(id).pulses.push(token.to_string());
                return Ok(());
            }
            ParKind::Op(input) => {
                let from =
                    match &value {
                        ParValue::Str(name) if name.is_empty() => None,
                        ParValue::Str(name) => {
                            Some(self.project.node_by_name(name).map(|n| n.id).ok_or_else(
                                || CommandError::Invalid(format!("no operator named \"{name}\"")),
                            )?)
                        }
                        other => {
                            return Err(CommandError::Invalid(format!(
                                "`{token}` takes an operator name, not {}",
                                other.type_name()
                            )));
                        }
                    };
                return self.set_input(id, input, from);
            }
            _ => {}
        }
        let value = coerce(def.kind, value);
        let value = validate::check_value(def, &value).map_err(CommandError::Invalid)?;
        let node = self
            .project
            .node_mut(id)
            .ok_or(CommandError::NoSuchNode(id))?;
        if node.params.get(token) != Some(&value) {
            node.params.insert(token.to_string(), value);
            self.revision += 1;
            self.state_mut(id).needs_reconcile = true;
        }
        Ok(())
    }

    pub(crate) fn set_input(
        &mut self,
        to: NodeId,
        input: Input,
        from: Option<NodeId>,
    ) -> Result<(), CommandError> {
        let kind = self.require(to)?;
        if !kind.inputs().contains(&input) {
            return Err(CommandError::Invalid(format!(
                "{} has no {} input",
                kind.label(),
                input.label()
            )));
        }
        if let Some(from) = from {
            let from_kind = self.require(from)?;
            if from == to {
                return Err(CommandError::Invalid(
                    "a node cannot be wired into itself".into(),
                ));
            }
            if !input.accepts(from_kind) {
                return Err(CommandError::Invalid(format!(
                    "a {} cannot feed a {}",
                    from_kind.label(),
                    input.label()
                )));
            }
        }
        self.project
            .wires
            .retain(|w| !(w.to == to && w.input == input));
        if let Some(from) = from {
            self.project.wires.push(Wire { from, to, input });
            self.project.wires.sort();
        }
        self.revision += 1;
        self.state_mut(to).needs_reconcile = true;
        Ok(())
    }
}

/// Converts the obvious cases (1 for a toggle, 5 for a number, "80" for an integer) so the GUI
/// and scripts need not know the exact stored type.
fn coerce(kind: ParKind, value: ParValue) -> ParValue {
    match (kind, value) {
        (ParKind::Toggle(_), ParValue::Int(i)) => ParValue::Bool(i != 0),
        (ParKind::Toggle(_), ParValue::Str(s)) if matches!(s.as_str(), "true" | "on" | "1") => {
            ParValue::Bool(true)
        }
        (ParKind::Toggle(_), ParValue::Str(s)) if matches!(s.as_str(), "false" | "off" | "0") => {
            ParValue::Bool(false)
        }
        (ParKind::Int { .. }, ParValue::Float(f)) if f.fract() == 0.0 => ParValue::Int(f as i64),
        (ParKind::Int { .. }, ParValue::Str(s)) if s.trim().parse::<i64>().is_ok() => {
            ParValue::Int(s.trim().parse().unwrap_or(0))
        }
        (ParKind::Float { .. }, ParValue::Str(s)) if s.trim().parse::<f64>().is_ok() => {
            ParValue::Float(s.trim().parse().unwrap_or(0.0))
        }
        (
            ParKind::Str(_)
            | ParKind::File { .. }
            | ParKind::Folder
            | ParKind::Password
            | ParKind::Menu { .. },
            v @ (ParValue::Int(_) | ParValue::Float(_) | ParValue::Bool(_)),
        ) => ParValue::Str(v.to_string()),
        (_, v) => v,
    }
}
