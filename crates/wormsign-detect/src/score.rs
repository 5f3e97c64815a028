//! Scoring a [`Detection`] against ground truth: the `labels.json` that `wormsign synth`
//! writes next to each generated capture.
//!
//! One definition, used by `wormsign bench-rules` and by the synthetic-dataset tests, so a
//! rule set scores the same everywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use wormsign_flow::FlowRecord;

use crate::model::{Detection, Role};
use crate::outcome::is_failed;

/// TCP ports of worm services whose failed first contacts count as time to detect (SMB,
/// NetBIOS, RDP, MSSQL, SSH), fixed so that the metric does not move with the rule set
/// being scored; UDP 1434 (MSSQL browser) counts too.
pub const WORM_TCP_PORTS: [u16; 5] = [445, 139, 3389, 1433, 22];

/// The ground truth of a labelled capture (`labels.json`). Unknown fields are ignored and
/// missing lists are empty.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Labels {
    /// Scenario name.
    pub scenario: String,
    /// Internal hosts infected first.
    pub patient_zero: Vec<IpAddr>,
    /// Every infected host.
    pub infected: Vec<LabelledHost>,
    /// Honeypot addresses (pass as `--honeypot`).
    pub honeypots: Vec<IpAddr>,
    /// Authorized scanners (pass as `--allowlist`); never infected.
    pub authorized_scanners: Vec<IpAddr>,
    /// Benign hosts with scanner-like or heavy traffic; never infected.
    pub benign_heavy_hitters: Vec<IpAddr>,
}

/// One infected host of the ground truth.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct LabelledHost {
    /// The host.
    pub ip: Option<IpAddr>,
    /// The infecting host (`None`: infected from outside the capture).
    pub parent: Option<IpAddr>,
    /// Infection vector (`eternalblue_smb`, `rdp_bruteforce`, ...).
    pub vector: String,
    /// First worm behaviour on the wire, RFC 3339 UTC (`2024-03-04T09:06:44.792862Z`).
    pub infected_at: String,
    /// When the host was compromised (the payload arrived), if the labels know: time to
    /// detect runs from here, since protocol evidence (an implant answering) can come
    /// before the host's first worm behaviour.
    pub compromised_at: Option<String>,
}

/// How a detection compares with the labels. Lists of addresses are sorted.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Score {
    /// Labelled infected hosts.
    pub labelled: usize,
    /// Hosts detected as infected or patient zero.
    pub detected: usize,
    /// Detected hosts that are labelled infected.
    pub true_positives: usize,
    /// `true_positives / labelled` (1 when nothing is labelled).
    pub recall: f64,
    /// `true_positives / detected` (1 when nothing is detected).
    pub precision: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Detected but not labelled.
    pub false_positives: Vec<IpAddr>,
    /// Labelled but not detected.
    pub missed: Vec<IpAddr>,
    /// The detected patient zeros are exactly the labelled ones.
    pub patient_zero_ok: bool,
    /// The detected patient zeros.
    pub patient_zero: Vec<IpAddr>,
    /// Labelled infection edges (parent, child).
    pub labelled_edges: usize,
    /// Detected propagation edges.
    pub detected_edges: usize,
    /// Detected edges that are labelled / detected edges.
    pub edge_precision: f64,
    /// Detected edges that are labelled / labelled edges.
    pub edge_recall: f64,
    /// Of the matched edges, the share whose vector agrees with the label.
    pub vector_agreement: f64,
    /// Every labelled edge detected differently or not at all, and every detected edge
    /// not labelled, one line each.
    pub edge_diffs: Vec<String>,
    /// Per detected labelled host (in address order): failed first contacts on worm
    /// services from the labelled infection time up to the detection time.
    pub ttd_failed: Vec<u64>,
    /// Per detected labelled host: detection time minus labelled infection time, seconds.
    pub ttd_secs: Vec<f64>,
    /// Median of `ttd_failed` (the lower middle value).
    pub ttd_failed_median: Option<u64>,
    /// 90th percentile of `ttd_failed` (nearest rank).
    pub ttd_failed_p90: Option<u64>,
    /// Median of `ttd_secs` (the lower middle value).
    pub ttd_secs_median: Option<f64>,
    /// 90th percentile of `ttd_secs` (nearest rank).
    pub ttd_secs_p90: Option<f64>,
    /// Authorized scanners and benign heavy hitters detected as infected.
    pub benign_infected: Vec<IpAddr>,
    /// `benign_infected.len()`.
    pub false_alarms: usize,
    /// The role of each authorized scanner, in label order (`""`: not a host of interest).
    pub scanner_roles: Vec<String>,
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 {
        1.0
    } else {
        n as f64 / d as f64
    }
}

fn sorted<T: Copy + PartialOrd>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v
}

/// The lower median.
pub fn median<T: Copy + PartialOrd>(v: &[T]) -> Option<T> {
    sorted(v).get(v.len().saturating_sub(1) / 2).copied()
}

/// The nearest-rank percentile `p` (0..=100).
pub fn percentile<T: Copy + PartialOrd>(v: &[T], p: f64) -> Option<T> {
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    sorted(v).get(rank.max(1) - 1).copied()
}

/// Nanoseconds since the epoch of an RFC 3339 UTC time `YYYY-MM-DDTHH:MM:SS[.f]Z`.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let n = |a: usize, e: usize| s.get(a..e)?.parse::<i64>().ok();
    let (y, m, d) = (n(0, 4)?, n(5, 7)?, n(8, 10)?);
    let (hh, mm, ss) = (n(11, 13)?, n(14, 16)?, n(17, 19)?);
    let frac = &s[19..s.len() - 1];
    let frac_ns = match frac.strip_prefix('.') {
        None if frac.is_empty() => 0,
        Some(digits) if !digits.is_empty() && digits.len() <= 9 => {
            digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000_000 + frac_ns)
}

fn is_worm_service(f: &FlowRecord) -> bool {
    (f.proto == 6 && WORM_TCP_PORTS.contains(&f.resp_port))
        || (f.proto == 17 && f.resp_port == 1434)
}

/// Scores `d` against `labels`. `flows` are the flows detection ran on (for time to detect
/// in failed first contacts: per host, its first flow to each distinct address on a worm
/// service, counted when it failed between the labelled infection time and detection).
pub fn score(d: &Detection, labels: &Labels, flows: &[FlowRecord]) -> Score {
    let infected_role = |r: Role| matches!(r, Role::PatientZero | Role::Infected);
    let detected: BTreeMap<IpAddr, Option<i64>> = d
        .hosts
        .iter()
        .filter(|h| infected_role(h.role))
        .map(|h| (h.ip, h.first_malicious_at))
        .collect();
    let labelled: BTreeMap<IpAddr, &LabelledHost> = labels
        .infected
        .iter()
        .filter_map(|h| Some((h.ip?, h)))
        .collect();
    let tp = detected
        .keys()
        .filter(|ip| labelled.contains_key(ip))
        .count();
    let mut s = Score {
        labelled: labelled.len(),
        detected: detected.len(),
        true_positives: tp,
        recall: ratio(tp, labelled.len()),
        precision: ratio(tp, detected.len()),
        false_positives: detected
            .keys()
            .filter(|ip| !labelled.contains_key(ip))
            .copied()
            .collect(),
        missed: labelled
            .keys()
            .filter(|ip| !detected.contains_key(ip))
            .copied()
            .collect(),
        ..Score::default()
    };
    s.f1 = if s.recall + s.precision > 0.0 {
        2.0 * s.recall * s.precision / (s.recall + s.precision)
    } else {
        0.0
    };
    let zeros: BTreeSet<IpAddr> = d.patient_zeros().into_iter().collect();
    s.patient_zero_ok = zeros == labels.patient_zero.iter().copied().collect();
    s.patient_zero = zeros.into_iter().collect();

    // Infection edges.
    let lab_edges: BTreeMap<(IpAddr, IpAddr), &str> = labelled
        .iter()
        .filter_map(|(ip, h)| Some(((h.parent?, *ip), h.vector.as_str())))
        .collect();
    let det_edges: BTreeMap<(IpAddr, IpAddr), &str> = d
        .edges
        .iter()
        .map(|e| ((e.parent, e.child), e.vector.as_str()))
        .collect();
    let matched: Vec<&(IpAddr, IpAddr)> = det_edges
        .keys()
        .filter(|k| lab_edges.contains_key(*k))
        .collect();
    s.labelled_edges = lab_edges.len();
    s.detected_edges = det_edges.len();
    s.edge_precision = ratio(matched.len(), det_edges.len());
    s.edge_recall = ratio(matched.len(), lab_edges.len());
    s.vector_agreement = ratio(
        matched
            .iter()
            .filter(|k| lab_edges[**k] == det_edges[**k])
            .count(),
        matched.len(),
    );
    for (k, v) in &lab_edges {
        if det_edges.get(k) != Some(v) {
            s.edge_diffs.push(format!(
                "labelled {} -> {} ({v}), detected {:?}",
                k.0,
                k.1,
                det_edges.get(k)
            ));
        }
    }
    for (k, v) in &det_edges {
        if !lab_edges.contains_key(k) {
            s.edge_diffs
                .push(format!("detected {} -> {} ({v}), not labelled", k.0, k.1));
        }
    }

    // Time to detect, in seconds and in failed first contacts.
    let mut by_src: BTreeMap<IpAddr, Vec<&FlowRecord>> = BTreeMap::new();
    for f in flows.iter().filter(|f| is_worm_service(f)) {
        if labelled.contains_key(&f.orig_addr) && detected.contains_key(&f.orig_addr) {
            by_src.entry(f.orig_addr).or_default().push(f);
        }
    }
    for (ip, det_at) in &detected {
        let (Some(h), Some(det_at)) = (labelled.get(ip), det_at) else {
            continue;
        };
        let since = h.compromised_at.as_deref().unwrap_or(&h.infected_at);
        let Some(t0) = parse_rfc3339(since) else {
            continue;
        };
        s.ttd_secs.push((det_at - t0) as f64 / 1e9);
        let mut mine = by_src.remove(ip).unwrap_or_default();
        mine.sort_by_key(|f| (f.ts_first, f.first_packet));
        let mut seen = BTreeSet::new();
        let mut failed = 0;
        for f in mine {
            if seen.insert(f.resp_addr) && f.ts_first >= t0 && f.ts_first <= *det_at && is_failed(f)
            {
                failed += 1;
            }
        }
        s.ttd_failed.push(failed);
    }
    s.ttd_failed_median = median(&s.ttd_failed);
    s.ttd_failed_p90 = percentile(&s.ttd_failed, 90.0);
    s.ttd_secs_median = median(&s.ttd_secs);
    s.ttd_secs_p90 = percentile(&s.ttd_secs, 90.0);

    // Benign hosts.
    let roles: BTreeMap<IpAddr, Role> = d.hosts.iter().map(|h| (h.ip, h.role)).collect();
    let benign: BTreeSet<IpAddr> = labels
        .authorized_scanners
        .iter()
        .chain(&labels.benign_heavy_hitters)
        .copied()
        .collect();
    s.benign_infected = benign
        .into_iter()
        .filter(|ip| roles.get(ip).is_some_and(|r| infected_role(*r)))
        .collect();
    s.false_alarms = s.benign_infected.len();
    s.scanner_roles = labels
        .authorized_scanners
        .iter()
        .map(|ip| roles.get(ip).map_or("", |r| r.as_str()).to_string())
        .collect();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2017-05-18T08:06:13.281123Z"),
            Some(1_495_094_773_281_123_000)
        );
        assert_eq!(parse_rfc3339("2017-05-18 08:06:13Z"), None);
        assert_eq!(parse_rfc3339("2017-05-18T08:06:13.Z"), None);
    }

    #[test]
    fn percentiles() {
        assert_eq!(median::<u64>(&[]), None);
        assert_eq!(median(&[3, 1, 2, 4]), Some(2));
        assert_eq!(percentile(&[5, 1, 2, 3, 4, 6, 7, 8, 9, 10], 90.0), Some(9));
        assert_eq!(percentile(&[1.5], 90.0), Some(1.5));
    }

    #[test]
    fn empty_detection_against_empty_labels_is_perfect() {
        let s = score(&Detection::default(), &Labels::default(), &[]);
        assert_eq!((s.recall, s.precision, s.f1), (1.0, 1.0, 1.0));
        assert!(s.patient_zero_ok);
        assert_eq!(s.false_alarms, 0);
    }
}
