//! Plain values ([`Value`]) to Python objects and back: the one place operators' arguments and
//! results cross into Python.

use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};

use pyo3::exceptions::PyRuntimeError;

use super::context::{self, with_world};
use super::interpreter::Interp;
use crate::engine::Value;
use crate::project::NodeId;

pub fn to_py<'py>(py: Python<'py>, interp: &Interp, value: Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::None => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, b).to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(x) => PyFloat::new(py, x).into_any(),
        Value::Str(s) => PyString::new(py, &s).into_any(),
        Value::Bytes(b) => PyBytes::new(py, &b).into_any(),
        Value::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, interp, item)?)?;
            }
            list.into_any()
        }
        Value::Dict(entries) => {
            let dict = PyDict::new(py);
            for (key, item) in entries {
                dict.set_item(key, to_py(py, interp, item)?)?;
            }
            dict.into_any()
        }
        Value::Op(id) => op_handle(py, interp, id)?,
    })
}

/// The Python handle of operator `id`: one per operator of the project, made on first use (and
/// again if the id now names an operator of another kind).
pub fn op_handle<'py>(py: Python<'py>, interp: &Interp, id: NodeId) -> PyResult<Bound<'py, PyAny>> {
    let state = context::host_state().map_err(PyRuntimeError::new_err)?;
    // A node's kind never changes under its id: deleting it or changing its kind forgets the
    // handle (ScriptHost::forget), so a kept handle is the right one.
    if let Some(handle) = state.lock().handle(py, id) {
        return Ok(handle.into_bound(py));
    }
    let kind = with_world(|w, _| Ok(w.project.node(id).map(|n| n.kind)))
        .map_err(PyRuntimeError::new_err)?
        .ok_or_else(|| PyRuntimeError::new_err(format!("operator {id} no longer exists")))?;
    let handle = interp.new_op.bind(py).call1((id.0, format!("{kind:?}")))?;
    state.lock().keep_handle(id, handle.clone().unbind());
    Ok(handle)
}

/// A Python value as a plain value: containers recursively, an operator handle as its id, and
/// anything else (a Cell, a Par, a number type of a package) as its `str()`.
pub fn to_value(interp: &Interp, value: &Bound<'_, PyAny>) -> PyResult<Value> {
    if value.is_none() {
        return Ok(Value::None);
    }
    if let Ok(s) = value.cast::<PyString>() {
        return Ok(Value::str(s.to_str()?));
    }
    if let Ok(b) = value.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if value.is_instance_of::<PyInt>() {
        return Ok(match value.extract::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => Value::str(value.str()?.to_str()?),
        });
    }
    if let Ok(x) = value.cast::<PyFloat>() {
        return Ok(Value::Float(x.value()));
    }
    if let Ok(b) = value.cast::<PyBytes>() {
        return Ok(Value::Bytes(bytes::Bytes::copy_from_slice(b.as_bytes())));
    }
    if let Ok(b) = value.cast::<PyByteArray>() {
        return Ok(Value::Bytes(bytes::Bytes::from(b.to_vec())));
    }
    if let Ok(d) = value.cast::<PyDict>() {
        let mut entries = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key = match k.cast::<PyString>() {
                Ok(s) => s.to_str()?.to_string(),
                Err(_) => k.str()?.to_str()?.to_string(),
            };
            entries.push((key, to_value(interp, &v)?));
        }
        return Ok(Value::Dict(entries));
    }
    if let Ok(l) = value.cast::<PyList>() {
        return l
            .iter()
            .map(|v| to_value(interp, &v))
            .collect::<PyResult<_>>()
            .map(Value::List);
    }
    if let Ok(t) = value.cast::<PyTuple>() {
        return t
            .iter()
            .map(|v| to_value(interp, &v))
            .collect::<PyResult<_>>()
            .map(Value::List);
    }
    if value.is_instance(interp.op_class.bind(value.py()))? {
        return Ok(Value::Op(NodeId(value.getattr("id")?.extract()?)));
    }
    if value.is_instance_of::<pyo3::types::PyMemoryView>() {
        let bytes: Vec<u8> = value.call_method0("tobytes")?.extract()?;
        return Ok(Value::Bytes(bytes.into()));
    }
    Ok(Value::str(value.str()?.to_str()?))
}
