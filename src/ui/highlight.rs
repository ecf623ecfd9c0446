//! A small syntax highlighter for the code editor: Python (callbacks), JavaScript-like code,
//! JSON, and markup tags. It colours by token (comments, strings, numbers, keywords, calls) in
//! one pass, which is all callbacks need and cheap enough to run on every keystroke.

use egui::text::{LayoutJob, TextFormat};
use egui::{Color32, FontId};

/// What the Common page's `language` parameter selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    Plain,
    Python,
    Code,
    Json,
    Markup,
}

impl Language {
    pub fn from_par(language: &str) -> Language {
        match language {
            "python" => Language::Python,
            "js" | "css" => Language::Code,
            "json" => Language::Json,
            "html" | "xml" => Language::Markup,
            _ => Language::Plain,
        }
    }
}

#[derive(Clone, Copy)]
enum Token {
    Text,
    Comment,
    Str,
    Number,
    Keyword,
    Call,
    Punct,
}

const KEYWORDS: &[&str] = &[
    "def",
    "class",
    "lambda",
    "None",
    "True",
    "False",
    "and",
    "or",
    "not",
    "is",
    "elif",
    "pass",
    "with",
    "yield",
    "from",
    "nonlocal",
    "except",
    "finally",
    "raise",
    "async",
    "await",
    "del",
    "assert",
    "fn",
    "let",
    "const",
    "if",
    "else",
    "while",
    "loop",
    "for",
    "in",
    "do",
    "until",
    "return",
    "break",
    "continue",
    "true",
    "false",
    "switch",
    "import",
    "export",
    "as",
    "private",
    "this",
    "throw",
    "try",
    "catch",
    "global",
    "is_def_var",
    "is_def_fn",
    "null",
    "var",
    "function",
    "new",
    "undefined",
    "me",
];

fn color(token: Token, dark: bool) -> Color32 {
    match (token, dark) {
        (Token::Text, true) => Color32::from_rgb(0xd4, 0xd4, 0xd4),
        (Token::Text, false) => Color32::from_rgb(0x20, 0x20, 0x20),
        (Token::Comment, true) => Color32::from_rgb(0x6a, 0x99, 0x55),
        (Token::Comment, false) => Color32::from_rgb(0x00, 0x80, 0x00),
        (Token::Str, true) => Color32::from_rgb(0xce, 0x91, 0x78),
        (Token::Str, false) => Color32::from_rgb(0xa3, 0x15, 0x15),
        (Token::Number, true) => Color32::from_rgb(0xb5, 0xce, 0xa8),
        (Token::Number, false) => Color32::from_rgb(0x09, 0x86, 0x58),
        (Token::Keyword, true) => Color32::from_rgb(0x56, 0x9c, 0xd6),
        (Token::Keyword, false) => Color32::from_rgb(0x00, 0x00, 0xff),
        (Token::Call, true) => Color32::from_rgb(0xdc, 0xdc, 0xaa),
        (Token::Call, false) => Color32::from_rgb(0x79, 0x5e, 0x26),
        (Token::Punct, true) => Color32::from_rgb(0xa0, 0xa0, 0xa0),
        (Token::Punct, false) => Color32::from_rgb(0x50, 0x50, 0x50),
    }
}

/// Lays out `text` with colours for `language`.
pub fn highlight(text: &str, language: Language, font: FontId, dark: bool) -> LayoutJob {
    let mut job = LayoutJob::default();
    let mut push = |range: &str, token: Token| {
        if range.is_empty() {
            return;
        }
        job.append(
            range,
            0.0,
            TextFormat::simple(font.clone(), color(token, dark)),
        );
    };
    match language {
        Language::Plain => push(text, Token::Text),
        Language::Code | Language::Json | Language::Python => code(text, language, &mut push),
        Language::Markup => markup(text, &mut push),
    }
    job
}

fn code(text: &str, language: Language, push: &mut impl FnMut(&str, Token)) {
    let json = language == Language::Json;
    let python = language == Language::Python;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let c = bytes[i];
        let (len, token) = if python && c == b'#' {
            (rest.find('\n').unwrap_or(rest.len()), Token::Comment)
        } else if python && (rest.starts_with("\"\"\"") || rest.starts_with("\'\'\'")) {
            let quote = &rest[..3];
            (
                rest[3..].find(quote).map_or(rest.len(), |e| e + 6),
                Token::Str,
            )
        } else if rest.starts_with("//") && !json && !python {
            (rest.find('\n').unwrap_or(rest.len()), Token::Comment)
        } else if rest.starts_with("/*") && !json && !python {
            (
                rest.find("*/").map_or(rest.len(), |e| e + 2),
                Token::Comment,
            )
        } else if c == b'"' || c == b'\'' || c == b'`' {
            (string_len(rest, c), Token::Str)
        } else if c.is_ascii_digit() {
            let len = rest
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '.' || ch == '_'))
                .unwrap_or(rest.len());
            (len, Token::Number)
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let len = rest
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .unwrap_or(rest.len());
            let word = &rest[..len];
            let token = if KEYWORDS.contains(&word) {
                Token::Keyword
            } else if rest[len..].trim_start_matches(' ').starts_with('(') {
                Token::Call
            } else {
                Token::Text
            };
            (len, token)
        } else if c.is_ascii_punctuation() {
            (1, Token::Punct)
        } else {
            // Whitespace and anything else (multi-byte characters) up to the next ASCII token.
            let len = rest
                .char_indices()
                .skip(1)
                .find(|(_, ch)| ch.is_ascii_graphic())
                .map_or(rest.len(), |(at, _)| at);
            (len, Token::Text)
        };
        let len = len.max(1);
        let end = (i + len).min(text.len());
        let end = (end..=text.len())
            .find(|e| text.is_char_boundary(*e))
            .unwrap_or(text.len());
        push(&text[i..end], token);
        i = end;
    }
}

/// Length of the string literal at the start of `rest`, quotes included (unterminated: to the
/// end of the line, so one missing quote does not colour the whole file).
fn string_len(rest: &str, quote: u8) -> usize {
    let bytes = rest.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'\n' if quote != b'`' => return i,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn markup(text: &str, push: &mut impl FnMut(&str, Token)) {
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(body) = rest.strip_prefix("<!--") {
            let end = body.find("-->").map_or(rest.len(), |e| e + 4 + 3);
            push(&rest[..end], Token::Comment);
            rest = &rest[end..];
        } else if rest.starts_with('<') {
            let end = rest.find('>').map_or(rest.len(), |e| e + 1);
            push(&rest[..end], Token::Keyword);
            rest = &rest[end..];
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            push(&rest[..end], Token::Text);
            rest = &rest[end..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sections(text: &str, language: Language) -> Vec<String> {
        let job = highlight(text, language, FontId::monospace(12.0), true);
        job.sections
            .iter()
            .map(|s| job.text[s.byte_range.start.0..s.byte_range.end.0].to_string())
            .collect()
    }

    #[test]
    fn code_keeps_every_byte_and_splits_tokens() {
        let text = "fn on(dat) { // hi\n  let s = \"a\\\"b\"; 12 + é }";
        let parts = sections(text, Language::Code);
        assert_eq!(parts.concat(), text);
        assert!(parts.contains(&"fn".to_string()));
        assert!(parts.contains(&"// hi".to_string()));
        assert!(parts.contains(&"\"a\\\"b\"".to_string()));
        assert!(parts.contains(&"12".to_string()));
    }

    #[test]
    fn python_comments_and_triple_quoted_strings() {
        let text = "def on(dat): # hi\n    s = \"\"\"a\nb\"\"\" + 'c'\n";
        let parts = sections(text, Language::Python);
        assert_eq!(parts.concat(), text);
        assert!(parts.contains(&"def".to_string()));
        assert!(parts.contains(&"# hi".to_string()));
        assert!(parts.contains(&"\"\"\"a\nb\"\"\"".to_string()));
    }

    #[test]
    fn markup_and_plain_keep_every_byte() {
        let text = "<b>x</b><!-- c --> y <";
        assert_eq!(sections(text, Language::Markup).concat(), text);
        assert_eq!(sections("plain é", Language::Plain).concat(), "plain é");
        assert_eq!(
            sections("\"unterminated", Language::Json).concat(),
            "\"unterminated"
        );
    }
}
