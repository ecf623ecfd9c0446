//! Loading and saving `.ron` project files: stable output, atomic writes, errors with line and column.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{FORMAT_VERSION, Project, validate};

/// Why a project file could not be opened; names the file, line and column.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError {
    pub file: PathBuf,
    /// 1-based; 0 when the error has no position (e.g. the file could not be read).
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.col,
                self.message
            )
        }
    }
}

impl std::error::Error for LoadError {}

#[derive(Debug)]
pub struct SaveError {
    pub file: PathBuf,
    pub message: String,
}

impl std::fmt::Display for SaveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "could not save {}: {}",
            self.file.display(),
            self.message
        )
    }
}

impl std::error::Error for SaveError {}

pub fn load_file(path: &Path) -> Result<Project, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError {
        file: path.to_path_buf(),
        line: 0,
        col: 0,
        message: e.to_string(),
    })?;
    load_str(&text, path)
}

/// Parses and validates a project; `file` is only used to name the source in errors.
pub fn load_str(text: &str, file: &Path) -> Result<Project, LoadError> {
    let mut project: Project = ron::Options::default()
        .from_str(text)
        .map_err(|e| LoadError {
            file: file.to_path_buf(),
            line: e.span.start.line,
            col: e.span.start.col,
            message: e.code.to_string(),
        })?;
    if project.version > FORMAT_VERSION {
        return Err(LoadError {
            file: file.to_path_buf(),
            line: 1,
            col: 1,
            message: format!(
                "written by a newer datpatch (format version {}, this build reads up to {FORMAT_VERSION})",
                project.version
            ),
        });
    }
    if project.version < FORMAT_VERSION {
        // Version 1 held Rhai callbacks; loading them as Python would half-work at best.
        let line = text
            .lines()
            .position(|l| l.trim_start().starts_with("version"))
            .map_or(1, |i| i + 1);
        return Err(LoadError {
            file: file.to_path_buf(),
            line,
            col: 1,
            message: format!(
                "format version {} holds Rhai scripts, and datpatch's scripts are Python now \
                 (as TouchDesigner's): rewrite its callbacks in Python (README, Scripts) and \
                 set `version: {FORMAT_VERSION}`",
                project.version
            ),
        });
    }
    validate::validate(&mut project).map_err(|e| {
        let (line, col) = e.locate(text);
        LoadError {
            file: file.to_path_buf(),
            line,
            col,
            message: e.message,
        }
    })?;
    project.version = FORMAT_VERSION;
    Ok(project)
}

/// The text a save writes: nodes by id, wires sorted, multi-line text kept readable.
pub fn to_ron_string(project: &Project) -> Result<String, ron::Error> {
    let mut sorted = project.clone();
    sorted.normalize();
    // A Table DAT fed by a source input holds a copy, made again when the project runs.
    let mirrors: Vec<_> = sorted
        .wires
        .iter()
        .filter(|w| w.input == crate::schema::Input::Source)
        .map(|w| w.to)
        .collect();
    // Like TouchDesigner, files record only the parameters that differ from their defaults.
    for node in &mut sorted.nodes {
        if mirrors.contains(&node.id)
            && let Some(table) = &mut node.table
        {
            table.rows.clear();
        }
        let kind = node.kind;
        node.params.retain(|token, value| {
            kind.param(token)
                .and_then(super::super::schema::ParDef::default_value)
                .as_ref()
                != Some(value)
        });
    }
    let config = ron::ser::PrettyConfig::new()
        .indentor("    ")
        .new_line("\n")
        .struct_names(false)
        .escape_strings(false)
        .separate_tuple_members(false);
    let mut text = ron::ser::to_string_pretty(&sorted, config)?;
    text.push('\n');
    Ok(text)
}

/// Saves atomically: the old file stays intact unless the new one was written completely.
pub fn save_file(project: &Project, path: &Path) -> Result<(), SaveError> {
    let text = to_ron_string(project).map_err(|e| SaveError {
        file: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_atomic(path, text.as_bytes()).map_err(|e| SaveError {
        file: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, then renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
