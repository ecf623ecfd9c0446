//! The console log: time, level, node, text from every operator, bounded in size.

use std::collections::VecDeque;

use crate::project::NodeId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn label(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ConsoleLine {
    /// Increases by one per line ever logged, so readers can ask for what is new.
    pub seq: u64,
    /// Unix epoch milliseconds.
    pub time_ms: i64,
    pub level: Level,
    pub node: Option<NodeId>,
    /// The node's name when the line was logged (it may have been renamed or deleted since).
    pub node_name: String,
    pub text: String,
    /// Times the same line came again from the same node within a second of the previous one
    /// (kept here instead of as lines of their own, so a storm cannot flood the console).
    pub repeats: u64,
    /// When the line last came (its first time until it repeats).
    pub last_repeat_ms: i64,
}

impl std::fmt::Display for ConsoleLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.time_ms.div_euclid(1000);
        let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        write!(
            f,
            "{h:02}:{m:02}:{s:02}.{:03} {:5} ",
            self.time_ms.rem_euclid(1000),
            self.level.label()
        )?;
        if !self.node_name.is_empty() {
            write!(f, "[{}] ", self.node_name)?;
        }
        write!(f, "{}", self.text)?;
        if let Some(note) = self.repeat_note() {
            write!(f, "{note}")?;
        }
        Ok(())
    }
}

impl ConsoleLine {
    /// ` (and N more times, last HH:MM:SS)` for a line that came again, else `None`.
    pub fn repeat_note(&self) -> Option<String> {
        if self.repeats == 0 {
            return None;
        }
        let secs = self.last_repeat_ms.div_euclid(1000);
        let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        Some(format!(
            " (and {} more times, last {h:02}:{m:02}:{s:02})",
            self.repeats
        ))
    }
}

/// Repeats of a line within this long of the previous one are counted on it, not added.
const REPEAT_WINDOW_MS: i64 = 1000;

/// 10, 100, 1000, ...
fn is_power_of_ten(n: u64) -> bool {
    let mut power: u64 = 10;
    while power < n {
        match power.checked_mul(10) {
            Some(next) => power = next,
            None => return false,
        }
    }
    power == n
}

/// Keeps the newest `capacity` lines; older ones are dropped first.
#[derive(Debug)]
pub struct Console {
    lines: VecDeque<ConsoleLine>,
    capacity: usize,
    next_seq: u64,
    /// Headless runs print every line to stderr as it is logged.
    pub echo_to_stderr: bool,
}

pub const DEFAULT_CONSOLE_LINES: usize = 10_000;
/// Longest text kept per line; a script printing megabytes cannot bloat the log.
const MAX_LINE_CHARS: usize = 4096;

impl Default for Console {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CONSOLE_LINES)
    }
}

impl Console {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            lines: VecDeque::new(),
            capacity: capacity.max(1),
            next_seq: 0,
            echo_to_stderr: false,
        }
    }

    pub fn log(&mut self, level: Level, node: Option<(NodeId, &str)>, text: impl Into<String>) {
        let mut text = text.into();
        if text.len() > MAX_LINE_CHARS {
            let cut = (0..=MAX_LINE_CHARS)
                .rev()
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(0);
            text.truncate(cut);
            text.push('…');
        }
        let now_ms = crate::engine::unix_time_ms();
        let node_id = node.map(|(id, _)| id);
        if let Some(last) = self.lines.back_mut()
            && last.node == node_id
            && last.level == level
            && last.text == text
            && now_ms - last.last_repeat_ms <= REPEAT_WINDOW_MS
        {
            last.repeats += 1;
            last.last_repeat_ms = now_ms;
            // A headless run's log shows a storm going on: at 10, 100, 1000, ... repeats.
            if self.echo_to_stderr && is_power_of_ten(last.repeats) {
                eprintln!("{last}");
            }
            return;
        }
        if self.echo_to_stderr
            && let Some(last) = self.lines.back().filter(|l| l.repeats > 0)
        {
            eprintln!("{last}");
        }
        let line = ConsoleLine {
            seq: self.next_seq,
            time_ms: now_ms,
            level,
            node: node.map(|(id, _)| id),
            node_name: node.map(|(_, n)| n.to_string()).unwrap_or_default(),
            text,
            repeats: 0,
            last_repeat_ms: now_ms,
        };
        self.next_seq += 1;
        if self.echo_to_stderr {
            eprintln!("{line}");
        }
        if self.lines.len() >= self.capacity {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    pub fn lines(&self) -> impl DoubleEndedIterator<Item = &ConsoleLine> + ExactSizeIterator {
        self.lines.iter()
    }

    /// Lines with `seq >= from`.
    pub fn since(&self, from: u64) -> impl Iterator<Item = &ConsoleLine> {
        let first = self.lines.front().map_or(0, |l| l.seq);
        self.lines.iter().skip(from.saturating_sub(first) as usize)
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn clear(&mut self) {
        self.lines.clear();
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_sequenced() {
        let mut c = Console::with_capacity(3);
        for i in 0..5 {
            c.log(Level::Info, None, format!("line {i}"));
        }
        assert_eq!(c.len(), 3);
        let texts: Vec<_> = c.since(3).map(|l| l.text.clone()).collect();
        assert_eq!(texts, ["line 3", "line 4"]);
        assert_eq!(c.next_seq(), 5);
    }

    #[test]
    fn a_line_repeated_at_once_is_counted_not_added() {
        let mut c = Console::default();
        for _ in 0..50_000 {
            c.log(Level::Warn, Some((NodeId(1), "web")), "client too slow");
        }
        c.log(Level::Warn, Some((NodeId(2), "other")), "client too slow");
        c.log(Level::Warn, Some((NodeId(1), "web")), "client too slow");
        let lines: Vec<String> = c.lines().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            lines[0].contains("[web] client too slow (and 49999 more times, last "),
            "{lines:?}"
        );
        assert!(lines[2].ends_with("[web] client too slow"), "{lines:?}");
        assert_eq!(c.next_seq(), 3);
    }

    #[test]
    fn powers_of_ten_from_ten() {
        let found: Vec<u64> = (0..=1000).filter(|&n| is_power_of_ten(n)).collect();
        assert_eq!(found, [10, 100, 1000]);
        assert!(!is_power_of_ten(u64::MAX));
    }

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        let mut c = Console::default();
        c.log(Level::Info, None, "é".repeat(5000));
        let line = c.lines().next().unwrap();
        assert!(line.text.len() <= MAX_LINE_CHARS + '…'.len_utf8());
    }
}
