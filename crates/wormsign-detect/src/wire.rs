//! What one part of a detection found, as bytes: parts computed in other processes (Spark
//! tasks, for one) travel to the one that merges them.
//!
//! The encoding is postcard's over a flat copy of the findings (maps as sorted lists),
//! after a layout number. It is an exchange format between processes of the same
//! wormsign version and rules, not a file format: bytes from another version, damaged
//! ones, or findings that do not fit the rules they are merged under (a service or zone
//! they do not have) are an error, never a panic.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::config::DetectConfig;
use crate::model::{Alert, DetectStats};
use crate::part::PartsFound;
use crate::propagation::{Delivery, SessionLog};
use crate::rules::{EvidenceKey, Findings};
use crate::timeline::Note;
use crate::zones::{Tally, ZoneCrossings};

/// What one part of a detection found, for [`crate::Detector::finish_with`] to merge
/// (made by [`crate::Detector::finish_part`]).
pub struct PartFindings(pub(crate) PartsFound);

/// Bytes that are not a part's findings from this version of wormsign.
#[derive(Debug)]
pub struct PartFindingsError(String);

impl std::fmt::Display for PartFindingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a detection part's findings: {}", self.0)
    }
}

impl std::error::Error for PartFindingsError {}

/// The version of the layout below; bytes of another are refused.
const LAYOUT: u32 = 4;

#[derive(Serialize, Deserialize)]
struct Wire {
    covers: Vec<usize>,
    of: usize,
    alerts: Vec<Alert>,
    first_evidence: Vec<(EvidenceKey, i64)>,
    login_pairs: Vec<(IpAddr, IpAddr, String)>,
    deliveries: Vec<Delivery>,
    brute_success: Vec<(IpAddr, IpAddr, u64)>,
    notes: Vec<(EvidenceKey, Note)>,
    sessions: SessionLog,
    crossings: Vec<((IpAddr, u16, u16), Tally)>,
    stats: DetectStats,
}

fn sorted<T: Ord>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut v: Vec<T> = items.into_iter().collect();
    v.sort_unstable();
    v
}

impl PartFindings {
    /// The findings as bytes.
    pub fn to_bytes(self) -> Vec<u8> {
        let PartsFound {
            found,
            sessions,
            crossings,
            stats,
            covers,
            of,
        } = self.0;
        let wire = Wire {
            covers,
            of,
            alerts: found.alerts,
            first_evidence: sorted(found.first_evidence),
            login_pairs: sorted(found.login_pairs),
            deliveries: found.deliveries,
            brute_success: sorted(found.brute_success),
            notes: {
                let mut notes: Vec<_> = found.notes.into_iter().collect();
                notes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                notes
            },
            sessions,
            crossings: crossings.into_sorted(),
            stats,
        };
        let mut bytes = postcard::to_stdvec(&LAYOUT).expect("a number serializes");
        bytes.extend(postcard::to_stdvec(&wire).expect("findings always serialize"));
        bytes
    }

    /// The parts whose findings these are.
    pub fn parts(&self) -> &[usize] {
        &self.0.covers
    }

    /// How many parts the detection has.
    pub fn of(&self) -> usize {
        self.0.of
    }

    /// Findings from [`PartFindings::to_bytes`], to be merged under the rules `config`.
    pub fn from_bytes(
        bytes: &[u8],
        config: &DetectConfig,
    ) -> Result<PartFindings, PartFindingsError> {
        let error = |e: postcard::Error| PartFindingsError(e.to_string());
        let (layout, rest): (u32, _) = postcard::take_from_bytes(bytes).map_err(error)?;
        if layout != LAYOUT {
            return Err(PartFindingsError(format!(
                "layout {layout}, this version reads {LAYOUT}"
            )));
        }
        let (wire, rest): (Wire, _) = postcard::take_from_bytes(rest).map_err(error)?;
        if !rest.is_empty() {
            return Err(PartFindingsError(format!(
                "{} bytes after the end",
                rest.len()
            )));
        }
        fits(&wire, config)?;
        let found = Findings {
            alerts: wire.alerts,
            first_evidence: wire.first_evidence.into_iter().collect(),
            login_pairs: wire.login_pairs.into_iter().collect(),
            deliveries: wire.deliveries,
            brute_success: wire.brute_success.into_iter().collect(),
            notes: wire.notes.into_iter().collect(),
        };
        Ok(PartFindings(PartsFound {
            found,
            sessions: wire.sessions,
            crossings: ZoneCrossings::from_sorted(wire.crossings),
            stats: wire.stats,
            covers: wire.covers,
            of: wire.of,
        }))
    }
}

/// Whether findings fit the rules they are merged under: the graph and the segmentation
/// check index the services and zones by number, and count within each tally.
fn fits(wire: &Wire, config: &DetectConfig) -> Result<(), PartFindingsError> {
    let bad = |what: String| Err(PartFindingsError(what));
    if let Some(&p) = wire.covers.iter().find(|&&p| p >= wire.of) {
        return bad(format!("part {p} of {}", wire.of));
    }
    let services = config.services.len();
    if let Some(svc) = wire.sessions.services().find(|&s| s >= services) {
        return bad(format!(
            "a session of service {svc}; the rules have {services}"
        ));
    }
    let zones = config.zones.len();
    for ((_, from, to), t) in &wire.crossings {
        if usize::from(*from.max(to)) >= zones {
            return bad(format!(
                "a crossing of zone {}; the rules have {zones}",
                from.max(to)
            ));
        }
        if !t.adds_up() {
            return bad("a zone crossing with more outcomes than attempts".into());
        }
    }
    Ok(())
}
