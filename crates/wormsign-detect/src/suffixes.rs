//! A list of domain suffixes that a name is matched against in at most one hash lookup per
//! label of the name (two for a label with upper-case letters), however long the list:
//! threat-intelligence feeds list tens of thousands of domains, and every DNS message of a
//! run is matched.

use std::fmt;

use hashbrown::HashMap;
use serde::{Serialize, Serializer};

/// Domain suffixes in the order given. A name matches a suffix when it equals it, or ends
/// with `.` and the suffix, ASCII case ignored and the name's trailing dots dropped; the
/// first suffix of the list the name matches is the one reported. Equality, printing and
/// serialization see the list alone (rules files read it through `indicator_list`).
///
/// The suffixes are held as a tree of labels, read from the right (`com`, then `ackng`,
/// then `down`), so a name is matched by walking its labels from the right until the tree
/// has no branch for one: a name under a top-level domain no suffix uses costs one
/// lookup. A name matches a suffix exactly when the suffix's labels end the name's, so
/// the walk finds every suffix the name matches.
#[derive(Clone)]
pub struct DomainSuffixes {
    list: Vec<String>,
    /// The tree; the root, index 0, stands for no label.
    nodes: Vec<Node>,
}

#[derive(Clone, Default)]
struct Node {
    /// The first place in the list of the suffix whose labels lead here, if one does.
    first_at: Option<usize>,
    /// The next label to the left, in lower case.
    children: HashMap<Box<[u8]>, usize>,
    /// Bit `n` is set when a child's label is `n` bytes long (63 stands for 63 or more):
    /// a label of another length is no child, found without hashing it. A name is
    /// looked up one label at a time, and most labels lead nowhere.
    child_lengths: u64,
}

/// The bit of [`Node::child_lengths`] for a label.
fn length_bit(label: &[u8]) -> u64 {
    1 << label.len().min(63)
}

impl Default for DomainSuffixes {
    fn default() -> Self {
        DomainSuffixes {
            list: Vec::new(),
            nodes: vec![Node::default()],
        }
    }
}

impl DomainSuffixes {
    /// Adds `suffix` at the end of the list.
    pub fn push(&mut self, suffix: String) {
        let mut at = 0;
        for label in suffix
            .to_ascii_lowercase()
            .as_bytes()
            .rsplit(|&b| b == b'.')
        {
            let next = self.nodes.len();
            self.nodes[at].child_lengths |= length_bit(label);
            at = *self.nodes[at].children.entry(label.into()).or_insert(next);
            if at == next {
                self.nodes.push(Node::default());
            }
        }
        self.nodes[at].first_at.get_or_insert(self.list.len());
        self.list.push(suffix);
    }

    /// The suffixes, in the order given.
    pub fn as_slice(&self) -> &[String] {
        &self.list
    }

    /// Whether the list has no suffix.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The first suffix of the list `name` matches, if any.
    ///
    /// Every DNS message of a run is matched (and a response with addresses twice), so
    /// the common case is kept short: a label whose length no child has is not hashed,
    /// a label is scanned for upper case only when it is not found as it is, and the
    /// walk stops at a node with no children. Splitting the name with `rsplit` and
    /// scanning every label for upper case first took 405 instructions a call on the
    /// outbreak benchmark's names (`www0.site371.com`) and 228 on the dns shape's
    /// (`host577.cdn-cache.io`); this takes 247 and 162 (callgrind, at ed53f64).
    pub fn first_match(&self, name: &str) -> Option<&str> {
        let name = name.as_bytes();
        // Trailing dots dropped: the end is just past the last byte that is not one.
        let mut end = name.iter().rposition(|&b| b != b'.').map_or(0, |i| i + 1);
        let (mut at, mut first) = (0, None);
        while !self.nodes[at].children.is_empty() {
            let start = name[..end]
                .iter()
                .rposition(|&b| b == b'.')
                .map_or(0, |dot| dot + 1);
            let Some(next) = self.child(at, &name[start..end]) else {
                break;
            };
            at = next;
            if let Some(i) = self.nodes[at].first_at {
                first = Some(first.map_or(i, |f: usize| f.min(i)));
            }
            if start == 0 {
                break;
            }
            end = start - 1;
        }
        first.map(|i| self.list[i].as_str())
    }

    /// The child of node `at` for `label`, ASCII case ignored. Children are stored in
    /// lower case, so a label with an upper-case letter is only ever found lowered. The
    /// DNS decoder and the log readers store names in lower case, so the label is first
    /// looked up as it is, and scanned for upper case (then lowered and looked up again)
    /// only when that misses: a table another tool wrote, or a caller, may hold such
    /// names.
    fn child(&self, at: usize, label: &[u8]) -> Option<usize> {
        let Node {
            children,
            child_lengths,
            ..
        } = &self.nodes[at];
        if child_lengths & length_bit(label) == 0 {
            return None;
        }
        let found = children.get(label).copied();
        if found.is_none() && label.iter().any(u8::is_ascii_uppercase) {
            return children.get(&label.to_ascii_lowercase()[..]).copied();
        }
        found
    }
}

impl FromIterator<String> for DomainSuffixes {
    fn from_iter<I: IntoIterator<Item = String>>(suffixes: I) -> Self {
        let mut set = DomainSuffixes::default();
        suffixes.into_iter().for_each(|s| set.push(s));
        set
    }
}

impl Extend<String> for DomainSuffixes {
    fn extend<I: IntoIterator<Item = String>>(&mut self, suffixes: I) {
        suffixes.into_iter().for_each(|s| self.push(s));
    }
}

impl From<Vec<String>> for DomainSuffixes {
    fn from(suffixes: Vec<String>) -> Self {
        suffixes.into_iter().collect()
    }
}

impl PartialEq for DomainSuffixes {
    fn eq(&self, other: &Self) -> bool {
        self.list == other.list
    }
}

impl fmt::Debug for DomainSuffixes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.list).finish()
    }
}

impl Serialize for DomainSuffixes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.list.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suffixes(list: &[&str]) -> DomainSuffixes {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// What the list matched before it was hashed: a scan of the list in order.
    fn scanned<'a>(list: &'a [String], name: &str) -> Option<&'a str> {
        let q = name.trim_end_matches('.').as_bytes();
        list.iter()
            .find(|d| {
                let d = d.as_bytes();
                q.len() >= d.len()
                    && q[q.len() - d.len()..].eq_ignore_ascii_case(d)
                    && (q.len() == d.len() || q[q.len() - d.len() - 1] == b'.')
            })
            .map(String::as_str)
    }

    #[test]
    fn a_name_matches_a_suffix_at_a_label_boundary_only() {
        let s = suffixes(&["ackng.com", "t.awcna.com"]);
        assert_eq!(s.first_match("down.ackng.com"), Some("ackng.com"));
        assert_eq!(s.first_match("ACKNG.COM."), Some("ackng.com"));
        assert_eq!(s.first_match("T.AwCnA.com"), Some("t.awcna.com"));
        assert_eq!(s.first_match("notackng.com"), None);
        assert_eq!(s.first_match("awcna.com"), None);
        assert_eq!(s.first_match(""), None);
    }

    #[test]
    fn the_first_suffix_listed_wins() {
        let s = suffixes(&["down.ackng.com", "ackng.com", "DOWN.ackng.com"]);
        assert_eq!(s.first_match("x.down.ackng.com"), Some("down.ackng.com"));
        let s = suffixes(&["ackng.com", "down.ackng.com"]);
        assert_eq!(s.first_match("x.down.ackng.com"), Some("ackng.com"));
        // A suffix listed in upper case still matches, and is reported as listed.
        let s = suffixes(&["Evil.Example"]);
        assert_eq!(s.first_match("a.evil.example"), Some("Evil.Example"));
    }

    /// The tree answers what scanning the list in order answers: for every suffix alone,
    /// the list in order and reversed, on names and suffixes with odd dots, case,
    /// non-ASCII bytes and labels longer than DNS allows. Among the names, labels of a
    /// length no child has, labels of a child's length that are no child (as they are and
    /// lowered), and labels that are found only lowered.
    #[test]
    fn the_tree_agrees_with_scanning_the_list() {
        let long_label = "a".repeat(70);
        let long_name = format!("x.{long_label}.ackng.com");
        let long_upper = format!("x.{}.ACKNG.com", long_label.to_uppercase());
        let long_suffix = format!("{long_label}.ackng.com");
        // 63 bytes and more share one length bit: 64 passes the mask of a 70-byte label.
        let other_long_name = format!("x.{}.ackng.com", "a".repeat(64));
        let list: Vec<String> = [
            "ackng.com",
            "b.ackng.com",
            ".ackng.com",
            "ACKNG.Com",
            "ackng.com.",
            "",
            ".",
            "a..b",
            "é.example",
            "É.example",
            "a.b",
            "com",
            &long_suffix,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let names = [
            "ackng.com",
            "x.b.ackng.com",
            "X.B.Ackng.COM.",
            "..ackng.com",
            "a..ackng.com",
            ".ackng.com",
            "",
            ".",
            "..",
            "x.a..b",
            "a.b",
            "x.é.example",
            "x.É.EXAMPLE",
            "A.B",
            "xa.b",
            "example.COM.",
            "X.ACKNG.COM",
            "\u{fffd}.ackng.com",
            &long_name,
            &long_upper,
            &other_long_name,
        ];
        let reversed: Vec<String> = list.iter().rev().cloned().collect();
        let singles = list.iter().map(std::slice::from_ref);
        for suffixes in singles.chain([&list[..], &reversed[..]]) {
            let set: DomainSuffixes = suffixes.iter().cloned().collect();
            for name in names {
                assert_eq!(
                    set.first_match(name),
                    scanned(suffixes, name),
                    "{name:?} against {suffixes:?}"
                );
            }
        }
    }

    /// Rules files read and print the list (`config.rs` tests the round trip).
    #[test]
    fn equality_and_printing_see_the_list() {
        let s = suffixes(&["b.example", "a.example"]);
        assert_eq!(s, suffixes(&["b.example", "a.example"]));
        assert_ne!(s, suffixes(&["a.example", "b.example"]));
        assert_eq!(format!("{s:?}"), r#"["b.example", "a.example"]"#);
    }
}
