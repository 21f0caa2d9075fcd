//! Diagnostics as people read them, like rustc's: the `file:line:column: field: message`
//! line, then the source line with a caret under the value (or key) it is about, then the
//! hint; in colour on a terminal (`NO_COLOR` turns it off, `FERRY_COLOR=always` on). A runtime
//! error that comes from a pipeline setting is shown the same way, under a `-->` line.

use std::collections::HashMap;
use std::fmt::Write as _;

use ferry_core::yaml::Diagnostic;
use ferry_core::{Error, Origin};

/// ANSI styles, or none.
#[derive(Clone, Copy)]
pub struct Style {
    on: bool,
}

impl Style {
    pub fn new(on: bool) -> Self {
        Style { on }
    }
    fn paint(self, code: &str, text: &str) -> String {
        if self.on { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() }
    }
    fn error(self, t: &str) -> String {
        self.paint("1;31", t)
    }
    fn gutter(self, t: &str) -> String {
        self.paint("1;34", t)
    }
    fn caret(self, t: &str) -> String {
        self.paint("1;31", t)
    }
    fn hint(self, t: &str) -> String {
        self.paint("1;36", t)
    }
}

/// How many characters from `column` (1-based) the value there spans: a quoted string to its
/// closing quote, otherwise up to a space, `,`, `]`, `}` or a key's `:`.
fn span(line: &str, column: usize) -> usize {
    let rest: Vec<char> = line.chars().skip(column.saturating_sub(1)).collect();
    match rest.first() {
        None => 1,
        Some(q @ ('"' | '\'')) => rest.iter().skip(1).position(|c| c == q).map_or(rest.len(), |i| i + 2),
        Some(_) => {
            let mut n = 0;
            while n < rest.len() {
                let c = rest[n];
                if c.is_whitespace() || ",]}#".contains(c) || (c == ':' && rest.get(n + 1).is_none_or(|c| c.is_whitespace())) {
                    break;
                }
                n += 1;
            }
            n.max(1)
        }
    }
}

/// A regular file no larger than a pipeline may be (never a FIFO or a device: reading one
/// could hang), or nothing.
fn read_source(path: &std::path::Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > ferry_core::pipeline::MAX_FILE_BYTES {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

/// The source line `line` of `lines` with carets under the value at `column`, between gutters.
fn snippet(out: &mut String, lines: Option<&Vec<String>>, line: usize, column: usize, style: Style) {
    let Some(text) = lines.and_then(|l| l.get(line.checked_sub(1)?)) else { return };
    let number = line.to_string();
    let pad = " ".repeat(number.len());
    let text = text.replace('\t', " ");
    let indent = " ".repeat(column.saturating_sub(1));
    let carets = "^".repeat(span(&text, column));
    let _ = writeln!(out, "{pad} {}", style.gutter("|"));
    let _ = writeln!(out, "{} {text}", style.gutter(&format!("{number} |")));
    let _ = writeln!(out, "{pad} {} {indent}{}", style.gutter("|"), style.caret(&carets));
}

fn source_lines(file: &str) -> Option<Vec<String>> {
    read_source(std::path::Path::new(file)).map(|s| s.lines().map(str::to_owned).collect())
}

/// Where a setting is written: the `--> file:line:column (field)` line and its snippet.
pub fn origin(o: &Origin, style: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "  {} {o}", style.gutter("-->"));
    snippet(&mut out, source_lines(&o.file).as_ref(), o.line, o.column, style);
    out
}

/// A runtime error: its message, where the setting it comes from is written, its hints.
pub fn error(e: &Error, style: Style) -> String {
    let mut out = format!("{} {}\n", style.error("error:"), e.message);
    if let Some(o) = &e.origin {
        out.push_str(&origin(o, style));
    }
    for h in &e.hints {
        let _ = writeln!(out, "  {} {h}", style.hint("hint:"));
    }
    out
}

/// Every diagnostic with its snippet, then the count.
pub fn render(diags: &[Diagnostic], style: Style) -> String {
    let mut sources: HashMap<&str, Option<Vec<String>>> = HashMap::new();
    let mut out = String::new();
    for d in diags {
        let _ = writeln!(out, "{} {}:{}:{}: {}: {}", style.error("error:"), d.file, d.line, d.column, d.field, d.message);
        let lines = sources.entry(d.file.as_str()).or_insert_with(|| source_lines(&d.file));
        snippet(&mut out, lines.as_ref(), d.line, d.column, style);
        if let Some(hint) = &d.hint {
            let _ = writeln!(out, "  {} {hint}", style.hint("hint:"));
        }
    }
    let files: std::collections::BTreeSet<&str> = diags.iter().map(|d| d.file.as_str()).collect();
    let _ = writeln!(out, "{} problem(s) in {} file(s)", diags.len(), files.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caret_spans_the_value_or_key_at_the_column() {
        assert_eq!(span("version: 2", 10), 1);
        assert_eq!(span("acounts:", 1), 7);
        assert_eq!(span("  - {name: staging, account: nowhere}", 30), 7);
        assert_eq!(span("region: \"moon base\" # x", 9), 11);
        assert_eq!(span("url: https://x.example/a:b", 6), 21);
    }

    #[test]
    fn colour_is_only_painted_when_asked() {
        let d = Diagnostic {
            file: "/nonexistent/p.yaml".into(),
            line: 1,
            column: 1,
            field: "f".into(),
            message: "m".into(),
            hint: Some("h".into()),
        };
        let plain = render(std::slice::from_ref(&d), Style::new(false));
        assert_eq!(plain, "error: /nonexistent/p.yaml:1:1: f: m\n  hint: h\n1 problem(s) in 1 file(s)\n");
        let painted = render(&[d], Style::new(true));
        assert!(painted.contains("\x1b[1;31merror:\x1b[0m"), "{painted:?}");
    }
}
