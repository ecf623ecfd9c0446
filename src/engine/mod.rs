//! The running project: per-node runtime state, the console, info channels and the cook loop.
//! Network tasks talk to it only through [`crate::net::NetEvent`]s; it never touches egui.

mod command;
pub mod console;
mod cook_thread;
pub mod fifo_table;
pub mod info;
mod operator;
mod scripts;
mod value;
mod world;

pub use command::{Applied, Command, CommandError};
pub use console::{ConsoleLine, Level};
pub use cook_thread::{CookThread, SharedEngine, Waker, spawn_cook_thread};
pub use operator::{Badge, Link, OpState, Operator, Registry, ScriptMethod};
pub use scripts::{ScriptError, ScriptHost, ScriptOutcome, ScriptSession};
pub use value::Value;
pub use world::{DatRef, NodeError, NodeState, World, resolve_env};

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::net::{EVENT_QUEUE_CAPACITY, NetEvent, NetTasks};
use crate::project::{NodeId, Project};

/// Milliseconds since the Unix epoch, as scripts' `time_ms()` and console lines use.
pub fn unix_time_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The receiving end of the network events channel; the cook thread owns it.
pub type EventReceiver = mpsc::Receiver<NetEvent>;

/// How long an edited script DAT's text must rest before it compiles (typing pauses are longer).
const COMPILE_DEBOUNCE: Duration = Duration::from_millis(300);

/// What a network task needs to report to the engine.
#[derive(Clone)]
pub struct NetContext {
    pub rt: tokio::runtime::Handle,
    pub events: mpsc::Sender<NetEvent>,
    /// Every server and client task is spawned through it, so a stop can wait for them.
    pub tasks: NetTasks,
}

/// The result of running one callback.
#[derive(Debug)]
pub enum CallOutcome {
    /// No callbacks DAT, or it does not define the function: nothing ran.
    Missing,
    Done(Value),
    /// The script failed; the error is already reported on the node.
    Failed(String),
}

/// What an engine is built from besides its project: the layers above it (`ops/` and
/// `script/`), handed in by `runner` so that the engine never names them.
pub struct EngineParts {
    pub operators: Registry,
    /// Makes a script host for a project's script settings (a new one per opened project).
    pub new_scripts: NewScriptHost,
}

/// Makes a script host (`script/`'s) for a project's script settings.
pub type NewScriptHost = fn(&crate::project::ScriptLimits) -> Box<dyn ScriptHost>;

pub struct Engine {
    /// Boxed so that lending it to a script callback moves a pointer, not the whole world.
    world: Box<World>,
    scripts: Box<dyn ScriptHost>,
    new_scripts: NewScriptHost,
    net: NetContext,
    started: bool,
    frame_start: Instant,
}

impl Engine {
    /// A stopped engine for `project`; network tasks it starts report on the returned receiver.
    pub fn new(
        project: Project,
        rt: tokio::runtime::Handle,
        parts: EngineParts,
    ) -> (Engine, EventReceiver) {
        let (events, receiver) = mpsc::channel(EVENT_QUEUE_CAPACITY);
        let scripts = (parts.new_scripts)(&project.settings.script);
        let mut world = Box::new(World {
            project,
            operators: parts.operators,
            ..World::default()
        });
        for node in &world.project.nodes {
            world.nodes.insert(node.id, NodeState::default());
        }
        let engine = Engine {
            world,
            scripts,
            new_scripts: parts.new_scripts,
            net: NetContext {
                rt,
                events,
                tasks: NetTasks::default(),
            },
            started: false,
            frame_start: Instant::now(),
        };
        (engine, receiver)
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    pub(crate) fn world_mut(&mut self) -> &mut World {
        &mut self.world
    }

    pub fn project(&self) -> &Project {
        &self.world.project
    }

    /// A digest of what a window shows of the engine (document, console, per-node errors,
    /// badges, contents and message counts), but not of what every frame moves (frame number,
    /// cook times): the cook thread wakes the GUI after a frame only when this changed, so an
    /// idle project does not redraw at the cook rate.
    pub fn view_stamp(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let world = &self.world;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        world.revision.hash(&mut h);
        world.console.next_seq().hash(&mut h);
        // A repeated line is counted on the last line, not added.
        world
            .console
            .lines()
            .next_back()
            .map(|l| l.repeats)
            .hash(&mut h);
        for node in &world.project.nodes {
            node.id.hash(&mut h);
            world.badge(node.id).hash(&mut h);
            world.messages_in(node.id).hash(&mut h);
            if let Some(state) = world.state(node.id) {
                state.errors.hash(&mut h);
                state.warnings.hash(&mut h);
                state.content_rev.hash(&mut h);
                state.status_error.is_some().hash(&mut h);
                state.script_error.is_some().hash(&mut h);
                state.last_error.is_some().hash(&mut h);
            }
        }
        h.finish()
    }

    pub fn net(&self) -> &NetContext {
        &self.net
    }

    pub fn console_mut(&mut self) -> &mut console::Console {
        &mut self.world.console
    }

    /// Time between frames at the project's cook rate.
    pub fn frame_period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.world.project.settings.cook_rate_hz.clamp(0.1, 1000.0))
    }

    /// Starts every operator (servers listen, Execute DATs run onStart). Idempotent.
    pub fn start(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        self.frame_start = Instant::now();
        let ids = self.node_ids();
        for &id in &ids {
            self.world.state_mut(id).needs_reconcile = true;
        }
        // Scripts first: their module code runs, and their syntax errors show, before onStart.
        self.compile_edited_scripts(&ids);
        self.reconcile_pending(&ids);
    }

    /// Stops every operator (onExit, onServerStop run; sockets close).
    pub fn shutdown(&mut self) {
        for id in self.node_ids() {
            self.stop_node(id);
        }
        self.started = false;
    }

    /// Closes the open project and runs `project` instead; the console is kept.
    pub fn replace_project(&mut self, project: Project) {
        let was_started = self.started;
        self.shutdown();
        let console = std::mem::take(&mut self.world.console);
        self.scripts = (self.new_scripts)(&project.settings.script);
        *self.world = World {
            project,
            console,
            operators: self.world.operators,
            ..World::default()
        };
        for node in &self.world.project.nodes {
            self.world.nodes.insert(node.id, NodeState::default());
        }
        if was_started {
            self.start();
        }
    }

    fn node_ids(&self) -> Vec<NodeId> {
        self.world.project.nodes.iter().map(|n| n.id).collect()
    }

    /// The operator that implements node `id`'s kind.
    fn operator(&self, id: NodeId) -> Option<&'static dyn Operator> {
        let kind = self.world.project.node(id)?.kind;
        Some(self.world.operators.get(kind))
    }

    /// Stops the node's runtime: the project closes or the node is deleted.
    pub(crate) fn stop_node(&mut self, id: NodeId) {
        if let Some(op) = self.operator(id) {
            op.stop(self, id);
        }
    }

    /// One frame: apply parameter changes and pulses, then cook every operator that has work.
    pub fn cook_frame(&mut self) {
        if !self.started {
            self.start();
        }
        self.world.frame += 1;
        self.frame_start = Instant::now();
        let ids = self.node_ids();
        self.reconcile_pending(&ids);
        self.compile_edited_scripts(&ids);
        for (owner, error) in self.scripts.run_due(&mut self.world) {
            self.world.report_error(
                owner,
                NodeError {
                    text: format!("run(): {}", error.message),
                    script_node: None,
                    line: error.line,
                    time_ms: unix_time_ms(),
                },
            );
        }
        for &id in &ids {
            if let Some(op) = self.operator(id) {
                self.timed(id, |engine| op.cook(engine, id));
            }
        }
        for &id in &ids {
            if let Some(op) = self.operator(id) {
                self.timed(id, |engine| op.frame_end(engine, id));
            }
        }
    }

    fn reconcile_pending(&mut self, ids: &[NodeId]) {
        for &id in ids {
            let state = self.world.state_mut(id);
            let reconcile = std::mem::take(&mut state.needs_reconcile);
            let pulses = std::mem::take(&mut state.pulses);
            let Some(op) = self.operator(id) else {
                continue;
            };
            if reconcile {
                let first = !std::mem::replace(&mut self.world.state_mut(id).initialized, true);
                self.timed(id, |engine| {
                    op.reconcile(engine, id, first);
                    true
                });
            }
            for token in pulses {
                self.timed(id, |engine| {
                    op.pulse(engine, id, &token);
                    true
                });
            }
        }
    }

    /// Compiles every script DAT whose text changed since it was last compiled, once the text has
    /// rested for [`COMPILE_DEBOUNCE`], so that a syntax error is marked while editing, not at the
    /// next callback; a clean compile clears the DAT's error and the last errors it left.
    fn compile_edited_scripts(&mut self, ids: &[NodeId]) {
        let now = Instant::now();
        for &id in ids {
            let Some(state) = self.world.state(id) else {
                continue;
            };
            let rev = state.content_rev;
            if state.compiled_rev == Some(rev) || !self.world.is_script(id) {
                continue;
            }
            // The first compile (project start) does not wait; edits do.
            if state.compiled_rev.is_some() {
                let state = self.world.state_mut(id);
                match state.edit_seen {
                    Some((seen, at)) if seen == rev => {
                        if now.duration_since(at) < COMPILE_DEBOUNCE {
                            continue;
                        }
                    }
                    _ => {
                        state.edit_seen = Some((rev, now));
                        continue;
                    }
                }
            }
            let state = self.world.state_mut(id);
            state.compiled_rev = Some(rev);
            state.edit_seen = None;
            match self.scripts.compile(&mut self.world, id) {
                Ok(true) => self.world.clear_script_error(id),
                // Compiled before (by a callback): its errors, if any, stand.
                Ok(false) | Err((_, false)) => {}
                Err((error, true)) => {
                    let context = format!("compiling {}", self.world.node_name(id));
                    self.report_script_error(id, id, &context, &error);
                }
            }
        }
    }

    /// Handles one network event as soon as it arrives (not held to the next frame).
    pub fn handle_event(&mut self, event: NetEvent) {
        let id = event.node;
        let Some(op) = self.operator(id) else {
            return;
        };
        self.timed(id, |engine| {
            op.handle_event(engine, id, event.run, event.kind);
            true
        });
    }

    /// Runs `f` for node `id` and, if it says it cooked, records the cook in the node's info.
    fn timed(&mut self, id: NodeId, f: impl FnOnce(&mut Engine) -> bool) {
        let start = Instant::now();
        if f(self) {
            let duration_ms = start.elapsed().as_secs_f64() * 1000.0;
            let start_in_frame_ms = start
                .saturating_duration_since(self.frame_start)
                .as_secs_f64()
                * 1000.0;
            let frame = self.world.frame;
            if let Some(state) = self.world.nodes.get_mut(&id) {
                state.cook.record(frame, start_in_frame_ms, duration_ms);
            }
        }
    }

    /// Runs callback `func` of `owner`'s callbacks DAT. Errors are reported on `owner` (counted in its
    /// `errors` channel, logged with the line) and marked on the Text DAT; the engine carries on.
    pub fn call(&mut self, owner: NodeId, func: &str, args: Vec<Value>) -> CallOutcome {
        let Some(text_node) = self.world.callbacks_node(owner) else {
            return CallOutcome::Missing;
        };
        match self
            .scripts
            .call(&mut self.world, owner, text_node, func, args)
        {
            ScriptOutcome::Missing => CallOutcome::Missing,
            ScriptOutcome::Done(value) => {
                // The DAT's last error stays marked until a call of it succeeds.
                if self
                    .world
                    .state(text_node)
                    .is_some_and(|s| s.script_error.is_some())
                {
                    self.world.clear_script_error(text_node);
                }
                CallOutcome::Done(value)
            }
            ScriptOutcome::Skipped {
                warning,
                first_report,
            } => {
                if first_report {
                    self.world.report_warning(owner, warning);
                }
                CallOutcome::Missing
            }
            ScriptOutcome::Failed {
                error,
                compiling,
                first_report,
            } => {
                if first_report {
                    let context = if compiling {
                        format!("compiling {}", self.world.node_name(text_node))
                    } else {
                        func.to_string()
                    };
                    self.report_script_error(owner, text_node, &context, &error);
                }
                CallOutcome::Failed(error.message)
            }
        }
    }

    fn report_script_error(
        &mut self,
        owner: NodeId,
        text_node: NodeId,
        context: &str,
        error: &ScriptError,
    ) {
        let node_error = NodeError {
            text: format!("{context}: {}", error.message),
            script_node: Some(text_node),
            line: error.line,
            time_ms: unix_time_ms(),
        };
        self.world.state_mut(text_node).script_error = Some(node_error.clone());
        self.world.report_error(owner, node_error);
    }

    /// Keeps the script interpreter for this thread until the session is dropped: the cook thread
    /// takes one per batch of events and per frame, so callbacks do not each take the GIL.
    pub fn script_session(&self) -> ScriptSession {
        self.scripts.session()
    }

    pub(crate) fn scripts_mut(&mut self) -> &mut dyn ScriptHost {
        self.scripts.as_mut()
    }
}
