//! What the protocol rules (`exploit`, `login_brute_force`) share: the service and vector
//! a session fact names, and alerts resting on what sessions said.

use wormsign_inspect::SessionEvent;

use super::finding::Finding;
use crate::config::DetectConfig;
use crate::model::{Alert, Basis};

const TCP: u8 = 6;

/// The name of the worm service a session fact is about (its protocol's name when the
/// port is no configured service).
pub(super) fn service_name(c: &DetectConfig, e: &SessionEvent) -> String {
    c.service_index(TCP, e.server_port).map_or_else(
        || e.protocol.as_str().to_string(),
        |i| c.services[i].name.clone(),
    )
}

/// The infection vector of a session delivering a worm: the service's brute-force
/// vector when `brute` (a guessed password), its vector otherwise.
pub(super) fn vector_of(c: &DetectConfig, e: &SessionEvent, brute: bool) -> String {
    match c.service_index(TCP, e.server_port) {
        Some(i) if brute => c.services[i].bruteforce_vector.clone(),
        Some(i) => c.services[i].vector.clone(),
        None => e.protocol.as_str().to_string(),
    }
}

/// The alert of a finding that rests on what the sessions said.
pub(super) fn protocol_alert(c: &DetectConfig, f: Finding<'_>) -> Alert {
    Alert {
        basis: Basis::Protocol,
        ..f.alert(c)
    }
}
