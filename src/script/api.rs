//! The functions scripts call, modeled on TouchDesigner's Python: `op("name")`, `.par.<token>`,
//! DAT table access, `store`/`fetch`, `print`/`debug`, JSON, base64 and time helpers.

// Rhai hands registered functions their custom types by reference.
#![allow(clippy::trivially_copy_pass_by_ref)]

use base64::Engine as _;
use rhai::{Array, Blob, Dynamic, EvalAltResult, ImmutableString, Position};

use super::context::with_world;
use super::convert::{to_dynamic, to_value};
use crate::engine::{DatRef, Level, Registry, World};
use crate::project::{NodeId, ParValue};
use crate::schema::ParKind;

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// An operator as scripts see it (`op("table1")`, the `dat` argument of callbacks, `me`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpHandle {
    pub id: NodeId,
}

/// `op.par`: reads and writes parameters by token.
#[derive(Clone, Copy, Debug)]
struct ParHandle {
    id: NodeId,
}

/// `dat[r]`: one row of a DAT, indexed again by column (`dat[r][c]`).
#[derive(Clone, Copy, Debug)]
struct RowHandle {
    id: NodeId,
    row: usize,
}

/// `absTime.frame`, `absTime.seconds`.
#[derive(Clone, Copy, Debug)]
struct AbsTime;

/// Runs `f` on the operator behind `op`, failing clearly if it was deleted.
pub(crate) fn with_op<R>(
    op: &OpHandle,
    f: impl FnOnce(&mut World, NodeId) -> Result<R, String>,
) -> RhaiResult<R> {
    with_world(|world, _| {
        if world.project.node(op.id).is_none() {
            return Err(format!("operator {} no longer exists", op.id));
        }
        f(world, op.id)
    })
}

fn dat(world: &World, id: NodeId) -> Result<DatRef<'_>, String> {
    world
        .dat(id)
        .ok_or_else(|| format!("\"{}\" is not a DAT", world.node_name(id)))
}

/// What goes into a cell: strings as they are, anything else as it prints.
pub(crate) fn to_cell(value: &Dynamic) -> String {
    if let Some(s) = value.read_lock::<ImmutableString>() {
        return s.to_string();
    }
    if let Some(b) = value.read_lock::<Blob>() {
        return String::from_utf8_lossy(&b).into_owned();
    }
    value.to_string()
}

fn to_row(values: Array) -> Vec<String> {
    values.iter().map(to_cell).collect()
}

/// An index is a number or a name (row names in column 0, column names in row 0).
fn resolve_row(dat: &DatRef, index: &Dynamic) -> Result<Option<usize>, String> {
    if let Ok(i) = index.as_int() {
        return Ok(usize::try_from(i).ok().filter(|&r| r < dat.num_rows()));
    }
    if index.is_string() {
        return Ok(dat.row_named(&to_cell(index)));
    }
    Err(format!(
        "a row index is a number or a name, not {}",
        index.type_name()
    ))
}

fn resolve_col(dat: &DatRef, index: &Dynamic) -> Result<Option<usize>, String> {
    if let Ok(i) = index.as_int() {
        return Ok(usize::try_from(i).ok().filter(|&c| c < dat.num_cols()));
    }
    if index.is_string() {
        return Ok(dat.col_named(&to_cell(index)));
    }
    Err(format!(
        "a column index is a number or a name, not {}",
        index.type_name()
    ))
}

fn par_value_to_dynamic(value: ParValue) -> Dynamic {
    match value {
        ParValue::Bool(b) => b.into(),
        ParValue::Int(i) => i.into(),
        ParValue::Float(f) => f.into(),
        ParValue::Str(s) => s.into(),
    }
}

fn dynamic_to_par_value(value: &Dynamic) -> Result<ParValue, String> {
    if let Ok(b) = value.as_bool() {
        return Ok(ParValue::Bool(b));
    }
    if let Ok(i) = value.as_int() {
        return Ok(ParValue::Int(i));
    }
    if let Ok(f) = value.as_float() {
        return Ok(ParValue::Float(f));
    }
    if value.is_string() {
        return Ok(ParValue::Str(to_cell(value)));
    }
    if let Some(op) = value.read_lock::<OpHandle>() {
        return with_world(|world, _| Ok(ParValue::Str(world.node_name(op.id).to_string())))
            .map_err(|e| e.to_string());
    }
    Err(format!("a parameter cannot hold {}", value.type_name()))
}

fn read_par(world: &World, id: NodeId, token: &str) -> Result<Dynamic, String> {
    let node = world.project.node(id).ok_or("operator vanished")?;
    let def = node.kind.param(token).ok_or_else(|| {
        format!(
            "{} \"{}\" has no parameter `{token}`",
            node.kind.label(),
            node.name
        )
    })?;
    Ok(match def.kind {
        ParKind::Pulse => false.into(),
        ParKind::Op(_) => world
            .input_node(id, token)
            .map(|n| world.node_name(n).to_string())
            .unwrap_or_default()
            .into(),
        ParKind::Str(_)
        | ParKind::File { .. }
        | ParKind::Folder
        | ParKind::Password
        | ParKind::Menu { .. } => world.par_str(id, token)?.into(),
        _ => par_value_to_dynamic(
            world
                .par(id, token)
                .cloned()
                .or_else(|| def.default_value())
                .unwrap_or(ParValue::Bool(false)),
        ),
    })
}

fn write_par(world: &mut World, id: NodeId, token: &str, value: &Dynamic) -> Result<(), String> {
    let value = dynamic_to_par_value(value)?;
    world.set_param(id, token, value).map_err(|e| e.to_string())
}

pub fn register(engine: &mut rhai::Engine, operators: Registry) {
    engine
        .register_type_with_name::<OpHandle>("OP")
        .register_type_with_name::<ParHandle>("Par")
        .register_type_with_name::<RowHandle>("Row")
        .register_type_with_name::<AbsTime>("AbsTime");

    // `me` is the operator whose callback runs; `absTime` is the clock, as in TouchDesigner.
    #[allow(deprecated)] // on_var is marked volatile, not going away.
    engine.on_var(|name, _, _| match name {
        "me" => with_world(|_, owner| Ok(Some(Dynamic::from(OpHandle { id: owner })))),
        "absTime" => Ok(Some(Dynamic::from(AbsTime))),
        _ => Ok(None),
    });
    engine.register_get("frame", |_: &mut AbsTime| {
        with_world(|w, _| Ok(w.frame as i64))
    });
    engine.register_get("seconds", |_: &mut AbsTime| {
        with_world(|w, _| Ok(w.started.elapsed().as_secs_f64()))
    });

    engine.on_print(|text| {
        let _ = with_world(|world, owner| {
            world.log(Level::Info, Some(owner), text);
            Ok(())
        });
    });
    engine.on_debug(|text, _source, position: Position| {
        let _ = with_world(|world, owner| {
            let text = match position.line() {
                Some(line) => format!("line {line}: {text}"),
                None => text.to_string(),
            };
            world.log(Level::Debug, Some(owner), text);
            Ok(())
        });
    });

    engine.register_fn("op", |name: &str| -> RhaiResult<OpHandle> {
        with_world(|world, _| {
            world
                .project
                .node_by_name(name)
                .map(|n| OpHandle { id: n.id })
                .ok_or_else(|| format!("op(\"{name}\"): no operator of that name"))
        })
    });
    engine.register_fn("opExists", |name: &str| -> RhaiResult<bool> {
        with_world(|world, _| Ok(world.project.node_by_name(name).is_some()))
    });

    register_op(engine);
    register_tables(engine);
    register_helpers(engine);
    register_operator_methods(engine, operators);
}

/// Each operator's script methods, registered by name for every number of arguments they take;
/// a call finds the method of the operator it is made on.
fn register_operator_methods(engine: &mut rhai::Engine, operators: Registry) {
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for method in operators.all_script_methods() {
        let name = method.name;
        if method.property {
            if !seen.contains(&(name, usize::MAX)) {
                seen.push((name, usize::MAX));
                engine.register_get(name, move |op: &mut OpHandle| {
                    call_method(op, name, Vec::new())
                });
            }
            continue;
        }
        for arity in method.required..=method.params.len() {
            if seen.contains(&(name, arity)) {
                continue;
            }
            seen.push((name, arity));
            match arity {
                0 => {
                    engine.register_fn(name, move |op: &mut OpHandle| {
                        call_method(op, name, Vec::new())
                    });
                }
                1 => {
                    engine.register_fn(name, move |op: &mut OpHandle, a: Dynamic| {
                        call_method(op, name, vec![a])
                    });
                }
                2 => {
                    engine.register_fn(name, move |op: &mut OpHandle, a: Dynamic, b: Dynamic| {
                        call_method(op, name, vec![a, b])
                    });
                }
                3 => {
                    engine.register_fn(
                        name,
                        move |op: &mut OpHandle, a: Dynamic, b: Dynamic, c: Dynamic| {
                            call_method(op, name, vec![a, b, c])
                        },
                    );
                }
                _ => {
                    engine.register_fn(
                        name,
                        move |op: &mut OpHandle, a: Dynamic, b: Dynamic, c: Dynamic, d: Dynamic| {
                            call_method(op, name, vec![a, b, c, d])
                        },
                    );
                }
            }
        }
    }
}

/// Calls operator method `name` on `op` with plain values, checking it is one of its methods.
fn call_method(op: &OpHandle, name: &str, args: Vec<Dynamic>) -> RhaiResult<Dynamic> {
    with_op(op, |world, id| {
        let kind = world
            .project
            .node(id)
            .map(|n| n.kind)
            .ok_or("operator vanished")?;
        let method = world.operators.script_method(kind, name).ok_or_else(|| {
            format!(
                "{name}: \"{}\" is a {}, which has no {name}",
                world.node_name(id),
                kind.label()
            )
        })?;
        let args: Vec<_> = args.iter().map(to_value).collect();
        if args.len() < method.required || args.len() > method.params.len() {
            return Err(format!(
                "{name} takes {} arguments, not {}",
                method.params.len(),
                args.len()
            ));
        }
        (method.call)(world, id, &args).map(to_dynamic)
    })
}

fn register_op(engine: &mut rhai::Engine) {
    engine.register_get("name", |op: &mut OpHandle| {
        with_op(op, |w, id| Ok(w.node_name(id).to_string()))
    });
    engine.register_get("id", |op: &mut OpHandle| op.id.0 as i64);
    engine.register_get("type", |op: &mut OpHandle| {
        with_op(op, |w, id| {
            Ok(w.project
                .node(id)
                .map_or("", |n| n.kind.type_name())
                .to_string())
        })
    });
    engine.register_fn("to_string", |op: &mut OpHandle| {
        with_op(op, |w, id| Ok(format!("op(\"{}\")", w.node_name(id))))
    });
    engine.register_fn("==", |a: OpHandle, b: OpHandle| a == b);
    engine.register_fn("!=", |a: OpHandle, b: OpHandle| a != b);

    engine.register_get_set(
        "par",
        |op: &mut OpHandle| ParHandle { id: op.id },
        |_: &mut OpHandle, _: ParHandle| {},
    );
    // Any property of `par` is a parameter token (Rhai falls back to the string indexer).
    engine.register_indexer_get_set(
        |par: &mut ParHandle, token: &str| -> RhaiResult<Dynamic> {
            with_world(|w, _| read_par(w, par.id, token))
        },
        |par: &mut ParHandle, token: &str, value: Dynamic| -> RhaiResult<()> {
            with_world(|w, _| write_par(w, par.id, token, &value))
        },
    );
    engine.register_fn(
        "pulse",
        |op: &mut OpHandle, token: &str| -> RhaiResult<()> {
            with_op(op, |w, id| {
                w.set_param(id, token, ParValue::Bool(true))
                    .map_err(|e| e.to_string())
            })
        },
    );

    engine.register_fn(
        "store",
        |op: &mut OpHandle, key: &str, value: Dynamic| -> RhaiResult<Dynamic> {
            with_op(op, |w, id| {
                w.state_mut(id).store.insert(key.into(), to_value(&value));
                Ok(value)
            })
        },
    );
    engine.register_fn(
        "fetch",
        |op: &mut OpHandle, key: &str, default: Dynamic| -> RhaiResult<Dynamic> {
            with_op(op, |w, id| {
                Ok(w.state(id)
                    .and_then(|s| s.store.get(key))
                    .cloned()
                    .map_or(default, to_dynamic))
            })
        },
    );
    engine.register_fn(
        "unstore",
        |op: &mut OpHandle, key: &str| -> RhaiResult<()> {
            with_op(op, |w, id| {
                w.state_mut(id).store.remove(key);
                Ok(())
            })
        },
    );
}

fn register_tables(engine: &mut rhai::Engine) {
    engine.register_get("numRows", |op: &mut OpHandle| {
        with_op(op, |w, id| Ok(dat(w, id)?.num_rows() as i64))
    });
    engine.register_get("numCols", |op: &mut OpHandle| {
        with_op(op, |w, id| Ok(dat(w, id)?.num_cols() as i64))
    });
    engine.register_get_set(
        "text",
        |op: &mut OpHandle| with_op(op, |w, id| Ok(dat(w, id)?.text())),
        |op: &mut OpHandle, text: String| {
            with_op(op, |w, id| {
                if w.project.node(id).is_some_and(|n| n.text.is_some()) {
                    if let Some(slot) = w.project.node_mut(id).and_then(|n| n.text.as_mut()) {
                        slot.clone_from(&text);
                    }
                    w.touch_content(id);
                    return Ok(());
                }
                let table = crate::project::Table::parse(&text, crate::project::Delimited::Tsv)?;
                *w.table_mut(id)? = table;
                Ok(())
            })
        },
    );
    engine.register_fn("cell", |op: &mut OpHandle, row: Dynamic, col: Dynamic| {
        with_op(op, |w, id| {
            let d = dat(w, id)?;
            let (Some(r), Some(c)) = (resolve_row(&d, &row)?, resolve_col(&d, &col)?) else {
                return Ok(Dynamic::UNIT);
            };
            Ok(d.cell(r, c).map_or(Dynamic::UNIT, Dynamic::from))
        })
    });
    engine.register_fn("rows", |op: &mut OpHandle| {
        with_op(op, |w, id| {
            let d = dat(w, id)?;
            Ok((0..d.num_rows())
                .map(|r| {
                    Dynamic::from_array(
                        (0..d.num_cols())
                            .map(|c| d.cell(r, c).unwrap_or_default().into())
                            .collect(),
                    )
                })
                .collect::<Array>())
        })
    });
    engine.register_fn("row", |op: &mut OpHandle, row: Dynamic| {
        with_op(op, |w, id| {
            let d = dat(w, id)?;
            Ok(match resolve_row(&d, &row)? {
                Some(r) => Dynamic::from_array(
                    (0..d.num_cols())
                        .map(|c| d.cell(r, c).unwrap_or_default().into())
                        .collect(),
                ),
                None => Dynamic::UNIT,
            })
        })
    });
    engine.register_fn("col", |op: &mut OpHandle, col: Dynamic| {
        with_op(op, |w, id| {
            let d = dat(w, id)?;
            Ok(match resolve_col(&d, &col)? {
                Some(c) => Dynamic::from_array(
                    (0..d.num_rows())
                        .map(|r| d.cell(r, c).unwrap_or_default().into())
                        .collect(),
                ),
                None => Dynamic::UNIT,
            })
        })
    });
    engine.register_fn("appendRow", |op: &mut OpHandle, values: Array| {
        with_op(op, |w, id| {
            Ok(w.table_mut(id)?.append_row(to_row(values)) as i64)
        })
    });
    engine.register_fn("insertRow", |op: &mut OpHandle, values: Array| {
        with_op(op, |w, id| {
            Ok(w.table_mut(id)?.insert_row(0, to_row(values)) as i64)
        })
    });
    engine.register_fn(
        "insertRow",
        |op: &mut OpHandle, values: Array, before: Dynamic| {
            with_op(op, |w, id| {
                let at = resolve_row(&dat(w, id)?, &before)?.ok_or("insertRow: no such row")?;
                Ok(w.table_mut(id)?.insert_row(at, to_row(values)) as i64)
            })
        },
    );
    engine.register_fn("deleteRow", |op: &mut OpHandle, row: Dynamic| {
        with_op(op, |w, id| {
            let Some(r) = resolve_row(&dat(w, id)?, &row)? else {
                return Ok(false);
            };
            Ok(w.table_mut(id)?.delete_row(r))
        })
    });
    engine.register_fn("clear", |op: &mut OpHandle| clear(op, false));
    engine.register_fn("clear", |op: &mut OpHandle, keep_first_row: bool| {
        clear(op, keep_first_row)
    });

    // dat[r][c]: Rhai indexes with one key at a time, so `dat[r]` is a row and `[c]` its cell.
    engine.register_indexer_get(|op: &mut OpHandle, row: rhai::INT| {
        row_handle(op, Dynamic::from(row))
    });
    engine.register_indexer_get(|op: &mut OpHandle, row: &str| {
        row_handle(op, Dynamic::from(row.to_string()))
    });
    engine.register_indexer_set(|_: &mut OpHandle, _: rhai::INT, _: RowHandle| {});
    engine.register_indexer_set(|_: &mut OpHandle, _: &str, _: RowHandle| {});
    engine.register_indexer_get(|row: &mut RowHandle, col: rhai::INT| {
        read_cell(row, Dynamic::from(col))
    });
    engine.register_indexer_get(|row: &mut RowHandle, col: &str| {
        read_cell(row, Dynamic::from(col.to_string()))
    });
    engine.register_indexer_set(|row: &mut RowHandle, col: rhai::INT, value: Dynamic| {
        write_cell(row, Dynamic::from(col), &value)
    });
    engine.register_indexer_set(|row: &mut RowHandle, col: &str, value: Dynamic| {
        write_cell(row, Dynamic::from(col.to_string()), &value)
    });
    // TouchDesigner scripts write `cell.val`; a cell here is its string, so `.val` is itself.
    engine.register_get("val", |s: &mut ImmutableString| s.clone());
}

fn clear(op: &mut OpHandle, keep_first_row: bool) -> RhaiResult<()> {
    with_op(op, |w, id| {
        let table = w.table_mut(id)?;
        let keep = usize::from(keep_first_row);
        table.rows.truncate(keep);
        Ok(())
    })
}

fn row_handle(op: &mut OpHandle, row: Dynamic) -> RhaiResult<RowHandle> {
    with_op(op, |w, id| {
        let d = dat(w, id)?;
        match resolve_row(&d, &row)? {
            Some(r) => Ok(RowHandle { id, row: r }),
            None => Err(format!(
                "\"{}\" has no row {row} (it has {} rows{})",
                w.node_name(id),
                d.num_rows(),
                if row.is_string() {
                    "; or no such property"
                } else {
                    ""
                }
            )),
        }
    })
}

fn read_cell(row: &mut RowHandle, col: Dynamic) -> RhaiResult<Dynamic> {
    let row = *row;
    with_world(|w, _| {
        let d = dat(w, row.id)?;
        let c = resolve_col(&d, &col)?
            .ok_or_else(|| format!("\"{}\" has no column {col}", w.node_name(row.id)))?;
        Ok(d.cell(row.row, c).map_or(Dynamic::UNIT, Dynamic::from))
    })
}

fn write_cell(row: &mut RowHandle, col: Dynamic, value: &Dynamic) -> RhaiResult<()> {
    let row = *row;
    with_world(|w, _| {
        let c = resolve_col(&dat(w, row.id)?, &col)?
            .ok_or_else(|| format!("\"{}\" has no column {col}", w.node_name(row.id)))?;
        w.table_mut(row.id)?.set_cell(row.row, c, to_cell(value));
        Ok(())
    })
}

fn register_helpers(engine: &mut rhai::Engine) {
    engine.register_fn("parse_json", |text: &str| -> RhaiResult<Dynamic> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("parse_json: {e}"))?;
        rhai::serde::to_dynamic(value)
    });
    engine.register_fn("to_json", |value: Dynamic| -> RhaiResult<String> {
        serde_json::to_string(&value).map_err(|e| format!("to_json: {e}").into())
    });
    engine.register_fn("base64_encode", |text: &str| {
        base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
    });
    engine.register_fn("base64_encode", |bytes: Blob| {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    });
    engine.register_fn("base64_decode", |text: &str| -> RhaiResult<Blob> {
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| format!("base64_decode: {e}").into())
    });
    engine.register_fn("time_ms", crate::engine::unix_time_ms);
    // Unguessable tokens (session ids, API tokens): the system's secure random source.
    engine.register_fn("random_hex", |bytes: rhai::INT| -> RhaiResult<String> {
        use ring::rand::SecureRandom;
        let len = usize::try_from(bytes)
            .ok()
            .filter(|n| (1..=1024).contains(n))
            .ok_or("random_hex takes 1..1024 bytes")?;
        let mut buffer = vec![0u8; len];
        ring::rand::SystemRandom::new()
            .fill(&mut buffer)
            .map_err(|_| "no secure random source")?;
        Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
    });
}
