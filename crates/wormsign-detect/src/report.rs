//! The responder's Markdown report.

use hashbrown::HashSet;
use std::fmt::Write as _;

use wormsign_capture::time::UtcTime;

use crate::lookup::ByAddress;
use crate::model::{Alert, Detection, HostRow, Role, Rule, Tier};
use crate::remediation::{remediation, Remediation};
use crate::timeline::{EventKind, TimelineEvent};
use crate::zones::Verdict;

/// Formats ns since the Unix epoch as `YYYY-MM-DD hh:mm:ss.mmm UTC`.
pub fn format_ts(ns: i64) -> String {
    let t = UtcTime::from_unix_ns(ns);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03} UTC",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.nanos / 1_000_000
    )
}

/// Rows a table or list of the report shows at most. The rest are counted in a line
/// that names the file listing them all: on an outbreak of thousands of hosts the
/// report stays readable and its size bounded, while the tables stay complete.
pub const REPORT_ROWS: usize = 1000;

/// The line under a table or list of `total` rows cut at [`REPORT_ROWS`].
fn more_rows(o: &mut String, total: usize, what: &str, listed_in: &str) {
    left_out(o, total.saturating_sub(REPORT_ROWS), what, listed_in);
}

/// The line under a cut table or list: how many `what` were `left` out, and where they
/// all are.
fn left_out(o: &mut String, left: usize, what: &str, listed_in: &str) {
    if left > 0 {
        let _ = writeln!(o, "\n… and {left} more {what}: {listed_in} lists them all.");
    }
}

/// `items` joined by commas, the first [`REPORT_ROWS`] of them, then how many more.
fn joined_list(items: &[String], listed_in: &str) -> String {
    let shown = items[..items.len().min(REPORT_ROWS)].join(", ");
    if items.len() > REPORT_ROWS {
        format!(
            "{shown} and {} more ({listed_in} lists them all)",
            items.len() - REPORT_ROWS
        )
    } else {
        shown
    }
}

fn ids<'a>(alerts: impl Iterator<Item = &'a Alert>) -> String {
    let v: Vec<&str> = alerts.map(|a| a.id.as_str()).take(6).collect();
    if v.is_empty() {
        String::new()
    } else {
        format!(" [{}]", v.join(", "))
    }
}

/// Renders a responder's summary in Markdown: patient zero and how it got in, infected
/// hosts in infection order, what to do first, and the alerts by tier, each table and
/// list cut at `REPORT_ROWS` (1 000) rows. Each claim cites the alert ids it rests on.
pub fn render_report(d: &Detection) -> String {
    render_report_with(d, &remediation(d))
}

/// [`render_report`], given the detection's [`remediation`] rows, for a caller that
/// writes them too: on a scan-heavy capture they take milliseconds to gather.
pub fn render_report_with(d: &Detection, fixes: &[Remediation]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Worm outbreak report\n");
    let by = ByAddress::new(&d.alerts, &d.edges, &d.hosts);
    let infected: Vec<_> = d.hosts.iter().filter(|h| h.role.is_infected()).collect();
    let hour = d.alerts.iter().filter(|a| a.tier == Tier::Hour).count();
    let _ = writeln!(
        o,
        "{} alerts ({} hour-level), {} infected hosts, {} propagation edges.\n",
        d.alerts.len(),
        hour,
        infected.len(),
        d.edges.len()
    );

    let blind = d.stats.flows_without_outcome;
    if blind > 0 {
        let _ = writeln!(
            o,
            "> {blind} of the flows the rules read show no connection outcome (sFlow samples, or one-way NetFlow UDP records): none of them counted as a failed or a completed connection, so Threshold Random Walk, failed first contacts, brute force and session-based propagation could not use them.\n"
        );
    }

    let _ = writeln!(o, "## Patient zero\n");
    let pz: Vec<_> = infected
        .iter()
        .filter(|h| h.role == Role::PatientZero)
        .collect();
    if pz.is_empty() {
        let _ = writeln!(o, "No infected host found.\n");
    }
    for h in pz.iter().take(REPORT_ROWS) {
        let first = h.first_malicious_at.map(format_ts).unwrap_or_default();
        let _ = writeln!(
            o,
            "- **{}**: first worm behaviour at {first}{}",
            h.ip,
            ids(by.alerts_from(h.ip).filter(|a| a.infection_sign))
        );
        match by.edge_to(h.ip) {
            Some(e) => {
                let _ = writeln!(
                    o,
                    "  - got in from outside: external host {} over `{}`: {} ({} evidence, confidence {:.2}, flows at packets {:?}){}",
                    e.parent,
                    e.vector,
                    e.seen,
                    e.basis.as_str(),
                    e.confidence,
                    e.evidence_flows,
                    ids(by.alerts_from_any(&[e.parent, h.ip], |a| a.src == e.parent
                        || a.rule == Rule::ExposedService))
                );
            }
            None => {
                let _ = writeln!(
                    o,
                    "  - no successful session on a worm service precedes it in the data: entry point not visible (phishing, USB, or before the capture)"
                );
            }
        }
    }
    more_rows(
        &mut o,
        pz.len(),
        "patient zeros",
        "`hosts.parquet` (role `patient_zero`)",
    );

    let _ = writeln!(o, "\n## Infected hosts in order\n");
    let _ = writeln!(
        o,
        "| # | time | host | name, MAC | generation | parent | vector | what was seen | alerts |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|");
    for (i, h) in infected.iter().enumerate().take(REPORT_ROWS) {
        let e = by.edge_to(h.ip);
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} |{} |",
            i + 1,
            h.first_malicious_at.map(format_ts).unwrap_or_default(),
            h.ip,
            identity_text(h),
            h.generation.unwrap_or(0),
            h.parent
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            e.map(|e| format!("{} ({:.2})", e.vector, e.confidence))
                .unwrap_or_else(|| "-".into()),
            e.map(|e| format!("{} ({})", e.seen, e.basis.as_str()).replace('|', "\\|"))
                .unwrap_or_else(|| "-".into()),
            ids(by.alerts_from(h.ip).filter(|a| a.infection_sign))
        );
    }
    more_rows(&mut o, infected.len(), "infected hosts", "`hosts.parquet`");

    owner_changes(&mut o, d);
    if !infected.is_empty() {
        let _ = writeln!(
            o,
            "\n![Propagation graph: generations left to right](propagation.svg)\n\n\
             The same graph for Graphviz: `propagation.dot`."
        );
    }
    let _ = writeln!(o, "\n## What to do first\n");
    let mut n = 0;
    let mut step = |o: &mut String, text: String| {
        n += 1;
        let _ = writeln!(o, "{n}. {text}");
    };
    if !infected.is_empty() {
        let list: Vec<String> = infected.iter().map(|h| h.ip.to_string()).collect();
        step(
            &mut o,
            format!(
                "**Isolate** the infected hosts now: {}{}.",
                joined_list(&list, "`remediation.csv`"),
                ids(d.alerts.iter().filter(|a| a.infection_sign))
            ),
        );
    }
    let cnc: Vec<&Alert> = d.alerts.iter().filter(|a| a.rule.is_cnc()).collect();
    if !cnc.is_empty() {
        step(
            &mut o,
            format!(
                "**Block the C&C** names and addresses at the resolver and the firewall{}.",
                ids(cnc.into_iter())
            ),
        );
    }
    let exposed: Vec<&Alert> = d
        .alerts
        .iter()
        .filter(|a| a.rule == Rule::ExposedService)
        .collect();
    if !exposed.is_empty() {
        let list: Vec<String> = exposed
            .iter()
            .map(|a| format!("{} ({})", a.src, a.service))
            .collect();
        step(
            &mut o,
            format!(
                "**Close exposed services** to the internet (RDP behind a VPN/gateway, no SMB or MSSQL from outside): {}{}.",
                joined_list(&list, "`alerts.jsonl`"),
                ids(exposed.into_iter())
            ),
        );
    }
    let smb: Vec<&Alert> = d
        .alerts
        .iter()
        .filter(|a| (a.service == "smb" || a.service == "netbios") && a.infection_sign)
        .collect();
    if !smb.is_empty() {
        step(
            &mut o,
            format!(
                "**Patch MS17-010** (EternalBlue) on every Windows host and disable SMBv1: SMB is being used to spread{}.",
                ids(smb.into_iter())
            ),
        );
    }
    let brute: Vec<&Alert> = d
        .alerts
        .iter()
        .filter(|a| a.rule == Rule::BruteForce)
        .collect();
    if !brute.is_empty() {
        // One entry per host and service, in order of first appearance.
        let mut seen = HashSet::new();
        let list: Vec<String> = brute
            .iter()
            .filter_map(|a| a.dst.map(|d| format!("{d} ({})", a.service)))
            .filter(|entry| seen.insert(entry.clone()))
            .collect();
        step(
            &mut o,
            format!(
                "**Reset weak passwords** (local administrator, service accounts) on brute-forced hosts: {}{}.",
                joined_list(&list, "`alerts.jsonl`"),
                ids(brute.into_iter())
            ),
        );
    }
    if n == 0 {
        let _ = writeln!(o, "Nothing urgent.");
    }
    timeline_section(&mut o, d);
    zones_section(&mut o, d);
    remediation_section(&mut o, fixes);

    let _ = writeln!(o, "\n## Alerts\n");
    let _ = writeln!(o, "| id | tier | rule | src | dst | service | first seen | attempts | targets | failed | evidence | basis |");
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut sorted: Vec<&Alert> = d.alerts.iter().collect();
    sorted.sort_by_key(|a| (a.tier, a.first_seen_ns));
    for a in sorted.iter().take(REPORT_ROWS) {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {}{} | {} | {} | {} | {} | {} | {:.2} | {} | {} |",
            a.id,
            a.tier.as_str(),
            a.rule.as_str(),
            a.src,
            if a.allowlisted { " (allowlisted)" } else { "" },
            a.dst.map(|d| d.to_string()).unwrap_or_default(),
            a.service,
            format_ts(a.first_seen_ns),
            a.attempts,
            a.distinct_targets,
            a.failed_ratio,
            a.evidence.replace('|', "\\|"),
            a.basis.as_str()
        );
    }
    more_rows(&mut o, sorted.len(), "alerts", "`alerts.jsonl`");
    o
}

/// A host's name and MAC for the tables, `-` when the traffic shows neither.
fn identity_text(h: &HostRow) -> String {
    let id = &h.identity;
    let parts: Vec<&str> = [id.host_name.as_deref(), id.mac.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(", ").replace('|', "\\|")
    }
}

/// Addresses another MAC claimed during the capture: whoever holds the address now may
/// not be the machine that did what the alerts say.
fn owner_changes(o: &mut String, d: &Detection) {
    let changed: Vec<&HostRow> = d
        .hosts
        .iter()
        .filter(|h| h.identity.owner_changed_at.is_some())
        .collect();
    if changed.is_empty() {
        return;
    }
    let _ = writeln!(o);
    for h in changed.iter().take(REPORT_ROWS) {
        let id = &h.identity;
        let _ = writeln!(
            o,
            "- **{}** changed owner at {}: {} held it, then {} (a DHCP lease moved, or an address was taken): find the machine by its MAC at the time of its alerts.",
            h.ip,
            id.owner_changed_at.map(format_ts).unwrap_or_default(),
            id.mac.as_deref().unwrap_or("?"),
            id.other_macs.join(", ")
        );
    }
    more_rows(
        o,
        changed.len(),
        "addresses that changed owner",
        "`hosts.parquet` (`owner_changed_at`)",
    );
}

/// Consecutive events of one kind saying the same thing are folded from this many on.
const FOLD_FROM: usize = 3;

/// The timeline in the incident report's style: one line per event, consecutive events
/// of the same kind and content folded ("… the same for 14 more hosts").
fn timeline_section(o: &mut String, d: &Detection) {
    let _ = writeln!(o, "\n## Timeline\n");
    if d.timeline.is_empty() {
        let _ = writeln!(o, "No events.");
        return;
    }
    let same = |a: &TimelineEvent, b: &TimelineEvent| {
        a.kind == b.kind && a.what == b.what && (a.kind != EventKind::Honeypot || a.peer == b.peer)
    };
    let mut rest = d.timeline.as_slice();
    let mut lines = 0;
    while let Some(first) = rest.first() {
        let run = rest.iter().take_while(|e| same(first, e)).count();
        let shown = if run >= FOLD_FROM { 1 } else { run };
        if lines + shown > REPORT_ROWS {
            return left_out(o, rest.len(), "events", "`timeline.parquet`");
        }
        lines += shown;
        for e in &rest[..shown] {
            let _ = writeln!(o, "- {} {}{}", format_ts(e.ts_ns), sentence(e), cite(e));
        }
        if shown < run {
            let more = &rest[1..run];
            let hosts: Vec<String> = more.iter().take(10).map(|e| e.host.to_string()).collect();
            let _ = writeln!(
                o,
                "  - … the same for {} more hosts until {}: {}{}",
                more.len(),
                format_ts(more[more.len() - 1].ts_ns),
                hosts.join(", "),
                if more.len() > 10 { ", …" } else { "" }
            );
        }
        rest = &rest[run..];
    }
}

fn cite(e: &TimelineEvent) -> String {
    e.alert_id
        .as_ref()
        .map(|id| format!(" [{id}]"))
        .unwrap_or_default()
}

/// One timeline event as a sentence.
fn sentence(e: &TimelineEvent) -> String {
    let (host, what) = (e.host, &e.what);
    let peer = e.peer.map(|p| p.to_string()).unwrap_or_default();
    match e.kind {
        EventKind::Exposure => format!("**{host}** accepts `{what}` sessions from outside"),
        EventKind::CncLookup => format!("**{host}** asks for `{what}`"),
        EventKind::CncContact => format!("**{host}** connects to C&C address {peer} ({what})"),
        EventKind::FirstScan => format!("**{host}** starts scanning `{what}`"),
        EventKind::LoginSuccess => format!("**{host}** guesses its way into {peer}: `{what}`"),
        EventKind::Infection if e.peer.is_some() => {
            format!("**{host}** is infected by {peer} over `{what}`")
        }
        EventKind::Infection => format!("**{host}** is infected: {what}"),
        EventKind::Honeypot => format!("honeypot {peer} sees `{what}` from **{host}**"),
    }
}

/// The segmentation check: per ordered zone pair, the attempts of infected or scanning
/// hosts, answered and blocked, and whether the zone held.
fn zones_section(o: &mut String, d: &Detection) {
    let _ = writeln!(o, "\n## Segmentation\n");
    if d.zones.is_empty() {
        let _ = writeln!(
            o,
            "No zones were given (`--zone NAME=CIDR`, at least two): segmentation not checked."
        );
        return;
    }
    let _ = writeln!(
        o,
        "| from | to | attempts | answered | blocked | other | sources | verdict | alerts |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|");
    for z in &d.zones {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} |{} |",
            z.from_zone,
            z.to_zone,
            z.attempts,
            z.answered,
            z.blocked,
            z.other,
            z.sources,
            z.verdict.as_str(),
            listed(&z.alert_ids)
        );
    }
    let _ = writeln!(o);
    for z in &d.zones {
        let pair = format!("`{}` → `{}`", z.from_zone, z.to_zone);
        match z.verdict {
            Verdict::Untested => {}
            Verdict::Held => {
                let _ = writeln!(
                    o,
                    "- {pair}: **the zone held**: {} attempts from {} infected or scanning hosts, none answered.",
                    z.attempts, z.sources
                );
            }
            Verdict::Breached => {
                let sessions: Vec<String> = z
                    .completed
                    .iter()
                    .take(10)
                    .map(|s| {
                        format!(
                            "{} → {} `{}` at {} (packet {})",
                            s.src,
                            s.dst,
                            s.service,
                            format_ts(s.ts_ns),
                            s.first_packet
                        )
                    })
                    .collect();
                let _ = writeln!(
                    o,
                    "- {pair}: **the zone was breached**: {} of {} attempts completed; these sessions completed: {}.",
                    z.answered, z.attempts, sessions.join("; ")
                );
            }
        }
    }
}

/// Items of a remediation row's detail the report shows; `remediation.csv` has them all.
const DETAIL_ITEMS: usize = 10;

/// A remediation row's detail (items joined by "; ", one per alerting source, say) cut
/// at [`DETAIL_ITEMS`] items.
fn bounded_detail(detail: &str) -> String {
    let items: Vec<&str> = detail.split("; ").collect();
    if items.len() <= DETAIL_ITEMS {
        return detail.to_string();
    }
    format!(
        "{}; … and {} more (`remediation.csv`)",
        items[..DETAIL_ITEMS].join("; "),
        items.len() - DETAIL_ITEMS
    )
}

fn listed(ids: &[String]) -> String {
    if ids.is_empty() {
        return String::new();
    }
    let shown: Vec<&str> = ids.iter().take(6).map(String::as_str).collect();
    format!(
        " {}{}",
        shown.join(", "),
        if ids.len() > 6 { ", …" } else { "" }
    )
}

/// The remediation list by tier: one row per host and action.
fn remediation_section(o: &mut String, rows: &[Remediation]) {
    let _ = writeln!(o, "\n## Remediation by urgency\n");
    if rows.is_empty() {
        let _ = writeln!(o, "Nothing to remediate.");
        return;
    }
    for tier in [Tier::Hour, Tier::Day, Tier::Week, Tier::Month] {
        let of_tier: Vec<_> = rows.iter().filter(|r| r.tier == tier).collect();
        if of_tier.is_empty() {
            continue;
        }
        let _ = writeln!(o, "### Within the {}\n", tier.as_str());
        let _ = writeln!(o, "| host | name, MAC | action | detail | alerts |");
        let _ = writeln!(o, "|---|---|---|---|---|");
        for r in of_tier.iter().take(REPORT_ROWS) {
            let found: Vec<&str> = [r.host_name.as_deref(), r.mac.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |{} |",
                r.host,
                if found.is_empty() {
                    "-".to_string()
                } else {
                    found.join(", ").replace('|', "\\|")
                },
                r.action.as_str(),
                bounded_detail(&r.detail).replace('|', "\\|"),
                listed(&r.alert_ids)
            );
        }
        more_rows(o, of_tier.len(), "rows", "`remediation.csv`");
        let _ = writeln!(o);
    }
}

#[cfg(test)]
mod tests {
    use super::format_ts;

    #[test]
    fn timestamps() {
        assert_eq!(format_ts(0), "1970-01-01 00:00:00.000 UTC");
        // 2017-05-18 08:06:13.281 (the WannaCry capture's first packet).
        assert_eq!(
            format_ts(1_495_094_773_281_752_000),
            "2017-05-18 08:06:13.281 UTC"
        );
    }
}
