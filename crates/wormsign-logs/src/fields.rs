//! One log line's fields by name, whether the line was TSV under a `#fields` header or
//! a JSON object: the mappings onto rows read both the same way.

use hashbrown::HashMap;
use std::borrow::Cow;

use serde_json::{Map, Value};

/// A log line's fields.
pub(crate) trait Fields {
    /// The field's text; `None` when absent, unset (`-`, `null`) or empty.
    fn text(&self, name: &str) -> Option<Cow<'_, str>>;
    /// The items of a set or vector field (empty when absent).
    fn items(&self, name: &str) -> Vec<Cow<'_, str>>;

    /// The field as a number of type `T`.
    fn number<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        self.text(name)?.parse().ok()
    }

    /// The field as a boolean (`T`/`F` in TSV, `true`/`false` in JSON).
    fn flag(&self, name: &str) -> bool {
        matches!(self.text(name).as_deref(), Some("T" | "true"))
    }
}

/// A TSV header: the column names and the markers it declared.
#[derive(Clone, Debug)]
pub(crate) struct TsvHeader {
    pub(crate) separator: String,
    pub(crate) set_separator: String,
    pub(crate) empty_field: String,
    pub(crate) unset_field: String,
    pub(crate) columns: HashMap<String, usize>,
}

impl Default for TsvHeader {
    /// Zeek's defaults, for a header that declares only its fields.
    fn default() -> Self {
        TsvHeader {
            separator: "\t".into(),
            set_separator: ",".into(),
            empty_field: "(empty)".into(),
            unset_field: "-".into(),
            columns: HashMap::new(),
        }
    }
}

/// One TSV line under its header.
pub(crate) struct TsvFields<'a> {
    pub(crate) header: &'a TsvHeader,
    pub(crate) values: Vec<&'a str>,
}

impl TsvFields<'_> {
    fn raw(&self, name: &str) -> Option<&str> {
        let value = *self.values.get(*self.header.columns.get(name)?)?;
        (value != self.header.unset_field && value != self.header.empty_field).then_some(value)
    }
}

impl Fields for TsvFields<'_> {
    fn text(&self, name: &str) -> Option<Cow<'_, str>> {
        self.raw(name).map(unescape)
    }

    fn items(&self, name: &str) -> Vec<Cow<'_, str>> {
        self.raw(name).map_or_else(Vec::new, |v| {
            v.split(self.header.set_separator.as_str())
                .map(unescape)
                .collect()
        })
    }
}

/// Zeek's TSV escapes (`\x09`, `\x2c`, `\\`) undone.
pub(crate) fn unescape(text: &str) -> Cow<'_, str> {
    if !text.contains('\\') {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 2..i + 4)
            .and_then(|h| std::str::from_utf8(h).ok());
        let escaped = (bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x'))
            .then(|| hex.and_then(|h| u8::from_str_radix(h, 16).ok()))
            .flatten();
        match escaped {
            Some(b) => {
                out.push(b);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// One JSON object. Field names are looked up as written (`id.orig_h`, Zeek's default),
/// then as a path through nested objects and arrays (`{"id": {"orig_h": …}}`, as some
/// shippers rewrite Zeek's; `dns.answers.0.rdata` in Suricata's events).
pub(crate) struct JsonFields<'a>(pub(crate) &'a Map<String, Value>);

impl<'a> JsonFields<'a> {
    fn value(&self, name: &str) -> Option<&'a Value> {
        if let Some(v) = self.0.get(name) {
            return Some(v);
        }
        let mut parts = name.split('.');
        let mut v = self.0.get(parts.next()?)?;
        for part in parts {
            v = match v {
                Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
                _ => v.get(part)?,
            };
        }
        Some(v)
    }
}

fn scalar_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) if !s.is_empty() => Some(Cow::Borrowed(s)),
        // Integers as they are; other numbers in plain decimal (serde_json writes small
        // ones, such as a 5 µs duration, with an exponent, which the readers refuse).
        Value::Number(n) => Some(Cow::Owned(match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => format!("{f:.9}"),
            _ => n.to_string(),
        })),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

impl Fields for JsonFields<'_> {
    fn text(&self, name: &str) -> Option<Cow<'_, str>> {
        scalar_text(self.value(name)?)
    }

    fn items(&self, name: &str) -> Vec<Cow<'_, str>> {
        match self.value(name) {
            Some(Value::Array(items)) => items.iter().filter_map(scalar_text).collect(),
            Some(v) => scalar_text(v).into_iter().collect(),
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_escapes_are_undone() {
        assert_eq!(unescape("a\\x09b\\x2cc"), "a\tb,c");
        assert_eq!(unescape("plain"), "plain");
        assert_eq!(unescape("bad\\x0"), "bad\\x0");
        assert_eq!(unescape("\\xzz"), "\\xzz");
    }

    #[test]
    fn json_fields_flat_or_nested() {
        let flat: Value = serde_json::from_str(r#"{"id.orig_h":"10.0.0.1","n":5}"#).unwrap();
        let nested: Value = serde_json::from_str(r#"{"id":{"orig_h":"10.0.0.1"}}"#).unwrap();
        for v in [&flat, &nested] {
            let f = JsonFields(v.as_object().unwrap());
            assert_eq!(f.text("id.orig_h").as_deref(), Some("10.0.0.1"));
        }
        let f = JsonFields(flat.as_object().unwrap());
        assert_eq!(f.number::<u64>("n"), Some(5));
        assert_eq!(f.text("missing"), None);
    }
}
