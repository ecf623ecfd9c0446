//! The running project: per-node runtime state, the console, info channels and the cook loop.
//! Network tasks talk to it only through [`crate::net::NetEvent`]s; it never touches egui.

mod command;
pub mod console;
mod cook_thread;
pub mod info;
mod world;

pub use command::{Applied, Command, CommandError};
pub use console::{ConsoleLine, Level};
pub use cook_thread::{CookThread, SharedEngine, Waker, spawn_cook_thread};
pub use world::{DatRef, NodeError, NodeState, OpRuntime, World, resolve_env};

use std::time::{Duration, Instant};

use rhai::Dynamic;
use tokio::sync::mpsc;

use crate::net::{EVENT_QUEUE_CAPACITY, NetEvent, NetTasks};
use crate::ops;
use crate::project::{NodeId, Project};
use crate::script::{CallError, ScriptHost};

/// Milliseconds since the Unix epoch, as scripts' `time_ms()` and console lines use.
pub fn unix_time_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The receiving end of the network events channel; the cook thread owns it.
pub type EventReceiver = mpsc::Receiver<NetEvent>;

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
    Done(Dynamic),
    /// The script failed; the error is already reported on the node.
    Failed(String),
}

pub struct Engine {
    /// Boxed so that lending it to a script callback moves a pointer, not the whole world.
    world: Box<World>,
    scripts: ScriptHost,
    net: NetContext,
    started: bool,
    frame_start: Instant,
}

impl Engine {
    /// A stopped engine for `project`; network tasks it starts report on the returned receiver.
    pub fn new(project: Project, rt: tokio::runtime::Handle) -> (Engine, EventReceiver) {
        let (events, receiver) = mpsc::channel(EVENT_QUEUE_CAPACITY);
        let scripts = ScriptHost::new(&project.settings.script);
        let mut world = Box::new(World {
            project,
            ..World::default()
        });
        for node in &world.project.nodes {
            world.nodes.insert(node.id, NodeState::default());
        }
        let engine = Engine {
            world,
            scripts,
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
        self.reconcile_pending(&ids);
    }

    /// Stops every operator (onExit, onServerStop run; sockets close).
    pub fn shutdown(&mut self) {
        for id in self.node_ids() {
            ops::stop(self, id);
        }
        self.started = false;
    }

    /// Closes the open project and runs `project` instead; the console is kept.
    pub fn replace_project(&mut self, project: Project) {
        let was_started = self.started;
        self.shutdown();
        let console = std::mem::take(&mut self.world.console);
        self.scripts = ScriptHost::new(&project.settings.script);
        *self.world = World {
            project,
            console,
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

    /// One frame: apply parameter changes and pulses, then cook every operator that has work.
    pub fn cook_frame(&mut self) {
        if !self.started {
            self.start();
        }
        self.world.frame += 1;
        self.frame_start = Instant::now();
        let ids = self.node_ids();
        self.reconcile_pending(&ids);
        for &id in &ids {
            self.timed(id, |engine| ops::cook(engine, id));
        }
        for &id in &ids {
            self.timed(id, |engine| ops::frame_end(engine, id));
        }
    }

    fn reconcile_pending(&mut self, ids: &[NodeId]) {
        for &id in ids {
            let state = self.world.state_mut(id);
            let reconcile = std::mem::take(&mut state.needs_reconcile);
            let pulses = std::mem::take(&mut state.pulses);
            if reconcile {
                self.timed(id, |engine| {
                    ops::reconcile(engine, id);
                    true
                });
            }
            for token in pulses {
                self.timed(id, |engine| {
                    ops::pulse(engine, id, &token);
                    true
                });
            }
        }
    }

    /// Handles one network event as soon as it arrives (not held to the next frame).
    pub fn handle_event(&mut self, event: NetEvent) {
        let id = event.node;
        if self.world.project.node(id).is_none() {
            return;
        }
        self.timed(id, |engine| {
            ops::handle_event(engine, event);
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
    pub fn call(&mut self, owner: NodeId, func: &str, args: Vec<Dynamic>) -> CallOutcome {
        let Some(text_node) = self.world.callbacks_node(owner) else {
            return CallOutcome::Missing;
        };
        let Some(text) = self
            .world
            .project
            .node(text_node)
            .and_then(|n| n.text.as_deref())
        else {
            return CallOutcome::Missing;
        };
        let compiled = match self.scripts.compile(text_node, text) {
            Ok(compiled) => compiled,
            Err((error, first_report)) => {
                if first_report {
                    self.report_script_error(
                        owner,
                        text_node,
                        &format!("compiling {}", self.world.node_name(text_node)),
                        &error,
                    );
                }
                return CallOutcome::Failed(error.message);
            }
        };
        if !compiled.defines(func, args.len()) {
            return CallOutcome::Missing;
        }
        match self
            .scripts
            .call(&mut self.world, owner, &compiled, func, args)
        {
            Ok(value) => CallOutcome::Done(value),
            Err(error) => {
                self.report_script_error(owner, text_node, func, &error);
                CallOutcome::Failed(error.message)
            }
        }
    }

    fn report_script_error(
        &mut self,
        owner: NodeId,
        text_node: NodeId,
        context: &str,
        error: &CallError,
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

    pub(crate) fn scripts_mut(&mut self) -> &mut ScriptHost {
        &mut self.scripts
    }
}
