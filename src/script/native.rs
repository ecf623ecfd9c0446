//! `_datpatch`: the native functions `td.py` is built on. Each reaches the lent world of the
//! running callback and fails with TouchDesigner's rule when there is none (another thread).

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule, PyTuple};

use super::context::{self, with_world};
use super::convert::{to_py, to_value};
use super::host;
use super::interpreter;
use crate::engine::{DatRef, Level, Value, World};
use crate::project::{NodeId, ParValue, Table};
use crate::schema::{OpKind, ParKind};

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    macro_rules! add {
        ($($f:ident),* $(,)?) => { $( module.add_function(wrap_pyfunction!($f, module)?)?; )* };
    }
    add!(
        op_handle,
        op_name,
        op_type,
        op_kind,
        op_exists,
        op_find,
        op_match,
        kind_info,
        module_of,
        storage,
        dat_size,
        dat_is_text,
        dat_text,
        dat_set_text,
        dat_find,
        dat_cell,
        dat_row,
        dat_set_cell,
        dat_edit,
        par_exists,
        par_get,
        par_set,
        par_pulse,
        par_info,
        par_tokens,
        call_method,
        frame,
        seconds,
        schedule,
        console_log,
    );
    Ok(())
}

fn err(message: String) -> PyErr {
    PyRuntimeError::new_err(message)
}

/// Runs `f` on the lent world with operator `id`, failing clearly if it was deleted.
fn with_op<R>(id: u64, f: impl FnOnce(&mut World, NodeId) -> Result<R, String>) -> PyResult<R> {
    with_world(|world, _| {
        let id = NodeId(id);
        if world.project.node(id).is_none() {
            return Err(format!("operator {id} no longer exists"));
        }
        f(world, id)
    })
    .map_err(err)
}

fn kind(world: &World, id: NodeId) -> Result<OpKind, String> {
    world
        .project
        .node(id)
        .map(|n| n.kind)
        .ok_or_else(|| format!("operator {id} no longer exists"))
}

/// The handle object of operator `id` (`td._op`).
#[pyfunction]
fn op_handle(py: Python<'_>, id: u64) -> PyResult<Bound<'_, PyAny>> {
    let interp = interpreter::get(py).map_err(|e| err(e.message))?;
    super::convert::op_handle(py, interp, NodeId(id))
}

#[pyfunction]
fn op_name(id: u64) -> PyResult<String> {
    with_op(id, |w, id| Ok(w.node_name(id).to_string()))
}

#[pyfunction]
fn op_type(id: u64) -> PyResult<&'static str> {
    with_op(id, |w, id| Ok(kind(w, id)?.type_name()))
}

#[pyfunction]
fn op_kind(id: u64) -> PyResult<String> {
    with_op(id, |w, id| Ok(format!("{:?}", kind(w, id)?)))
}

#[pyfunction]
fn op_exists(id: u64) -> PyResult<bool> {
    with_world(|w, _| Ok(w.project.node(NodeId(id)).is_some())).map_err(err)
}

#[pyfunction]
fn op_find(name: &str) -> PyResult<Option<u64>> {
    with_world(|w, _| Ok(w.project.node_by_name(name).map(|n| n.id.0))).map_err(err)
}

/// Ids of the operators whose names match any of the glob patterns (`web*`, `?able1`).
#[pyfunction]
fn op_match(patterns: Vec<String>) -> PyResult<Vec<u64>> {
    with_world(|w, _| {
        Ok(w.project
            .nodes
            .iter()
            .filter(|n| patterns.iter().any(|p| glob(p, &n.name)))
            .map(|n| n.id.0)
            .collect())
    })
    .map_err(err)
}

/// `*` and `?` glob matching, as TouchDesigner's `ops()` patterns.
fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// (TouchDesigner class name, is a DAT, [(method, is a property)]) of a kind.
type KindInfo = (&'static str, bool, Vec<(&'static str, bool)>);

/// What `td.py` builds a kind's class from, by the kind's name.
#[pyfunction]
fn kind_info(kind: &str) -> PyResult<KindInfo> {
    let kind = OpKind::ALL
        .iter()
        .copied()
        .find(|k| format!("{k:?}") == kind)
        .ok_or_else(|| err(format!("no operator kind {kind}")))?;
    with_world(|w, _| {
        let methods = w
            .operators
            .get(kind)
            .script_methods()
            .iter()
            .map(|m| (m.name, m.property))
            .collect();
        Ok((kind.type_name(), kind.is_dat(), methods))
    })
    .map_err(err)
}

/// `op('x').module`: the Text DAT's module, compiled if its text changed.
#[pyfunction]
fn module_of(py: Python<'_>, id: u64) -> PyResult<Bound<'_, PyModule>> {
    let interp = interpreter::get(py).map_err(|e| err(e.message))?;
    host::module(py, interp, NodeId(id)).map_err(|(e, _)| {
        pyo3::exceptions::PyImportError::new_err(match e.line {
            Some(line) => format!("{} (line {line})", e.message),
            None => e.message,
        })
    })
}

#[pyfunction]
fn storage(py: Python<'_>, id: u64) -> PyResult<Bound<'_, PyDict>> {
    with_op(id, |_, _| Ok(()))?;
    host::storage(py, NodeId(id)).map_err(err)
}

fn dat(world: &World, id: NodeId) -> Result<DatRef<'_>, String> {
    world
        .dat(id)
        .ok_or_else(|| format!("\"{}\" is not a DAT", world.node_name(id)))
}

#[pyfunction]
fn dat_size(id: u64) -> PyResult<(usize, usize)> {
    with_op(id, |w, id| {
        let d = dat(w, id)?;
        Ok((d.num_rows(), d.num_cols()))
    })
}

#[pyfunction]
fn dat_is_text(id: u64) -> PyResult<bool> {
    with_op(id, |w, id| Ok(matches!(dat(w, id)?, DatRef::Text(_))))
}

#[pyfunction]
fn dat_text(id: u64) -> PyResult<String> {
    with_op(id, |w, id| Ok(dat(w, id)?.text()))
}

#[pyfunction]
fn dat_set_text(id: u64, text: String) -> PyResult<()> {
    with_op(id, |w, id| {
        if w.project.node(id).is_some_and(|n| n.text.is_some()) {
            if let Some(slot) = w.project.node_mut(id).and_then(|n| n.text.as_mut()) {
                *slot = text;
            }
            w.touch_content(id);
            return Ok(());
        }
        let table = Table::parse(&text, crate::project::Delimited::Tsv)?;
        *w.table_mut(id)? = table;
        Ok(())
    })
}

#[pyfunction]
fn dat_find(
    id: u64,
    row: Bound<'_, PyAny>,
    col: Bound<'_, PyAny>,
) -> PyResult<(Option<usize>, Option<usize>)> {
    // Read the keys first: Python objects are not touched while the world is borrowed.
    let (row, col) = (key(&row)?, key(&col)?);
    with_op(id, |w, id| {
        let d = dat(w, id)?;
        Ok((locate(&d, &row, true), locate(&d, &col, false)))
    })
}

/// A row or column as scripts name it: by index, or by name (column 0 names rows, row 0 columns).
#[derive(Debug, Clone)]
enum Key {
    Index(i64),
    Name(String),
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Index(i) => write!(f, "{i}"),
            Key::Name(name) => write!(f, "named {name:?}"),
        }
    }
}

fn locate(d: &DatRef, key: &Key, is_row: bool) -> Option<usize> {
    match (key, is_row) {
        (Key::Index(i), true) => usize::try_from(*i).ok().filter(|&i| i < d.num_rows()),
        (Key::Index(i), false) => usize::try_from(*i).ok().filter(|&i| i < d.num_cols()),
        (Key::Name(name), true) => d.row_named(name),
        (Key::Name(name), false) => d.col_named(name),
    }
}

fn key(key: &Bound<'_, PyAny>) -> PyResult<Key> {
    if key.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err(
            "a row or column is a number or a name, not a bool",
        ));
    }
    if let Ok(i) = key.extract::<i64>() {
        return Ok(Key::Index(i));
    }
    if let Ok(name) = key.extract::<String>() {
        return Ok(Key::Name(name));
    }
    Err(PyTypeError::new_err(format!(
        "a row or column is a number or a name, not {}",
        key.get_type().name()?
    )))
}

#[pyfunction]
fn dat_cell(id: u64, row: usize, col: usize) -> PyResult<Option<String>> {
    with_op(id, |w, id| Ok(dat(w, id)?.cell(row, col)))
}

#[pyfunction]
fn dat_row(id: u64, row: usize) -> PyResult<Vec<String>> {
    with_op(id, |w, id| {
        let d = dat(w, id)?;
        Ok((0..d.num_cols())
            .map(|c| d.cell(row, c).unwrap_or_default())
            .collect())
    })
}

#[pyfunction]
fn dat_set_cell(id: u64, row: usize, col: usize, value: String) -> PyResult<()> {
    with_op(id, |w, id| {
        w.table_mut(id)?.set_cell(row, col, value);
        Ok(())
    })
}

/// Table edits by TouchDesigner's method name; `at` is the row or column (index or name) it
/// refers to. Returns the index of the row or column added, where there is one.
#[pyfunction]
#[pyo3(signature = (id, method, cells, at=None))]
fn dat_edit(
    id: u64,
    method: &str,
    cells: Vec<String>,
    at: Option<Bound<'_, PyAny>>,
) -> PyResult<Option<usize>> {
    let at = match &at {
        Some(at) if !at.is_none() => Some(key(at)?),
        _ => None,
    };
    with_op(id, |w, id| {
        // Where `at` points, as a row and as a column, found before the table is borrowed.
        let (row_at, col_at) = {
            let d = dat(w, id)?;
            let find = |is_row: bool| -> Result<Option<usize>, String> {
                let Some(at) = &at else { return Ok(None) };
                locate(&d, at, is_row).map(Some).ok_or_else(|| {
                    let what = if is_row { "row" } else { "column" };
                    format!("{method}: \"{}\" has no {what} {at}", w.node_name(id))
                })
            };
            (find(true), find(false))
        };
        let find = |is_row: bool| {
            if is_row {
                row_at.clone()
            } else {
                col_at.clone()
            }
        };
        let edit = || -> Result<Option<usize>, String> {
            Ok(match method {
                "appendRow" => {
                    let after = find(true)?;
                    let table = w_table(w, id)?;
                    Some(match after {
                        Some(r) => table.insert_row(r + 1, cells),
                        None => table.append_row(cells),
                    })
                }
                "insertRow" => {
                    let before = find(true)?.unwrap_or(0);
                    Some(w_table(w, id)?.insert_row(before, cells))
                }
                "replaceRow" => {
                    let r = find(true)?.ok_or("replaceRow: which row?")?;
                    let table = w_table(w, id)?;
                    if let Some(row) = table.rows.get_mut(r) {
                        *row = cells;
                    }
                    Some(r)
                }
                "deleteRow" => {
                    // Deleting what is not there is not an error, as TouchDesigner's.
                    if let Ok(Some(r)) = find(true) {
                        w_table(w, id)?.delete_row(r);
                    }
                    None
                }
                "appendCol" | "insertCol" | "replaceCol" => {
                    let at_col = find(false)?;
                    let table = w_table(w, id)?;
                    let width = table.num_cols();
                    let col = match (method, at_col) {
                        ("appendCol", Some(c)) => c + 1,
                        ("appendCol", None) => width,
                        ("insertCol", c) => c.unwrap_or(0),
                        (_, c) => c.ok_or("replaceCol: which column?")?,
                    };
                    let height = table.rows.len().max(cells.len());
                    table.rows.resize_with(height, Vec::new);
                    for (r, row) in table.rows.iter_mut().enumerate() {
                        row.resize(width.max(row.len()), String::new());
                        let value = cells.get(r).cloned().unwrap_or_default();
                        if method == "replaceCol" {
                            if let Some(slot) = row.get_mut(col) {
                                *slot = value;
                            }
                        } else {
                            row.insert(col.min(row.len()), value);
                        }
                    }
                    Some(col)
                }
                "deleteCol" => {
                    if let Ok(Some(c)) = find(false) {
                        for row in &mut w_table(w, id)?.rows {
                            if c < row.len() {
                                row.remove(c);
                            }
                        }
                    }
                    None
                }
                "setSize" => {
                    let n = |i: usize| {
                        cells
                            .get(i)
                            .and_then(|s| s.parse::<usize>().ok())
                            .unwrap_or(0)
                    };
                    let (rows, cols) = (n(0), n(1));
                    let table = w_table(w, id)?;
                    table.rows.resize_with(rows, Vec::new);
                    for row in &mut table.rows {
                        row.resize(cols, String::new());
                    }
                    None
                }
                "clear" => {
                    let flag = |i: usize| cells.get(i).is_some_and(|s| !s.is_empty());
                    let (keep_size, keep_first_row, keep_first_col) = (flag(0), flag(1), flag(2));
                    let table = w_table(w, id)?;
                    for (r, row) in table.rows.iter_mut().enumerate() {
                        for (c, cell) in row.iter_mut().enumerate() {
                            if !(keep_first_row && r == 0 || keep_first_col && c == 0) {
                                cell.clear();
                            }
                        }
                    }
                    if !keep_size {
                        let keep_rows = usize::from(keep_first_row);
                        if keep_first_col {
                            for row in &mut table.rows {
                                row.truncate(1);
                            }
                            if !keep_first_row {
                                table.rows.retain(|row| row.iter().any(|c| !c.is_empty()));
                            }
                        } else {
                            table.rows.truncate(keep_rows);
                        }
                    }
                    None
                }
                other => return Err(format!("no table method {other}")),
            })
        };
        edit()
    })
}

fn w_table(w: &mut World, id: NodeId) -> Result<&mut Table, String> {
    w.table_mut(id)
}

#[pyfunction]
fn par_exists(id: u64, token: &str) -> PyResult<bool> {
    with_op(id, |w, id| Ok(kind(w, id)?.param(token).is_some()))
}

#[pyfunction]
fn par_tokens(id: u64) -> PyResult<Vec<&'static str>> {
    with_op(id, |w, id| {
        Ok(kind(w, id)?.params().iter().map(|p| p.token).collect())
    })
}

/// A parameter's value as scripts see it: `$NAME` resolved, a pin as the wired operator's name.
#[pyfunction]
fn par_get(py: Python<'_>, id: u64, token: &str) -> PyResult<Py<PyAny>> {
    let value = with_op(id, |w, id| {
        let node_kind = kind(w, id)?;
        let def = node_kind.param(token).ok_or_else(|| {
            format!(
                "{} \"{}\" has no parameter `{token}`",
                node_kind.label(),
                w.node_name(id)
            )
        })?;
        Ok(match def.kind {
            ParKind::Pulse => Value::Bool(false),
            ParKind::Op(_) => w
                .input_node(id, token)
                .map(|n| w.node_name(n).to_string())
                .unwrap_or_default()
                .into(),
            ParKind::Str(_)
            | ParKind::File { .. }
            | ParKind::Folder
            | ParKind::Password
            | ParKind::Menu { .. } => w.par_str(id, token)?.into(),
            _ => match w.par(id, token).cloned().or_else(|| def.default_value()) {
                Some(ParValue::Bool(b)) => Value::Bool(b),
                Some(ParValue::Int(i)) => Value::Int(i),
                Some(ParValue::Float(x)) => Value::Float(x),
                Some(ParValue::Str(s)) => s.into(),
                None => Value::None,
            },
        })
    })?;
    let interp = interpreter::get(py).map_err(|e| err(e.message))?;
    Ok(to_py(py, interp, value)?.unbind())
}

#[pyfunction]
fn par_set(py: Python<'_>, id: u64, token: &str, value: Bound<'_, PyAny>) -> PyResult<()> {
    let interp = interpreter::get(py).map_err(|e| err(e.message))?;
    let value = match to_value(interp, &value)? {
        Value::Bool(b) => ParValue::Bool(b),
        Value::Int(i) => ParValue::Int(i),
        Value::Float(x) => ParValue::Float(x),
        Value::None => ParValue::Str(String::new()),
        Value::Op(op) => ParValue::Str(with_op(op.0, |w, op| Ok(w.node_name(op).to_string()))?),
        other => ParValue::Str(other.to_string()),
    };
    with_op(id, |w, id| {
        w.set_param(id, token, value).map_err(|e| e.to_string())
    })
}

#[pyfunction]
fn par_pulse(id: u64, token: &str) -> PyResult<()> {
    with_op(id, |w, id| {
        let node_kind = kind(w, id)?;
        match node_kind.param(token).map(|d| d.kind) {
            Some(ParKind::Pulse) => w
                .set_param(id, token, ParValue::Bool(true))
                .map_err(|e| e.to_string()),
            Some(_) => Err(format!(
                "`{token}` of \"{}\" is not a pulse",
                w.node_name(id)
            )),
            None => Err(format!("{} has no parameter `{token}`", node_kind.label())),
        }
    })
}

/// (label, default, menu names, menu labels, page, style) of a parameter.
type ParInfo = (String, Py<PyAny>, Vec<String>, Vec<String>, String, String);

#[pyfunction]
fn par_info(py: Python<'_>, id: u64, token: &str) -> PyResult<ParInfo> {
    let def = with_op(id, |w, id| {
        kind(w, id)?
            .param(token)
            .copied()
            .ok_or_else(|| format!("no parameter `{token}`"))
    })?;
    let default = match def.default_value() {
        Some(ParValue::Bool(b)) => b.into_pyobject(py)?.to_owned().into_any().unbind(),
        Some(ParValue::Int(i)) => i.into_pyobject(py)?.into_any().unbind(),
        Some(ParValue::Float(x)) => x.into_pyobject(py)?.into_any().unbind(),
        Some(ParValue::Str(s)) => s.into_pyobject(py)?.into_any().unbind(),
        None => py.None(),
    };
    let (names, labels) = match def.kind {
        ParKind::Menu { items, .. } => (
            items.iter().map(|(t, _)| t.to_string()).collect(),
            items.iter().map(|(_, l)| l.to_string()).collect(),
        ),
        _ => (Vec::new(), Vec::new()),
    };
    let style = match def.kind {
        ParKind::Toggle(_) => "toggle",
        ParKind::Int { .. } => "int",
        ParKind::Float { .. } => "float",
        ParKind::Str(_) | ParKind::Password => "str",
        ParKind::Menu { .. } => "menu",
        ParKind::File { .. } => "file",
        ParKind::Folder => "folder",
        ParKind::Pulse => "pulse",
        ParKind::Op(_) => "op",
    };
    Ok((
        def.label.to_string(),
        default,
        names,
        labels,
        def.page.to_string(),
        style.to_string(),
    ))
}

/// An operator's own script method (`webSocketSendText`, `sendText`, `numChans`), with
/// keyword arguments mapped onto its parameter names.
#[pyfunction]
#[pyo3(signature = (id, name, args, kwargs=None))]
fn call_method<'py>(
    py: Python<'py>,
    id: u64,
    name: &str,
    args: Bound<'py, PyTuple>,
    kwargs: Option<Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let interp = interpreter::get(py).map_err(|e| err(e.message))?;
    let method = with_op(id, |w, id| {
        let node_kind = kind(w, id)?;
        w.operators.script_method(node_kind, name).ok_or_else(|| {
            format!(
                "{name}: \"{}\" is a {}, which has no {name}",
                w.node_name(id),
                node_kind.label()
            )
        })
    })?;
    let mut values: Vec<Option<Value>> = vec![None; method.params.len()];
    let variadic = method.params.len() == 1 && args.len() > 1;
    if variadic {
        // TouchDesigner's sendText('a', 'b') / sendBinary(23, 'TYPE', b'..'): one list argument.
        values[0] = Some(Value::List(
            args.iter()
                .map(|a| to_value(interp, &a))
                .collect::<PyResult<_>>()?,
        ));
    } else {
        if args.len() > method.params.len() {
            return Err(PyTypeError::new_err(format!(
                "{name}() takes {} arguments ({}), {} given",
                method.params.len(),
                method.params.join(", "),
                args.len()
            )));
        }
        for (slot, arg) in values.iter_mut().zip(args.iter()) {
            *slot = Some(to_value(interp, &arg)?);
        }
    }
    if let Some(kwargs) = kwargs {
        for (key, value) in kwargs.iter() {
            let key: String = key.extract()?;
            let index = method
                .params
                .iter()
                .position(|p| *p == key)
                .ok_or_else(|| {
                    PyTypeError::new_err(format!(
                        "{name}() got an unexpected keyword argument '{key}'"
                    ))
                })?;
            values[index] = Some(to_value(interp, &value)?);
        }
    }
    // Passed up to the last one given; a gap or a missing required one is an error.
    let given = values
        .iter()
        .rposition(Option::is_some)
        .map_or(0, |i| i + 1);
    let mut call_args = Vec::with_capacity(given);
    for (i, value) in values.into_iter().take(given).enumerate() {
        match value {
            Some(v) => call_args.push(v),
            None if i >= method.required => call_args.push(Value::None),
            None => {
                return Err(PyTypeError::new_err(format!(
                    "{name}() is missing its argument '{}'",
                    method.params[i]
                )));
            }
        }
    }
    if call_args.len() < method.required {
        return Err(PyTypeError::new_err(format!(
            "{name}() is missing its argument '{}'",
            method.params[call_args.len()]
        )));
    }
    let result = with_op(id, |w, id| (method.call)(w, id, &call_args))?;
    to_py(py, interp, result)
}

#[pyfunction]
fn frame() -> PyResult<u64> {
    with_world(|w, _| Ok(w.frame)).map_err(err)
}

#[pyfunction]
fn seconds() -> PyResult<f64> {
    with_world(|w, _| Ok(w.started.elapsed().as_secs_f64())).map_err(err)
}

/// `run(...)`'s schedule: at frame now + `delay_frames` (the next frame at the earliest) and not
/// before `delay_ms` has passed.
#[pyfunction]
fn schedule(
    function: Py<PyAny>,
    args: Py<PyTuple>,
    delay_frames: i64,
    delay_ms: f64,
) -> PyResult<()> {
    let (frame, owner) = with_world(|w, owner| Ok((w.frame, owner))).map_err(err)?;
    let due_frame = frame + u64::try_from(delay_frames).unwrap_or(0);
    let delay = std::time::Duration::from_secs_f64((delay_ms / 1000.0).clamp(0.0, 1e9));
    host::schedule(
        function,
        args,
        due_frame,
        std::time::Instant::now() + delay,
        owner,
    )
    .map_err(err)
}

/// A console line from `print`/`debug`; false when no callback runs here (another thread).
#[pyfunction]
#[pyo3(name = "log")]
fn console_log(level: &str, text: &str) -> bool {
    if !context::is_lent() {
        return false;
    }
    let level = if level == "debug" {
        Level::Debug
    } else {
        Level::Info
    };
    with_world(|w, owner| {
        w.log(level, Some(owner), text);
        Ok(())
    })
    .is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn globs_match_like_touchdesigners_patterns() {
        assert!(super::glob("web*", "webserver1"));
        assert!(super::glob("?able1", "table1"));
        assert!(!super::glob("web*", "table1"));
        assert!(super::glob("*", ""));
    }
}
