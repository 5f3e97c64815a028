//! The propagation graph as a picture: an SVG with generations left to right (no
//! JavaScript, readable for a hundred hosts), and the same graph in Graphviz DOT.

use std::fmt::Write as _;
use std::net::IpAddr;

use hashbrown::{HashMap, HashSet};

use crate::model::{Detection, HostRow, Role};
use crate::report::format_ts;

const COLUMN: i64 = 230;
const ROW: i64 = 34;
const NODE_W: i64 = 170;
const NODE_H: i64 = 26;
const MARGIN: i64 = 20;

/// A node of the drawing: an infected host, or an outside parent (column 0).
struct Node<'d> {
    ip: IpAddr,
    /// Column: the generation, shifted right by one when outside parents are drawn.
    column: i64,
    row: i64,
    host: Option<&'d HostRow>,
}

/// Infected hosts by generation (outside parents first). Each column lists the children
/// of the previous column's first node, then of its second, and so on, each parent's
/// children in infection order, so that edges cross as little as they can.
fn layout(d: &Detection) -> Vec<Node<'_>> {
    let infected_ips: HashSet<IpAddr> = d
        .hosts
        .iter()
        .filter(|h| h.role.is_infected())
        .map(|h| h.ip)
        .collect();
    let mut outside: Vec<IpAddr> = d
        .edges
        .iter()
        .map(|e| e.parent)
        .filter(|p| !infected_ips.contains(p))
        .collect();
    outside.sort();
    outside.dedup();
    let shift = i64::from(!outside.is_empty());
    let mut nodes: Vec<Node<'_>> = outside
        .iter()
        .enumerate()
        .map(|(row, &ip)| Node {
            ip,
            column: 0,
            row: row as i64,
            host: None,
        })
        .collect();
    // `hosts` lists infected hosts in infection order.
    let mut infected: Vec<(usize, &HostRow)> = d
        .hosts
        .iter()
        .filter(|h| h.role.is_infected())
        .enumerate()
        .collect();
    infected.sort_by_key(|&(order, h)| (h.generation.unwrap_or(0), order));
    let mut row_of: HashMap<IpAddr, i64> = nodes.iter().map(|n| (n.ip, n.row)).collect();
    for generation in infected.chunk_by(|a, b| a.1.generation == b.1.generation) {
        let mut column: Vec<&(usize, &HostRow)> = generation.iter().collect();
        let parent_row = |h: &HostRow| h.parent.and_then(|p| row_of.get(&p).copied());
        column.sort_by_key(|&&(order, h)| (parent_row(h).unwrap_or(-1), order));
        for (row, &&(_, h)) in column.iter().enumerate() {
            let node = Node {
                ip: h.ip,
                column: i64::from(h.generation.unwrap_or(0)) + shift,
                row: row as i64,
                host: Some(h),
            };
            row_of.insert(h.ip, node.row);
            nodes.push(node);
        }
    }
    nodes
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The propagation graph as a standalone SVG document (empty graph: a one-line note).
/// Each infected host is a `<g class="node infected">` (outside parents:
/// `node external`), each edge a `<path class="edge">` with the vector as its title.
pub fn render_graph_svg(d: &Detection) -> String {
    let nodes = layout(d);
    let at: HashMap<IpAddr, (i64, i64)> = nodes
        .iter()
        .map(|n| (n.ip, (MARGIN + n.column * COLUMN, MARGIN + n.row * ROW)))
        .collect();
    let columns = nodes.iter().map(|n| n.column + 1).max().unwrap_or(0);
    let rows = nodes.iter().map(|n| n.row + 1).max().unwrap_or(1);
    let width = 2 * MARGIN + (columns - 1).max(0) * COLUMN + NODE_W;
    let height = 2 * MARGIN + (rows - 1) * ROW + NODE_H;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="propagation" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        o,
        "<title>Propagation graph: generations left to right</title>"
    );
    for e in &d.edges {
        let (Some(&(px, py)), Some(&(cx, cy))) = (at.get(&e.parent), at.get(&e.child)) else {
            continue;
        };
        let (x1, y1, x2, y2) = (px + NODE_W, py + NODE_H / 2, cx, cy + NODE_H / 2);
        let mid = (x1 + x2) / 2;
        let dash = if e.basis == crate::Basis::Protocol {
            ""
        } else {
            r#" stroke-dasharray="4 3""#
        };
        let _ = writeln!(
            o,
            r##"<path class="edge" d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}" fill="none" stroke="#555"{dash}><title>{} → {}: {} at {} ({} evidence)</title></path>"##,
            e.parent,
            e.child,
            escape(&e.vector),
            format_ts(e.infected_at_ns),
            e.basis.as_str()
        );
    }
    for n in &nodes {
        let (x, y) = at[&n.ip];
        let (class, fill, label) = match n.host {
            Some(h) if h.role == Role::PatientZero => {
                ("infected patient-zero", "#f4a3a3", "patient zero")
            }
            Some(_) => ("infected", "#fbd3b0", "infected"),
            None => ("external", "#d6d6f5", "outside"),
        };
        let when = n
            .host
            .and_then(|h| h.first_malicious_at)
            .map(format_ts)
            .unwrap_or_default();
        let _ = writeln!(
            o,
            r##"<g class="node {class}"><title>{} ({label}) {when}</title><rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="5" fill="{fill}" stroke="#333"/><text x="{}" y="{}">{}</text></g>"##,
            n.ip,
            x + 8,
            y + NODE_H / 2 + 4,
            n.ip
        );
    }
    if nodes.is_empty() {
        let _ = writeln!(
            o,
            r#"<text x="{MARGIN}" y="{}">No infected host.</text>"#,
            MARGIN + 12
        );
    }
    o.push_str("</svg>\n");
    o
}

/// The propagation graph in Graphviz DOT (`dot -Tsvg propagation.dot`), left to right.
pub fn render_graph_dot(d: &Detection) -> String {
    let mut o = String::from("digraph propagation {\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fillcolor=\"#fbd3b0\"];\n");
    for h in d.hosts.iter().filter(|h| h.role.is_infected()) {
        let extra = if h.role == Role::PatientZero {
            ", fillcolor=\"#f4a3a3\""
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "  \"{}\" [label=\"{}\\ngeneration {}\"{extra}];",
            h.ip,
            h.ip,
            h.generation.unwrap_or(0)
        );
    }
    for e in &d.edges {
        let style = if e.basis == crate::Basis::Protocol {
            "solid"
        } else {
            "dashed"
        };
        let _ = writeln!(
            o,
            "  \"{}\" -> \"{}\" [label=\"{}\", style={style}];",
            e.parent, e.child, e.vector
        );
    }
    o.push_str("}\n");
    o
}
