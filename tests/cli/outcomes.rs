//! Detection outcomes on the real captures, against references wormsign did not make:
//! tshark's reading of the SYN scan and the counts in `EXPECTED.tsv` (also tshark), and
//! the corpus manifest's own description of what each capture holds.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::common::{
    capture, captures, expected, have_tool, ip, read_rows, read_tsv, tshark_fields, wormsign, Row,
    Run,
};

const SYNSCAN: &str = "scan/ndpi_synscan_1000ports.pcap";

/// The worm services of the built-in rules (`wormsign rules`, docs/schema.md): TCP port
/// and service name. The scan rules only count flows to these.
const WORM_TCP: [(u16, &str); 5] = [
    (445, "smb"),
    (139, "netbios"),
    (3389, "rdp"),
    (1433, "mssql"),
    (22, "ssh"),
];

/// An `EXPECTED.tsv` count of the SYN scan.
fn syn_expected(metric: &str) -> usize {
    expected()
        .get(&(SYNSCAN.to_string(), metric.to_string()))
        .unwrap_or_else(|| panic!("EXPECTED.tsv has no {metric} for {SYNSCAN}"))
        .parse()
        .expect("a count")
}

fn alerts(run: &Run) -> Vec<Row> {
    read_rows(&run.out().join("alerts.parquet"))
}

/// What tshark shows of one worm service in the scan: the scanner's connections to it
/// (distinct source ports: each SYN-only packet opens one, see below), whether the
/// target answered any with SYN-ACK, and the first SYN's time (µs).
#[derive(Debug, Default)]
struct Probe {
    conns: BTreeSet<u16>,
    answered: bool,
    first_us: i64,
}

/// `1278275056.403945000` to microseconds, in integers.
fn epoch_us(s: &str) -> i64 {
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let frac = format!("{frac:0<6}");
    sec.parse::<i64>().expect("seconds") * 1_000_000 + frac[..6].parse::<i64>().expect("µs")
}

/// The scan as tshark reads it: (scanner, target, worm-service probes by port).
fn tshark_scan() -> (IpAddr, IpAddr, BTreeMap<u16, Probe>) {
    let out = tshark_fields(
        &capture(SYNSCAN),
        &["-Y", "tcp.flags.syn==1"],
        &[
            "frame.time_epoch",
            "ip.src",
            "ip.dst",
            "tcp.srcport",
            "tcp.dstport",
            "tcp.flags.ack",
        ],
    );
    let mut scanners = BTreeSet::new();
    let mut targets = BTreeSet::new();
    let mut probes: BTreeMap<u16, Probe> = BTreeMap::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let (sport, dport): (u16, u16) = (f[3].parse().unwrap(), f[4].parse().unwrap());
        let ack = f[5] == "1" || f[5] == "True";
        if !ack {
            scanners.insert(ip(f[1]));
            targets.insert(ip(f[2]));
            if WORM_TCP.iter().any(|&(p, _)| p == dport) {
                let p = probes.entry(dport).or_default();
                let t = epoch_us(f[0]);
                if p.conns.is_empty() || t < p.first_us {
                    p.first_us = t;
                }
                p.conns.insert(sport);
            }
        } else if let Some(p) = probes.get_mut(&sport) {
            p.answered = true;
        }
    }
    assert_eq!(scanners.len(), 1, "tshark: scanners {scanners:?}");
    assert_eq!(targets.len(), 1, "tshark: targets {targets:?}");
    let (s, t) = (*scanners.first().unwrap(), *targets.first().unwrap());
    (s, t, probes)
}

/// `scan/ndpi_synscan_1000ports.pcap`: one internal host (172.16.0.8) SYN-scans 1000
/// TCP ports of one outside host. EXPECTED.tsv (tshark) says: 1994 SYN-only packets, 1000
/// distinct ports, 1 destination host, 1 source host, 1994 TCP conversations.
///
/// By the documented rules (docs/schema.md "Rules"), every scan rule counts distinct
/// destination *addresses* on worm services: `scan_fanout` needs 10, `failed_contacts`
/// 4 failed first contacts to distinct addresses, TRW 4 failures (θ0 0.8, θ1 0.2: each
/// failure multiplies the ratio by 4, η1 = 99). With 1 destination host the built-in rules
/// can raise no scan alert: a vertical scan is below all of them, and this asserts so.
/// With `fanout_threshold = 1` and `failed_threshold = 1` (a rules file, the documented
/// settings), the rules must fire, and each alert's counts follow from tshark alone:
/// - `scan_fanout`, one per worm service the scanner probed: `distinct_targets` = the
///   destination hosts (EXPECTED: 1), `attempts` = tshark's connections to that port,
///   `failed_ratio` 1 when the target never answered SYN-ACK on it, else 0, and
///   `infection_sign` exactly when mostly failed (the scanner is internal);
///   `first_seen` = tshark's first SYN to the port;
/// - `failed_contacts`: `attempts` = first contacts = the destination hosts (1), fired on
///   the first worm-service SYN, if that one went unanswered;
/// - no `trw`: one first contact cannot reach 4 failures.
///
/// Also the flows under them: the scanner's flows are the SYN-only packets (EXPECTED's
/// conversations equal its SYN-only packets, so one SYN each), over EXPECTED's distinct
/// ports and hosts.
#[test]
fn synscan_scan_alerts_match_tshark_syn_counts() {
    if captures().is_none() || !have_tool("tshark") {
        return;
    }
    let syn_only = syn_expected("tcp_syn_only_packets");
    let ports = syn_expected("tcp_syn_distinct_dst_ports");
    let hosts = syn_expected("tcp_syn_distinct_dst_hosts");
    let srcs = syn_expected("tcp_syn_distinct_src_hosts");
    assert_eq!((hosts, srcs), (1, 1), "EXPECTED.tsv: a one-to-one scan");
    let convs: usize = expected()[&(SYNSCAN.to_string(), "tcp_conversations".to_string())]
        .parse()
        .unwrap();
    assert_eq!(convs, syn_only, "EXPECTED.tsv: one SYN per conversation");
    let (scanner, target, probes) = tshark_scan();
    assert!(!probes.is_empty(), "tshark: no worm-service probe");

    // The flows detection reads: one per SYN-only packet, EXPECTED's ports and hosts.
    let run = wormsign(&[capture(SYNSCAN)], &[]);
    run.assert_ok(SYNSCAN);
    let flows = run.flows();
    let scans: Vec<&Row> = flows
        .iter()
        .filter(|r| ip(r["orig_h"].str()) == scanner && r["proto"].str() == "tcp")
        .collect();
    assert_eq!(scans.len(), syn_only, "scanner flows vs SYN-only packets");
    let dports: BTreeSet<i64> = scans.iter().map(|r| r["resp_p"].int()).collect();
    let dsts: BTreeSet<&str> = scans.iter().map(|r| r["resp_h"].str()).collect();
    assert_eq!((dports.len(), dsts.len()), (ports, hosts));
    assert_eq!(dsts.into_iter().map(ip).collect::<Vec<_>>(), vec![target]);

    // Built-in rules: below every scan threshold.
    let scan_rules = ["scan_fanout", "trw", "failed_contacts"];
    let builtin = alerts(&run);
    assert!(
        builtin
            .iter()
            .all(|a| !scan_rules.contains(&a.get("rule").unwrap().str())),
        "1 destination host is below every built-in scan threshold: {builtin:?}"
    );

    // Thresholds at 1: the alerts tshark's reading predicts.
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[scan]\nfanout_threshold = 1\nfailed_threshold = 1\n",
    )
    .unwrap();
    let run = wormsign(&[capture(SYNSCAN)], &["--rules", rules.to_str().unwrap()]);
    run.assert_ok("thresholds 1");
    let got = alerts(&run);
    let of = |rule: &str| -> Vec<&Row> { got.iter().filter(|a| a["rule"].str() == rule).collect() };
    assert!(of("trw").is_empty(), "trw on one first contact: {got:?}");
    let fanout = of("scan_fanout");
    assert_eq!(
        fanout.len(),
        probes.len(),
        "one per probed service: {got:?}"
    );
    for (port, probe) in &probes {
        let name = WORM_TCP.iter().find(|w| w.0 == *port).unwrap().1;
        let a = fanout
            .iter()
            .find(|a| a["service"].str() == name)
            .unwrap_or_else(|| panic!("no scan_fanout on {name}: {got:?}"));
        let failed = if probe.answered { 0.0 } else { 1.0 };
        assert_eq!(ip(a["src_ip"].str()), scanner, "{name}");
        assert_eq!(a["distinct_targets"].int() as usize, hosts, "{name}");
        assert_eq!(a["attempts"].int() as usize, probe.conns.len(), "{name}");
        assert_eq!(a["failed_ratio"].float(), failed, "{name}");
        assert_eq!(a["infection_sign"].bool(), !probe.answered, "{name}");
        assert_eq!(a["first_seen"].int(), probe.first_us, "{name}");
    }
    let (first_port, first) = probes.iter().min_by_key(|(_, p)| p.first_us).unwrap();
    let failed_contacts = of("failed_contacts");
    if first.answered {
        assert!(failed_contacts.is_empty(), "{got:?}");
    } else {
        assert_eq!(failed_contacts.len(), 1, "{got:?}");
        let a = failed_contacts[0];
        assert_eq!(ip(a["src_ip"].str()), scanner);
        assert_eq!(a["attempts"].int() as usize, hosts);
        assert_eq!(a["distinct_targets"].int() as usize, hosts);
        assert_eq!(a["failed_ratio"].float(), 1.0);
        assert!(a["infection_sign"].bool());
        assert_eq!(a["first_seen"].int(), first.first_us, "port {first_port}");
    }
}

/// Captures of the corpus that are not benign, by their MANIFEST.tsv description, with
/// the reason. Everything else in the manifest is benign (or, for the fuzzed and damaged
/// captures, broken but not hostile) and must yield no infection sign.
const NOT_BENIGN: [(&str, &str); 17] = [
    ("scan/ndpi_synscan_1000ports.pcap", "SYN scan"),
    (
        "scan/nmap_version_scan_zeek.pcap",
        "nmap ARP sweep and version scan",
    ),
    ("scan/tcp_scan_ndpi.pcap", "TCP scan"),
    ("scan/vnc_scanner.pcap", "VNC scanner"),
    (
        "smb/eternalblue_success_unpatched_win7.pcap",
        "EternalBlue exploit",
    ),
    (
        "smb/eternalblue_failed_patched_win7.pcap",
        "EternalBlue attempt",
    ),
    (
        "smb/doublepulsar_backdoor_connect_win7.pcap",
        "DoublePulsar backdoor",
    ),
    ("smb/metasploit_ms17_010_win7x64.pcap", "MS17-010 exploit"),
    (
        "smb/eternalromance_success_2008r2.pcap",
        "EternalRomance exploit",
    ),
    ("smb/eternalchampion.pcap", "EternalChampion exploit"),
    ("smb/wannacry_lateral.pcap", "WannaCry worm"),
    (
        "smb/eternalromance_doublepulsar_meterpreter.pcap",
        "EternalRomance, DoublePulsar, meterpreter",
    ),
    (
        "smb/smbv1_ndpi.pcap",
        "described as a short negotiate, but it sends a DoublePulsar ping (Trans2 \
         0x000e, tshark shows it; see protocol.rs)",
    ),
    (
        "dns/dns_tunnel_iodine.pcap",
        "iodine DNS tunnel (covert channel)",
    ),
    ("dns/dns_exfiltration.pcap", "DNS exfiltration"),
    (
        "ip/ipv4_frag_spray_af_confusion.pcap",
        "defragmentation attack (address-family confusion spray)",
    ),
    (
        "malformed/pcapparser_err_eof.bin",
        "not a capture (no section header): analyze exits 1 and writes no alerts",
    ),
];

/// Words of a manifest description that mark attack, scan or worm traffic: a capture
/// whose description has one must be listed in [`NOT_BENIGN`] (or be one of
/// protocol.rs's checked captures), so a new attack capture is never counted benign.
const HOSTILE_WORDS: [&str; 14] = [
    "scan",
    "exploit",
    "worm",
    "eternal",
    "doublepulsar",
    "wannacry",
    "meterpreter",
    "iodine",
    "exfiltration",
    "spray",
    "attack",
    "backdoor",
    "mimikatz",
    "psexec",
];

/// Every benign capture of the corpus outside protocol.rs's 18 (which must raise no alert
/// at all): detection with the built-in rules marks no host infected, with the default
/// internal networks and with every address internal.
#[test]
fn benign_real_captures_yield_no_infection_sign() {
    let Some(dir) = captures() else {
        return;
    };
    let manifest = read_tsv(&dir.join("MANIFEST.tsv"));
    let mut checked = 0;
    let mut signs = Vec::new();
    for row in &manifest {
        let (rel, what) = (row["path"].as_str(), row["what_it_contains"].as_str());
        if crate::protocol::BENIGN.contains(&rel) {
            continue;
        }
        if NOT_BENIGN.iter().any(|(p, _)| *p == rel) {
            continue;
        }
        let lower = what.to_lowercase();
        assert!(
            !HOSTILE_WORDS.iter().any(|w| lower.contains(w)),
            "{rel} ({what}) reads as hostile: list it in NOT_BENIGN with the reason"
        );
        // As the corpus's own networks are, and with every address internal: most of
        // these captures are between public addresses, and only an internal source can
        // be marked infected, so the second run is the one that can fail for them.
        for extra in [&[][..], &["--internal", "0.0.0.0/0", "--internal", "::/0"]] {
            let run = wormsign(&[capture(rel)], extra);
            run.assert_ok(rel);
            for a in alerts(&run).iter().filter(|a| a["infection_sign"].bool()) {
                signs.push(format!(
                    "{rel} {extra:?}: {} {} {}",
                    a["rule"].str(),
                    a["src_ip"].str(),
                    a["evidence"].str()
                ));
            }
        }
        checked += 1;
    }
    // Every manifest entry named in NOT_BENIGN exists (no stale entries).
    for (p, _) in NOT_BENIGN {
        assert!(
            manifest.iter().any(|r| r["path"] == p),
            "{p} not in MANIFEST.tsv"
        );
    }
    // 159 captures when this was written: 18 in protocol.rs, 17 not benign.
    assert!(checked >= 124, "only {checked} benign captures checked");
    assert!(
        signs.is_empty(),
        "infection signs on benign captures:\n{}",
        signs.join("\n")
    );
}
