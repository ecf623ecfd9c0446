//! A first-in-first-out table clamped at max lines in O(1): the WebSocket DAT's received
//! messages (a heading row, one row per message, an optional raw-bytes column) and the FIFO DAT's
//! rows of cells (under an optional heading).

use std::collections::VecDeque;

use bytes::Bytes;

use crate::net::{SharedStr, hex_bytes};

/// Heading of the message column (TouchDesigner does not document its names; we chose these).
pub const MESSAGE_HEADING: &str = "message";
pub const BYTES_HEADING: &str = "bytes";

/// Separates the cells of a record row inside its one string (records mode).
const CELL_SEPARATOR: char = '\u{1f}';

/// One row: a text message (or a record's joined cells), or a binary message.
#[derive(Debug, Clone)]
enum Row {
    Text(SharedStr),
    Binary(Bytes),
}

impl Row {
    /// The message column: the text, or a binary payload's text when it is UTF-8 (else empty).
    fn text(&self) -> &str {
        match self {
            Row::Text(text) => text.as_str(),
            Row::Binary(data) => std::str::from_utf8(data).unwrap_or(""),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Row::Text(text) => text.as_bytes(),
            Row::Binary(data) => data,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FifoTable {
    rows: VecDeque<Row>,
    /// Records mode (decoded NanoLLM frames, FIFO DAT rows): one string per row holding the cells
    /// joined by an ASCII unit separator. Off: one message per row.
    records: bool,
    /// The heading of records mode (row 0); empty with `heading_row` off.
    record_heading: Vec<String>,
    /// Whether row 0 is a heading. Always on in messages mode.
    heading_row: bool,
    /// The widest record pushed since the last clear (records without a heading).
    record_width: usize,
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
            records: false,
            record_heading: Vec::new(),
            heading_row: true,
            record_width: 0,
            bytes_column,
            max_lines,
            dropped: 0,
            total_pushed: 0,
        }
    }

    /// A table of records (the FIFO DAT's): rows of cells under `heading`, or with no heading
    /// row when it is `None`.
    pub fn records(max_lines: Option<usize>, heading: Option<&[&str]>) -> Self {
        let mut table = Self::new(max_lines, false);
        table.set_records_layout(heading);
        table
    }

    /// The row index of the first message or record: 1 under a heading, else 0.
    pub fn first_row(&self) -> usize {
        usize::from(self.heading_row)
    }

    /// Appends a message and returns the index of the row it was written to (heading is row 0).
    pub fn push(&mut self, message: SharedStr) -> usize {
        self.push_row(Row::Text(message))
    }

    /// Appends a binary message: its text in the message column when it is UTF-8, its bytes in
    /// the bytes column. Returns its row index like [`FifoTable::push`].
    pub fn push_binary(&mut self, data: Bytes) -> usize {
        self.push_row(Row::Binary(data))
    }

    fn push_row(&mut self, row: Row) -> usize {
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
        self.rows.push_back(row);
        self.rows.len() - 1 + self.first_row()
    }

    /// Switches to rows of several cells under `heading` (or back to messages with an empty
    /// heading); existing rows are cleared when the layout changes.
    pub fn set_record_heading(&mut self, heading: &[&str]) {
        if heading.is_empty() {
            if self.records {
                self.records = false;
                self.record_heading.clear();
                self.heading_row = true;
                self.clear();
            }
        } else {
            self.set_records_layout(Some(heading));
        }
    }

    /// Switches to records under `heading`, or without a heading row when it is `None`; existing
    /// rows are cleared when the layout changes.
    pub fn set_records_layout(&mut self, heading: Option<&[&str]>) {
        let same = self.records
            && self.heading_row == heading.is_some()
            && self
                .record_heading
                .iter()
                .map(String::as_str)
                .eq(heading.unwrap_or_default().iter().copied());
        if !same {
            self.records = true;
            self.heading_row = heading.is_some();
            self.record_heading = heading
                .unwrap_or_default()
                .iter()
                .map(std::string::ToString::to_string)
                .collect();
            self.clear();
        }
    }

    /// Appends a row of cells (records mode); returns its row index like [`FifoTable::push`].
    pub fn push_record(&mut self, cells: &[String]) -> usize {
        self.record_width = self.record_width.max(cells.len());
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
        self.record_width = 0;
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
        self.rows.len() + self.first_row()
    }

    pub fn num_cols(&self) -> usize {
        if self.records {
            self.record_heading.len().max(self.record_width)
        } else if self.bytes_column {
            2
        } else {
            1
        }
    }

    /// The message text of row `row` (row 0 is the heading, if there is one).
    pub fn message(&self, row: usize) -> Option<&str> {
        self.row(row).map(Row::text)
    }

    fn row(&self, row: usize) -> Option<&Row> {
        row.checked_sub(self.first_row())
            .and_then(|i| self.rows.get(i))
    }

    pub fn cell(&self, row: usize, col: usize) -> Option<String> {
        if col >= self.num_cols() {
            return None;
        }
        if self.records {
            return if row == 0 && self.heading_row {
                Some(self.record_heading.get(col).cloned().unwrap_or_default())
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
        let message = self.row(row)?;
        Some(if col == 0 {
            message.text().to_string()
        } else {
            hex_bytes(message.bytes())
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
    fn records_without_heading_start_at_row_zero() {
        let mut t = FifoTable::records(Some(2), None);
        assert_eq!(t.push_record(&["a".into()]), 0);
        assert_eq!(t.push_record(&["b".into(), "c".into()]), 1);
        assert_eq!(t.push_record(&["d".into()]), 1);
        assert_eq!((t.num_rows(), t.num_cols(), t.first_row()), (2, 2, 0));
        assert_eq!(t.cell(0, 1).as_deref(), Some("c"));
        assert_eq!(t.cell(1, 0).as_deref(), Some("d"));
        assert_eq!(t.cell(1, 1).as_deref(), Some(""));
        t.set_records_layout(Some(&["x"]));
        assert_eq!((t.num_rows(), t.num_cols()), (1, 1));
        assert_eq!(t.push_record(&["1".into()]), 1);
    }

    #[test]
    fn binary_rows_show_their_text_when_utf8_and_always_their_bytes() {
        let mut t = FifoTable::new(Some(10), true);
        assert_eq!(t.push_binary(Bytes::from_static(b"hi")), 1);
        assert_eq!(t.push_binary(Bytes::from_static(&[0xff, 0x00])), 2);
        assert_eq!(t.cell(1, 0).as_deref(), Some("hi"));
        assert_eq!(t.cell(2, 0).as_deref(), Some(""));
        assert_eq!(t.cell(2, 1).as_deref(), Some("ff 00"));
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
