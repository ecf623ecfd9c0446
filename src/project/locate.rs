//! Finds where an element of a parsed project sits in its `.ron` text, so errors found after
//! parsing (duplicate names, wires to missing nodes, bad parameter values) can name line and column.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    Comma,
    Colon,
    /// An identifier or a string literal, unquoted.
    Word(String),
    Other,
}

/// Skips whitespace, comments and string contents; records each token's byte offset.
fn tokens(text: &str) -> Vec<(usize, Tok)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'(' | b'[' | b'{' => {
                out.push((i, Tok::Open));
                i += 1;
            }
            b')' | b']' | b'}' => {
                out.push((i, Tok::Close));
                i += 1;
            }
            b',' => {
                out.push((i, Tok::Comma));
                i += 1;
            }
            b':' => {
                out.push((i, Tok::Colon));
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                let mut word = Vec::new();
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    if let Some(b) = bytes.get(i) {
                        word.push(*b);
                    }
                    i += 1;
                }
                i += 1;
                out.push((
                    start,
                    Tok::Word(String::from_utf8_lossy(&word).into_owned()),
                ));
            }
            b'r' if matches!(bytes.get(i + 1), Some(b'#' | b'"')) => {
                let start = i;
                i += 1;
                let mut hashes = 0;
                while bytes.get(i) == Some(&b'#') {
                    hashes += 1;
                    i += 1;
                }
                i += 1; // opening quote
                let body_start = i;
                let closing: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                while i < bytes.len() && !bytes[i..].starts_with(&closing) {
                    i += 1;
                }
                let body =
                    String::from_utf8_lossy(&bytes[body_start..i.min(bytes.len())]).into_owned();
                i += closing.len();
                out.push((start, Tok::Word(body)));
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.' => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || matches!(bytes[i], b'_' | b'-' | b'.' | b'+'))
                {
                    i += 1;
                }
                out.push((start, Tok::Word(text[start..i].to_string())));
            }
            _ => {
                out.push((i, Tok::Other));
                // Step over one whole UTF-8 character.
                i += text[i..].chars().next().map_or(1, char::len_utf8);
            }
        }
    }
    out
}

/// Token index range `[start, end)` of each element of the list held by top-level field `field`.
fn list_elements(toks: &[(usize, Tok)], field: &str) -> Vec<(usize, usize)> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i].1 {
            Tok::Open => depth += 1,
            Tok::Close => depth = depth.saturating_sub(1),
            Tok::Word(w)
                if depth == 1
                    && w == field
                    && toks.get(i + 1).map(|t| &t.1) == Some(&Tok::Colon) =>
            {
                if toks.get(i + 2).map(|t| &t.1) != Some(&Tok::Open) {
                    return Vec::new();
                }
                return split_list(toks, i + 3);
            }
            _ => {}
        }
        i += 1;
    }
    Vec::new()
}

fn split_list(toks: &[(usize, Tok)], first: usize) -> Vec<(usize, usize)> {
    let mut elements = Vec::new();
    let mut depth = 0usize;
    let mut start = first;
    for (i, (_, tok)) in toks.iter().enumerate().skip(first) {
        match tok {
            Tok::Open => depth += 1,
            Tok::Close if depth == 0 => {
                if i > start {
                    elements.push((start, i));
                }
                return elements;
            }
            Tok::Close => depth -= 1,
            Tok::Comma if depth == 0 => {
                elements.push((start, i));
                start = i + 1;
            }
            _ => {}
        }
    }
    elements
}

/// Where an error points: a whole list element, or a key inside it.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    Start,
    Field(&'static str),
    Element {
        list: &'static str,
        index: usize,
        key: Option<String>,
    },
}

/// 1-based line and column of `location` in `text`; falls back to the enclosing element, then 1:1.
pub fn line_col(text: &str, location: &Location) -> (usize, usize) {
    let toks = tokens(text);
    let offset = match location {
        Location::Start => None,
        Location::Field(field) => toks.windows(2).find_map(|w| match (&w[0].1, &w[1].1) {
            (Tok::Word(word), Tok::Colon) if word == field => Some(w[0].0),
            _ => None,
        }),
        Location::Element { list, index, key } => {
            list_elements(&toks, list).get(*index).map(|&(start, end)| {
                key.as_ref()
                    .and_then(|key| {
                        toks[start..end]
                            .windows(2)
                            .find_map(|w| match (&w[0].1, &w[1].1) {
                                (Tok::Word(word), Tok::Colon) if word == key => Some(w[0].0),
                                _ => None,
                            })
                    })
                    .unwrap_or(toks[start].0)
            })
        }
    };
    offset.map_or((1, 1), |o| offset_to_line_col(text, o))
}

fn offset_to_line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "(\n    nodes: [\n        (id: 1, name: \"a\"),\n        // second\n        (id: 2,\n         name: r#\"b\"#, params: {\"port\": 1}),\n    ],\n    wires: [(from: 1, to: 9)],\n)\n";

    #[test]
    fn finds_elements_and_keys() {
        let at = |list, index, key: Option<&str>| {
            line_col(
                TEXT,
                &Location::Element {
                    list,
                    index,
                    key: key.map(str::to_string),
                },
            )
        };
        assert_eq!(at("nodes", 0, None), (3, 9));
        assert_eq!(at("nodes", 1, Some("name")), (6, 10));
        assert_eq!(at("nodes", 1, Some("port")), (6, 33));
        assert_eq!(at("wires", 0, Some("to")), (8, 23));
        assert_eq!(at("wires", 3, None), (1, 1));
    }
}
