//! Each rule and the propagation graph on hand-built flow sequences.

use std::net::{IpAddr, Ipv4Addr};

use wormsign_detect::{
    detect, render_report, ArpEvent, DetectConfig, Detection, Detector, DnsEvent, EventKind,
    NameEvent, Partition, Role, Rule, ScanConfig, Tier,
};
use wormsign_flow::{
    ConnState, DirCounters, EndReason, FlowRecord, FlowSource, History, NetflowOrigin,
};
use wormsign_inspect::{Fact, Outcome, Protocol, SessionEvent};
use wormsign_testutil::random_part;

const S: i64 = 1_000_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Builds flows with increasing `first_packet` ordinals.
#[derive(Default)]
struct Flows {
    v: Vec<FlowRecord>,
}

impl Flows {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        t: f64,
        src: &str,
        dst: &str,
        port: u16,
        proto: u8,
        state: ConnState,
        payload: (u64, u64),
        dur: f64,
    ) -> &mut Self {
        let n = self.v.len() as u64;
        let ts = (t * 1e9) as i64;
        self.v.push(FlowRecord {
            first_packet: n * 10,
            ts_first: ts,
            ts_last: ts + (dur * 1e9) as i64,
            orig_addr: ip(src),
            orig_port: 49_152 + (n % 10_000) as u16,
            resp_addr: ip(dst),
            resp_port: port,
            has_ports: true,
            proto,
            vlan: None,
            tunnel: None,
            orig: DirCounters {
                packets: 3,
                ip_bytes: 200 + payload.0,
                payload_bytes: payload.0,
                tcp_flags: 0x1a,
            },
            resp: DirCounters {
                packets: u64::from(state != ConnState::S0) * 3,
                ip_bytes: 200 + payload.1,
                payload_bytes: payload.1,
                tcp_flags: 0x12,
            },
            conn_state: state,
            history: History::default(),
            end_reason: EndReason::Closed,
            source: FlowSource::Packets,
        });
        self
    }

    /// A SYN nobody answered.
    fn syn(&mut self, t: f64, src: &str, dst: &str, port: u16) -> &mut Self {
        self.add(t, src, dst, port, 6, ConnState::S0, (0, 0), 0.0)
    }

    /// A completed session with payload both ways.
    fn ok(&mut self, t: f64, src: &str, dst: &str, port: u16, dur: f64, bytes: u64) -> &mut Self {
        self.add(t, src, dst, port, 6, ConnState::SF, (bytes, bytes), dur)
    }

    /// `n` short logins (2 s, 3 000 bytes each way) from `src` to `dst`, one per 5 s from
    /// 10 s: a brute-force run when there are enough of them.
    fn logins(&mut self, src: &str, dst: &str, port: u16, n: u32) -> &mut Self {
        for i in 0..n {
            self.ok(10.0 + f64::from(i) * 5.0, src, dst, port, 2.0, 3000);
        }
        self
    }

    /// SYNs to `n` dead addresses 10.9.<net>.x, one per `step` seconds from `t`.
    fn scan(&mut self, t: f64, src: &str, net: u8, n: u8, port: u16, step: f64) -> &mut Self {
        for i in 0..n {
            let dst = format!("10.9.{net}.{}", i + 1);
            self.syn(t + f64::from(i) * step, src, &dst, port);
        }
        self
    }
}

fn run(flows: &Flows) -> Detection {
    detect(&DetectConfig::default(), &flows.v, &[], &[])
}

#[test]
fn trw_flags_pure_scanner_on_fourth_failed_first_contact() {
    let mut f = Flows::default();
    f.scan(100.0, "10.0.0.5", 1, 20, 445, 1.0);
    let d = run(&f);
    let trw: Vec<_> = d.alerts_for(ip("10.0.0.5"), Rule::Trw).collect();
    assert_eq!(trw.len(), 1);
    // The 4th first contact is at 100 + 3 s.
    assert_eq!(trw[0].detected_ns, 103 * S);
    assert_eq!(trw[0].attempts, 20);
    assert_eq!(trw[0].failed_ratio, 1.0);
    assert_eq!(trw[0].service, "smb");
    let fan: Vec<_> = d.alerts_for(ip("10.0.0.5"), Rule::ScanFanout).collect();
    assert_eq!(fan.len(), 1);
    assert_eq!(fan[0].distinct_targets, 20);
    assert!(fan[0].infection_sign);
    // Fan-out threshold 10 within 60 s: the 10th distinct destination at 109 s.
    assert_eq!(fan[0].detected_ns, 109 * S);
    assert!(d.is_infected(ip("10.0.0.5")));
    assert_eq!(d.patient_zeros(), vec![ip("10.0.0.5")]);

    // Three failed first contacts are not enough.
    let mut f = Flows::default();
    f.scan(100.0, "10.0.0.5", 1, 3, 445, 1.0);
    let d = run(&f);
    assert!(d.alerts.is_empty(), "{:?}", d.alerts);
    assert!(!d.is_infected(ip("10.0.0.5")));
}

#[test]
fn backup_server_with_successful_sessions_is_not_a_scanner() {
    let mut f = Flows::default();
    for i in 1..=50 {
        f.ok(
            f64::from(i),
            "10.0.0.9",
            &format!("10.0.2.{i}"),
            445,
            20.0,
            1_000_000,
        );
    }
    let d = run(&f);
    assert!(d.alerts_for(ip("10.0.0.9"), Rule::Trw).next().is_none());
    assert!(!d.is_infected(ip("10.0.0.9")));
    // The fan-out is still reported, as a day-level heavy hitter, not as an infection.
    let fan: Vec<_> = d.alerts_for(ip("10.0.0.9"), Rule::ScanFanout).collect();
    assert_eq!(fan.len(), 1);
    assert!(!fan[0].infection_sign);
    assert_eq!(fan[0].tier, Tier::Day);
}

#[test]
fn brute_force_without_and_with_success() {
    let mut f = Flows::default();
    f.logins("10.0.0.7", "10.0.0.8", 3389, 12);
    let d = run(&f);
    let b: Vec<_> = d.alerts_for(ip("10.0.0.7"), Rule::BruteForce).collect();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].dst, Some(ip("10.0.0.8")));
    assert_eq!(b[0].attempts, 12);
    assert_eq!(b[0].tier, Tier::Week);
    assert_eq!(b[0].detected_ns, (10 + 9 * 5) * S);
    assert!(d.is_infected(ip("10.0.0.7")));
    assert_eq!(d.host(ip("10.0.0.8")).unwrap().role, Role::Target);

    // A long session afterwards: the password was found.
    f.ok(100.0, "10.0.0.7", "10.0.0.8", 3389, 600.0, 5_000_000);
    let d = run(&f);
    let b: Vec<_> = d.alerts_for(ip("10.0.0.7"), Rule::BruteForce).collect();
    assert_eq!(b[0].tier, Tier::Hour);

    // Nine sessions are below the threshold.
    let mut f = Flows::default();
    f.logins("10.0.0.7", "10.0.0.8", 3389, 9);
    assert!(run(&f).alerts.is_empty());
}

fn q(t: f64, client: &str, server: &str, name: &str) -> DnsEvent {
    DnsEvent {
        ts_ns: (t * 1e9) as i64,
        client: ip(client),
        server: ip(server),
        qname: Some(name.to_string()),
        is_response: false,
        answers: vec![],
    }
}

#[test]
fn cnc_lookup_forwarded_by_resolver_is_attributed_to_client() {
    let (client, resolver) = ("10.0.0.20", "10.0.0.53");
    let mut dns = vec![
        q(50.0, client, resolver, "t.awcna.com"),
        q(50.2, resolver, "8.8.8.8", "t.awcna.com"),
        q(60.0, "10.0.0.21", resolver, "example.com"),
        q(60.1, resolver, "8.8.8.8", "example.com"),
    ];
    let mut resp = q(50.3, resolver, "8.8.8.8", "t.awcna.com");
    resp.is_response = true;
    resp.answers = vec!["198.51.100.7".into()];
    dns.push(resp);
    let mut f = Flows::default();
    f.ok(51.0, client, "198.51.100.7", 80, 1.0, 500);
    let d = detect(&DetectConfig::default(), &f.v, &dns, &[]);
    let a: Vec<_> = d.alerts_for(ip(client), Rule::CncDns).collect();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].tier, Tier::Hour);
    assert_eq!(a[0].dst, Some(ip(resolver)));
    assert!(d.alerts_for(ip(resolver), Rule::CncDns).next().is_none());
    assert!(d.alerts_for(ip(client), Rule::CncIp).next().is_some());
    assert!(d.is_infected(ip(client)));
    assert!(!d.is_infected(ip(resolver)));
    assert!(!d.is_infected(ip("10.0.0.21")));

    // Without the client's query (2 s earlier is outside the window), the resolver is
    // the one that asked.
    let dns = vec![
        q(48.0, client, resolver, "t.awcna.com"),
        q(50.2, resolver, "8.8.8.8", "t.awcna.com"),
    ];
    let d = detect(&DetectConfig::default(), &[], &dns, &[]);
    assert!(d.alerts_for(ip(resolver), Rule::CncDns).next().is_some());
}

#[test]
fn honeypot_contact() {
    let config = DetectConfig {
        honeypots: vec![ip("10.0.0.250")],
        ..DetectConfig::default()
    };
    let mut f = Flows::default();
    f.syn(5.0, "10.0.0.30", "10.0.0.250", 8080);
    f.syn(6.0, "10.0.0.31", "10.0.0.251", 8080);
    let d = detect(&config, &f.v, &[], &[]);
    let a: Vec<_> = d.alerts_for(ip("10.0.0.30"), Rule::Honeypot).collect();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].tier, Tier::Hour);
    assert!(d.is_infected(ip("10.0.0.30")));
    assert!(!d.is_infected(ip("10.0.0.31")));
    assert_eq!(d.alerts.len(), 1);
}

/// The timeline a detection builds is in its documented order, `(ts, kind, host, peer,
/// what)`, where events tie on all but `peer` (a host that reaches two honeypots at once)
/// and on all but `what` (a server first reached from outside on two services at once).
/// The order's own test, with events that arrive out of it, is in `timeline.rs`.
#[test]
fn timeline_is_in_its_documented_order() {
    let config = DetectConfig {
        honeypots: vec![ip("10.0.0.251"), ip("10.0.0.250")],
        ..DetectConfig::default()
    };
    let mut f = Flows::default();
    f.syn(5.0, "10.0.0.30", "10.0.0.251", 8080);
    f.syn(5.0, "10.0.0.30", "10.0.0.250", 8080);
    f.ok(7.0, "203.0.113.9", "10.0.0.10", 3389, 60.0, 5000);
    f.ok(7.0, "203.0.113.8", "10.0.0.10", 1433, 60.0, 5000);
    let d = detect(&config, &f.v, &[], &[]);
    let key =
        |e: &wormsign_detect::TimelineEvent| (e.ts_ns, e.kind, e.host, e.peer, e.what.clone());
    let keys: Vec<_> = d.timeline.iter().map(key).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    // Each pair ties on time, kind and host.
    let apart_by = |kind| {
        let events: Vec<_> = keys.iter().filter(|k| k.1 == kind).collect();
        assert_eq!(events.len(), 2, "{keys:?}");
        let [x, y] = [events[0], events[1]];
        assert_eq!((x.0, x.2), (y.0, y.2), "{keys:?}");
        (x.3 != y.3, x.4 != y.4)
    };
    assert_eq!(apart_by(EventKind::Honeypot), (true, false));
    assert_eq!(apart_by(EventKind::Exposure), (false, true));
}

#[test]
fn arp_sweep() {
    let arp: Vec<ArpEvent> = (1..=40u8)
        .map(|i| ArpEvent {
            ts_ns: i64::from(i) * S,
            sender: Ipv4Addr::new(10, 0, 0, 40),
            target: Ipv4Addr::new(10, 0, 0, 100 + i),
            is_request: true,
            sender_mac: [2, 0, 0, 0, 0, 40],
        })
        .collect();
    let d = detect(&DetectConfig::default(), &[], &[], &arp);
    let a: Vec<_> = d.alerts_for(ip("10.0.0.40"), Rule::ArpSweep).collect();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].detected_ns, 32 * S);
    assert!(d.is_infected(ip("10.0.0.40")));
    let d = detect(&DetectConfig::default(), &[], &[], &arp[..31]);
    assert!(d.alerts.is_empty());
}

#[test]
fn exposed_rdp_brute_forced_from_outside_becomes_patient_zero() {
    let (server, attacker) = ("10.0.0.10", "203.0.113.7");
    let mut f = Flows::default();
    for i in 0..15 {
        f.ok(10.0 + f64::from(i) * 3.0, attacker, server, 3389, 1.5, 4000);
    }
    // The password is found: a long interactive session.
    f.ok(60.0, attacker, server, 3389, 900.0, 3_000_000);
    // Then the server scans the LAN for SMB.
    f.scan(1000.0, server, 3, 20, 445, 0.5);
    let d = run(&f);
    assert!(d
        .alerts_for(ip(server), Rule::ExposedService)
        .next()
        .is_some());
    let inbound: Vec<_> = d.alerts_for(ip(attacker), Rule::BruteForce).collect();
    assert_eq!(inbound.len(), 1);
    assert_eq!(inbound[0].tier, Tier::Hour);
    assert!(!d.is_infected(ip(attacker)));
    let h = d.host(ip(server)).unwrap();
    assert_eq!(h.role, Role::PatientZero);
    assert_eq!(h.parent, Some(ip(attacker)));
    assert_eq!(d.patient_zeros(), vec![ip(server)]);
    assert_eq!(d.edges.len(), 1);
    assert_eq!(d.edges[0].parent, ip(attacker));
    assert_eq!(d.edges[0].vector, "rdp_bruteforce");
    // The chosen session is the most recent one before the infection: the long one.
    assert_eq!(d.edges[0].evidence_flows[0], 150);
    assert_eq!(d.host(ip(attacker)).unwrap().role, Role::ExternalAttacker);
    let report = render_report(&d);
    let line = (report.lines())
        .find(|l| l.contains("got in from outside: external host 203.0.113.7"))
        .unwrap_or_else(|| panic!("{report}"));
    // It cites the attacker's alerts and the server's exposure, in alert order.
    let cited: Vec<&str> = (d.alerts.iter())
        .filter(|a| {
            a.src == ip(attacker) || (a.src == ip(server) && a.rule == Rule::ExposedService)
        })
        .map(|a| a.id.as_str())
        .collect();
    assert!(cited.len() >= 2, "{cited:?}");
    assert!(line.ends_with(&format!("[{}]", cited.join(", "))), "{line}");
    assert!(report.contains("Close exposed services"), "{report}");
}

/// A scans and exploits B over SMB; B scans and gets into C over RDP; C scans.
fn chain() -> Flows {
    let (a, b, c) = ("10.0.0.1", "10.0.0.2", "10.0.0.3");
    let mut f = Flows::default();
    f.scan(0.0, a, 1, 12, 445, 1.0);
    f.ok(20.0, a, b, 445, 3.0, 90_000);
    // A benign session to B long before: not the most recent one.
    f.ok(-500.0, "10.0.0.77", b, 445, 3.0, 90_000);
    f.scan(100.0, b, 2, 12, 445, 1.0);
    f.ok(150.0, b, c, 3389, 30.0, 90_000);
    f.scan(300.0, c, 4, 12, 1433, 1.0);
    // C is contacted by A too, but after C's infection: not a candidate.
    f.ok(400.0, a, c, 445, 3.0, 90_000);
    f
}

#[test]
fn three_generation_chain() {
    let d = run(&chain());
    let (a, b, c) = (ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3"));
    assert_eq!(d.patient_zeros(), vec![a]);
    let hb = d.host(b).unwrap();
    let hc = d.host(c).unwrap();
    assert_eq!(
        (hb.role, hb.parent, hb.generation),
        (Role::Infected, Some(a), Some(1))
    );
    assert_eq!(
        (hc.role, hc.parent, hc.generation),
        (Role::Infected, Some(b), Some(2))
    );
    assert_eq!(d.host(a).unwrap().generation, Some(0));
    assert_eq!(d.edges.len(), 2);
    assert_eq!(d.edges[0].child, b);
    assert_eq!(d.edges[0].vector, "eternalblue_smb");
    assert_eq!(d.edges[1].child, c);
    assert_eq!(d.edges[1].vector, "rdp");
    assert_eq!(d.host(ip("10.0.0.77")), None);
    // Infected hosts come first, in infection order.
    let order: Vec<IpAddr> = d.hosts.iter().take(3).map(|h| h.ip).collect();
    assert_eq!(order, vec![a, b, c]);
    let report = render_report(&d);
    assert!(report.contains("| 3 |"), "{report}");
    assert!(report.contains("Patch MS17-010"), "{report}");
}

/// An outbreak of 1 100 scanners: the report's tables and lists stop at 1 000 rows, the
/// most urgent first, and say how many more there are and where they all are.
#[test]
fn report_of_a_large_outbreak_shows_1000_rows_and_counts_the_rest() {
    let mut f = Flows::default();
    for i in 0..1100u32 {
        let src = format!("10.2.{}.{}", i / 250, i % 250 + 1);
        f.scan(100.0 + f64::from(i), &src, (i % 200) as u8, 12, 445, 0.5);
    }
    let d = run(&f);
    let infected = d.hosts.iter().filter(|h| h.role.is_infected()).count();
    assert_eq!(infected, 1100);
    assert!(d.alerts.len() > 2000, "{}", d.alerts.len());
    let report = render_report(&d);
    let more = |what: &str, file: &str, n: usize| {
        let line = format!("… and {n} more {what}: {file} lists them all.");
        assert!(report.contains(&line), "missing {line:?}");
    };
    more(
        "patient zeros",
        "`hosts.parquet` (role `patient_zero`)",
        100,
    );
    more("infected hosts", "`hosts.parquet`", 100);
    more("rows", "`remediation.csv`", 100);
    more("alerts", "`alerts.jsonl`", d.alerts.len() - 1000);
    assert!(report.contains("and 100 more (`remediation.csv` lists them all)"));
    let section = |title: &str| {
        let start = report.find(title).unwrap();
        let end = report[start + 1..]
            .find("\n## ")
            .map_or(report.len(), |e| start + 1 + e);
        report[start..end].to_string()
    };
    let count = |text: &str, prefix: &str| text.lines().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(count(&section("## Patient zero"), "- **"), 1000);
    let hosts = section("## Infected hosts in order");
    assert!(hosts.contains("\n| 1000 | ") && !hosts.contains("\n| 1001 | "));
    assert_eq!(count(&section("## Alerts"), "| A"), 1000);
    // The first scanner's alerts are the earliest, so they are shown; the last one's not.
    assert!(section("## Alerts").contains("| 10.2.0.1 |"));
    assert!(!section("## Alerts").contains("| 10.2.4.100 |"));
    let timeline = section("## Timeline");
    assert_eq!(count(&timeline, "- "), 1000);
    assert!(timeline.contains(&format!("… and {} more events", d.timeline.len() - 1000)));
}

/// One server brute-forced from 12 hosts: its remediation row names every source in
/// remediation.csv, and the report's cell the first ten and how many more.
#[test]
fn report_cuts_a_long_remediation_detail_at_ten_items() {
    let mut f = Flows::default();
    for i in 1..=12 {
        f.logins(&format!("10.0.1.{i}"), "10.0.0.8", 3389, 12);
    }
    let d = run(&f);
    let rows = wormsign_detect::remediation(&d);
    let row = rows
        .iter()
        .find(|r| r.host == ip("10.0.0.8") && r.detail.contains("10.0.1.12"))
        .expect("a remediation row of the brute-forced server naming every source");
    assert_eq!(row.detail.split("; ").count(), 12, "{}", row.detail);
    let report = render_report(&d);
    let line = report
        .lines()
        .find(|l| l.starts_with("| 10.0.0.8 |") && l.contains("10.0.1.1)"))
        .expect("the row in the report");
    assert!(
        line.contains("10.0.1.10)") && !line.contains("10.0.1.11)"),
        "{line}"
    );
    assert!(
        line.contains("; … and 2 more (`remediation.csv`)"),
        "{line}"
    );
}

#[test]
fn allowlisted_scanner_is_reported_not_infected() {
    let config = DetectConfig {
        allowlist: vec!["10.0.0.99/32".parse().unwrap()],
        ..DetectConfig::default()
    };
    let mut f = Flows::default();
    f.scan(0.0, "10.0.0.99", 1, 30, 445, 0.5);
    let d = detect(&config, &f.v, &[], &[]);
    assert!(!d.alerts.is_empty());
    assert!(d.alerts.iter().all(|a| a.allowlisted && !a.infection_sign));
    // Authorized scanning is a hygiene item, not an incident.
    assert!(d.alerts.iter().all(|a| a.tier == Tier::Month));
    let report = render_report(&d);
    assert!(report.contains("Nothing urgent."), "{report}");
    assert!(
        report.contains("### Within the month")
            && report.contains("| 10.0.0.99 | - | review_allowlist |"),
        "{report}"
    );
    assert!(d.alerts_for(ip("10.0.0.99"), Rule::Trw).next().is_some());
    assert!(!d.is_infected(ip("10.0.0.99")));
    assert_eq!(
        d.host(ip("10.0.0.99")).unwrap().role,
        Role::ScannerAllowlisted
    );
    assert!(d.edges.is_empty());
}

#[test]
fn shuffled_input_gives_identical_results() {
    let mut f = chain();
    f.scan(2000.0, "10.0.0.5", 7, 40, 445, 0.1);
    for i in 0..12 {
        f.ok(3000.0 + f64::from(i), "10.0.0.7", "10.0.0.8", 22, 1.0, 100);
    }
    let base = run(&f);
    assert!(base.alerts.len() >= 6);
    let mut v = f.v.clone();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..5 {
        // Fisher–Yates with an xorshift generator.
        for i in (1..v.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            v.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        let d = detect(&DetectConfig::default(), &v, &[], &[]);
        assert_eq!(d, base, "round {round}");
    }
    v.reverse();
    assert_eq!(detect(&DetectConfig::default(), &v, &[], &[]), base);
}

#[test]
fn capped_sets_saturate_are_counted_and_estimate_beyond_the_cap() {
    let config = DetectConfig {
        max_tracked: 8,
        ..DetectConfig::default()
    };
    let mut f = Flows::default();
    f.scan(0.0, "10.0.0.5", 1, 200, 445, 0.1);
    let d = detect(&config, &f.v, &[], &[]);
    assert!(d.stats.cap_hits > 0);
    assert!(d.stats.saturated_sets >= 2);
    let trw: Vec<_> = d.alerts_for(ip("10.0.0.5"), Rule::Trw).collect();
    // 200 distinct targets, 8 held exactly, the rest in a sketch (±3 %, here within 8 %).
    let n = trw[0].distinct_targets;
    assert!((184..=216).contains(&n), "estimated {n}");
    assert!(trw[0].evidence.contains("estimated"));
}

/// The flows as unidirectional NetFlow records: the responder side empty, states from the
/// source's TCP flags (an established session with data is `S1` or `SF`).
fn as_netflow(flows: &[FlowRecord]) -> Vec<FlowRecord> {
    flows
        .iter()
        .map(|f| FlowRecord {
            resp: DirCounters::default(),
            orig: DirCounters {
                packets: if f.conn_state == ConnState::S0 { 1 } else { 6 },
                ..f.orig
            },
            source: FlowSource::Netflow(NetflowOrigin {
                exporter: ip("10.255.0.1"),
                version: 9,
                sampling_interval: 1,
                record_index: 0,
                input_if: 0,
                output_if: 0,
            }),
            ..f.clone()
        })
        .collect()
}

/// NetFlow records of one datagram share its `first_packet`, and an exporter's two
/// records of one connection (say, its ingress and egress interfaces) can share the time
/// and addresses too: the record index orders them, whichever arrives first.
#[test]
fn netflow_records_of_one_datagram_are_read_in_record_order() {
    let mut f = Flows::default();
    for i in 1..=6u8 {
        let (t, dst) = (100.0 + f64::from(i), format!("10.9.9.{i}"));
        f.ok(t, "10.0.0.5", &dst, 445, 0.0, 500)
            .syn(t, "10.0.0.5", &dst, 445);
    }
    let mut records = as_netflow(&f.v);
    for (at, r) in records.iter_mut().enumerate() {
        (r.first_packet, r.orig_port) = (7, 50_000);
        if let FlowSource::Netflow(origin) = &mut r.source {
            origin.record_index = at as u32;
        }
    }
    let in_order = detect(&DetectConfig::default(), &records, &[], &[]);
    records.reverse();
    let reversed = detect(&DetectConfig::default(), &records, &[], &[]);
    assert_eq!(in_order, reversed);
    // Each completed record precedes its failed twin: no first contact failed.
    assert!(
        in_order.alerts.iter().all(|a| a.rule != Rule::Trw),
        "{:?}",
        in_order.alerts
    );
}

#[test]
fn netflow_records_still_find_scanner_and_brute_force() {
    let mut f = Flows::default();
    f.scan(100.0, "10.0.0.5", 1, 20, 445, 1.0);
    f.logins("10.0.0.7", "10.0.0.8", 445, 12);
    let d = detect(&DetectConfig::default(), &as_netflow(&f.v), &[], &[]);
    let trw: Vec<_> = d.alerts_for(ip("10.0.0.5"), Rule::Trw).collect();
    assert_eq!(trw.len(), 1);
    assert_eq!(trw[0].detected_ns, 103 * S);
    assert_eq!(d.alerts_for(ip("10.0.0.7"), Rule::BruteForce).count(), 1);
    assert!(d.is_infected(ip("10.0.0.5")) && d.is_infected(ip("10.0.0.7")));
}

/// A flood of one-contact sources fills the source table; the unflagged ones are
/// evicted (counted) so a scanner arriving afterwards is still tracked and caught, and
/// the sources already flagged are never evicted.
#[test]
fn source_table_is_capped_by_evicting_unflagged_sources() {
    let config = DetectConfig {
        max_sources: 16,
        ..DetectConfig::default()
    };
    let mut f = Flows::default();
    f.scan(0.0, "10.0.0.5", 1, 12, 445, 0.1);
    for i in 0..200u32 {
        let src = format!("192.0.{}.{}", i / 200, i % 200 + 1);
        f.syn(10.0 + f64::from(i) * 0.01, &src, "10.0.3.3", 445);
    }
    f.scan(20.0, "10.0.0.6", 2, 12, 445, 0.1);
    let d = detect(&config, &f.v, &[], &[]);
    assert!(d.stats.sources_evicted >= 180, "{:?}", d.stats);
    for scanner in ["10.0.0.5", "10.0.0.6"] {
        assert!(
            d.alerts_for(ip(scanner), Rule::Trw).next().is_some(),
            "{scanner}"
        );
    }
    // Without the cap, the same two scanners and nothing else are flagged by TRW.
    let unbounded = detect(&DetectConfig::default(), &f.v, &[], &[]);
    let trw = |d: &Detection| d.alerts.iter().filter(|a| a.rule == Rule::Trw).count();
    assert_eq!(trw(&d), trw(&unbounded));
    assert_eq!(unbounded.stats.sources_evicted, 0);
}

/// When every tracked source is flagged, a new source cannot be tracked: refused and
/// counted, the flagged ones kept.
#[test]
fn a_source_table_full_of_flagged_sources_refuses_new_ones() {
    let config = DetectConfig {
        max_sources: 8,
        ..DetectConfig::default()
    };
    let mut f = Flows::default();
    for s in 0..8u8 {
        f.scan(
            f64::from(s),
            &format!("10.0.0.{}", s + 1),
            s + 1,
            6,
            445,
            0.01,
        );
    }
    f.scan(100.0, "10.0.0.99", 99, 6, 445, 0.01);
    let d = detect(&config, &f.v, &[], &[]);
    assert!(d.stats.entries_refused >= 6, "{:?}", d.stats);
    for s in 0..8u8 {
        let src = ip(&format!("10.0.0.{}", s + 1));
        assert!(d.alerts_for(src, Rule::Trw).next().is_some(), "{src}");
    }
    assert!(d.alerts_for(ip("10.0.0.99"), Rule::Trw).next().is_none());
}

/// Flows are held only if a rule can use them, and gathered in batches of
/// `max_pending_flows`: beyond one batch, each is sorted and written out, and the batches
/// are merged at the end, so in any order any batch size gives the unbatched result and
/// no flow is late; every full batch but the last is counted as held in files.
#[test]
fn flows_stream_through_in_batches_and_none_is_late() {
    let mut f = Flows::default();
    f.scan(0.0, "10.0.0.5", 1, 12, 445, 0.5);
    f.ok(8.0, "10.0.0.5", "10.0.2.7", 445, 0.2, 4000);
    f.scan(9.0, "10.0.2.7", 3, 12, 445, 0.5);
    for i in 0..30u32 {
        f.ok(f64::from(i), "10.0.0.8", "10.0.0.9", 443, 1.0, 100);
    }
    f.v.sort_by_key(|r| (r.ts_first, r.first_packet));
    let whole = detect(&DetectConfig::default(), &f.v, &[], &[]);
    assert_eq!(whole.stats.flows, f.v.len() as u64);
    assert_eq!(
        whole.stats.flows_used,
        f.v.len() as u64 - 30,
        "443 is no rule's"
    );
    assert_eq!(whole.edges.len(), 1);
    let mut reversed = f.v.clone();
    reversed.reverse();
    for batch in [1, 2, 7] {
        let config = DetectConfig {
            max_pending_flows: batch,
            ..DetectConfig::default()
        };
        for flows in [&f.v, &reversed] {
            let mut d = detect(&config, flows, &[], &[]);
            assert_eq!((d.stats.late_flows, d.stats.flows_unread), (0, 0));
            let used = whole.stats.flows_used;
            let in_files = std::mem::take(&mut d.stats.flows_in_files);
            let held = wormsign_testutil::held_in_files(used, batch as u64);
            assert_eq!(in_files, held, "batches of {batch}");
            assert_eq!(d.stats, whole.stats, "batches of {batch}");
            assert_eq!(
                (&d.alerts, &d.edges, &d.hosts),
                (&whole.alerts, &whole.edges, &whole.hosts)
            );
        }
    }
}

/// A LAN-sweeping worm reaches open ports between misses: TRW's walk is set back by each
/// success, failed_contacts is not and fires on the 4th miss; three misses, or misses
/// spread beyond the window, do not fire it; threshold 0 disables it.
#[test]
fn failed_contacts_fire_on_the_fourth_miss_despite_successes() {
    let mut f = Flows::default();
    f.syn(0.0, "10.0.0.5", "10.9.0.1", 445)
        .ok(0.1, "10.0.0.5", "10.9.0.2", 445, 0.5, 3000)
        .syn(0.2, "10.0.0.5", "10.9.0.3", 445)
        .ok(0.3, "10.0.0.5", "10.9.0.4", 445, 0.5, 3000)
        .syn(0.4, "10.0.0.5", "10.9.0.5", 3389)
        .syn(0.5, "10.0.0.5", "10.9.0.6", 1433);
    // Three misses within the window, then a fourth long after: never four in 600 s.
    f.syn(0.0, "10.0.0.7", "10.9.1.1", 445)
        .syn(1.0, "10.0.0.7", "10.9.1.2", 445)
        .syn(2.0, "10.0.0.7", "10.9.1.3", 445)
        .syn(700.0, "10.0.0.7", "10.9.1.4", 445);
    f.v.sort_by_key(|r| r.ts_first);
    let d = run(&f);
    let a: Vec<_> = d.alerts_for(ip("10.0.0.5"), Rule::FailedContacts).collect();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].detected_ns, (0.5 * 1e9) as i64, "the 4th miss");
    assert_eq!(a[0].tier, Tier::Hour, "internal, with successes: spreading");
    assert!(d.alerts_for(ip("10.0.0.5"), Rule::Trw).next().is_none());
    assert!(d.is_infected(ip("10.0.0.5")));
    assert!(d
        .alerts_for(ip("10.0.0.7"), Rule::FailedContacts)
        .next()
        .is_none());

    let off = DetectConfig {
        scan: ScanConfig {
            failed_threshold: 0,
            ..ScanConfig::default()
        },
        ..DetectConfig::default()
    };
    let d = detect(&off, &f.v, &[], &[]);
    assert!(d.alerts.iter().all(|a| a.rule != Rule::FailedContacts));
}

/// The segmentation check on a hand-built outbreak: a scanner in `office` is refused by
/// `dc` (held), completes sessions into `hq` (breached) and into `hq-dc`, a /24 inside
/// `hq`'s /16 (the longest prefix decides). A clean host's completed session and the
/// honeypot's answers are not breaches.
#[test]
fn segmentation_says_which_zone_held_and_which_was_breached() {
    use wormsign_detect::{remediation, Action, Verdict};
    let zones = [
        ("office", "10.1.0.0/16"),
        ("dc", "10.2.0.0/16"),
        ("hq", "10.3.0.0/16"),
        ("hq-dc", "10.3.5.0/24"),
    ];
    let config = DetectConfig {
        zones: zones
            .iter()
            .map(|(name, net)| (name.to_string(), vec![net.parse().unwrap()]))
            .collect(),
        honeypots: vec![ip("10.3.0.99")],
        ..DetectConfig::default()
    };
    let scanner = "10.1.0.5";
    let mut f = Flows::default();
    f.scan(100.0, scanner, 1, 20, 445, 0.5);
    for i in 1..=4 {
        f.syn(120.0 + f64::from(i), scanner, &format!("10.2.0.{i}"), 445);
    }
    for i in 1..=3 {
        f.syn(130.0 + f64::from(i), scanner, &format!("10.3.0.{i}"), 3389);
    }
    f.ok(140.0, scanner, "10.3.0.7", 445, 1.0, 500);
    f.ok(141.0, scanner, "10.3.0.8", 1433, 1.0, 500);
    f.ok(142.0, scanner, "10.3.5.1", 445, 1.0, 500);
    f.ok(143.0, scanner, "10.3.0.99", 445, 1.0, 500);
    f.ok(150.0, "10.1.0.50", "10.2.0.9", 445, 1.0, 500);
    let d = detect(&config, &f.v, &[], &[]);
    assert!(d.is_infected(ip(scanner)));
    assert!(!d.alerts.iter().any(|a| a.src == ip("10.1.0.50")));

    assert_eq!(d.zones.len(), 12, "every ordered pair of the four zones");
    let check = |from: &str, to: &str| {
        d.zones
            .iter()
            .find(|z| z.from_zone == from && z.to_zone == to)
            .unwrap_or_else(|| panic!("no check {from} -> {to}"))
    };
    let dc = check("office", "dc");
    assert_eq!(
        (dc.attempts, dc.answered, dc.blocked, dc.sources, dc.verdict),
        (4, 0, 4, 1, Verdict::Held),
        "the clean host's session into dc is not counted"
    );
    let hq = check("office", "hq");
    assert_eq!(
        (hq.attempts, hq.answered, hq.blocked, hq.verdict),
        (5, 2, 3, Verdict::Breached),
        "the honeypot's answer is not a breach; 10.3.5.1 is hq-dc's"
    );
    let completed: Vec<IpAddr> = hq.completed.iter().map(|s| s.dst).collect();
    assert_eq!(completed, vec![ip("10.3.0.7"), ip("10.3.0.8")]);
    assert_eq!(hq.completed[1].service, "mssql");
    let inner = check("office", "hq-dc");
    assert_eq!((inner.attempts, inner.verdict), (1, Verdict::Breached));
    assert_eq!(check("dc", "office").verdict, Verdict::Untested);
    assert_eq!(check("hq", "dc").attempts, 0);
    let first_alert = &d.alerts.iter().find(|a| a.src == ip(scanner)).unwrap().id;
    assert_eq!(hq.alert_ids, vec![first_alert.clone()]);

    let report = render_report(&d);
    assert!(
        report.contains("`office` → `dc`: **the zone held**"),
        "{report}"
    );
    assert!(
        report.contains("`office` → `hq`: **the zone was breached**"),
        "{report}"
    );
    assert!(!report.contains("`dc` → `office`: **"), "{report}");

    // The hosts that answered across zones: review their exposure.
    let reviews: Vec<IpAddr> = remediation(&d)
        .iter()
        .filter(|r| r.action == Action::ReviewExposure)
        .map(|r| r.host)
        .collect();
    assert_eq!(
        reviews,
        vec![ip("10.3.0.7"), ip("10.3.0.8"), ip("10.3.5.1")]
    );
}

/// Without zones nothing is counted, and the report says the check was not made.
#[test]
fn segmentation_without_zones_is_not_checked() {
    let mut f = Flows::default();
    f.scan(100.0, "10.1.0.5", 1, 20, 445, 0.5);
    let d = run(&f);
    assert!(d.zones.is_empty());
    assert!(render_report(&d).contains("segmentation not checked"));
}

/// A host's identity: the MAC that held its address when it was infected (another one
/// claimed it later: the owner changed, and when), and the names DHCP, NetBIOS and a
/// reverse lookup gave.
#[test]
fn host_identity_from_arp_dhcp_nbns_and_reverse_dns() {
    let scanner = "10.0.0.5";
    let mut f = Flows::default();
    f.scan(100.0, scanner, 1, 20, 445, 0.5);
    let arp_at = |t: i64, mac: u8| ArpEvent {
        ts_ns: t * S,
        sender: Ipv4Addr::new(10, 0, 0, 5),
        target: Ipv4Addr::new(10, 0, 0, 1),
        is_request: true,
        sender_mac: [2, 0, 0, 0, 0, mac],
    };
    let arp = vec![arp_at(50, 0xa), arp_at(90, 0xa), arp_at(300, 0xb)];
    let ptr = DnsEvent {
        is_response: true,
        answers: vec!["wks5.corp.example".to_string()],
        ..q(60.0, "10.0.0.20", "10.0.0.53", "5.0.0.10.in-addr.arpa")
    };
    let d = detect(
        &DetectConfig::default(),
        &f.v,
        std::slice::from_ref(&ptr),
        &arp,
    );
    let id = &d.host(ip(scanner)).expect("the scanner's row").identity;
    assert_eq!(id.mac.as_deref(), Some("02:00:00:00:00:0a"));
    assert_eq!(id.other_macs, vec!["02:00:00:00:00:0b".to_string()]);
    assert_eq!(id.owner_changed_at, Some(300 * S));
    assert_eq!(id.host_name.as_deref(), Some("wks5.corp.example"));
    assert_eq!(id.names, vec!["wks5.corp.example (dns ptr)".to_string()]);
    assert!(render_report(&d).contains("wks5.corp.example"));

    // DHCP gave the address to the second MAC at 200 s (its request named the host);
    // NetBIOS registered a workstation name for it (a group name would not count).
    let fact =
        |t: i64, protocol: &str, message: &str, mac: Option<u8>, name: &str, suffix| NameEvent {
            ts_ns: t * S,
            protocol: protocol.into(),
            message: message.into(),
            address: Some(Ipv4Addr::new(10, 0, 0, 5)),
            mac: mac.map(|m| [2, 0, 0, 0, 0, m]),
            name: (!name.is_empty()).then(|| name.to_string()),
            suffix,
        };
    let names = vec![
        fact(199, "dhcp", "request", Some(0xb), "LAPTOP-B", None),
        fact(200, "dhcp", "ack", Some(0xb), "", None),
        fact(60, "nbns", "registration", None, "WKS5", Some(0x00)),
        fact(61, "nbns", "registration", None, "MSBROWSE", Some(0x01)),
    ];
    let (dns, config) = ([ptr], DetectConfig::default());
    let mut detector = Detector::new(&config, &dns, &arp).with_names(&names);
    f.v.iter().for_each(|r| detector.push(r));
    let d = detector.finish();
    let id = &d.host(ip(scanner)).unwrap().identity;
    assert_eq!(
        id.owner_changed_at,
        Some(200 * S),
        "DHCP saw the change first"
    );
    assert_eq!(id.mac.as_deref(), Some("02:00:00:00:00:0a"));
    assert_eq!(
        id.names,
        [
            "WKS5 (nbns)",
            "LAPTOP-B (dhcp)",
            "wks5.corp.example (dns ptr)"
        ],
        "login names, then DHCP and NBNS names in time order, then reverse DNS"
    );
    let report = render_report(&d);
    assert!(report.contains("| WKS5, 02:00:00:00:00:0a |"), "{report}");
    assert!(report.contains("changed owner"), "{report}");
}

/// Detection split into random parts by address equals the one-part detection, on what
/// a part would get wrong if it ran a rule by the wrong address: a server many outside
/// clients reach (exposed services are kept by server), scanners and a three-generation
/// chain (kept by source), and one-way NetFlow UDP records (counted by source).
#[test]
fn parts_add_up_to_the_whole_detection() {
    let mut f = chain();
    // B's ordinary SMB session before its infection: its scanning alerts are first seen
    // then, so only their first evidence (the scan) dates the infection after A's visit.
    f.ok(10.0, "10.0.0.2", "10.0.0.50", 445, 1.0, 500);
    for i in 0..12u8 {
        let client = format!("198.51.100.{}", i + 1);
        f.ok(
            600.0 + f64::from(i),
            &client,
            "10.0.0.8",
            3389,
            60.0,
            50_000,
        );
    }
    f.scan(700.0, "10.0.0.9", 5, 30, 139, 0.2);
    let mut flows = f.v.clone();
    let mut udp = Flows::default();
    for i in 0..8u8 {
        udp.add(
            800.0,
            &format!("10.0.0.{}", 20 + i),
            "10.0.0.1",
            1434,
            17,
            ConnState::S0,
            (40, 0),
            0.0,
        );
    }
    flows.extend(as_netflow(&udp.v));
    let c = DetectConfig::default();
    let run = |partition: &Partition| {
        let mut d = Detector::in_parts(&c, &[], &[], partition);
        flows.iter().for_each(|f| d.push(f));
        d.finish()
    };
    let whole = run(&Partition::hashed(1));
    let exposed: Vec<_> = whole
        .alerts_for(ip("10.0.0.8"), Rule::ExposedService)
        .collect();
    assert_eq!(exposed.len(), 1, "one exposure alert for the server");
    assert_eq!(exposed[0].distinct_targets, 12, "all its outside clients");
    assert_eq!(whole.stats.flows_without_outcome, 8);
    let parents: Vec<_> = whole.edges.iter().map(|e| (e.parent, e.child)).collect();
    assert_eq!(
        parents,
        [
            (ip("10.0.0.1"), ip("10.0.0.2")),
            (ip("10.0.0.2"), ip("10.0.0.3"))
        ],
        "the chain's two edges"
    );
    for (k, seed) in [(2, 11), (3, 12), (7, 13)] {
        assert_eq!(
            run(&Partition::by(k, move |ip| random_part(ip, seed))),
            whole,
            "{k} parts, seed {seed}"
        );
    }
}

/// An MS17-010 message of `src` to port 445 of `dst` at `t` seconds.
fn ms17(t: f64, src: &str, dst: &str, fact: Fact, outcome: Outcome) -> SessionEvent {
    SessionEvent {
        ts_ns: (t * 1e9) as i64,
        packet: (t * 1e3) as u64,
        client: ip(src),
        client_port: 49_152,
        server: ip(dst),
        server_port: 445,
        protocol: Protocol::Smb,
        fact,
        outcome,
        status: None,
        user: None,
        domain: None,
        workstation: None,
        detail: None,
    }
}

/// Two infected hosts exploit one target, which then looks up a C&C name: the first
/// exploit failed (its sender's own DoublePulsar ping found no implant afterwards), so
/// the second one infected it, and the target's infection in the timeline is that
/// exploit's alert. When the implant answers a third host's ping, the last exploit before
/// it is the confirmed one.
#[test]
fn the_exploit_that_infected_a_host_is_the_last_that_did_not_fail() {
    let (first, second, prober, target) = ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.9");
    let lookups = [
        q(1.0, first, "10.0.0.53", "t.awcna.com"),
        q(2.0, second, "10.0.0.53", "t.awcna.com"),
        q(30.0, target, "10.0.0.53", "t.awcna.com"),
    ];
    let run = |sessions: &[SessionEvent]| {
        let config = DetectConfig::default();
        let d = Detector::new(&config, &lookups, &[])
            .with_sessions(sessions)
            .finish();
        let edge = d.edges.iter().find(|e| e.child == ip(target)).cloned();
        let infection = (d.timeline.iter())
            .find(|e| e.kind == EventKind::Infection && e.host == ip(target))
            .and_then(|e| e.alert_id.clone());
        let exploit_alert = |src| {
            let to_target = d
                .alerts
                .iter()
                .find(|a| a.rule == Rule::Exploit && a.src == ip(src) && a.dst == Some(ip(target)));
            to_target.map(|a| a.id.clone())
        };
        (edge, infection, exploit_alert(first), exploit_alert(second))
    };
    let mut sessions = vec![
        ms17(10.0, first, target, Fact::EternalBlue, Outcome::Success),
        ms17(11.0, first, target, Fact::DoublePulsar, Outcome::Absent),
        ms17(20.0, second, target, Fact::EternalBlue, Outcome::Success),
    ];
    let (edge, infection, first_alert, second_alert) = run(&sessions);
    let edge = edge.expect("an edge to the target");
    assert_eq!(edge.parent, ip(second), "{edge:?}");
    assert_eq!(edge.infected_at_ns, 20 * S);
    assert!(first_alert.is_some() && second_alert.is_some());
    assert_eq!(infection, second_alert, "the second sender's exploit alert");

    // The implant answers a host that never exploited the target: the exploit before
    // that ping confirmed is the last one sent, not the first.
    sessions.remove(1);
    sessions.push(ms17(
        50.0,
        prober,
        target,
        Fact::DoublePulsar,
        Outcome::Present,
    ));
    let (edge, _, _, _) = run(&sessions);
    let edge = edge.expect("an edge to the target");
    assert_eq!(edge.parent, ip(second), "{edge:?}");
    assert!(edge.seen.contains("implant answered"), "{edge:?}");
}
