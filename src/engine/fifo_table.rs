//! The received-messages table of a WebSocket DAT: a heading row, then one row per message,
//! first in first out, clamped at max lines in O(1), with an optional raw-bytes column.

use std::collections::VecDeque;

use crate::net::{SharedStr, hex_bytes};

/// Heading of the message column (TouchDesigner does not document its names; we chose these).
pub const MESSAGE_HEADING: &str = "message";
pub const BYTES_HEADING: &str = "bytes";

/// Separates the cells of a record row inside its one string (records mode).
const CELL_SEPARATOR: char = '\u{1f}';

#[derive(Debug, Clone)]
pub struct FifoTable {
    rows: VecDeque<SharedStr>,
    /// Records mode (e.g. decoded NanoLLM frames): these headings, one string per row holding the
    /// cells joined by an ASCII unit separator. Empty: one message per row.
    record_heading: Vec<String>,
    /// Whether row 0 has a `bytes` column, where message rows show their raw bytes in hex.
    bytes_column: bool,
    /// `None` keeps every row (clamp off).
    max_lines: Option<usize>,
    /// Rows dropped by clamping since the last clear, so callers can tell how far the window moved.
    dropped: u64,
    /// Messages pushed since the table was made (clears included): readers that follow the
    /// stream (the Channels CHOP) tell new rows from old by it.
    total_pushed: u64,
}

impl FifoTable {
    pub fn new(max_lines: Option<usize>, bytes_column: bool) -> Self {
        Self {
            rows: VecDeque::with_capacity(max_lines.unwrap_or(0).min(4096)),
            record_heading: Vec::new(),
            bytes_column,
            max_lines,
            dropped: 0,
            total_pushed: 0,
        }
    }

    /// Appends a message and returns the index of the row it was written to (heading is row 0).
    pub fn push(&mut self, message: SharedStr) -> usize {
        self.total_pushed += 1;
        if let Some(max) = self.max_lines {
            if max == 0 {
                self.dropped += 1;
                return 0;
            }
            while self.rows.len() >= max {
                self.rows.pop_front();
                self.dropped += 1;
            }
        }
        self.rows.push_back(message);
        self.rows.len()
    }

    /// Switches to rows of several cells under `heading` (or back to messages with an empty
    /// heading); existing rows are cleared when the layout changes.
    pub fn set_record_heading(&mut self, heading: &[&str]) {
        if self
            .record_heading
            .iter()
            .map(String::as_str)
            .ne(heading.iter().copied())
        {
            self.record_heading = heading
                .iter()
                .map(std::string::ToString::to_string)
                .collect();
            self.rows.clear();
        }
    }

    /// Appends a row of cells (records mode); returns its row index like [`FifoTable::push`].
    pub fn push_record(&mut self, cells: &[String]) -> usize {
        let joined = cells
            .iter()
            .map(|c| c.replace(CELL_SEPARATOR, " "))
            .collect::<Vec<_>>()
            .join(&CELL_SEPARATOR.to_string());
        self.push(joined.into())
    }

    /// Changes the clamp; rows beyond the new maximum go, oldest first.
    pub fn set_max_lines(&mut self, max_lines: Option<usize>) {
        self.max_lines = max_lines;
        if let Some(max) = max_lines {
            while self.rows.len() > max {
                self.rows.pop_front();
                self.dropped += 1;
            }
        }
    }

    pub fn set_bytes_column(&mut self, on: bool) {
        self.bytes_column = on;
    }

    pub fn bytes_column(&self) -> bool {
        self.bytes_column
    }

    /// Deletes every row except the heading (the `clear` pulse).
    pub fn clear(&mut self) {
        self.rows.clear();
        self.dropped = 0;
    }

    pub fn message_rows(&self) -> usize {
        self.rows.len()
    }

    pub fn total_pushed(&self) -> u64 {
        self.total_pushed
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn num_rows(&self) -> usize {
        self.rows.len() + 1
    }

    pub fn num_cols(&self) -> usize {
        if !self.record_heading.is_empty() {
            self.record_heading.len()
        } else if self.bytes_column {
            2
        } else {
            1
        }
    }

    /// The message text of row `row` (1-based; row 0 is the heading).
    pub fn message(&self, row: usize) -> Option<&str> {
        row.checked_sub(1)
            .and_then(|i| self.rows.get(i))
            .map(tokio_tungstenite::tungstenite::Utf8Bytes::as_str)
    }

    pub fn cell(&self, row: usize, col: usize) -> Option<String> {
        if col >= self.num_cols() {
            return None;
        }
        if !self.record_heading.is_empty() {
            return if row == 0 {
                self.record_heading.get(col).cloned()
            } else {
                Some(
                    self.message(row)?
                        .split(CELL_SEPARATOR)
                        .nth(col)
                        .unwrap_or("")
                        .to_string(),
                )
            };
        }
        if row == 0 {
            return Some(
                if col == 0 {
                    MESSAGE_HEADING
                } else {
                    BYTES_HEADING
                }
                .to_string(),
            );
        }
        let message = self.message(row)?;
        Some(if col == 0 {
            message.to_string()
        } else {
            hex_bytes(message.as_bytes())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_keeping_heading_and_returns_row_index() {
        let mut t = FifoTable::new(Some(3), true);
        assert_eq!(t.push("a".into()), 1);
        assert_eq!(t.push("b".into()), 2);
        assert_eq!(t.push("c".into()), 3);
        assert_eq!(t.push("d".into()), 3);
        assert_eq!(t.num_rows(), 4);
        assert_eq!(t.cell(0, 0).as_deref(), Some("message"));
        assert_eq!(t.cell(1, 0).as_deref(), Some("b"));
        assert_eq!(t.cell(3, 1).as_deref(), Some("64"));
        assert_eq!(t.dropped(), 1);
        t.set_max_lines(Some(1));
        assert_eq!(t.message(1), Some("d"));
        t.clear();
        assert_eq!(t.num_rows(), 1);
    }

    #[test]
    fn records_mode_keeps_cells_apart() {
        let mut t = FifoTable::new(Some(2), true);
        t.push("old".into());
        t.set_record_heading(&["a", "b"]);
        assert_eq!(t.num_rows(), 1);
        assert_eq!(t.push_record(&["1".into(), "x\u{1f}y".into()]), 1);
        assert_eq!(
            (
                t.cell(0, 1).as_deref(),
                t.cell(1, 0).as_deref(),
                t.cell(1, 1).as_deref()
            ),
            (Some("b"), Some("1"), Some("x y"))
        );
        assert_eq!(t.num_cols(), 2);
        t.set_record_heading(&[]);
        assert_eq!((t.num_rows(), t.num_cols()), (1, 2));
    }

    #[test]
    fn unclamped_keeps_everything() {
        let mut t = FifoTable::new(None, false);
        for i in 0..1000 {
            t.push(i.to_string().into());
        }
        assert_eq!(t.message_rows(), 1000);
        assert_eq!(t.cell(1, 1), None);
    }
}
