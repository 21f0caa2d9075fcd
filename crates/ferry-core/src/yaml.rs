//! A small YAML tree with a line and column on every node, and the `Diagnostic` type that
//! validation reports. Scalars keep their source text (no early typing), so an account id
//! such as `012345678901` is never turned into a number.

use std::fmt;

use saphyr::{MarkedYamlOwned, ScalarStyle, YamlDataOwned, YamlLoader};

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// One problem in an input file: where, which field, what value, what is wrong, what to do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The field's path, e.g. `stages[1].approval.required`.
    pub field: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}: {}", self.file, self.line, self.column, self.field, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// A YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    /// A scalar's text as written; `quoted` tells `'1'` from `1`.
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Null => "null".into(),
            Kind::Scalar { text, .. } => format!("`{text}`"),
            Kind::Seq(_) => "a list".into(),
            Kind::Map(_) => "a mapping".into(),
        }
    }

    pub fn as_scalar(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }
}

/// How deep sequences and mappings may nest. A pipeline needs about ten levels; the tree is
/// built (and dropped) recursively, so a file nested thousands deep would overflow the stack.
pub const MAX_DEPTH: usize = 64;

/// The first place nesting goes deeper than `MAX_DEPTH`, found on the parser's event stream
/// (which is not recursive) before any tree is built.
fn too_deep(source: &str) -> Option<Pos> {
    use saphyr_parser::Event;
    let mut depth = 0usize;
    for event in saphyr_parser::Parser::new_from_str(source) {
        // A syntax error is reported by the real parse.
        let Ok((event, span)) = event else { return None };
        match event {
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(Pos { line: span.start.line(), column: span.start.col() + 1 });
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// A YAML syntax error as people fix it: where, what is wrong in plain words, and what to do
/// (the parser's own words kept in parentheses). A tab in an indentation is pointed at where
/// it is, which is often a line before the parser notices.
fn explain(source: &str, at: Pos, info: &str) -> (Pos, String, Option<String>) {
    let said = format!("(the YAML parser: {info})");
    let tab = source.lines().enumerate().take(at.line + 1).find_map(|(i, l)| {
        let indent = l.len() - l.trim_start_matches([' ', '\t']).len();
        l[..indent].find('\t').map(|c| Pos { line: i + 1, column: c + 1 })
    });
    if let Some(pos) = tab.filter(|_| info.contains("tab")) {
        let hint = "YAML indents with spaces only: replace the tab with spaces".to_owned();
        return (pos, format!("a tab in the indentation {said}"), Some(hint));
    }
    let indentation = [
        "did not find expected '-' indicator",
        "did not find expected key",
        "mapping values are not allowed",
        "block sequence entries are not allowed",
        "invalid indentation",
    ];
    if indentation.iter().any(|m| info.contains(m)) {
        let hint = "the keys of one mapping start in the same column, and so do the `- ` of one list's items; indent with spaces, more than the key they belong to".to_owned();
        return (at, format!("this line's indentation does not fit the lines above it {said}"), Some(hint));
    }
    if info.contains("quoted scalar") && info.contains("end of stream") {
        let hint = "end the string with the quote it starts with".to_owned();
        return (at, format!("a quoted string is never closed {said}"), Some(hint));
    }
    (at, format!("invalid YAML: {info}"), None)
}

/// Parses one YAML document. A syntax error (including a duplicate key) is one diagnostic.
pub fn parse(file: &str, source: &str) -> Result<Node, Diagnostic> {
    if let Some(pos) = too_deep(source) {
        return Err(Diagnostic {
            file: file.to_owned(),
            line: pos.line,
            column: pos.column,
            field: "(yaml)".into(),
            message: format!("sequences and mappings nest more than {MAX_DEPTH} deep here"),
            hint: Some("a pipeline file needs a handful of levels; check the indentation and the `- ` markers".into()),
        });
    }
    let mut parser = saphyr_parser::Parser::new_from_str(source);
    let mut loader: YamlLoader<'_, MarkedYamlOwned> = YamlLoader::default();
    loader.early_parse(false);
    let syntax = |e: &saphyr::ScanError| {
        let (pos, message, hint) = explain(source, Pos { line: e.marker().line(), column: e.marker().col() + 1 }, e.info());
        Diagnostic { file: file.to_owned(), line: pos.line, column: pos.column, field: "(yaml)".into(), message, hint }
    };
    parser.load(&mut loader, true).map_err(|e| syntax(&e))?;
    if let Some(e) = loader.error() {
        return Err(syntax(e));
    }
    let mut docs = loader.into_documents();
    if docs.len() > 1 {
        return Err(Diagnostic {
            file: file.to_owned(),
            line: 1,
            column: 1,
            field: "(yaml)".into(),
            message: format!("expected one YAML document, found {}", docs.len()),
            hint: Some("a pipeline file holds exactly one pipeline".into()),
        });
    }
    match docs.pop() {
        Some(doc) => Ok(convert(doc)),
        None => Ok(Node { pos: Pos { line: 1, column: 1 }, kind: Kind::Null }),
    }
}

fn convert(node: MarkedYamlOwned) -> Node {
    let pos = Pos { line: node.span.start.line(), column: node.span.start.col() + 1 };
    let kind = match node.data {
        YamlDataOwned::Representation(text, style, _tag) => {
            let quoted = matches!(style, ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted);
            let plain = matches!(style, ScalarStyle::Plain);
            if plain && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL") { Kind::Null } else { Kind::Scalar { text, quoted } }
        }
        YamlDataOwned::Value(v) => Kind::Scalar { text: format!("{v:?}"), quoted: false },
        YamlDataOwned::Sequence(items) => Kind::Seq(items.into_iter().map(convert).collect()),
        YamlDataOwned::Mapping(map) => Kind::Map(map.into_iter().map(|(k, v)| (convert(k), convert(v))).collect()),
        YamlDataOwned::Tagged(_, inner) => return convert(*inner),
        YamlDataOwned::Alias(_) | YamlDataOwned::BadValue => Kind::Null,
    };
    Node { pos, kind }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_deeper_than_the_limit_is_a_diagnostic_not_a_stack_overflow() {
        let deep = format!("stages:\n{}a\n", "- ".repeat(20_000));
        let d = parse("p.yaml", &deep).unwrap_err();
        assert_eq!((d.line, d.field.as_str()), (2, "(yaml)"));
        assert!(d.message.contains("nest more than 64 deep"), "{d:?}");
        let fine = format!("a:\n{}b\n", "- ".repeat(MAX_DEPTH - 1));
        assert!(parse("p.yaml", &fine).is_ok());
    }

    #[test]
    fn syntax_errors_are_said_in_plain_words_where_they_are() {
        let d = parse("p.yaml", "stages:\n  - name: a\n   account: dev\n").unwrap_err();
        assert!(d.message.starts_with("this line's indentation does not fit the lines above it (the YAML parser: "), "{d:?}");
        assert_eq!((d.line, d.column), (3, 4));
        assert!(d.hint.as_deref().is_some_and(|h| h.contains("indent with spaces")), "{d:?}");
        let d = parse("p.yaml", "version: 1\nname: shop\n\tstages: []\n").unwrap_err();
        assert_eq!((d.line, d.column, d.message.starts_with("a tab in the indentation")), (3, 1, true), "{d:?}");
        let d = parse("p.yaml", "name: \"shop\n").unwrap_err();
        assert!(d.message.starts_with("a quoted string is never closed"), "{d:?}");
    }

    #[test]
    fn keeps_source_text_and_positions() {
        let n = parse("p.yaml", "a: 012345678901\nb:\n  - 'x'\n").unwrap();
        let Kind::Map(m) = n.kind else { panic!("not a map") };
        assert_eq!(m[0].1.as_scalar(), Some("012345678901"));
        assert_eq!(m[1].0.pos, Pos { line: 2, column: 1 });
        let Kind::Seq(s) = &m[1].1.kind else { panic!("not a seq") };
        assert_eq!(s[0].pos, Pos { line: 3, column: 5 });
        assert_eq!(s[0].kind, Kind::Scalar { text: "x".into(), quoted: true });
    }

    #[test]
    fn duplicate_keys_are_syntax_errors_with_a_position() {
        let d = parse("p.yaml", "a: 1\na: 2\n").unwrap_err();
        assert_eq!(d.line, 2);
    }
}
