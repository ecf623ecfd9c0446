//! Owns the module layering of the crate, read from the text of `src/**/*.rs` (std only, no
//! library API): which module may use which, no cycles, egui only in `ui`, rhai only in `script`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, lowest first. A module may use the modules of lower rows, and of its own row only
/// the peers listed next to it. Every top-level module but `src/lib.rs` and `src/main.rs` must
/// appear here.
const LAYERS: &[&[(&str, &[&str])]] = &[
    &[("schema", &[])],  // operator kinds, parameter definitions, pins: plain data
    &[("project", &[])], // the saved document
    &[("net", &[])],     // tokio tasks, codecs
    &[("engine", &[])],  // world, cook loop, console, operator trait, neutral script values
    &[("script", &[])],  // the script host: the only place that names the script language
    &[("ops", &[])],     // one folder per operator
    &[
        ("runner", &[]),
        ("metrics", &["runner"]),
        ("headless", &["runner", "metrics"]),
    ],
    &[("cli", &["ui"]), ("ui", &[])], // ui uses runner, a lower row
];

/// Crates only `src/ui/` may name, and crates only `src/script/` may name.
const GUI_CRATES: &str = "egui eframe egui_extras egui_snarl egui_plot rfd";
const SCRIPT_CRATES: &str = "rhai pyo3";

/// `(path from the crate root, contents)` of some source files.
type Files = [(String, String)];

fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
        for path in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap();
                let rel: Vec<_> = rel.iter().map(|p| p.to_string_lossy()).collect();
                out.push((rel.join("/"), std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out.sort();
    out
}

/// `src/ops/webserver.rs` and `src/ops.rs` -> `ops`; None for `src/lib.rs` and `src/main.rs`.
fn module_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("src/")?;
    let top = rest.split('/').next()?;
    let top = top.strip_suffix(".rs").unwrap_or(top);
    (rest.contains('/') || !["lib", "main"].contains(&top)).then_some(top)
}

/// The row of `module` in LAYERS and the peers it may use.
fn layer_of(module: &str) -> Option<(usize, &'static [&'static str])> {
    let mut all = LAYERS.iter().enumerate();
    all.find_map(|(row, mods)| mods.iter().find(|m| m.0 == module).map(|m| (row, m.1)))
}

/// Identifiers, `::` and punctuation with their lines; comments, strings and chars are skipped.
fn tokens(src: &str) -> Vec<(usize, String)> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize, s: &str| s.chars().zip(i..).all(|(ch, j)| c.get(j) == Some(&ch));
    let word = |i: usize| matches!(c.get(i), Some(ch) if ch.is_alphanumeric() || *ch == '_');
    let to = |mut j: usize, end: &str, escapes: bool| {
        while j < c.len() && !at(j, end) {
            j += if escapes && c[j] == '\\' { 2 } else { 1 };
        }
        j + end.len()
    };
    let (mut toks, mut i, mut line) = (Vec::new(), 0, 1);
    while i < c.len() {
        let r = i + usize::from(at(i, "br")); // raw strings: r"..", r#".."#, br".."
        let hashes = c[r + 1..].iter().take_while(|&&ch| ch == '#').count();
        let end = if at(i, "//") {
            to(i, "\n", false) - 1
        } else if at(i, "/*") {
            to(i + 2, "*/", false) // not nested
        } else if c[r] == 'r' && c.get(r + 1 + hashes) == Some(&'"') {
            to(r + 2 + hashes, &format!("\"{}", "#".repeat(hashes)), false)
        } else if c[i] == '"' {
            to(i + 1, "\"", true)
        } else if c[i] == '\'' && (c.get(i + 1) == Some(&'\\') || c.get(i + 2) == Some(&'\'')) {
            to(i + 1, "'", true) // a char, not a lifetime
        } else {
            let punct = 1 + usize::from(at(i, "::")); // `::` or one character
            let len = (i..).take_while(|&j| word(j)).count().max(punct);
            if !c[i].is_whitespace() {
                toks.push((line, c[i..i + len].iter().collect()));
            }
            i + len
        };
        line += (i..end.min(c.len())).filter(|&j| c[j] == '\n').count();
        i = end;
    }
    toks
}

/// `file:line: text`.
fn cite(path: &str, src: &str, line: usize) -> String {
    let text = src.lines().nth(line - 1).unwrap_or("").trim();
    format!("{path}:{line}: {text}")
}

/// A `crate::NAME` in a file of module `from`, NAME (`to`) being a listed or existing module.
struct Use {
    from: String,
    to: String,
    at: String,
}

/// Every `crate::NAME...`, and every NAME of a `crate::{NAME::{...}, NAME}` group; once a line.
fn crate_uses(files: &Files) -> Vec<Use> {
    let existing: BTreeSet<&str> = files.iter().filter_map(|(p, _)| module_of(p)).collect();
    let mut uses: Vec<Use> = Vec::new();
    let modules = files
        .iter()
        .filter_map(|(p, s)| Some((p, s, module_of(p)?)));
    for (path, src, from) in modules {
        let toks = tokens(src);
        let tok = |k: usize| toks.get(k).map_or("", |t| t.1.as_str());
        for k in (0..toks.len()).filter(|&k| tok(k) == "crate" && tok(k + 1) == "::") {
            let mut names = vec![k + 2];
            if tok(k + 2) == "{" {
                names.clear();
                let mut depth = 0;
                for j in k + 2..toks.len() {
                    match tok(j) {
                        "{" => depth += 1,
                        "}" if depth == 1 => break,
                        "}" => depth -= 1,
                        _ if depth == 1 && matches!(tok(j - 1), "{" | ",") => names.push(j),
                        _ => {}
                    }
                }
            }
            for j in names {
                let (to, at) = (tok(j).to_string(), cite(path, src, toks[j].0));
                let known = existing.contains(&*to) || layer_of(&to).is_some();
                if known && !uses.last().is_some_and(|u| u.to == to && u.at == at) {
                    let from = from.to_string();
                    uses.push(Use { from, to, at });
                }
            }
        }
    }
    uses
}

fn layer_violations(files: &Files) -> Vec<String> {
    let mut bad = Vec::new();
    for (path, m) in files.iter().filter_map(|(p, _)| Some(p).zip(module_of(p))) {
        if layer_of(m).is_none() {
            bad.push(format!("{path}: `{m}` is not in LAYERS"));
        }
    }
    for u in crate_uses(files) {
        let (Some((row, peers)), Some((to_row, _))) = (layer_of(&u.from), layer_of(&u.to)) else {
            continue;
        };
        if to_row > row || (u.from != u.to && to_row == row && !peers.contains(&u.to.as_str())) {
            let (from, to) = (&u.from, &u.to);
            bad.push(format!("{}    [{from} ({row}) -> {to} ({to_row})]", u.at));
        }
    }
    bad
}

/// Every elementary cycle between top-level modules, then the lines behind each of their edges.
fn cycles(files: &Files) -> Vec<String> {
    let mut edges: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for u in crate_uses(files).into_iter().filter(|u| u.from != u.to) {
        edges.entry((u.from, u.to)).or_default().push(u.at);
    }
    let (mut found, mut on_cycle) = (Vec::new(), BTreeSet::new());
    for start in edges.keys().map(|e| e.0.as_str()).collect::<BTreeSet<_>>() {
        // Paths from `start` through modules sorted after it, so each cycle is found once.
        let mut stack = vec![vec![start]];
        while let Some(path) = stack.pop() {
            for (_, b) in edges.keys().filter(|(a, _)| a == path[path.len() - 1]) {
                if b == start {
                    let cycle = [path.clone(), vec![start]].concat();
                    let edge = |w: &[&str]| (w[0].to_string(), w[1].to_string());
                    on_cycle.extend(cycle.windows(2).map(edge));
                    found.push(format!("cycle: {}", cycle.join(" -> ")));
                } else if b.as_str() > start && !path.contains(&b.as_str()) {
                    stack.push([path.clone(), vec![b.as_str()]].concat());
                }
            }
        }
    }
    for edge in on_cycle {
        found.push(format!("{} -> {}:", edge.0, edge.1));
        found.extend(edges[&edge].iter().map(|line| format!("    {line}")));
    }
    found
}

/// Lines outside `dir` that name one of `crates` as a path: `krate::...`, `use krate`.
fn foreign_paths(files: &Files, crates: &str, dir: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for (path, src) in files.iter().filter(|(p, _)| !p.starts_with(dir)) {
        let toks = tokens(src);
        let tok = |k: Option<usize>| k.and_then(|k| toks.get(k)).map_or("", |t| t.1.as_str());
        for (k, (line, name)) in toks.iter().enumerate() {
            let (prev, next) = (tok(k.checked_sub(1)), tok(Some(k + 1)));
            if crates.split(' ').any(|c| c == name) && (next == "::" || prev == "use") {
                bad.push(cite(path, src, *line));
            }
        }
    }
    bad.dedup();
    bad
}

fn check(rule: &str, bad: Vec<String>) {
    assert!(bad.is_empty(), "{rule}:\n{}\n", bad.join("\n"));
}

#[test]
fn layers_are_respected() {
    let bad = layer_violations(&sources());
    check("modules using a higher layer or a peer (see LAYERS)", bad);
}

#[test]
fn no_cycles_between_top_level_modules() {
    check("cycles between top-level modules", cycles(&sources()));
}

#[test]
fn egui_only_in_ui() {
    let bad = foreign_paths(&sources(), GUI_CRATES, "src/ui/");
    check("GUI crates named outside src/ui/", bad);
}

#[test]
fn script_language_only_in_script() {
    let bad = foreign_paths(&sources(), SCRIPT_CRATES, "src/script/");
    check("the script language named outside src/script/", bad);
}

/// Fake source files, each after a `--- path` line.
fn fake(tree: &str) -> Vec<(String, String)> {
    let file = |f: &str| f.split_once('\n').map(|(p, s)| (p.into(), s.into()));
    tree.split("\n--- ").skip(1).filter_map(file).collect()
}

/// Every rule kept, with comments, strings, chars and lifetimes that could fool the tokenizer.
const CLEAN: &str = r#"
--- src/lib.rs
pub mod ui; use crate::ui::run; // lib.rs and main.rs are exempt
--- src/schema/mod.rs
//! Not `crate::ops`, not rhai::Engine.
--- src/project/mod.rs
use crate::schema::OpKind; const R: &str = r"\"; const S: &str = "crate::ops \" rhai::X";
--- src/engine/mod.rs
use crate::{project::{self, Node}, net,
    schema::OpKind}; const C: char = '"'; const D: &str = "crate::ui";
--- src/script/mod.rs
use rhai::Dynamic; use crate::engine::World; fn f<'a>(_: &'a str) -> char { '\'' }
--- src/ops/mod.rs
use crate::script::Host; /* crate::ui */ let t = crate::engine::now();
--- src/headless.rs
use crate::runner::Runner;
--- src/ui/mod.rs
use egui::Ui; use crate::runner::Runner;
--- src/cli.rs
pub(crate) fn f() { crate::ui::run(crate::DEFAULT_PROJECT) }
"#;

/// Breaks every rule.
const BAD: &str = r"
--- src/project/x.rs
use crate::ops::OpKind;
--- src/engine/z.rs
use crate::{
    schema,
    ui::{A, B},
};
use egui;
--- src/ops/y.rs
fn f(x: rhai::Map) { crate::cli::g() }
use crate::project;
--- src/runner.rs
use crate::headless;
--- src/extra.rs
";

/// What all four rules report.
fn findings(files: &Files) -> Vec<String> {
    let gui = foreign_paths(files, GUI_CRATES, "src/ui/");
    let script = foreign_paths(files, SCRIPT_CRATES, "src/script/");
    [layer_violations(files), cycles(files), gui, script].concat()
}

#[test]
fn checker_passes_a_clean_tree_and_reports_violations() {
    let mut files = fake(CLEAN);
    assert_eq!(files.len(), 9);
    assert_eq!(findings(&files), [""; 0]);

    files.extend(fake("\n--- src/project/x.rs\nuse crate::ops::OpKind;"));
    let up = "src/project/x.rs:1: use crate::ops::OpKind;    [project (1) -> ops (5)]";
    assert_eq!(layer_violations(&files), [up]);
    let cycle = "cycle: engine -> project -> ops -> engine";
    assert!(cycles(&files).contains(&cycle.to_string()));

    assert_eq!(
        findings(&fake(BAD)),
        [
            // layers
            "src/extra.rs: `extra` is not in LAYERS",
            up,
            "src/engine/z.rs:3: ui::{A, B},    [engine (3) -> ui (7)]",
            "src/ops/y.rs:1: fn f(x: rhai::Map) { crate::cli::g() }    [ops (5) -> cli (7)]",
            "src/runner.rs:1: use crate::headless;    [runner (6) -> headless (6)]",
            // cycles
            "cycle: ops -> project -> ops",
            "ops -> project:",
            "    src/ops/y.rs:2: use crate::project;",
            "project -> ops:",
            "    src/project/x.rs:1: use crate::ops::OpKind;",
            // egui, the script language
            "src/engine/z.rs:5: use egui;",
            "src/ops/y.rs:1: fn f(x: rhai::Map) { crate::cli::g() }",
        ]
    );
}
