//! The responder's view on the labelled `datasets/` scenarios: remediation rows against
//! the ground truth, the timeline's C&C lookups and the segmentation check against
//! tshark, and the HTML report rendered by a real browser (chromium).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::{
    carve, dataset, frames, have_tool, read_rows, tshark_fields, wormsign, Row, Run,
};

fn labels(name: &str) -> Value {
    let text = std::fs::read_to_string(dataset(name).join("labels.json")).expect("labels.json");
    serde_json::from_str(&text).expect("labels.json parses")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// `wormsign analyze` on a dataset with its honeypots and authorized scanners, as the
/// README runs the DriveLife sample, plus `extra`.
fn analyze(name: &str, extra: &[&str]) -> Run {
    let l = labels(name);
    let mut args: Vec<String> = Vec::new();
    for h in strings(&l["honeypots"]) {
        args.extend(["--honeypot".into(), h]);
    }
    for a in strings(&l["authorized_scanners"]) {
        args.extend(["--allowlist".into(), a]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = wormsign(&[dataset(name).join("capture.pcap.gz")], &args);
    run.assert_ok(name);
    run
}

/// Hosts of the remediation rows with `action`, and their tiers.
fn hosts_with(rows: &[Row], action: &str) -> BTreeMap<String, String> {
    rows.iter()
        .filter(|r| r["action"].str() == action)
        .map(|r| (r["host"].str().to_string(), r["tier"].str().to_string()))
        .collect()
}

/// The remediation list of each scenario against its labels: exactly the infected hosts
/// are isolated, within the hour; every host infected over EternalBlue is to be patched
/// and every host infected by a guessed password to have it reset, within the hour;
/// hosts to check were attacked and not infected; the allowlisted scanner is a month's
/// review; a scenario without an outbreak has nothing due within the hour.
#[test]
fn remediation_rows_match_the_labelled_ground_truth() {
    for name in ["drivelife", "wannacry", "stealthy", "benign"] {
        let run = analyze(name, &[]);
        let l = labels(name);
        let rows = read_rows(&run.out().join("remediation.parquet"));
        let infected: Vec<&Value> = l["infected"].as_array().unwrap().iter().collect();
        let by_vector = |pred: &dyn Fn(&str) -> bool| -> BTreeSet<String> {
            infected
                .iter()
                .filter(|h| pred(h["vector"].as_str().unwrap()))
                .map(|h| h["ip"].as_str().unwrap().to_string())
                .collect()
        };

        let isolate = hosts_with(&rows, "isolate");
        let labelled = by_vector(&|_| true);
        assert_eq!(
            isolate.keys().cloned().collect::<BTreeSet<_>>(),
            labelled,
            "{name}"
        );
        assert!(isolate.values().all(|t| t == "hour"), "{name}");

        let patch = hosts_with(&rows, "patch_ms17_010");
        for ip in by_vector(&|v| v == "eternalblue_smb") {
            assert_eq!(
                patch.get(&ip).map(String::as_str),
                Some("hour"),
                "{name}: {ip}"
            );
        }
        let reset = hosts_with(&rows, "reset_password");
        for ip in by_vector(&|v| v.ends_with("_bruteforce")) {
            assert_eq!(
                reset.get(&ip).map(String::as_str),
                Some("hour"),
                "{name}: {ip}"
            );
        }
        let targets: BTreeSet<String> = strings(&l["targets_not_infected"]).into_iter().collect();
        for (ip, tier) in hosts_with(&rows, "check_host") {
            assert!(
                targets.contains(&ip),
                "{name}: {ip} to check was not a target"
            );
            assert_eq!(tier, "week");
        }
        let review = hosts_with(&rows, "review_allowlist");
        let scanners: BTreeSet<String> = strings(&l["authorized_scanners"]).into_iter().collect();
        assert_eq!(
            review.keys().cloned().collect::<BTreeSet<_>>(),
            scanners,
            "{name}"
        );
        assert!(review.values().all(|t| t == "month"), "{name}");
        if labelled.is_empty() {
            assert!(
                rows.iter().all(|r| r["tier"].str() != "hour"),
                "{name}: {rows:?}"
            );
        }

        // The CSV for mail holds the same rows.
        let csv = std::fs::read_to_string(run.out().join("remediation.csv")).unwrap();
        assert_eq!(csv.lines().count(), rows.len() + 1, "{name}");
        assert!(csv.starts_with("host,action,tier,detail,alert_ids,host_name,mac\r\n"));
    }
}

/// On DriveLife: the file server was brute-forced over RDP from outside, then infected;
/// the accounts the protocol shows are in the reset rows; the exposed RDP server is to be
/// closed within the day.
#[test]
fn drivelife_remediation_names_accounts_and_the_exposed_server() {
    let run = analyze("drivelife", &[]);
    let rows = read_rows(&run.out().join("remediation.parquet"));
    let detail = |host: &str, action: &str| {
        rows.iter()
            .find(|r| r["host"].str() == host && r["action"].str() == action)
            .map(|r| r["detail"].str().to_string())
            .unwrap_or_else(|| panic!("no {action} row for {host}: {rows:?}"))
    };
    assert_eq!(detail("10.164.1.8", "close_exposed_service"), "rdp");
    assert!(detail("10.164.1.8", "isolate").contains("185.220.101.47"));
    let l = labels("drivelife");
    for h in l["infected"].as_array().unwrap() {
        let (ip, vector) = (h["ip"].as_str().unwrap(), h["vector"].as_str().unwrap());
        let account = match vector {
            "smb_bruteforce" => "smb as administrator",
            "mssql_bruteforce" => "mssql as sa",
            _ => continue,
        };
        assert!(detail(ip, "reset_password").contains(account), "{ip}");
    }
}

/// Each host's first C&C lookup in the timeline is the first query tshark shows it
/// sending for a C&C name (resolvers, which forward their clients' queries, excepted):
/// same hosts, same time, same name.
#[test]
fn timeline_cnc_lookups_match_tshark() {
    if !have_tool("tshark") {
        return;
    }
    let run = analyze("drivelife", &[]);
    let capture = dataset("drivelife").join("capture.pcap.gz");
    let filter = "dns.flags.response == 0 && (dns.qry.name contains \"awcna.com\" \
                  || dns.qry.name contains \"ackng.com\")";
    let lines = tshark_fields(
        &capture,
        &["-Y", filter],
        &["frame.time_epoch", "ip.src", "ip.dst", "dns.qry.name"],
    );
    let mut first: BTreeMap<String, (i64, String)> = BTreeMap::new();
    let mut resolvers = BTreeSet::new();
    for line in lines.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let ts = (f[0].parse::<f64>().unwrap() * 1e6).round() as i64;
        resolvers.insert(f[2].to_string());
        first
            .entry(f[1].to_string())
            .or_insert((ts, f[3].to_string()));
    }
    first.retain(|host, _| !resolvers.contains(host));
    assert!(first.len() > 50, "the outbreak's hosts ask for C&C names");
    let timeline = read_rows(&run.out().join("timeline.parquet"));
    let lookups: BTreeMap<String, (i64, String)> = timeline
        .iter()
        .filter(|e| e["kind"].str() == "cnc_lookup")
        .map(|e| {
            let key = e["host"].str().to_string();
            (key, (e["ts"].int(), e["what"].str().to_string()))
        })
        .collect();
    assert_eq!(lookups, first);
    // Every event rests on an alert, and the rows are in time order.
    assert!(timeline
        .iter()
        .all(|e| !matches!(e["alert_id"], crate::common::Cell::Null)));
    let times: Vec<i64> = timeline.iter().map(|e| e["ts"].int()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
}

/// The incident's "headquarters' zones held", said from traffic: DriveLife's infected
/// branch hosts try the data centre, whose firewall drops them. tshark confirms the
/// attempts and that no packet came back.
#[test]
fn drivelife_data_centre_zone_held() {
    if !have_tool("tshark") {
        return;
    }
    let zones = [
        "--zone",
        "branch=10.164.0.0/16",
        "--zone",
        "hq-dc=10.210.0.0/16",
    ];
    let run = analyze("drivelife", &zones);
    let rows = read_rows(&run.out().join("segmentation.parquet"));
    assert_eq!(rows.len(), 2, "two zones, two ordered pairs");
    let to_dc = rows
        .iter()
        .find(|r| r["from_zone"].str() == "branch" && r["to_zone"].str() == "hq-dc")
        .unwrap();
    assert_eq!(to_dc["verdict"].str(), "held");
    assert_eq!(to_dc["answered"].int(), 0);
    let capture = dataset("drivelife").join("capture.pcap.gz");
    let count = |filter: &str| {
        tshark_fields(&capture, &["-Y", filter], &["frame.number"])
            .lines()
            .count()
    };
    let syns = count("ip.dst == 10.210.0.0/16 && tcp.flags.syn == 1 && tcp.flags.ack == 0");
    let replies = count("ip.src == 10.210.0.0/16");
    assert_eq!(replies, 0, "nothing came back from the data centre");
    let attempts = to_dc["attempts"].int() as usize;
    assert!(
        attempts > 0 && attempts <= syns,
        "{attempts} attempts, {syns} SYNs"
    );
    assert_eq!(to_dc["blocked"].int() as usize, attempts);
    let report = std::fs::read_to_string(run.out().join("report.md")).unwrap();
    assert!(
        report.contains("`branch` → `hq-dc`: **the zone held**"),
        "{report}"
    );
}

/// The HTML report in a real browser: chromium parses it, the propagation SVG inside has
/// one node per infected host, and a screenshot is written beside the test's outputs
/// (`target/responder-report.png`).
#[test]
fn report_renders_in_chromium_with_one_graph_node_per_infected_host() {
    if !wormsign_testutil::require_tool("chromium", "--version") {
        return;
    }
    let run = analyze("drivelife", &[]);
    let html = run.out().join("report.html");
    let dom = chromium(&html, &["--dump-dom"]);
    let infected = labels("drivelife")["infected"].as_array().unwrap().len();
    assert_eq!(dom.matches("class=\"node infected").count(), infected);
    assert_eq!(
        dom.matches("class=\"node external\"").count(),
        1,
        "the RDP attacker"
    );
    assert!(dom.contains("<h2>Timeline</h2>") && dom.contains("<h2>Remediation by urgency</h2>"));
    let dot = std::fs::read_to_string(run.out().join("propagation.dot")).unwrap();
    assert_eq!(
        dot.matches(" -> ").count(),
        infected,
        "one edge per infected host"
    );

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("responder-graph.png");
    let svg = run.out().join("propagation.svg");
    chromium(
        &svg,
        &[
            "--window-size=1400,1300",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real picture"
    );
}

/// Runs headless chromium on a local file and returns its stdout.
fn chromium(file: &Path, args: &[&str]) -> String {
    let url = format!("file://{}", file.display());
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("running chromium");
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `wormsign carve DIR ARGS... -o OUT` and returns OUT's packets as tshark lists
/// them (epoch time, frame length).
fn packets_of(flow: &Row) -> usize {
    (flow["orig_pkts"].int() + flow["resp_pkts"].int()) as usize
}

/// `carve` against tshark on DriveLife: a propagation edge's sessions, the same flow by
/// its Community ID, and a brute-force alert's sessions each come out as exactly the
/// packets their flows counted, the same frames tshark's own 5-tuple filter picks from
/// the original capture.
#[test]
fn carve_writes_exactly_the_packets_behind_an_edge_a_flow_and_an_alert() {
    if !have_tool("tshark") {
        return;
    }
    let run = analyze("drivelife", &[]);
    let flows = run.flows();
    let flow_at = |packet: i64| {
        flows
            .iter()
            .find(|f| f["first_packet"].int() == packet)
            .unwrap()
    };

    let edges = read_rows(&run.out().join("propagation.parquet"));
    let edge = edges
        .iter()
        .find(|e| e["vector"].str() == "eternalblue_smb" && e["basis"].str() == "protocol")
        .expect("an EternalBlue edge");
    let crate::common::Cell::List(evidence) = &edge["evidence_flows"] else {
        panic!("evidence_flows is a list");
    };
    let evidence: Vec<&Row> = evidence.iter().map(|p| flow_at(p.int())).collect();
    let (parent, child) = (edge["parent_ip"].str(), edge["child_ip"].str());
    let carved = carve(&run, &["--edge", &format!("{parent}-{child}")], "edge.pcap");
    assert_eq!(
        carved.len(),
        evidence.iter().map(|f| packets_of(f)).sum::<usize>()
    );

    let f = evidence[0];
    let by_id = carve(&run, &["--flow", f["community_id"].str()], "flow.pcap");
    assert_eq!(by_id.len(), packets_of(f));
    let five_tuple = format!(
        "ip.addr == {} && ip.addr == {} && tcp.port == {} && tcp.port == {}",
        f["orig_h"].str(),
        f["resp_h"].str(),
        f["orig_p"].int(),
        f["resp_p"].int()
    );
    let capture = dataset("drivelife").join("capture.pcap.gz");
    assert_eq!(
        by_id,
        frames(&capture, &["-Y", &five_tuple]),
        "tshark's frames of the flow"
    );

    let alerts = read_rows(&run.out().join("alerts.parquet"));
    let brute = alerts
        .iter()
        .find(|a| a["rule"].str() == "brute_force" && a["service"].str() == "smb")
        .expect("an SMB brute-force alert");
    let (src, dst) = (brute["src_ip"].str(), brute["dst_ip"].str());
    let (first, last) = (brute["first_seen"].int(), brute["last_seen"].int());
    let sessions: usize = flows
        .iter()
        .filter(|f| {
            f["orig_h"].str() == src && f["resp_h"].str() == dst && f["resp_p"].int() == 445
        })
        .filter(|f| (first..=last).contains(&f["ts"].int()))
        .map(packets_of)
        .sum();
    let carved = carve(&run, &["--alert", brute["alert_id"].str()], "alert.pcap");
    assert!(sessions > 0);
    assert_eq!(carved.len(), sessions);
}

/// Host identity on DriveLife against tshark: each host's MAC is the ARP sender address
/// tshark shows for its IP, and its login names are the workstation names tshark reads
/// from the NTLMSSP AUTHENTICATE and TDS LOGIN7 messages it sent.
#[test]
fn host_identity_matches_tshark() {
    if !have_tool("tshark") {
        return;
    }
    let run = analyze("drivelife", &[]);
    let capture = dataset("drivelife").join("capture.pcap.gz");
    let pairs = |filter: &str, fields: &[&str]| -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in tshark_fields(&capture, &["-Y", filter], fields).lines() {
            if let Some((ip, value)) = line.split_once('\t') {
                out.entry(ip.to_string())
                    .or_default()
                    .insert(value.to_string());
            }
        }
        out
    };
    let arp = pairs("arp", &["arp.src.proto_ipv4", "arp.src.hw_mac"]);
    let mut workstations = pairs(
        "ntlmssp.auth.hostname",
        &["ip.src", "ntlmssp.auth.hostname"],
    );
    for (ip, names) in pairs(
        "tds.7login.clientname",
        &["ip.src", "tds.7login.clientname"],
    ) {
        workstations.entry(ip).or_default().extend(names);
    }
    let hosts = read_rows(&run.out().join("hosts.parquet"));
    let (mut with_mac, mut named) = (0, 0);
    for h in &hosts {
        let ip = h["ip"].str();
        match (&h["mac"], arp.get(ip)) {
            (crate::common::Cell::Str(mac), Some(seen)) => {
                assert_eq!(seen.len(), 1, "{ip}: one owner in DriveLife");
                assert!(seen.contains(mac), "{ip}: {mac} vs tshark {seen:?}");
                with_mac += 1;
            }
            (crate::common::Cell::Null, None) => {}
            (mac, seen) => panic!("{ip}: mac {mac:?}, tshark {seen:?}"),
        }
        let crate::common::Cell::List(names) = &h["names"] else {
            panic!("names is a list");
        };
        let ours: BTreeSet<String> = names
            .iter()
            .filter_map(|n| {
                let n = n.str();
                n.strip_suffix(" (ntlmssp)")
                    .or(n.strip_suffix(" (tds login)"))
            })
            .map(String::from)
            .collect();
        assert_eq!(
            ours,
            workstations.get(ip).cloned().unwrap_or_default(),
            "{ip}"
        );
        named += usize::from(!ours.is_empty());
    }
    assert!(
        with_mac > 50 && named > 20,
        "{with_mac} hosts with a MAC, {named} named"
    );
}

/// Host names from reverse lookups on a real capture, against tshark: each host lists as
/// `(dns ptr)` exactly the names tshark reads from the PTR answers for its address, read
/// back by `wormsign detect` as the pipeline fed them. The home network's resolver is
/// asked many times for each of its devices; detection keeps one answer per name.
#[test]
fn reverse_lookup_names_match_tshark_on_a_real_capture() {
    let Some(dir) = crate::common::captures_and("tshark") else {
        return;
    };
    let capture = dir.join("format/pcapng_wireshark_samples.pcapng");
    let answers = tshark_fields(
        &capture,
        &["-Y", "dns.flags.response == 1 && dns.qry.type == 12"],
        &["dns.qry.name", "dns.ptr.domain_name"],
    );
    let mut tshark: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (qname, names) in answers.lines().filter_map(|l| l.split_once('\t')) {
        let Some(v4) = qname
            .to_ascii_lowercase()
            .strip_suffix(".in-addr.arpa")
            .map(|r| {
                let octets: Vec<&str> = r.split('.').rev().collect();
                octets.join(".")
            })
        else {
            continue;
        };
        let names = names.split(',').filter(|n| !n.is_empty());
        (tshark.entry(v4).or_default()).extend(names.map(str::to_ascii_lowercase));
    }
    let honeypots = ["239.255.255.250", "192.168.152.1", "224.0.0.7"];
    let args: Vec<&str> = honeypots.iter().flat_map(|h| ["--honeypot", h]).collect();
    let run = wormsign(&[&capture], &args);
    run.assert_ok("wireshark samples");
    let ptr_names = |hosts: &[Row]| -> BTreeMap<String, BTreeSet<String>> {
        let mut out = BTreeMap::new();
        for h in hosts {
            let crate::common::Cell::List(names) = &h["names"] else {
                panic!("names is a list");
            };
            let ours: BTreeSet<String> = names
                .iter()
                .filter_map(|n| n.str().strip_suffix(" (dns ptr)").map(String::from))
                .collect();
            out.insert(h["ip"].str().to_string(), ours);
        }
        out
    };
    let hosts = ptr_names(&read_rows(&run.out().join("hosts.parquet")));
    let mut named = 0;
    for (ip, ours) in &hosts {
        assert_eq!(ours, &tshark.get(ip).cloned().unwrap_or_default(), "{ip}");
        named += usize::from(!ours.is_empty());
    }
    assert!(named >= 4, "{named} hosts named: {hosts:?}");
    let (stored, again) = (run.out(), run.dir.path().join("detect"));
    let mut detect: Vec<&std::ffi::OsStr> = vec![
        "detect".as_ref(),
        stored.as_os_str(),
        "--out".as_ref(),
        again.as_os_str(),
        "-q".as_ref(),
    ];
    detect.extend(args.iter().map(std::ffi::OsStr::new));
    crate::common::wormsign_ok(&detect);
    assert_eq!(ptr_names(&read_rows(&again.join("hosts.parquet"))), hosts);
}

/// The real captures of the shared corpus that carry DHCP or NetBIOS name service.
const NAMING_CAPTURES: [&str; 6] = [
    "smb/eternalblue_failed_patched_win7.pcap",
    "smb/smb2_psexec_add_user.pcap",
    "smb/metasploit_ms17_010_win7x64.pcap",
    "smb/eternalchampion.pcap",
    "rdp/esteemedaudit_failed_xpsp2.pcap",
    "general/wikipedia_browse.pcap",
];

/// `names.parquet` against tshark on real captures: every DHCP message (its type, client
/// MAC and host name) and every NetBIOS registration, release, refresh and positive
/// answer of a unique name (name, type, address) that tshark decodes, at the same packet.
#[test]
fn names_match_tshark_on_real_captures() {
    if crate::common::captures().is_none() || !have_tool("tshark") {
        return;
    }
    let dhcp_types = [
        "", "discover", "offer", "request", "decline", "ack", "nak", "release", "inform",
    ];
    let (mut dhcp_seen, mut nbns_seen) = (0, 0);
    for rel in NAMING_CAPTURES {
        let capture = crate::common::capture(rel);
        let run = wormsign(&[&capture], &["--no-detect"]);
        run.assert_ok(rel);
        let rows = read_rows(&run.out().join("names.parquet"));
        let text = |c: &crate::common::Cell| match c {
            crate::common::Cell::Str(s) => s.clone(),
            _ => String::new(),
        };
        let ours = |protocol: &str, row: &dyn Fn(&Row) -> String| -> BTreeSet<String> {
            rows.iter()
                .filter(|r| r["protocol"].str() == protocol)
                .map(row)
                .collect()
        };
        let dhcp = ours("dhcp", &|r| {
            let name = text(&r["name"]);
            format!(
                "{} {} {} {name}",
                r["packet"].int(),
                r["message"].str(),
                text(&r["mac"])
            )
        });
        let fields = [
            "frame.number",
            "dhcp.option.dhcp",
            "dhcp.hw.mac_addr",
            "dhcp.option.hostname",
        ];
        let theirs: BTreeSet<String> = tshark_fields(&capture, &["-Y", "dhcp"], &fields)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                let packet = f[0].parse::<i64>().unwrap() - 1;
                let kind = dhcp_types[f[1].parse::<usize>().unwrap_or(0).min(8)];
                format!("{packet} {kind} {} {}", f[2], f.get(3).unwrap_or(&""))
            })
            .collect();
        assert_eq!(dhcp, theirs, "{rel}: DHCP");
        dhcp_seen += dhcp.len();

        let named = ["registration", "release", "refresh", "query_answer"];
        let nbns = ours("nbns", &|r| {
            if !named.contains(&r["message"].str()) {
                return String::new();
            }
            let suffix = r["suffix"].int();
            format!(
                "{} {}<{suffix:02x}> {}",
                r["packet"].int(),
                text(&r["name"]),
                text(&r["address"])
            )
        });
        let nbns: BTreeSet<String> = nbns.into_iter().filter(|s| !s.is_empty()).collect();
        let filter = "nbns && nbns.nb_flags.group == 0 && ((nbns.flags.response == 0 && \
                      nbns.flags.opcode in {5, 6, 8, 9, 15}) || (nbns.flags.response == 1 && \
                      nbns.flags.opcode == 0 && nbns.flags.rcode == 0 && nbns.count.answers > 0))";
        let fields = ["frame.number", "nbns.name", "nbns.addr"];
        let theirs: BTreeSet<String> = tshark_fields(&capture, &["-Y", filter], &fields)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                let packet = f[0].parse::<i64>().unwrap() - 1;
                // "NAME<1d>" (tshark lower-cases nothing; the suffix is hex).
                let name = f[1].split(',').next().unwrap_or("").to_string();
                format!("{packet} {name} {}", f[2])
            })
            .collect();
        assert_eq!(nbns, theirs, "{rel}: NBNS");
        nbns_seen += nbns.len();
    }
    assert!(
        dhcp_seen >= 2 && nbns_seen >= 3,
        "{dhcp_seen} DHCP, {nbns_seen} NBNS facts"
    );
}
