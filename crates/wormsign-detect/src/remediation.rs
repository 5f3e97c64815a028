//! Remediation lists: one row per host and action, with the urgency tier it is due in
//! and the alerts it rests on, for the people who go and find the machines.
//!
//! | action | host | tier |
//! |---|---|---|
//! | `isolate` | infected (patient zero or infected) | hour |
//! | `block_cnc` | a C&C address hosts connected to | hour |
//! | `patch_ms17_010` | an MS17-010 exploit reached it, or its DoublePulsar implant answered | hour if infected, else day |
//! | `reset_password` | a guessed login on it succeeded (the account where shown) | hour if infected, else day |
//! | `close_exposed_service` | completed sessions from outside on a worm service | day |
//! | `check_host` | attacked by an infected host or attacker, no infection seen | week |
//! | `weak_password_campaign` | passwords guessed on it without success | month |
//! | `review_exposure` | answered worm-service sessions across zones, not infected | month |
//! | `review_allowlist` | an allowlisted host scanned or guessed passwords | month |

use std::collections::BTreeMap;
use std::net::IpAddr;

use hashbrown::HashMap;
use indexmap::IndexSet;

use crate::lookup::ByAddress;
use crate::model::{Alert, Detection, Role, Rule, Tier};
use crate::timeline::{EventKind, TimelineEvent};

/// What to do about a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Take it off the network.
    Isolate,
    /// Block the address at the firewall.
    BlockCnc,
    /// Install MS17-010 and disable SMBv1.
    PatchMs17010,
    /// Reset the password of the account a guessed login used.
    ResetPassword,
    /// Close the service to the internet (RDP behind a gateway, no SMB or MSSQL).
    CloseExposedService,
    /// Check the host for compromise: it was attacked.
    CheckHost,
    /// Enforce strong passwords: passwords were guessed on it.
    WeakPasswordCampaign,
    /// Review which zones may reach its worm services.
    ReviewExposure,
    /// Confirm that the allowlisted scanner is still authorized.
    ReviewAllowlist,
}

impl Action {
    /// Name used in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Isolate => "isolate",
            Action::BlockCnc => "block_cnc",
            Action::PatchMs17010 => "patch_ms17_010",
            Action::ResetPassword => "reset_password",
            Action::CloseExposedService => "close_exposed_service",
            Action::CheckHost => "check_host",
            Action::WeakPasswordCampaign => "weak_password_campaign",
            Action::ReviewExposure => "review_exposure",
            Action::ReviewAllowlist => "review_allowlist",
        }
    }
}

/// One host and one thing to do about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Remediation {
    /// The host.
    pub host: IpAddr,
    /// What to do.
    pub action: Action,
    /// When it is due.
    pub tier: Tier,
    /// What for: the account, the service, the exploit, who attacked it.
    pub detail: String,
    /// The alerts it rests on, in id order.
    pub alert_ids: Vec<String>,
    /// The host's name, where the traffic shows one (see [`crate::Identity`]).
    pub host_name: Option<String>,
    /// The host's MAC address, where ARP shows it.
    pub mac: Option<String>,
}

/// The rows being gathered: one per (host, action), alerts merged, and each row's
/// details once each in the order first seen. The details are a set beside the row: a
/// server exploited or guessed at from thousands of hosts has a detail per host, and
/// looking each up in the joined text was quadratic in them.
#[derive(Default)]
struct Rows(BTreeMap<(IpAddr, Action), (Remediation, IndexSet<String>)>);

impl Rows {
    /// Counts `alert` in the row of (`host`, `action`), with its `detail`.
    fn add(&mut self, host: IpAddr, action: Action, tier: Tier, detail: String, alert: &Alert) {
        let details = self.row(host, action, tier, alert);
        if !detail.is_empty() {
            details.insert(detail);
        }
    }

    /// [`Rows::add`] for a detail that depends on the row alone (its host and action),
    /// worked out when the row is made rather than for every alert: an infected scanner
    /// has one row for thousands of alerts.
    fn add_to_row(
        &mut self,
        host: IpAddr,
        action: Action,
        tier: Tier,
        detail: impl FnOnce() -> String,
        alert: &Alert,
    ) {
        let details = self.row(host, action, tier, alert);
        if details.is_empty() {
            details.insert(detail());
        }
    }

    /// The details of the row of (`host`, `action`), made if new, once `alert` (due
    /// within `tier`) is counted in it.
    fn row(
        &mut self,
        host: IpAddr,
        action: Action,
        tier: Tier,
        alert: &Alert,
    ) -> &mut IndexSet<String> {
        let (row, details) = self.0.entry((host, action)).or_insert_with(|| {
            let row = Remediation {
                host,
                action,
                tier,
                detail: String::new(),
                alert_ids: Vec::new(),
                host_name: None,
                mac: None,
            };
            (row, IndexSet::new())
        });
        row.tier = row.tier.min(tier);
        // Sorted and deduplicated once all rows are gathered.
        row.alert_ids.push(alert.id.clone());
        details
    }

    /// The rows, by (host, action), their details joined by "; ".
    fn into_rows(self) -> Vec<Remediation> {
        let joined = |(mut row, details): (Remediation, IndexSet<String>)| {
            row.detail = details.into_iter().collect::<Vec<_>>().join("; ");
            row
        };
        self.0.into_values().map(joined).collect()
    }
}

/// The remediation rows of a detection, sorted by `(tier, action, host)`.
pub fn remediation(d: &Detection) -> Vec<Remediation> {
    let mut rows = Rows::default();
    let by = ByAddress::new(&d.alerts, &d.edges, &d.hosts);
    let logins = login_successes(d);
    let infected = |ip: IpAddr| by.is_infected(ip);
    let due = |ip: IpAddr| if infected(ip) { Tier::Hour } else { Tier::Day };
    for a in &d.alerts {
        if a.infection_sign && infected(a.src) {
            let how = || how_infected(&by, a.src);
            rows.add_to_row(a.src, Action::Isolate, Tier::Hour, how, a);
        }
        if a.allowlisted {
            let detail = format!("{} ({})", a.rule.as_str(), a.service);
            rows.add(a.src, Action::ReviewAllowlist, Tier::Month, detail, a);
            continue;
        }
        match (a.rule, a.dst) {
            (Rule::CncIp, Some(cnc)) => {
                rows.add(cnc, Action::BlockCnc, Tier::Hour, String::new(), a);
            }
            (Rule::Exploit, Some(target)) => {
                let detail = format!("MS17-010 exploit from {}", a.src);
                rows.add(target, Action::PatchMs17010, due(target), detail, a);
            }
            (Rule::Implant, _) => {
                let detail = "DoublePulsar implant answered".to_string();
                rows.add(a.src, Action::PatchMs17010, Tier::Hour, detail, a);
            }
            (Rule::ExposedService, _) => {
                rows.add(
                    a.src,
                    Action::CloseExposedService,
                    Tier::Day,
                    a.service.clone(),
                    a,
                );
            }
            (Rule::BruteForce, Some(target)) => {
                let login = logins.get(a.id.as_str()).copied();
                brute_forced(&by, a, target, login, &mut rows);
            }
            _ => {}
        }
    }
    checks(d, &by, &mut rows);
    let mut out = rows.into_rows();
    for row in &mut out {
        row.alert_ids.sort();
        row.alert_ids.dedup();
        if row.action == Action::BlockCnc {
            // One `cnc_ip` alert per host and address.
            row.detail = format!("contacted by {} hosts", row.alert_ids.len());
        }
        if let Some(h) = by.host(row.host) {
            row.host_name.clone_from(&h.identity.host_name);
            row.mac.clone_from(&h.identity.mac);
        }
    }
    out.sort_by_key(|r| (r.tier, r.action, r.host));
    out
}

/// How an infected host got infected, for the people who will go and isolate it.
fn how_infected(by: &ByAddress<'_>, ip: IpAddr) -> String {
    match (by.host(ip).map(|h| h.role), by.edge_to(ip)) {
        (_, Some(e)) => format!("infected by {} over {}", e.parent, e.vector),
        (Some(Role::PatientZero), None) => "patient zero; entry point not visible".to_string(),
        _ => "infected".to_string(),
    }
}

/// The timeline's first login success of each brute-force alert, by alert id.
fn login_successes(d: &Detection) -> HashMap<&str, &TimelineEvent> {
    let mut by_alert = HashMap::new();
    for e in d
        .timeline
        .iter()
        .filter(|e| e.kind == EventKind::LoginSuccess)
    {
        if let Some(id) = e.alert_id.as_deref() {
            by_alert.entry(id).or_insert(e);
        }
    }
    by_alert
}

/// A brute-force alert: reset the account that a guessed login succeeded as (the
/// timeline's login success), else a weak-password campaign on the target.
fn brute_forced(
    by: &ByAddress<'_>,
    a: &Alert,
    target: IpAddr,
    login: Option<&TimelineEvent>,
    rows: &mut Rows,
) {
    match login {
        Some(e) => rows.add(
            target,
            Action::ResetPassword,
            if by.is_infected(target) {
                Tier::Hour
            } else {
                Tier::Day
            },
            e.what.clone(),
            a,
        ),
        None => {
            let detail = format!("{} ({} attempts from {})", a.service, a.attempts, a.src);
            rows.add(target, Action::WeakPasswordCampaign, Tier::Month, detail, a);
        }
    }
}

/// Attacked hosts with no infection seen (check them), and hosts that answered
/// worm-service sessions from another zone (review their exposure).
fn checks(d: &Detection, by: &ByAddress<'_>, rows: &mut Rows) {
    let first_alert_of = |ip: IpAddr| by.alerts_from(ip).next();
    for h in d.hosts.iter().filter(|h| h.role == Role::Target) {
        let attacker = by
            .alerts_to(h.ip)
            .find(|a| !a.allowlisted)
            .or_else(|| h.parent.and_then(first_alert_of));
        if let Some(a) = attacker {
            rows.add(
                h.ip,
                Action::CheckHost,
                Tier::Week,
                format!("attacked by {}", a.src),
                a,
            );
        }
    }
    for check in &d.zones {
        for s in check.completed.iter().filter(|s| !by.is_infected(s.dst)) {
            let Some(a) = first_alert_of(s.src) else {
                continue;
            };
            let detail = format!(
                "{} reachable from zone {} ({} answered {})",
                s.service, check.from_zone, s.dst, s.src
            );
            rows.add(s.dst, Action::ReviewExposure, Tier::Month, detail, a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Basis;

    fn alert(id: &str) -> Alert {
        Alert {
            id: id.to_string(),
            rule: Rule::BruteForce,
            tier: Tier::Day,
            src: IpAddr::from([10, 0, 0, 1]),
            dst: Some(IpAddr::from([10, 0, 0, 8])),
            service: "rdp".to_string(),
            first_seen_ns: 0,
            last_seen_ns: 0,
            detected_ns: 0,
            attempts: 1,
            distinct_targets: 1,
            failed_ratio: 0.0,
            allowlisted: false,
            infection_sign: false,
            evidence: String::new(),
            basis: Basis::Flow,
        }
    }

    /// Each detail once, in the order first seen, whatever it holds: the list used to
    /// be searched by splitting the joined text on "; ", which missed a repeated detail
    /// that itself contains "; ".
    #[test]
    fn a_rows_details_are_kept_once_each_in_first_seen_order() {
        let mut rows = Rows::default();
        let host = IpAddr::from([10, 0, 0, 8]);
        let details = [
            "b; with a separator",
            "a",
            "b; with a separator",
            "",
            "a",
            "c",
        ];
        for (i, detail) in details.into_iter().enumerate() {
            let a = alert(&format!("A{i}"));
            rows.add(host, Action::CheckHost, Tier::Week, detail.to_string(), &a);
        }
        let [row] = &rows.into_rows()[..] else {
            panic!("one row per host and action");
        };
        assert_eq!(row.detail, "b; with a separator; a; c");
        assert_eq!(row.alert_ids.len(), 6);
    }
}
