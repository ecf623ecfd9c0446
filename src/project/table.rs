//! The contents of a Table DAT: rows of string cells, with CSV/TSV import and export.

use serde::{Deserialize, Serialize};

/// Rows of cells. Row 0 is usually a heading; column 0 holds row names (as in TouchDesigner).
/// Rows may be ragged in memory; readers see the table as `num_rows x num_cols` with "" padding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    pub rows: Vec<Vec<String>>,
}

/// Files hold one row per line: each row is written as a tuple, `("key", "value")`, and read
/// back from a tuple or a list.
impl Serialize for Table {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeSeq, SerializeTuple};
        struct Row<'a>(&'a [String]);
        impl Serialize for Row<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut t = s.serialize_tuple(self.0.len())?;
                for cell in self.0 {
                    t.serialize_element(cell)?;
                }
                t.end()
            }
        }
        let mut seq = s.serialize_seq(Some(self.rows.len()))?;
        for row in &self.rows {
            seq.serialize_element(&Row(row))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Table {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Row(Vec<String>);
        impl<'de> Deserialize<'de> for Row {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Cells;
                impl<'de> serde::de::Visitor<'de> for Cells {
                    type Value = Row;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("a row of strings, like (\"a\", \"b\")")
                    }
                    fn visit_seq<A: serde::de::SeqAccess<'de>>(
                        self,
                        mut seq: A,
                    ) -> Result<Row, A::Error> {
                        let mut cells = Vec::new();
                        while let Some(cell) = seq.next_element::<String>()? {
                            cells.push(cell);
                        }
                        Ok(Row(cells))
                    }
                    fn visit_unit<E: serde::de::Error>(self) -> Result<Row, E> {
                        Ok(Row(Vec::new()))
                    }
                }
                d.deserialize_any(Cells)
            }
        }
        let rows = Vec::<Row>::deserialize(d)?;
        Ok(Table {
            rows: rows.into_iter().map(|r| r.0).collect(),
        })
    }
}

/// CSV or TSV, chosen from a file extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delimited {
    Csv,
    Tsv,
}

impl Delimited {
    /// `.csv` is comma separated; everything else is tab separated, as TouchDesigner reads it.
    pub fn from_path(path: &std::path::Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("csv") => Delimited::Csv,
            _ => Delimited::Tsv,
        }
    }

    fn byte(self) -> u8 {
        match self {
            Delimited::Csv => b',',
            Delimited::Tsv => b'\t',
        }
    }
}

impl Table {
    pub fn from_rows(rows: Vec<Vec<String>>) -> Self {
        Self { rows }
    }

    pub fn num_rows(&self) -> usize {
        self.rows.len()
    }

    pub fn num_cols(&self) -> usize {
        self.rows.iter().map(Vec::len).max().unwrap_or(0)
    }

    pub fn cell(&self, row: usize, col: usize) -> Option<&str> {
        if col >= self.num_cols() {
            return None;
        }
        let r = self.rows.get(row)?;
        Some(r.get(col).map_or("", String::as_str))
    }

    /// Writes a cell, growing the table as needed (TouchDesigner grows on `setSize`, we grow on write).
    pub fn set_cell(&mut self, row: usize, col: usize, value: String) {
        if self.rows.len() <= row {
            self.rows.resize_with(row + 1, Vec::new);
        }
        let r = &mut self.rows[row];
        if r.len() <= col {
            r.resize(col + 1, String::new());
        }
        r[col] = value;
    }

    /// Index of the first row whose column 0 equals `name`.
    pub fn row_named(&self, name: &str) -> Option<usize> {
        self.rows
            .iter()
            .position(|r| r.first().map(String::as_str) == Some(name))
    }

    /// Index of the first column whose heading (row 0) equals `name`.
    pub fn col_named(&self, name: &str) -> Option<usize> {
        self.rows.first()?.iter().position(|c| c == name)
    }

    pub fn append_row(&mut self, row: Vec<String>) -> usize {
        self.rows.push(row);
        self.rows.len() - 1
    }

    pub fn insert_row(&mut self, at: usize, row: Vec<String>) -> usize {
        let at = at.min(self.rows.len());
        self.rows.insert(at, row);
        at
    }

    pub fn delete_row(&mut self, at: usize) -> bool {
        if at < self.rows.len() {
            self.rows.remove(at);
            true
        } else {
            false
        }
    }

    /// Tab-separated columns, newline-separated rows: TouchDesigner's `dat.text` of a table.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for row in &self.rows {
            out.push_str(&row.join("\t"));
            out.push('\n');
        }
        out
    }

    pub fn parse(text: &str, format: Delimited) -> Result<Table, String> {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(format.byte())
            .has_headers(false)
            .flexible(true)
            .quoting(format == Delimited::Csv)
            .from_reader(text.as_bytes());
        let mut rows = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let record = record.map_err(|e| format!("row {}: {e}", i + 1))?;
            rows.push(record.iter().map(str::to_string).collect());
        }
        Ok(Table { rows })
    }

    pub fn write(&self, format: Delimited) -> Result<String, String> {
        let mut writer = csv::WriterBuilder::new()
            .delimiter(format.byte())
            .flexible(true)
            .quote_style(match format {
                Delimited::Csv => csv::QuoteStyle::Necessary,
                Delimited::Tsv => csv::QuoteStyle::Never,
            })
            .from_writer(Vec::new());
        for row in &self.rows {
            writer.write_record(row).map_err(|e| e.to_string())?;
        }
        let bytes = writer.into_inner().map_err(|e| e.to_string())?;
        String::from_utf8(bytes).map_err(|e| e.to_string())
    }

    pub fn load(path: &std::path::Path) -> Result<Table, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Table::parse(&text, Delimited::from_path(path))
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn save(&self, path: &std::path::Path) -> Result<(), String> {
        let text = self.write(Delimited::from_path(path))?;
        super::file::write_atomic(path, text.as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip_keeps_commas_quotes_and_newlines() {
        let t = Table::from_rows(vec![
            vec!["name".into(), "value".into()],
            vec!["a,b".into(), "say \"hi\"\nthere".into()],
        ]);
        let text = t.write(Delimited::Csv).unwrap();
        assert_eq!(Table::parse(&text, Delimited::Csv).unwrap(), t);
    }

    #[test]
    fn ron_rows_round_trip_including_one_cell_and_empty_rows() {
        let t = Table::from_rows(vec![
            vec!["only".into()],
            vec![],
            vec!["a".into(), "b".into()],
        ]);
        let text = ron::to_string(&t).unwrap();
        assert_eq!(ron::from_str::<Table>(&text).unwrap(), t, "{text}");
        assert_eq!(
            ron::from_str::<Table>(r#"[["x", "y"]]"#).unwrap().rows,
            vec![vec!["x", "y"]]
        );
    }

    #[test]
    fn tsv_reads_ragged_rows_and_pads_on_read() {
        let t = Table::parse("a\tb\tc\nd\n", Delimited::Tsv).unwrap();
        assert_eq!(t.num_rows(), 2);
        assert_eq!(t.num_cols(), 3);
        assert_eq!(t.cell(1, 2), Some(""));
        assert_eq!(t.cell(1, 3), None);
        assert_eq!(t.to_text(), "a\tb\tc\nd\n");
    }
}
