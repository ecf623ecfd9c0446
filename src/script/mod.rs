//! The Rhai host: scripts compiled once per text change, callbacks run under limits, and the
//! TouchDesigner-style API of DESIGN §4. Scripts reach no file, process or network.

mod api;
mod context;
mod convert;

use std::collections::HashMap;
use std::sync::Arc;

use rhai::{AST, CallFnOptions, Dynamic, EvalAltResult, Scope};

use crate::engine::{Registry, ScriptError, ScriptOutcome, Value, World};
use crate::project::{NodeId, ScriptLimits};

pub use api::OpHandle;

type CallError = ScriptError;

/// A compiled callbacks text and the functions it defines.
pub struct Compiled {
    ast: AST,
    /// Name and number of parameters; a callbacks text defines a handful, so a scan beats hashing.
    functions: Vec<(String, usize)>,
    source: String,
}

impl Compiled {
    pub fn defines(&self, name: &str, arity: usize) -> bool {
        self.functions
            .iter()
            .any(|(defined, params)| defined == name && *params == arity)
    }
}

struct CacheEntry {
    /// The text last compiled. Comparing it with the current text costs less than hashing it,
    /// and this runs before every callback.
    source: String,
    result: Result<Arc<Compiled>, CallError>,
}

pub struct RhaiHost {
    engine: rhai::Engine,
    /// By Text DAT: its last compiled text.
    cache: HashMap<NodeId, CacheEntry>,
}

/// The script host the engine runs callbacks with (`EngineParts::new_scripts`).
pub fn new_host(limits: &ScriptLimits, operators: Registry) -> Box<dyn crate::engine::ScriptHost> {
    Box::new(RhaiHost::new(limits, operators))
}

impl crate::engine::ScriptHost for RhaiHost {
    fn call(
        &mut self,
        world: &mut Box<World>,
        owner: NodeId,
        text_node: NodeId,
        func: &str,
        args: Vec<Value>,
    ) -> ScriptOutcome {
        let Some(text) = world
            .project
            .node(text_node)
            .and_then(|n| n.text.as_deref())
        else {
            return ScriptOutcome::Missing;
        };
        let compiled = match self.compile(text_node, text) {
            Ok(compiled) => compiled,
            Err((error, first_report)) => {
                return ScriptOutcome::Failed {
                    error,
                    compiling: true,
                    first_report,
                };
            }
        };
        if !compiled.defines(func, args.len()) {
            return ScriptOutcome::Missing;
        }
        let args = args.into_iter().map(convert::to_dynamic).collect();
        match self.call_compiled(world, owner, &compiled, func, args) {
            Ok(value) => ScriptOutcome::Done(convert::to_value(&value)),
            Err(error) => ScriptOutcome::Failed {
                error,
                compiling: false,
                first_report: true,
            },
        }
    }

    fn forget(&mut self, text_node: NodeId) {
        self.cache.remove(&text_node);
    }

    fn set_limits(&mut self, limits: &ScriptLimits) {
        RhaiHost::set_limits(self, limits);
    }
}

impl RhaiHost {
    pub fn new(limits: &ScriptLimits, operators: Registry) -> Self {
        let mut engine = rhai::Engine::new();
        // `import` would read files; scripts get no file access.
        engine.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
        api::register(&mut engine, operators);
        let mut host = Self {
            engine,
            cache: HashMap::new(),
        };
        host.set_limits(limits);
        host
    }

    pub fn set_limits(&mut self, limits: &ScriptLimits) {
        let e = &mut self.engine;
        e.set_max_operations(limits.max_operations);
        e.set_max_call_levels(limits.max_call_depth);
        e.set_max_string_size(limits.max_string_bytes);
        e.set_max_array_size(limits.max_array_len);
        e.set_max_map_size(limits.max_map_len);
        e.set_max_expr_depths(256, 128);
    }

    /// The compiled form of `text_node`'s `text`, compiling only when the text changed.
    /// On error, the flag says whether this is the first time this text failed (report it once).
    pub fn compile(
        &mut self,
        text_node: NodeId,
        text: &str,
    ) -> Result<Arc<Compiled>, (CallError, bool)> {
        if let Some(entry) = self.cache.get(&text_node)
            && entry.source == text
        {
            return entry.result.clone().map_err(|e| (e, false));
        }
        let result = self
            .engine
            .compile(text)
            .map(|ast| {
                let functions = ast
                    .iter_functions()
                    .map(|f| (f.name.to_string(), f.params.len()))
                    .collect();
                Arc::new(Compiled {
                    ast,
                    functions,
                    source: text.to_string(),
                })
            })
            .map_err(|e| CallError {
                message: e.err_type().to_string(),
                line: e.position().line(),
            });
        self.cache.insert(
            text_node,
            CacheEntry {
                source: text.to_string(),
                result: result.clone(),
            },
        );
        result.map_err(|e| (e, true))
    }

    /// Calls `func` with `world` lent to the API for the duration of the call.
    fn call_compiled(
        &self,
        world: &mut Box<World>,
        owner: NodeId,
        compiled: &Compiled,
        func: &str,
        args: Vec<Dynamic>,
    ) -> Result<Dynamic, CallError> {
        let options = CallFnOptions::new().eval_ast(false).rewind_scope(true);
        context::with_world_lent(world, owner, || {
            contain_panics(|| {
                self.engine
                    .call_fn_with_options::<Dynamic>(
                        options,
                        &mut Scope::new(),
                        &compiled.ast,
                        func,
                        args,
                    )
                    .map_err(|e| {
                        let mut error = describe(&e);
                        if error.line.is_none() {
                            error.line = runaway_line(&compiled.source, func);
                        }
                        error
                    })
            })
        })
    }

    /// Evaluates a one-off expression with the API available (tests and the console use it).
    pub fn eval(
        &self,
        world: &mut Box<World>,
        owner: NodeId,
        script: &str,
    ) -> Result<Dynamic, CallError> {
        context::with_world_lent(world, owner, || {
            contain_panics(|| {
                self.engine
                    .eval::<Dynamic>(script)
                    .map_err(|e| describe(&e))
            })
        })
    }
}

/// A panic inside Rhai or a registered function ends that one call as an error, instead of
/// unwinding through the cook thread and leaving every server without answers.
fn contain_panics<R>(call: impl FnOnce() -> Result<R, CallError>) -> Result<R, CallError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(std::string::ToString::to_string)
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Err(CallError {
            message: format!("stopped: the script host panicked ({what})"),
            line: None,
        })
    })
}

/// Rhai gives no position when the operations limit stops a script; point at the first loop in
/// the function that ran away, or else at the function itself.
fn runaway_line(source: &str, func: &str) -> Option<usize> {
    let header = format!("fn {func}(");
    let lines: Vec<&str> = source.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_start().starts_with(&header))?;
    let is_loop = |line: &str| {
        line.split(|c: char| !c.is_alphanumeric() && c != '_')
            .any(|word| matches!(word, "loop" | "while" | "for" | "do"))
    };
    let body_end = lines[start + 1..]
        .iter()
        .position(|l| l.trim_start().starts_with("fn "))
        .map_or(lines.len(), |i| start + 1 + i);
    let found = (start..body_end)
        .find(|&i| is_loop(lines[i]))
        .unwrap_or(start);
    Some(found + 1)
}

/// The innermost error of a chain of function calls, with its line.
fn describe(error: &EvalAltResult) -> CallError {
    let mut error = error;
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _) = error {
        error = inner;
    }
    let message = match error {
        EvalAltResult::ErrorTooManyOperations(_) => {
            "stopped: ran past the operations limit (runaway loop?)".to_string()
        }
        EvalAltResult::ErrorStackOverflow(_) => "stopped: calls nested too deeply".to_string(),
        EvalAltResult::ErrorDataTooLarge(what, _) => format!("stopped: {what} grew past its limit"),
        EvalAltResult::ErrorRuntime(value, _) => value.to_string(),
        other => {
            // Display appends " (line N, position M)"; the line is reported separately.
            let text = other.to_string();
            match text.rfind(" (line ") {
                Some(cut) => text[..cut].to_string(),
                None => text,
            }
        }
    };
    CallError {
        message,
        line: error.position().line(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_a_call_is_an_error_and_the_world_comes_back() {
        let mut host = RhaiHost::new(&ScriptLimits::default(), Registry::default());
        host.engine.register_fn("boom", || -> rhai::INT {
            panic!("boom from a registered function")
        });
        let mut world = Box::<World>::default();
        world.project.settings.cook_rate_hz = 12.5;
        let compiled = host.compile(NodeId(7), "fn explode() { boom() }").unwrap();
        let error = host
            .call_compiled(&mut world, NodeId(7), &compiled, "explode", Vec::new())
            .unwrap_err();
        assert!(
            error.message.contains("panicked") && error.message.contains("boom from"),
            "{error:?}"
        );
        assert_eq!(
            world.project.settings.cook_rate_hz, 12.5,
            "the world was lost"
        );
        // The host goes on serving calls.
        let compiled = host.compile(NodeId(8), "fn fine() { 41 + 1 }").unwrap();
        let value = host
            .call_compiled(&mut world, NodeId(8), &compiled, "fine", Vec::new())
            .unwrap();
        assert_eq!(value.as_int(), Ok(42));
        assert!(host.eval(&mut world, NodeId(8), "boom()").is_err());
        assert_eq!(world.project.settings.cook_rate_hz, 12.5);
    }
}
