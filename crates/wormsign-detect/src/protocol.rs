//! The rules that read what sessions said (`sessions.parquet`, from `wormsign-inspect`)
//! rather than flow shapes:
//!
//! - **exploit**: MS17-010 exploit or DoublePulsar messages from one host to another, an
//!   hour-tier alert per source and destination (an infection sign for an internal
//!   source);
//! - **implant**: a host whose DoublePulsar implant answered is infected, whatever else
//!   is seen of it;
//! - **brute force by logins**: failed logins counted one by one (one SMB session can
//!   carry many), and "N failed, then success as X". A pair whose logins the protocol
//!   shows is judged by them alone: pooled, successful database logins are ordinary use,
//!   however short their sessions.
//!
//! It also names the sessions that *delivered* an infection, which the propagation graph
//! prefers over flow timing: the exploit that the implant then answered, or the first
//! successful login after a run of failures.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;

use hashbrown::HashSet;
use wormsign_inspect::{Fact, Outcome, SessionEvent};

use crate::config::DetectConfig;
use crate::engine::{alert, window_hit, Finding};
use crate::model::{Alert, Basis, Rule, Tier};

const TCP: u8 = 6;

/// A session that put a worm on `child`, as the protocol shows it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Delivery {
    pub ts: i64,
    pub packet: u64,
    pub parent: IpAddr,
    pub child: IpAddr,
    /// The service's vector name (`eternalblue_smb`, `smb_bruteforce`, …).
    pub vector: String,
    pub seen: String,
    /// Confirmed by the child afterwards (the implant answered, or a login succeeded
    /// after guessing): infects the child even with no behaviour of its own.
    pub confirmed: bool,
}

/// What the protocol rules found.
#[derive(Default)]
pub(crate) struct ProtocolFindings {
    pub alerts: Vec<Alert>,
    /// (client, server, service) pairs whose logins the protocol shows: the flow-shape
    /// brute-force rule stays silent on them.
    pub login_pairs: HashSet<(IpAddr, IpAddr, String)>,
    pub deliveries: Vec<Delivery>,
}

/// Runs the protocol rules over `events`, sorted by time.
pub(crate) fn run(c: &DetectConfig, events: &[&SessionEvent]) -> ProtocolFindings {
    let mut found = ProtocolFindings::default();
    exploits(c, events, &mut found);
    logins(c, events, &mut found);
    found
}

fn service_name(c: &DetectConfig, e: &SessionEvent) -> String {
    c.service_index(TCP, e.server_port).map_or_else(
        || e.protocol.as_str().to_string(),
        |i| c.services[i].name.clone(),
    )
}

fn vector_of(c: &DetectConfig, e: &SessionEvent, brute: bool) -> String {
    match c.service_index(TCP, e.server_port) {
        Some(i) if brute => c.services[i].bruteforce_vector.clone(),
        Some(i) => c.services[i].vector.clone(),
        None => e.protocol.as_str().to_string(),
    }
}

fn protocol_alert(c: &DetectConfig, f: Finding<'_>) -> Alert {
    Alert {
        basis: Basis::Protocol,
        ..alert(c, f)
    }
}

/// One alert per (source, destination) with exploit or DoublePulsar messages; one per
/// host whose implant answered; and the deliveries the implant confirms.
fn exploits(c: &DetectConfig, events: &[&SessionEvent], found: &mut ProtocolFindings) {
    let mut pairs: BTreeMap<(IpAddr, IpAddr), Vec<&SessionEvent>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.fact.is_exploit()) {
        pairs.entry((e.client, e.server)).or_default().push(e);
    }
    for (&(src, dst), markers) in &pairs {
        let count = |f: Fact, o: Option<Outcome>| {
            markers
                .iter()
                .filter(|e| e.fact == f && o.is_none_or(|o| e.outcome == o))
                .count()
        };
        let mut parts = Vec::new();
        for (fact, name) in [
            (
                Fact::EternalBlue,
                "EternalBlue sessions (TRANS2_SECONDARY continuing an NT_TRANSACT)",
            ),
            (
                Fact::EternalChampion,
                "EternalChampion sessions (NT_TRANSACT_RENAME)",
            ),
            (
                Fact::EternalSynergy,
                "EternalRomance/Synergy sessions (WRITE_ANDX on a transaction)",
            ),
            (Fact::DoublePulsar, "DoublePulsar requests"),
        ] {
            let n = count(fact, None);
            if n > 0 {
                parts.push(format!("{n} {name}"));
            }
        }
        let present = count(Fact::DoublePulsar, Some(Outcome::Present));
        if present > 0 {
            parts.push(format!("the implant answered {present}"));
        }
        let (first, last) = (markers[0].ts_ns, markers[markers.len() - 1].ts_ns);
        let service = service_name(c, markers[0]);
        found.alerts.push(protocol_alert(
            c,
            Finding {
                rule: Rule::Exploit,
                tier: Tier::Hour,
                src,
                dst: Some(dst),
                service: &service,
                first,
                last,
                detected: first,
                attempts: markers.len() as u64,
                distinct: 1,
                failed_ratio: 0.0,
                worm: true,
                evidence: format!("MS17-010 from {src} to {dst}: {}", parts.join(", ")),
            },
        ));
    }
    implants(c, events, &pairs, found);
}

/// Hosts whose DoublePulsar implant answered, and which exploit put it there: the one
/// from the host whose ping first found it, if that host exploited it before, else the
/// last exploit before it answered. Pings from siblings that find the implant already
/// there are re-exploitation, not the infection.
fn implants(
    c: &DetectConfig,
    events: &[&SessionEvent],
    pairs: &BTreeMap<(IpAddr, IpAddr), Vec<&SessionEvent>>,
    found: &mut ProtocolFindings,
) {
    let mut answered: BTreeMap<IpAddr, Vec<&SessionEvent>> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.fact == Fact::DoublePulsar && e.outcome == Outcome::Present)
    {
        answered.entry(e.server).or_default().push(e);
    }
    let is_exploit = |e: &&&SessionEvent| e.fact.is_ms17_010_exploit();
    for (&host, pings) in &answered {
        let first = pings[0];
        let probers: BTreeSet<IpAddr> = pings.iter().map(|e| e.client).collect();
        let shown: Vec<String> = probers.iter().map(IpAddr::to_string).collect();
        let service = service_name(c, first);
        found.alerts.push(protocol_alert(
            c,
            Finding {
                rule: Rule::Implant,
                tier: Tier::Hour,
                src: host,
                dst: Some(first.client),
                service: &service,
                first: first.ts_ns,
                last: pings[pings.len() - 1].ts_ns,
                detected: first.ts_ns,
                attempts: pings.len() as u64,
                distinct: probers.len() as u64,
                failed_ratio: 0.0,
                worm: true,
                evidence: format!(
                    "a DoublePulsar implant answered {} pings (from {})",
                    pings.len(),
                    shown.join(", ")
                ),
            },
        ));
        let before = |p: IpAddr| {
            pairs
                .get(&(p, host))
                .into_iter()
                .flatten()
                .filter(is_exploit)
                .rfind(|e| (e.ts_ns, e.packet) <= (first.ts_ns, first.packet))
                .copied()
        };
        let exploit = before(first.client).or_else(|| {
            events
                .iter()
                .filter(|e| e.server == host && is_exploit(e))
                .rfind(|e| (e.ts_ns, e.packet) <= (first.ts_ns, first.packet))
                .copied()
        });
        if let Some(x) = exploit {
            let name = match x.fact {
                Fact::EternalBlue => "EternalBlue exploit",
                Fact::EternalChampion => "EternalChampion exploit",
                _ => "EternalRomance/Synergy exploit",
            };
            found.deliveries.push(Delivery {
                ts: x.ts_ns,
                packet: x.packet,
                parent: x.client,
                child: host,
                vector: vector_of(c, x, false),
                seen: format!("{name}, then the DoublePulsar implant answered"),
                confirmed: true,
            });
        }
    }
    // Exploits the implant never confirmed still deliver to a host that then behaves
    // like a worm itself; the graph decides.
    for markers in pairs.values() {
        for x in markers.iter().filter(is_exploit) {
            if !answered.contains_key(&x.server) {
                found.deliveries.push(Delivery {
                    ts: x.ts_ns,
                    packet: x.packet,
                    parent: x.client,
                    child: x.server,
                    vector: vector_of(c, x, false),
                    seen: "MS17-010 exploit (no implant reply seen)".into(),
                    confirmed: false,
                });
            }
        }
    }
}

/// Brute force from login outcomes, per (client, server, service).
fn logins(c: &DetectConfig, events: &[&SessionEvent], found: &mut ProtocolFindings) {
    let mut pairs: BTreeMap<(IpAddr, IpAddr, String), Vec<&SessionEvent>> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.fact == Fact::Login && e.outcome != Outcome::Unknown)
    {
        pairs
            .entry((e.client, e.server, service_name(c, e)))
            .or_default()
            .push(e);
    }
    for ((src, dst, service), attempts) in pairs {
        found.login_pairs.insert((src, dst, service.clone()));
        let mut recent = VecDeque::new();
        let (mut failed, mut detected, mut success) = (0u64, None, None);
        let mut accounts: BTreeSet<&str> = BTreeSet::new();
        for e in &attempts {
            match e.outcome {
                Outcome::Failure => {
                    failed += 1;
                    if let Some(u) = e.user.as_deref() {
                        accounts.insert(u);
                    }
                    let hit =
                        window_hit(&mut recent, e.ts_ns, c.brute_threshold, c.brute_window_ns);
                    if hit && detected.is_none() {
                        detected = Some(e.ts_ns);
                    }
                }
                _ if failed > 0 && success.is_none() => success = Some((*e, failed)),
                _ => {}
            }
        }
        let Some(at) = detected else {
            continue;
        };
        let failures: Vec<&&SessionEvent> = attempts
            .iter()
            .filter(|e| e.outcome == Outcome::Failure)
            .collect();
        let shown: Vec<&str> = accounts.iter().take(5).copied().collect();
        let mut evidence = format!(
            "{failed} failed {service} logins from {src} to {dst} (accounts: {}{})",
            if shown.is_empty() {
                "not shown".to_string()
            } else {
                shown.join(", ")
            },
            if accounts.len() > 5 { ", …" } else { "" }
        );
        let tier = match success {
            Some((e, before)) => {
                let user = e.user.as_deref().unwrap_or("an account not shown");
                let seen = format!("{before} failed {service} logins then success as {user}");
                evidence = format!("{evidence}; then success as {user}");
                found.deliveries.push(Delivery {
                    ts: e.ts_ns,
                    packet: e.packet,
                    parent: src,
                    child: dst,
                    vector: vector_of(c, e, true),
                    seen,
                    confirmed: false,
                });
                Tier::Hour
            }
            None => Tier::Week,
        };
        found.alerts.push(protocol_alert(
            c,
            Finding {
                rule: Rule::BruteForce,
                tier,
                src,
                dst: Some(dst),
                service: &service,
                first: failures[0].ts_ns,
                last: attempts[attempts.len() - 1].ts_ns,
                detected: at,
                attempts: attempts.len() as u64,
                distinct: 1,
                failed_ratio: failed as f64 / attempts.len() as f64,
                worm: true,
                evidence,
            },
        ));
    }
}
