//! Checks a parsed project against the operator schemas and fills in defaults. Each error says
//! where it is, so the loader can turn it into a line and column.

use std::collections::HashSet;

use super::locate::{Location, line_col};
use super::{ParValue, Project, Table};
use crate::schema::{ParDef, ParKind};

#[derive(Debug, Clone, PartialEq)]
pub struct ValidationError {
    pub message: String,
    pub location: Location,
}

impl ValidationError {
    fn node(index: usize, key: Option<&str>, message: String) -> Self {
        Self {
            message,
            location: Location::Element {
                list: "nodes",
                index,
                key: key.map(str::to_string),
            },
        }
    }

    fn wire(index: usize, key: Option<&str>, message: String) -> Self {
        Self {
            message,
            location: Location::Element {
                list: "wires",
                index,
                key: key.map(str::to_string),
            },
        }
    }

    pub fn locate(&self, text: &str) -> (usize, usize) {
        line_col(text, &self.location)
    }
}

/// A node name scripts can write in `op("...")`: letters, digits and underscores, not starting with a digit.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// Checks a value against its parameter definition, converting where the meaning is plain
/// (an integer where a number is expected). Returns the value to store.
pub fn check_value(def: &ParDef, value: &ParValue) -> Result<ParValue, String> {
    let wrong = || {
        format!(
            "parameter `{}` expects {}, found {}",
            def.token,
            expected(def),
            value.type_name()
        )
    };
    match (def.kind, value) {
        (ParKind::Toggle(_), ParValue::Bool(_)) => Ok(value.clone()),
        (ParKind::Int { min, max, .. }, ParValue::Int(i)) => {
            if (min..=max).contains(i) {
                Ok(value.clone())
            } else {
                Err(format!(
                    "parameter `{}` is {i}, outside {min}..={max}",
                    def.token
                ))
            }
        }
        (ParKind::Float { min, max, .. }, ParValue::Int(_) | ParValue::Float(_)) => {
            let x = match value {
                ParValue::Int(i) => *i as f64,
                ParValue::Float(f) => *f,
                _ => return Err(wrong()),
            };
            if x >= min && x <= max {
                Ok(ParValue::Float(x))
            } else {
                Err(format!(
                    "parameter `{}` is {x}, outside {min}..={max}",
                    def.token
                ))
            }
        }
        (ParKind::Menu { items, .. }, ParValue::Str(s)) => {
            if items.iter().any(|(token, _)| token == s) {
                Ok(value.clone())
            } else {
                let names: Vec<&str> = items.iter().map(|(t, _)| *t).collect();
                Err(format!(
                    "parameter `{}` is \"{s}\", not one of {}",
                    def.token,
                    names.join(", ")
                ))
            }
        }
        (
            ParKind::Str(_) | ParKind::File { .. } | ParKind::Folder | ParKind::Password,
            ParValue::Str(_),
        ) => Ok(value.clone()),
        (ParKind::Pulse | ParKind::Op(_), _) => Err(format!(
            "parameter `{}` is not stored in the file ({})",
            def.token,
            if matches!(def.kind, ParKind::Pulse) {
                "it is a pulse"
            } else {
                "it is set by a wire"
            }
        )),
        _ => Err(wrong()),
    }
}

fn expected(def: &ParDef) -> &'static str {
    match def.kind {
        ParKind::Toggle(_) => "a toggle (true or false)",
        ParKind::Int { .. } => "an integer",
        ParKind::Float { .. } => "a number",
        ParKind::Menu { .. } => "a menu item (a string)",
        _ => "a string",
    }
}

pub fn validate(project: &mut Project) -> Result<(), ValidationError> {
    let rate = project.settings.cook_rate_hz;
    if !(rate > 0.0 && rate <= 1000.0) {
        return Err(ValidationError {
            message: format!("cook_rate_hz is {rate}; it must be above 0 and at most 1000"),
            location: Location::Field("cook_rate_hz"),
        });
    }
    let limits = &project.settings.script;
    if !(1..=3_600_000).contains(&limits.time_limit_ms) {
        return Err(ValidationError {
            message: format!(
                "time_limit_ms is {}; it must be 1 to 3600000",
                limits.time_limit_ms
            ),
            location: Location::Field("time_limit_ms"),
        });
    }

    let mut ids = HashSet::new();
    let mut names = HashSet::new();
    for (index, node) in project.nodes.iter_mut().enumerate() {
        if !ids.insert(node.id) {
            return Err(ValidationError::node(
                index,
                Some("id"),
                format!("duplicate node id {}", node.id.0),
            ));
        }
        if !is_valid_name(&node.name) {
            return Err(ValidationError::node(
                index,
                Some("name"),
                format!(
                    "node name \"{}\" is not valid: use letters, digits and _, not starting with a digit",
                    node.name
                ),
            ));
        }
        if !names.insert(node.name.clone()) {
            return Err(ValidationError::node(
                index,
                Some("name"),
                format!("duplicate node name \"{}\"", node.name),
            ));
        }
        let kind = node.kind;
        for (token, value) in &mut node.params {
            let Some(def) = kind.param(token) else {
                return Err(ValidationError::node(
                    index,
                    Some(token),
                    format!(
                        "{} \"{}\" has no parameter `{token}`",
                        kind.label(),
                        node.name
                    ),
                ));
            };
            *value = check_value(def, value).map_err(|e| {
                ValidationError::node(index, Some(token), format!("node \"{}\": {e}", node.name))
            })?;
        }
        for def in kind.params() {
            if let Some(default) = def.default_value() {
                node.params.entry(def.token.to_string()).or_insert(default);
            }
        }
        match (kind.has_text(), node.text.is_some()) {
            (true, false) => node.text = Some(String::new()),
            (false, true) => {
                return Err(ValidationError::node(
                    index,
                    Some("text"),
                    format!("{} \"{}\" holds no text", kind.label(), node.name),
                ));
            }
            _ => {}
        }
        match (kind.has_table(), node.table.is_some()) {
            (true, false) => node.table = Some(Table::default()),
            (false, true) => {
                return Err(ValidationError::node(
                    index,
                    Some("table"),
                    format!("{} \"{}\" holds no table", kind.label(), node.name),
                ));
            }
            _ => {}
        }
    }

    let mut pins = HashSet::new();
    for (index, wire) in project.wires.iter().enumerate() {
        let Some(from) = project.nodes.iter().find(|n| n.id == wire.from) else {
            return Err(ValidationError::wire(
                index,
                Some("from"),
                format!("wire from node {}, which does not exist", wire.from.0),
            ));
        };
        let Some(to) = project.nodes.iter().find(|n| n.id == wire.to) else {
            return Err(ValidationError::wire(
                index,
                Some("to"),
                format!("wire to node {}, which does not exist", wire.to.0),
            ));
        };
        if wire.from == wire.to {
            return Err(ValidationError::wire(
                index,
                None,
                format!("\"{}\" is wired into itself", to.name),
            ));
        }
        if !to.kind.inputs().contains(&wire.input) {
            return Err(ValidationError::wire(
                index,
                Some("input"),
                format!(
                    "{} \"{}\" has no {:?} input",
                    to.kind.label(),
                    to.name,
                    wire.input
                ),
            ));
        }
        if !wire.input.accepts(from.kind) {
            return Err(ValidationError::wire(
                index,
                Some("from"),
                format!(
                    "a {} cannot feed the {} of \"{}\"",
                    from.kind.label(),
                    wire.input.label(),
                    to.name
                ),
            ));
        }
        if !pins.insert((wire.to, wire.input)) {
            return Err(ValidationError::wire(
                index,
                Some("input"),
                format!(
                    "the {} of \"{}\" is wired twice",
                    wire.input.label(),
                    to.name
                ),
            ));
        }
    }
    Ok(())
}
