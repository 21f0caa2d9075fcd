//! HTML as text, escaped where values go in, and the page around every view: the document, a
//! link to its style sheet and script (both kept by hand in `assets/`), the trail back.

use std::fmt::Write as _;

/// Text made safe for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The style sheet, the script and the icon, served at `ASSETS/ui.css` and `ASSETS/live.js` (and
/// written beside an export): no inline code, so the pages' content security policy can
/// forbid all of it.
pub const CSS: &str = include_str!("../assets/ui.css");
pub const JS: &str = include_str!("../assets/live.js");
pub const ICON: &str = include_str!("../assets/icon.svg");

/// A whole page: `title`, the trail of links back (`(label, href)`, the last one the page
/// itself), and `main`, the part that refreshes in place from `refresh` (when live).
pub fn page(title: &str, trail: &[(String, Option<String>)], main: &str, refresh: Option<&str>, assets: &str) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{} — ferry</title>\n<link rel=\"stylesheet\" href=\"{assets}/ui.css\">\n<link rel=\"icon\" href=\"{assets}/icon.svg\" type=\"image/svg+xml\">\n</head>\n<body>\n<header><nav aria-label=\"Breadcrumb\"><ol>",
        esc(title)
    );
    for (label, href) in trail {
        match href {
            Some(href) => {
                let _ = write!(h, "<li><a href=\"{}\">{}</a></li>", esc(href), esc(label));
            }
            None => {
                let _ = write!(h, "<li aria-current=\"page\">{}</li>", esc(label));
            }
        }
    }
    h.push_str("</ol></nav></header>\n");
    match refresh {
        Some(url) => {
            let _ = write!(h, "<main id=\"live\" data-refresh=\"{}\" aria-live=\"polite\">\n{main}</main>\n", esc(url));
            let _ = writeln!(h, "<script src=\"{assets}/live.js\" defer></script>");
        }
        None => {
            let _ = write!(h, "<main>\n{main}</main>\n");
        }
    }
    h.push_str("</body>\n</html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cannot_break_out_of_text_or_attributes() {
        assert_eq!(esc("<script>alert('x')</script> & \"q\""), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;");
    }
}
