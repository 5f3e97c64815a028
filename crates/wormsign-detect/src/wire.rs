//! What one part of a detection found, as bytes: parts computed in other processes (Spark
//! tasks, for one) travel to the one that merges them.
//!
//! The encoding is postcard's over a flat copy of the findings (maps as sorted lists, so
//! the same findings give the same bytes). It is an exchange format between processes of
//! the same wormsign version, not a file format: bytes from another version, or damaged
//! ones, are an error, never a panic.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

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
const LAYOUT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Wire {
    layout: u32,
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
        } = self.0;
        let wire = Wire {
            layout: LAYOUT,
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
        postcard::to_stdvec(&wire).expect("findings always serialize")
    }

    /// Findings from [`PartFindings::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<PartFindings, PartFindingsError> {
        let wire: Wire =
            postcard::from_bytes(bytes).map_err(|e| PartFindingsError(e.to_string()))?;
        if wire.layout != LAYOUT {
            return Err(PartFindingsError(format!(
                "layout {}, this version reads {LAYOUT}",
                wire.layout
            )));
        }
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
        }))
    }
}
