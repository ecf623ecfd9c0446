//! Foundation: project files, the engine on its cook thread, the script host, headless runs.
// Test clients run on threads of their own and report over std channels.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::{Duration, Instant};

use datpatch::engine::{Command, Engine, info};
use datpatch::project::{self, NodeId, ParValue, Project, load_str, to_ron_string};
use datpatch::runner::Runner;
use datpatch::schema::{Input, OpKind};

mod common;
use common::{console_text, spawn_datpatch, wait_until};

fn projects_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("projects")
}

fn load(text: &str) -> Project {
    load_str(text, Path::new("test.ron")).unwrap_or_else(|e| panic!("{e}"))
}

/// An engine without a cook thread, for tests that step frames themselves.
fn stepped(project: Project) -> (Engine, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (engine, _events) = datpatch::runner::new_engine(project, rt.handle().clone());
    (engine, rt)
}

fn id_of(engine: &Engine, name: &str) -> NodeId {
    engine
        .project()
        .node_by_name(name)
        .unwrap_or_else(|| panic!("no node {name}"))
        .id
}

fn rows(engine: &Engine, name: &str) -> Vec<Vec<String>> {
    engine
        .project()
        .node_by_name(name)
        .unwrap()
        .table
        .clone()
        .unwrap()
        .rows
}

#[test]
fn every_project_file_loads_runs_headless_and_resaves_byte_identical() {
    let mut seen = 0;
    for entry in std::fs::read_dir(projects_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("ron") {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let project = project::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            to_ron_string(&project).unwrap(),
            text,
            "{} does not re-save identically",
            path.display()
        );

        let (mut engine, _rt) = stepped(project);
        // Free ports, so examples run beside anything else on this machine.
        let servers: Vec<String> = engine
            .project()
            .nodes
            .iter()
            .filter(|n| n.kind == OpKind::WebServer)
            .map(|n| n.name.clone())
            .collect();
        for name in servers {
            engine
                .set_par_by_path(&format!("{name}.port"), "0")
                .unwrap();
        }
        for _ in 0..5 {
            engine.cook_frame();
        }
        let mut ran = engine.project().clone();
        for node in &mut ran.nodes {
            if node.kind == OpKind::WebServer {
                node.params.insert(
                    "port".into(),
                    project::load_file(&path)
                        .unwrap()
                        .node(node.id)
                        .unwrap()
                        .params["port"]
                        .clone(),
                );
            }
        }
        assert_eq!(
            to_ron_string(&ran).unwrap(),
            text,
            "{} changed after 5 frames",
            path.display()
        );
        for node in &engine.project().nodes {
            assert_eq!(
                info::channel(engine.world(), node.id, "errors"),
                Some(0.0),
                "{}: {} has errors:\n{}",
                path.display(),
                node.name,
                console_text(engine.world())
            );
        }
        engine.shutdown();
    }
    assert!(seen >= 1, "no project files found");
}

fn load_error(text: &str) -> project::LoadError {
    load_str(text, Path::new("bad.ron")).expect_err("should be rejected")
}

#[test]
fn malformed_files_are_rejected_with_line_and_column() {
    let good = std::fs::read_to_string(projects_dir().join("basics.ron")).unwrap();

    // Truncated: the parser runs out of text on the last line it was given.
    let cut: String = good.lines().take(20).map(|l| format!("{l}\n")).collect();
    let e = load_error(&cut);
    assert!(e.line >= 20 && e.col >= 1, "{e}");
    assert!(e.to_string().starts_with("bad.ron:"), "{e}");

    // Wrong type for a parameter: points at the parameter.
    let e = load_error(
        "(\n    nodes: [\n        (id: 1, name: \"t\", kind: Table,\n         params: {\"loadonstart\": \"yes\"}),\n    ],\n)\n",
    );
    assert_eq!((e.line, e.col), (4, 19), "{e}");
    assert!(
        e.message.contains("loadonstart") && e.message.contains("toggle"),
        "{e}"
    );

    // Wrong type for a field: ron's own error, with its position.
    let e = load_error(
        "(\n    nodes: [\n        (id: \"one\", name: \"t\", kind: Table),\n    ],\n)\n",
    );
    assert_eq!(e.line, 3, "{e}");

    // Unknown operator.
    let e = load_error(
        "(\n    nodes: [\n        (id: 1, name: \"t\",\n         kind: Blender),\n    ],\n)\n",
    );
    assert_eq!(e.line, 4, "{e}");
    assert!(e.message.contains("Blender"), "{e}");

    // Duplicate names: points at the second one.
    let e = load_error(
        "(\n    nodes: [\n        (id: 1, name: \"t\", kind: Table),\n        (id: 2, kind: Text,\n         name: \"t\"),\n    ],\n)\n",
    );
    assert_eq!((e.line, e.col), (5, 10), "{e}");
    assert!(e.message.contains("duplicate node name"), "{e}");

    // A wire to a node that does not exist.
    let e = load_error(
        "(\n    nodes: [(id: 1, name: \"t\", kind: Text)],\n    wires: [\n        (from: 1, to: 7, input: Source),\n    ],\n)\n",
    );
    assert_eq!((e.line, e.col), (4, 19), "{e}");
    assert!(e.message.contains("does not exist"), "{e}");

    // A wire into a pin that refuses the kind (a Table DAT cannot be a callbacks script).
    let e = load_error(
        "(\n    nodes: [(id: 1, name: \"a\", kind: Table), (id: 2, name: \"b\", kind: Table)],\n    wires: [(from: 1, to: 2, input: Callbacks)],\n)\n",
    );
    assert_eq!(e.line, 3, "{e}");

    // Unknown parameter.
    let e = load_error(
        "(\n    nodes: [(id: 1, name: \"t\", kind: Text, params: {\"port\": 80})],\n)\n",
    );
    assert!(e.message.contains("no parameter `port`"), "{e}");
}

#[test]
fn check_command_reports_file_line_and_column() {
    let exe = env!("CARGO_BIN_EXE_datpatch");
    let ok = Process::new(exe)
        .arg("check")
        .arg(projects_dir().join("basics.ron"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.ron");
    std::fs::write(
        &bad,
        "(\n    nodes: [(id: 1, name: \"t\", kind: Nope)],\n)\n",
    )
    .unwrap();
    let out = Process::new(exe).arg("check").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:2:", bad.display())),
        "{stderr}"
    );

    for sub in ["run", "check"] {
        let help = Process::new(exe).args([sub, "--help"]).output().unwrap();
        assert!(help.status.success() && !help.stdout.is_empty());
    }
}

const TABLE_SCRIPT_PROJECT: &str = r###"(
    version: 2,
    nodes: [
        (id: 1, name: "t", kind: Table, table: [("name", "value")]),
        (id: 2, name: "results", kind: Table),
        (id: 3, name: "x", kind: Execute, text: r##"
import base64
import json

def onStart():
    t = op('t')
    t.appendRow(['a', 1])
    t.appendRow(['b', 2])
    t.appendRow(['c', 3])
    t[2, 1] = 'twenty'
    t['c', 'value'] = 'thirty'
    r = op('results')
    r.appendRow(['numRows', t.numRows])
    r.appendRow(['read', t[1, 0].val + t['b', 1].val + t.cell(3, 'value').val + t[1, 1].val])
    before = t.numRows
    t.deleteRow('a')
    after_a = t.numRows
    t.deleteRow('zzz')  # not there: nothing happens, as in TouchDesigner
    r.appendRow(['deleted', before - after_a, after_a - t.numRows])
    r.appendRow(['afterDelete', t.numRows, t[1, 0]])
    r.appendRow(['rows', json.dumps(t.rows(val=True), separators=(',', ':'))])
    t.clear(keepFirstRow=True)
    r.appendRow(['afterClear', t.numRows])
    me.store('n', 41)
    r.appendRow(['fetch', me.fetch('n', 0) + 1, me.fetch('missing', 'dflt')])
    r.appendRow(['par', int(op('t').par.loadonstart), int(op('x').par.framestart), me.name,
                 me.type])
    target = op('t')
    target.par.loadonstart = True
    m = me
    m.par.frameend = True
    r.appendRow(['json', json.loads('{"a": [1, 2.5, true]}')['a'][1],
                 base64.b64encode(b'hi').decode(), len(base64.b64decode('aGk='))])
    op('results').insertRow(['first'])
"##),
    ],
)"###;

#[test]
fn table_dat_api_from_python() {
    let (mut engine, _rt) = stepped(load(TABLE_SCRIPT_PROJECT));
    engine.cook_frame();
    let log = console_text(engine.world());
    let r = rows(&engine, "results");
    let expect: Vec<Vec<&str>> = vec![
        vec!["first"],
        vec!["numRows", "4"],
        vec!["read", "atwentythirty1"],
        vec!["deleted", "1", "0"],
        vec!["afterDelete", "3", "b"],
        vec![
            "rows",
            r#"[["name","value"],["b","twenty"],["c","thirty"]]"#,
        ],
        vec!["afterClear", "1"],
        vec!["fetch", "42", "dflt"],
        vec!["par", "0", "0", "x", "executeDAT"],
        vec!["json", "2.5", "aGk=", "2"],
    ];
    assert_eq!(r, expect, "console:\n{log}");
    assert_eq!(rows(&engine, "t"), vec![vec!["name", "value"]]);
    let t = id_of(&engine, "t");
    assert_eq!(
        engine.world().par(t, "loadonstart"),
        Some(&ParValue::Bool(true))
    );
    assert_eq!(
        engine.world().par(id_of(&engine, "x"), "frameend"),
        Some(&ParValue::Bool(true))
    );
}

#[test]
fn script_errors_name_their_line_and_the_engine_carries_on() {
    let text = r#"(
    version: 2,
    nodes: [
        (id: 1, name: "broken", kind: Execute, text: "def onStart():\n    a = 1\n    b = \n"),
        (id: 2, name: "failing", kind: Execute, text: "def onStart():\n    print('before')\n    op('nothere').numRows\n"),
        (id: 3, name: "importer", kind: Execute, text: "import json\n\ndef onStart():\n    op('out').appendRow([json.dumps({'a': [1, 2]})])\n"),
        (id: 4, name: "fine", kind: Execute, text: "def onStart():\n    op('out').appendRow(['ran'])\n"),
        (id: 5, name: "out", kind: Table),
    ],
)"#;
    let (mut engine, _rt) = stepped(load(text));
    engine.cook_frame();
    let log = console_text(engine.world());
    let errors =
        |name: &str| info::channel(engine.world(), id_of(&engine, name), "errors").unwrap();
    assert_eq!(errors("broken"), 1.0, "{log}");
    assert_eq!(errors("failing"), 1.0, "{log}");
    // Scripts may import modules (TouchDesigner's Python does).
    assert_eq!(errors("importer"), 0.0, "{log}");
    assert_eq!(errors("fine"), 0.0, "{log}");
    assert_eq!(
        rows(&engine, "out"),
        vec![vec![r#"{"a": [1, 2]}"#], vec!["ran"]]
    );
    assert!(
        log.contains("[broken] line 3:") && log.contains("SyntaxError"),
        "{log}"
    );
    assert!(
        log.contains("[failing] info") || log.contains("before"),
        "{log}"
    );
    // The traceback's line in the DAT, and Python's own message.
    assert!(
        log.contains("[failing] line 3:")
            && log.contains("AttributeError: 'NoneType' object has no attribute 'numRows'"),
        "{log}"
    );
    let broken = engine.world().state(id_of(&engine, "broken")).unwrap();
    assert_eq!(broken.script_error.as_ref().and_then(|e| e.line), Some(3));
    let failing = engine.world().state(id_of(&engine, "failing")).unwrap();
    assert_eq!(failing.script_error.as_ref().and_then(|e| e.line), Some(3));
}

#[test]
fn runaway_loop_is_stopped_and_reported_while_another_node_keeps_cooking() {
    let text = r#"(
    version: 2,
    settings: (script: (time_limit_ms: 200)),
    nodes: [
        (id: 1, name: "runaway", kind: Execute, params: {"framestart": true},
         text: "def onFrameStart(frame):\n    x = 0\n    while True: x += 1\n"),
        (id: 2, name: "steady", kind: Execute, params: {"framestart": true},
         text: "def onFrameStart(frame):\n    c = op('count')\n    c[0, 0] = frame\n"),
        (id: 3, name: "count", kind: Table, table: [("0")]),
    ],
)"#;
    let runner = Runner::start(load(text), Path::new("."), None).unwrap();
    let frame_written = || -> u64 {
        let engine = runner.engine.lock();
        rows(&engine, "count")[0][0].parse().unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_mins(1), || frame_written() >= 10),
        "steady stopped cooking"
    );
    let engine = runner.engine.lock();
    let runaway = id_of(&engine, "runaway");
    let steady = id_of(&engine, "steady");
    let log = console_text(engine.world());
    assert!(
        info::channel(engine.world(), runaway, "errors").unwrap() >= 5.0,
        "{log}"
    );
    assert_eq!(
        info::channel(engine.world(), steady, "errors"),
        Some(0.0),
        "{log}"
    );
    assert!(
        log.contains("[runaway] line 3: onFrameStart: stopped: ran past the time limit of 200 ms"),
        "{log}"
    );
    drop(engine);
    runner.stop();
}

#[test]
fn env_parameters_resolve_and_missing_ones_are_reported_on_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("data.csv");
    std::fs::write(&csv, "key,value\nanswer,42\n").unwrap();
    // SAFETY: set_var races only with other threads reading the environment; this name is unique
    // to this test.
    unsafe { std::env::set_var("DATPATCH_TEST_TABLE_FILE", &csv) };
    let text = r#"(
    version: 2,
    nodes: [
        (id: 1, name: "loaded", kind: Table, params: {"file": "$DATPATCH_TEST_TABLE_FILE", "loadonstart": true}),
        (id: 2, name: "missing", kind: Table, params: {"file": "$DATPATCH_TEST_NEVER_SET", "loadonstart": true}),
        (id: 3, name: "reader", kind: Execute, text: "def onStart():\n    op('out').appendRow([op('loaded').par.file])\n"),
        (id: 4, name: "out", kind: Table),
    ],
)"#;
    let (mut engine, _rt) = stepped(load(text));
    engine.cook_frame();
    assert_eq!(
        rows(&engine, "loaded"),
        vec![vec!["key", "value"], vec!["answer", "42"]]
    );
    assert_eq!(rows(&engine, "out"), vec![vec![csv.display().to_string()]]);
    let missing = engine.world().state(id_of(&engine, "missing")).unwrap();
    let error = missing.status_error.clone().unwrap_or_default();
    assert!(error.contains("DATPATCH_TEST_NEVER_SET"), "{error}");
    assert_eq!(
        info::channel(engine.world(), id_of(&engine, "missing"), "errors"),
        Some(1.0)
    );
    assert!(console_text(engine.world()).contains("DATPATCH_TEST_NEVER_SET is not set"));
}

#[test]
fn info_channels_are_live_on_the_cook_thread() {
    let path = projects_dir().join("basics.ron");
    let runner = Runner::start_file(&path, None, |_| Ok(())).unwrap();
    let ticker = id_of(&runner.engine.lock(), "ticker");
    let cooks = || info::channel(runner.engine.lock().world(), ticker, "total_cooks").unwrap();
    assert!(wait_until(Duration::from_secs(10), || cooks() >= 3.0));
    let before = cooks();
    assert!(
        wait_until(Duration::from_secs(10), || cooks() >= before + 5.0),
        "cook count stuck at {before}"
    );
    let engine = runner.engine.lock();
    let status = id_of(&engine, "status");
    assert_eq!(info::channel(engine.world(), status, "num_rows"), Some(3.0));
    assert_eq!(info::channel(engine.world(), status, "num_cols"), Some(2.0));
    assert!(info::channel(engine.world(), ticker, "cook_time").unwrap() >= 0.0);
    drop(engine);
    runner.stop();
}

#[test]
fn commands_keep_names_unique_and_wires_typed() {
    let (mut engine, _rt) = stepped(Project::default());
    let mut add = |kind| {
        engine
            .apply(Command::AddNode {
                kind,
                name: None,
                pos: (0.0, 0.0),
            })
            .unwrap()
            .created[0]
    };
    let t1 = add(OpKind::Table);
    let t2 = add(OpKind::Table);
    let text = add(OpKind::Text);
    assert_eq!(engine.project().node(t2).unwrap().name, "table2");
    assert!(
        engine
            .apply(Command::RenameNode {
                id: t2,
                name: "table1".into()
            })
            .is_err()
    );
    assert!(
        engine
            .apply(Command::RenameNode {
                id: t2,
                name: "9lives".into()
            })
            .is_err()
    );
    engine
        .apply(Command::RenameNode {
            id: t2,
            name: "mirror".into(),
        })
        .unwrap();
    // The source parameter and the wire are one thing.
    engine
        .apply(Command::SetParam {
            id: t2,
            token: "source".into(),
            value: ParValue::Str("table1".into()),
        })
        .unwrap();
    assert_eq!(engine.project().input_of(t2, Input::Source), Some(t1));
    assert!(
        engine
            .apply(Command::SetInput {
                to: text,
                input: Input::Source,
                from: Some(t1)
            })
            .is_err()
    );
    assert!(
        engine
            .apply(Command::SetParam {
                id: t1,
                token: "loadonstart".into(),
                value: ParValue::Str("maybe".into())
            })
            .is_err()
    );
    engine
        .apply(Command::SetCell {
            id: t1,
            row: 0,
            col: 1,
            value: "x".into(),
        })
        .unwrap();
    engine.cook_frame();
    assert_eq!(rows(&engine, "mirror"), vec![vec!["", "x"]]);
    // Undo by snapshot: putting an earlier document back restores it, wires and contents included.
    let snapshot = engine.project().clone();
    engine.apply(Command::RemoveNode { id: t1 }).unwrap();
    assert!(engine.project().wires.is_empty());
    engine
        .apply(Command::SetDocument(snapshot.clone()))
        .unwrap();
    assert_eq!(engine.project(), &snapshot);
    engine.cook_frame();
    assert_eq!(rows(&engine, "mirror"), vec![vec!["", "x"]]);
}

#[test]
fn saves_are_atomic_and_leave_the_old_file_when_they_fail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.ron");
    let project = project::load_file(&projects_dir().join("basics.ron")).unwrap();
    project::save_file(&project, &path).unwrap();
    let first = std::fs::read_to_string(&path).unwrap();
    assert_eq!(project::load_file(&path).unwrap(), project);
    // A save into a folder that does not exist fails cleanly and leaves no temp file behind.
    let err = project::save_file(&project, &dir.path().join("nope").join("p.ron")).unwrap_err();
    assert!(err.to_string().contains("nope"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
}

#[cfg(unix)]
#[test]
fn headless_run_exits_0_within_2s_of_sigterm() {
    let basics = projects_dir().join("basics.ron");
    let (mut child, rx) = spawn_datpatch([std::ffi::OsStr::new("run"), basics.as_os_str()]);
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.contains("hello from datpatch") {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the project never started");
        seen.push_str(&line);
        seen.push('\n');
    }
    let kill = Process::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(2),
            "still running 2 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status}");
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
        seen.push_str(&line);
        seen.push('\n');
    }
    assert!(
        seen.contains("ticker stopped at frame"),
        "onExit did not run:\n{seen}"
    );
}

#[test]
fn channels_chop_reads_json_rows_from_a_table() {
    let text = r#"(
    version: 2,
    nodes: [
        (id: 1, name: "feed", kind: Table, table: [("message", "source")]),
        (id: 2, name: "channels1", kind: Channels, params: {"pointer": "/d", "key": "source", "history": 3, "maxchannels": 4}),
        (id: 3, name: "reader", kind: Execute, params: {"frameend": true}, text: "def onFrameEnd(frame):\n    o = op('out')\n    o.clear()\n    temp = op('channels1')['s1:temp']\n    if temp is not None:\n        o.appendRow([temp.eval(), len(temp.vals), op('channels1').numChans])\n"),
        (id: 4, name: "out", kind: Table),
    ],
    wires: [(from: 1, to: 2, input: Source)],
)"#;
    let (mut engine, _rt) = stepped(load(text));
    let feed = id_of(&engine, "feed");
    let channels = id_of(&engine, "channels1");
    let push = |engine: &mut Engine, message: &str, source: &str| {
        let rows = rows(engine, "feed").len();
        engine
            .apply(Command::SetCell {
                id: feed,
                row: rows,
                col: 0,
                value: message.into(),
            })
            .unwrap();
        engine
            .apply(Command::SetCell {
                id: feed,
                row: rows,
                col: 1,
                value: source.into(),
            })
            .unwrap();
    };
    push(
        &mut engine,
        r#"{"d": {"temp": 20.5, "ok": true, "label": "x", "pos": {"x": 1}}}"#,
        "s1",
    );
    engine.cook_frame();
    let output = engine.world().dat(channels).unwrap().text();
    assert!(output.starts_with("name\tvalue\tupdated\n"), "{output}");
    let table_names: Vec<String> = (1..engine.world().dat(channels).unwrap().num_rows())
        .map(|r| engine.world().dat(channels).unwrap().cell(r, 0).unwrap())
        .collect();
    // Fields of one message appear in key order; later fields after earlier ones.
    assert_eq!(table_names, ["s1:ok", "s1:pos/x", "s1:temp"]);
    for t in [21.0, 22.0, 23.5] {
        push(&mut engine, &format!(r#"{{"d": {{"temp": {t}}}}}"#), "s1");
    }
    push(&mut engine, "not json", "s1");
    push(&mut engine, r#"{"d": {"new1": 1, "new2": 2}}"#, "s2");
    engine.cook_frame();
    assert_eq!(
        rows(&engine, "out").first().cloned().unwrap_or_default(),
        ["23.5", "3", "4"],
        "{}",
        console_text(engine.world())
    );
    assert_eq!(
        info::channel(engine.world(), channels, "num_channels"),
        Some(4.0)
    );
    assert_eq!(
        info::channel(engine.world(), channels, "warnings"),
        Some(1.0),
        "{}",
        console_text(engine.world())
    );
    engine
        .apply(Command::Pulse {
            id: channels,
            token: "reset".into(),
        })
        .unwrap();
    engine.cook_frame();
    assert_eq!(
        info::channel(engine.world(), channels, "num_channels"),
        Some(0.0)
    );
}

// ---- Python: TouchDesigner's API on a real interpreter ----

/// The console, for assertion messages.
fn dump(engine: &Engine) -> String {
    console_text(engine.world())
}

#[test]
fn cells_read_and_write_by_index_and_name_and_do_arithmetic() {
    let text = r#"(
    version: 2,
    nodes: [
        (id: 1, name: "t", kind: Table, table: [("name", "value"), ("answer", "41")]),
        (id: 2, name: "out", kind: Table),
        (id: 3, name: "x", kind: Execute, text: "
def onStart():
    t = op('t')
    out = op('out')
    out.appendRow(['read', t[1, 0].val, t[1, 'value'].val, t['answer', 1].val, op('t')[1, 0].val])
    total = op('t')[1, 1] + 1
    out.appendRow(['sum', total, type(total).__name__])
    t[1, 'value'] = total
    out.appendRow(['written', t[1, 1].val, t[1, 1] * 2])
"),
    ],
)"#;
    let (mut engine, _rt) = stepped(load(text));
    engine.cook_frame();
    assert_eq!(
        rows(&engine, "out"),
        vec![
            vec!["read", "answer", "41", "41", "answer"],
            vec!["sum", "42", "int"],
            vec!["written", "42", "84"],
        ],
        "{}",
        dump(&engine)
    );
    assert_eq!(
        rows(&engine, "t"),
        vec![vec!["name", "value"], vec!["answer", "42"]]
    );
}

#[test]
fn a_script_turns_a_web_server_off_and_on_through_its_active_parameter() {
    let text = r#"(
    version: 2,
    nodes: [
        (id: 1, name: "web", kind: WebServer, params: {"port": 0, "localaddress": "127.0.0.1"}),
        (id: 2, name: "x", kind: Execute, params: {"framestart": true}, text: "
def onFrameStart(frame):
    if frame == 2:
        op('web').par.active = False
    elif frame == 4:
        op('web').par.active = True
"),
    ],
)"#;
    let (mut engine, _rt) = stepped(load(text));
    let web = id_of(&engine, "web");
    let mut running = Vec::new();
    for _ in 0..5 {
        engine.cook_frame();
        running.push(info::channel(engine.world(), web, "server_running").unwrap());
    }
    // Set during frame 2 (after the server's own turn), applied at frame 3; on again at frame 5.
    assert_eq!(running, [1.0, 1.0, 0.0, 0.0, 1.0], "{}", dump(&engine));
    let log = dump(&engine);
    assert_eq!(log.matches("listening on http://").count(), 2, "{log}");
    assert!(log.contains("stopped listening on"), "{log}");
    assert_eq!(
        engine.world().par(web, "active"),
        Some(&ParValue::Bool(true))
    );
    engine.shutdown();
}

#[test]
fn a_script_pulses_clear_on_a_websocket_dat() {
    let rt = common::rt();
    let port = common::ws_server_sending(&rt, 3);
    let text = format!(
        r#"(
    version: 2,
    nodes: [
        (id: 1, name: "feed", kind: WebSocket, params: {{"netaddress": "127.0.0.1", "port": {port}}}),
        (id: 2, name: "log", kind: Table),
        (id: 3, name: "x", kind: Execute, params: {{"framestart": true}}, text: "
def onFrameStart(frame):
    feed = op('feed')
    if feed.numRows >= 4 and not me.fetch('cleared', False):
        me.store('cleared', True)
        op('log').appendRow(['before', feed.numRows, feed[3, 0].val])
        feed.par.clear.pulse()
"),
    ],
)"#
    );
    let runner = Runner::start(load(&text), Path::new("."), None).unwrap();
    let feed = NodeId(1);
    let done = wait_until(Duration::from_secs(20), || {
        let engine = runner.engine.lock();
        !rows(&engine, "log").is_empty() && engine.world().dat(feed).unwrap().num_rows() == 1
    });
    let engine = runner.engine.lock();
    assert!(done, "{}", dump(&engine));
    assert_eq!(rows(&engine, "log"), vec![vec!["before", "4", "hello 2"]]);
    drop(engine);
    runner.stop();
}

#[test]
fn module_globals_persist_across_calls_until_the_text_changes() {
    let code = "count = 0\n\ndef onFrameStart(frame):\n    global count\n    count += 1\n    op('out')[0, 0] = count\n";
    let mut project = load(
        r#"(
    version: 2,
    nodes: [
        (id: 1, name: "x", kind: Execute, params: {"framestart": true}),
        (id: 2, name: "out", kind: Table, table: [("0")]),
    ],
)"#,
    );
    project.node_mut(NodeId(1)).unwrap().text = Some(code.into());
    let (mut engine, _rt) = stepped(project);
    for _ in 0..3 {
        engine.cook_frame();
    }
    assert_eq!(rows(&engine, "out"), vec![vec!["3"]], "{}", dump(&engine));
    // New text, new module: its globals start again.
    engine
        .apply(Command::SetText {
            id: NodeId(1),
            text: format!("{code}# edited\n"),
        })
        .unwrap();
    engine.cook_frame();
    assert_eq!(rows(&engine, "out"), vec![vec!["1"]], "{}", dump(&engine));
    engine.cook_frame();
    assert_eq!(rows(&engine, "out"), vec![vec!["2"]], "{}", dump(&engine));
}

#[test]
fn another_dats_module_is_reached_through_module_and_mod() {
    let text = r#"(
    version: 2,
    nodes: [
        (id: 1, name: "helpers", kind: Text, text: "def f(x):\n    return x * 2\n"),
        (id: 2, name: "out", kind: Table),
        (id: 3, name: "x", kind: Execute, text: "
def onStart():
    op('out').appendRow([op('helpers').module.f(2), mod.helpers.f(5), mod('helpers').f(1)])
"),
    ],
)"#;
    let (mut engine, _rt) = stepped(load(text));
    engine.cook_frame();
    assert_eq!(
        rows(&engine, "out"),
        vec![vec!["4", "10", "2"]],
        "{}",
        dump(&engine)
    );
}

#[test]
fn run_with_delay_frames_runs_that_many_frames_later() {
    let text = r#"(
    version: 2,
    nodes: [
        (id: 1, name: "out", kind: Table),
        (id: 2, name: "x", kind: Execute, text: "
def later(scheduled):
    op('out').appendRow([scheduled, absTime.frame])

def onStart():
    run(later, absTime.frame, delayFrames=2)
"),
    ],
)"#;
    let (mut engine, _rt) = stepped(load(text));
    // (frame, rows of `out`) after each frame.
    let mut seen = Vec::new();
    for _ in 0..5 {
        engine.cook_frame();
        seen.push((engine.world().frame, rows(&engine, "out").len()));
    }
    let out = rows(&engine, "out");
    assert_eq!(out.len(), 1, "{}", dump(&engine));
    let scheduled: u64 = out[0][0].parse().unwrap();
    let ran: u64 = out[0][1].parse().unwrap();
    assert_eq!(ran, scheduled + 2, "{out:?}");
    // Nothing before that frame, and once only.
    let first = seen.iter().find(|(_, n)| *n > 0).unwrap().0;
    assert_eq!(first, ran, "{seen:?}");
}

#[test]
fn threads_run_their_own_work_and_are_refused_the_operators() {
    let text = r#"(
    version: 2,
    nodes: [
        (id: 1, name: "out", kind: Table),
        (id: 2, name: "x", kind: Execute, params: {"frameend": true}, text: "
import threading

results = []
errors = []
threads = []

def work():
    results.append(sum(range(10)))

def touch():
    try:
        op('out')
        errors.append('no error')
    except RuntimeError as e:
        errors.append(str(e))

def onStart():
    threads.extend([threading.Thread(target=work), threading.Thread(target=touch)])
    for t in threads:
        t.start()

def onFrameEnd(frame):
    if threads and not any(t.is_alive() for t in threads) and not me.fetch('reported', False):
        me.store('reported', True)
        op('out').appendRow(['results'] + results)
        op('out').appendRow(['error'] + errors)
"),
    ],
)"#;
    let (mut engine, _rt) = stepped(load(text));
    let deadline = Instant::now() + Duration::from_secs(20);
    while rows(&engine, "out").is_empty() {
        assert!(Instant::now() < deadline, "{}", dump(&engine));
        engine.cook_frame();
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = rows(&engine, "out");
    assert_eq!(out[0], ["results", "45"], "{}", dump(&engine));
    assert_eq!(out[1].len(), 2, "{out:?}");
    assert!(out[1][1].contains("cook thread"), "{out:?}");
}

#[test]
fn a_version_1_project_is_refused_saying_scripts_are_python_now() {
    let e = load_error(
        "(\n    version: 1,\n    nodes: [(id: 1, name: \"x\", kind: Execute, text: \"fn onStart() {}\")],\n)\n",
    );
    assert_eq!(e.line, 2, "{e}");
    assert!(
        e.message.contains("Rhai") && e.message.contains("Python now"),
        "{e}"
    );
}

/// Cooks frames until the script DAT's edited text has compiled.
fn cook_until_compiled(engine: &mut Engine, id: NodeId) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        engine.cook_frame();
        let state = engine.world().state(id).unwrap();
        if state.compiled_rev == Some(state.content_rev) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the text never compiled"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_syntax_error_is_marked_when_the_text_is_edited_and_cleared_when_fixed() {
    let text = r#"(
    version: 2,
    nodes: [
        (id: 1, name: "helpers", kind: Text, params: {"language": "python"},
         text: "def f():\n    return 1\n"),
    ],
)"#;
    let (mut engine, _rt) = stepped(load(text));
    let helpers = id_of(&engine, "helpers");
    let error_line = |engine: &Engine| {
        engine
            .world()
            .state(helpers)
            .unwrap()
            .script_error
            .as_ref()
            .map(|e| e.line)
    };
    engine.cook_frame();
    assert_eq!(error_line(&engine), None, "{}", dump(&engine));
    engine
        .apply(Command::SetText {
            id: helpers,
            text: "def f():\n    return 1\n\ndef g(:\n    pass\n".into(),
        })
        .unwrap();
    // Typing is not reported: the text compiles once it rests (a debounce of a few hundred ms).
    engine.cook_frame();
    assert_eq!(
        error_line(&engine),
        None,
        "compiled at once: {}",
        dump(&engine)
    );
    cook_until_compiled(&mut engine, helpers);
    // Nothing called it: the edit alone compiled it.
    assert_eq!(error_line(&engine), Some(Some(4)), "{}", dump(&engine));
    assert!(dump(&engine).contains("SyntaxError"), "{}", dump(&engine));
    engine
        .apply(Command::SetText {
            id: helpers,
            text: "def f():\n    return 1\n\ndef g():\n    pass\n".into(),
        })
        .unwrap();
    cook_until_compiled(&mut engine, helpers);
    assert_eq!(error_line(&engine), None, "{}", dump(&engine));
}

#[test]
fn the_cook_thread_wakes_the_window_only_for_visible_changes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let text = r#"(
    version: 2,
    settings: (cook_rate_hz: 60.0),
    nodes: [(id: 1, name: "tab", kind: Table, table: [("a", "b")])],
)"#;
    let wakes = Arc::new(AtomicU64::new(0));
    let counter = wakes.clone();
    let waker: datpatch::engine::Waker = Arc::new(move || {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let runner = Runner::start(load(text), Path::new("."), Some(waker)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let settled = wakes.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(1));
    // 60 frames cooked, none of them changing what a window shows.
    let idle = wakes.load(Ordering::Relaxed) - settled;
    assert_eq!(idle, 0, "woken {idle} times in an idle second");
    let tab = id_of(&runner.engine.lock(), "tab");
    runner
        .engine
        .lock()
        .apply(Command::SetCell {
            id: tab,
            row: 0,
            col: 0,
            value: "changed".into(),
        })
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || wakes.load(Ordering::Relaxed)
            > settled),
        "an edit did not wake the window"
    );
}

/// `datpatch run --metrics`: the scrape parses as Prometheus text, names every node's info
/// channels with node and type labels, carries the process figures, and a counter rises with
/// traffic.
#[test]
fn headless_run_serves_info_channels_as_prometheus_metrics() {
    let (_child, lines) = spawn_datpatch([
        "run".to_string(),
        projects_dir().join("pubsub.ron").display().to_string(),
        "--set".to_string(),
        "relay.port=0".to_string(),
        "--metrics".to_string(),
        "127.0.0.1:0".to_string(),
    ]);
    let mut metrics_addr = None;
    let mut relay_port = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while (metrics_addr.is_none() || relay_port.is_none()) && Instant::now() < deadline {
        let Ok(line) = lines.recv_timeout(Duration::from_secs(20)) else {
            break;
        };
        if let Some(rest) = line.split("metrics on http://").nth(1) {
            metrics_addr = rest.split('/').next().map(str::to_string);
        }
        if let Some(rest) = line.split("listening on http://").nth(1) {
            relay_port = rest
                .rsplit(':')
                .next()
                .and_then(|p| p.trim().parse::<u16>().ok());
        }
    }
    let metrics_addr: std::net::SocketAddr =
        metrics_addr.expect("no metrics line").parse().unwrap();
    let relay = std::net::SocketAddr::from(([127, 0, 0, 1], relay_port.expect("no relay port")));
    let scrape = || {
        let answer = common::http(metrics_addr, "GET", "/metrics", &[], b"");
        assert_eq!(answer.status, 200);
        assert!(
            answer
                .header("content-type")
                .unwrap()
                .contains("openmetrics-text")
        );
        let text = answer.text();
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
    };
    let value = |scrape: &prometheus_parse::Scrape, metric: &str, node: &str| -> f64 {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && s.labels.get("node") == Some(node))
            .unwrap_or_else(|| panic!("no {metric} for {node}"));
        match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{metric} is not a number"),
        }
    };
    let before = scrape();
    let relay_sample = before
        .samples
        .iter()
        .find(|s| {
            s.metric == "datpatch_node_http_requests_total" && s.labels.get("node") == Some("relay")
        })
        .expect("the relay's http_requests");
    assert_eq!(relay_sample.labels.get("type"), Some("webserverDAT"));
    assert_eq!(
        value(&before, "datpatch_node_port", "relay"),
        f64::from(relay.port())
    );
    for process in [
        "datpatch_process_resident_memory_bytes",
        "datpatch_process_open_fds",
    ] {
        let sample = before.samples.iter().find(|s| s.metric == process).unwrap();
        assert!(
            matches!(sample.value, prometheus_parse::Value::Gauge(v) if v > 0.0),
            "{process}"
        );
    }
    assert!(
        before
            .samples
            .iter()
            .any(|s| s.metric == "datpatch_cook_thread_cpu_seconds_total")
    );
    let requests = value(&before, "datpatch_node_http_requests_total", "relay");
    for _ in 0..3 {
        common::http(
            relay,
            "POST",
            "/auth/token",
            &[],
            br#"{"apiKey": "ak_demo"}"#,
        );
    }
    assert_eq!(
        value(&scrape(), "datpatch_node_http_requests_total", "relay"),
        requests + 3.0
    );
    assert_eq!(common::http(metrics_addr, "GET", "/", &[], b"").status, 404);
}
