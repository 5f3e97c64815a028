//! The responder's report as HTML: the subset of Markdown that `render_report` writes
//! (headings, paragraphs, nested lists, tables, `code` and **bold**), everything escaped.

use std::fmt::Write as _;

fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Inline Markdown: `code` and **bold**, everything escaped.
fn inline(s: &str) -> String {
    let mut o = String::new();
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('`') {
            if let Some(end) = after.find('`') {
                let _ = write!(o, "<code>{}</code>", escape(&after[..end]));
                rest = &after[end + 1..];
                continue;
            }
        }
        if let Some(after) = rest.strip_prefix("**") {
            if let Some(end) = after.find("**") {
                let _ = write!(o, "<strong>{}</strong>", inline(&after[..end]));
                rest = &after[end + 2..];
                continue;
            }
        }
        let first = rest.chars().next().map_or(1, char::len_utf8);
        let next = rest[first..]
            .find(['`', '*'])
            .map_or(rest.len(), |p| p + first);
        o.push_str(&escape(&rest[..next]));
        rest = &rest[next..];
    }
    o
}

/// Table cells of a `| a | b |` line; `\|` is a literal bar.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().expect("non-empty").push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            c => out.last_mut().expect("non-empty").push(c),
        }
    }
    out.iter().map(|c| c.trim().to_string()).collect()
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
                    let _ = write!(o, "<th>{}</th>", inline(c));
                }
                o.push_str("</tr>\n</thead>\n<tbody>\n");
                block = Block::Table;
            } else {
                o.push_str("<tr>");
                for c in &row {
                    let _ = write!(o, "<td>{}</td>", inline(c));
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
            let _ = write!(o, "<li>{}", inline(item));
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
            let _ = write!(o, "<li>{}", inline(item));
            block = Block::Ol;
        } else {
            if block == Block::Para {
                o.push('\n');
            } else {
                close(&mut o, &mut block);
                o.push_str("<p>");
            }
            o.push_str(&inline(trimmed));
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
}
