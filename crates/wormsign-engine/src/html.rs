//! The responder's report as HTML: the subset of Markdown that `render_report` writes
//! (headings, paragraphs, nested lists, tables, `code` and **bold**), everything escaped.

use std::borrow::Cow;
use std::fmt::Write as _;

/// What HTML's special characters become, by byte; `None` for every other byte. All
/// five are ASCII, so the runs between them are whole UTF-8.
const ENTITIES: [Option<&str>; 256] = {
    let mut table = [None; 256];
    table[b'&' as usize] = Some("&amp;");
    table[b'<' as usize] = Some("&lt;");
    table[b'>' as usize] = Some("&gt;");
    table[b'"' as usize] = Some("&quot;");
    table[b'\'' as usize] = Some("&#39;");
    table
};

/// Appends `s` to `o` with HTML's special characters escaped, copying the runs between
/// them whole (a report of thousands of alerts is megabytes of text). Bytes are looked
/// up in a table: `str::find` with a set of chars decoded each char first.
fn escape_into(o: &mut String, s: &str) {
    let mut rest = s;
    let special = |(at, b): (usize, u8)| ENTITIES[usize::from(b)].map(|e| (at, e));
    while let Some((at, entity)) = rest.bytes().enumerate().find_map(special) {
        o.push_str(&rest[..at]);
        o.push_str(entity);
        rest = &rest[at + 1..];
    }
    o.push_str(rest);
}

/// `s` with HTML's special characters escaped.
fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    escape_into(&mut o, s);
    o
}

/// Appends `s` to `o` with `code` and **bold** as HTML, the rest escaped.
fn inline_into(o: &mut String, s: &str) {
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('`') {
            if let Some(end) = after.find('`') {
                o.push_str("<code>");
                escape_into(o, &after[..end]);
                o.push_str("</code>");
                rest = &after[end + 1..];
                continue;
            }
        }
        if let Some(after) = rest.strip_prefix("**") {
            if let Some(end) = after.find("**") {
                o.push_str("<strong>");
                inline_into(o, &after[..end]);
                o.push_str("</strong>");
                rest = &after[end + 2..];
                continue;
            }
        }
        // Both markers are ASCII, so `next` is a char boundary.
        let first = rest.chars().next().map_or(1, char::len_utf8);
        let next = memchr::memchr2(b'`', b'*', &rest.as_bytes()[first..])
            .map_or(rest.len(), |p| p + first);
        escape_into(o, &rest[..next]);
        rest = &rest[next..];
    }
}

/// Inline Markdown: `code` and **bold**, everything escaped.
fn inline(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    inline_into(&mut o, s);
    o
}

/// Table cells of a `| a | b |` line, trimmed; `\|` is a literal bar.
fn cells(line: &str) -> Vec<Cow<'_, str>> {
    let inner = line.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = inner.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if bytes.get(i + 1) == Some(&b'|') => i += 2,
            b'|' => {
                out.push(cell(&inner[start..i]));
                start = i + 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    out.push(cell(&inner[start..]));
    out
}

/// One cell's text, trimmed, its escaped bars made bars (a copy only then).
fn cell(text: &str) -> Cow<'_, str> {
    let text = text.trim();
    if text.contains("\\|") {
        Cow::Owned(text.replace("\\|", "|"))
    } else {
        Cow::Borrowed(text)
    }
}

/// A Markdown image line, `![alt](target)`: (alt, target).
fn image(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("![")?;
    let (alt, rest) = rest.split_once("](")?;
    Some((alt, rest.strip_suffix(')')?))
}

/// A minimal, self-contained HTML rendering of the report's Markdown (headings, lists,
/// nested lists, ordered lists, tables, paragraphs, images; `code` and **bold**). An
/// image whose target is named in `inline_svg` is replaced by that SVG document, so the
/// page needs no file beside it.
pub(crate) fn markdown_to_html(md: &str, inline_svg: &[(&str, &str)]) -> String {
    #[derive(PartialEq)]
    enum Block {
        None,
        Para,
        Ul(usize),
        Ol,
        Table,
    }
    let mut o = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Worm outbreak report</title>\n<style>\n\
         body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em;line-height:1.4}\n\
         table{border-collapse:collapse;font-size:90%}\n\
         figure{margin:1em 0;overflow-x:auto}\n\
         th,td{border:1px solid #bbb;padding:.2em .5em;text-align:left;vertical-align:top}\n\
         th{background:#eee}\ncode{background:#f4f4f4;padding:0 .2em}\n\
         </style>\n</head>\n<body>\n",
    );
    let mut block = Block::None;
    let close = |o: &mut String, block: &mut Block| {
        match block {
            Block::None => {}
            Block::Para => o.push_str("</p>\n"),
            Block::Ul(depth) => {
                for _ in 0..*depth {
                    o.push_str("</li>\n</ul>\n");
                }
            }
            Block::Ol => o.push_str("</li>\n</ol>\n"),
            Block::Table => o.push_str("</tbody>\n</table>\n"),
        }
        *block = Block::None;
    };
    for line in md.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.is_empty() {
            close(&mut o, &mut block);
        } else if let Some(h) = trimmed.strip_prefix('#').filter(|_| indent == 0) {
            close(&mut o, &mut block);
            let level = 1 + h.chars().take_while(|&c| c == '#').count().min(5);
            let _ = writeln!(
                o,
                "<h{level}>{}</h{level}>",
                inline(h.trim_start_matches('#').trim())
            );
        } else if let Some((alt, target)) = image(trimmed).filter(|_| indent == 0) {
            close(&mut o, &mut block);
            match inline_svg.iter().find(|(name, _)| *name == target) {
                Some((_, svg)) => {
                    let _ = writeln!(
                        o,
                        "<figure>\n{svg}<figcaption>{}</figcaption>\n</figure>",
                        inline(alt)
                    );
                }
                None => {
                    let _ = writeln!(
                        o,
                        "<p><img src=\"{}\" alt=\"{}\"></p>",
                        escape(target),
                        escape(alt)
                    );
                }
            }
        } else if trimmed.starts_with('|') {
            let row = cells(trimmed);
            if row
                .iter()
                .all(|c| !c.is_empty() && c.chars().all(|ch| ch == '-' || ch == ':'))
            {
                continue;
            }
            if block != Block::Table {
                close(&mut o, &mut block);
                o.push_str("<table>\n<thead>\n<tr>");
                for c in &row {
                    o.push_str("<th>");
                    inline_into(&mut o, c);
                    o.push_str("</th>");
                }
                o.push_str("</tr>\n</thead>\n<tbody>\n");
                block = Block::Table;
            } else {
                o.push_str("<tr>");
                for c in &row {
                    o.push_str("<td>");
                    inline_into(&mut o, c);
                    o.push_str("</td>");
                }
                o.push_str("</tr>\n");
            }
        } else if let Some(item) = trimmed.strip_prefix("- ") {
            let depth = indent / 2 + 1;
            match block {
                Block::Ul(d) if d == depth => o.push_str("</li>\n"),
                Block::Ul(d) if d < depth => {
                    for _ in d..depth {
                        o.push_str("\n<ul>\n");
                    }
                }
                Block::Ul(d) => {
                    for _ in depth..d {
                        o.push_str("</li>\n</ul>\n");
                    }
                    o.push_str("</li>\n");
                }
                _ => {
                    close(&mut o, &mut block);
                    for _ in 0..depth {
                        o.push_str("<ul>\n");
                    }
                }
            }
            o.push_str("<li>");
            inline_into(&mut o, item);
            block = Block::Ul(depth);
        } else if let Some(item) = trimmed
            .split_once(". ")
            .filter(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .map(|(_, item)| item)
        {
            if block == Block::Ol {
                o.push_str("</li>\n");
            } else {
                close(&mut o, &mut block);
                o.push_str("<ol>\n");
            }
            o.push_str("<li>");
            inline_into(&mut o, item);
            block = Block::Ol;
        } else {
            if block == Block::Para {
                o.push('\n');
            } else {
                close(&mut o, &mut block);
                o.push_str("<p>");
            }
            inline_into(&mut o, trimmed);
            block = Block::Para;
        }
    }
    close(&mut o, &mut block);
    o.push_str("</body>\n</html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_and_structures() {
        let md = "# Title <x>\n\nSome `a<b>` and **bold & co**.\n\n- one\n  - nested\n- two\n\n\
                  1. first\n2. second\n\n| a | b |\n|---|---|\n| x \\| y | <z> |\n";
        let html = markdown_to_html(md, &[]);
        assert!(html.contains("<h1>Title &lt;x&gt;</h1>"));
        assert!(html.contains("<code>a&lt;b&gt;</code>"));
        assert!(html.contains("<strong>bold &amp; co</strong>"));
        assert!(html.contains("<li>nested</li>\n</ul>\n</li>\n<li>two</li>\n</ul>"));
        assert!(html.contains("<ol>\n<li>first</li>\n<li>second</li>\n</ol>"));
        assert!(html.contains("<td>x | y</td><td>&lt;z&gt;</td>"));
        assert!(!html.contains("<x>") && !html.contains("<z>"));
    }

    /// Every escaped byte, beside multi-byte UTF-8 and unmatched markers, which stay as
    /// they are: the exact text, not only its absence of tags.
    #[test]
    fn escapes_and_marks_up_exactly_around_multibyte_text() {
        let mut o = String::new();
        escape_into(&mut o, "é&<ü>\"'驱动人生");
        assert_eq!(o, "é&amp;&lt;ü&gt;&quot;&#39;驱动人生");
        assert_eq!(escape("plain text"), "plain text");
        assert_eq!(escape(""), "");
        assert_eq!(
            inline("人*生 `<驱>` **a&b** *x ` y** ü"),
            "人*生 <code>&lt;驱&gt;</code> <strong>a&amp;b</strong> *x ` y** ü"
        );
    }
}
