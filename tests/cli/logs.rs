//! Zeek and Suricata logs as inputs. The Zeek logs are Zeek's own output: `conn.log`
//! from Zeek's test data (`testing/btest/Files/zeek-cut-logs/conn.log`) with the trace it
//! was made from (`Traces/ftp/ipv4.pcap`), and the TSV and JSON `conn.log`/`dns.log`
//! examples the `zat` package ships on PyPI (`tests/data/logs/README.md` says where each
//! comes from). The checks hold the rows against the same traffic as a capture, and
//! against the log lines as another reader (a plain split on the declared separator)
//! sees them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::common::{self, Cell, Row};

fn log_data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/logs")
        .join(rel)
}

/// A flow's identity and what both sides said, as `conn.log` states them.
fn conn_view(r: &Row) -> (String, i64, String, i64, String, String, String, [i64; 6]) {
    let n = |c: &str| r[c].int();
    (
        r["orig_h"].str().to_string(),
        n("orig_p"),
        r["resp_h"].str().to_string(),
        n("resp_p"),
        r["proto"].str().to_string(),
        r["conn_state"].str().to_string(),
        r["history"].str().to_string(),
        [
            n("orig_pkts"),
            n("orig_ip_bytes"),
            n("orig_bytes"),
            n("resp_pkts"),
            n("resp_ip_bytes"),
            n("resp_bytes"),
        ],
    )
}

#[test]
fn zeek_conn_log_gives_the_flows_of_the_trace_it_was_made_from() {
    let from_log = common::wormsign(&[log_data("zeek/ftp-ipv4.conn.log")], &[]);
    from_log.assert_ok("conn.log");
    let from_pcap = common::wormsign(&[log_data("zeek/ftp-ipv4.pcap")], &[]);
    from_pcap.assert_ok("pcap");
    let by_tuple = |rows: Vec<Row>| -> BTreeMap<_, _> {
        rows.into_iter().map(|r| (conn_view(&r), r)).collect()
    };
    let (logged, metered) = (by_tuple(from_log.flows()), by_tuple(from_pcap.flows()));
    assert_eq!(logged.len(), 5, "the log's five connections");
    assert_eq!(
        logged.keys().collect::<Vec<_>>(),
        metered.keys().collect::<Vec<_>>(),
        "Zeek's connections, states, histories and counts equal wormsign's on the trace"
    );
    for (key, row) in &logged {
        let twin = &metered[key];
        assert_eq!(row["source"], Cell::Str("zeek".into()));
        for same in ["ts", "community_id"] {
            assert_eq!(row[same], twin[same], "{same} of {key:?}");
        }
    }
    assert_eq!(from_log.n("flows"), 5);
    assert_eq!(from_log.summary()["logs"]["flow_records"], 5);
}

/// The data lines of a Zeek TSV log, split on its declared separator, by field name.
fn tsv_lines(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut fields: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(names) = line.strip_prefix("#fields\t") {
            fields = names.split('\t').map(String::from).collect();
        } else if !line.starts_with('#') {
            out.push(
                fields
                    .iter()
                    .cloned()
                    .zip(line.split('\t').map(String::from))
                    .collect(),
            );
        }
    }
    out
}

/// The conn.log fields the line-by-line checks compare, and the flows columns they become.
const LOGGED_CONN: [&str; 7] = [
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "conn_state",
    "orig_pkts",
    "resp_ip_bytes",
];

/// [`LOGGED_CONN`] of each line or row, sorted.
fn conn_tuples(rows: impl Iterator<Item = [String; 7]>) -> Vec<[String; 7]> {
    let mut out: Vec<_> = rows.collect();
    out.sort();
    out
}

fn text(c: &Cell) -> String {
    match c {
        Cell::Null => "-".into(),
        Cell::Str(s) => s.clone(),
        Cell::Int(v) => v.to_string(),
        other => panic!("unexpected cell {other:?}"),
    }
}

#[test]
fn zeek_tsv_json_and_compressed_logs_keep_every_line() {
    let tsv = log_data("zat/conn.log");
    let lines = tsv_lines(&tsv);
    let expected = conn_tuples(lines.iter().map(|l| LOGGED_CONN.map(|k| l[k].clone())));
    let of_rows = |rows: Vec<Row>| {
        conn_tuples(
            rows.iter()
                .map(|r| LOGGED_CONN.map(|k| text(&r[k.trim_start_matches("id.")]))),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("conn.log.gz");
    let out = std::process::Command::new("gzip")
        .arg("-c")
        .arg(&tsv)
        .output()
        .unwrap();
    std::fs::write(&gz, out.stdout).unwrap();
    for input in [&tsv, &gz] {
        let run = common::wormsign(&[input], &[]);
        run.assert_ok("conn.log");
        assert_eq!(of_rows(run.flows()), expected, "{}", input.display());
        assert!(run.warnings().is_empty(), "{:?}", run.warnings());
    }
    let stdin = common::wormsign_with_stdin(&["-"], &[], Some(&std::fs::read(&tsv).unwrap()));
    assert_eq!(
        of_rows(stdin.flows()),
        expected,
        "conn.log on standard input"
    );

    // JSON: one object per line, fields omitted when unset.
    let json = log_data("zat/conn.json.log");
    let objects: Vec<serde_json::Value> = std::fs::read_to_string(&json)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected = conn_tuples(objects.iter().map(|o| {
        LOGGED_CONN.map(|k| match &o[k] {
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        })
    }));
    let run = common::wormsign(&[&json], &[]);
    run.assert_ok("conn.json.log");
    assert_eq!(of_rows(run.flows()), expected);
}

#[test]
fn zeek_dns_log_rows_become_queries_and_replies() {
    let tsv = log_data("zat/dns.log");
    let lines = tsv_lines(&tsv);
    let run = common::wormsign(&[&tsv], &[]);
    run.assert_ok("dns.log");
    let rows = run.dns();
    let replied = lines.iter().filter(|l| l["rcode"] != "-").count();
    let responses: Vec<&Row> = rows.iter().filter(|r| r["is_response"].bool()).collect();
    assert_eq!(
        rows.len() - responses.len(),
        lines.len(),
        "a query per line"
    );
    assert_eq!(responses.len(), replied, "a reply per line with an rcode");
    let names = |it: &mut dyn Iterator<Item = String>| it.collect::<BTreeSet<String>>();
    // An unset query (`-`) is a null name.
    assert_eq!(
        names(&mut rows.iter().filter_map(|r| match &r["qname"] {
            Cell::Str(q) => Some(q.clone()),
            _ => None,
        })),
        names(
            &mut lines
                .iter()
                .filter(|l| l["query"] != "-")
                .map(|l| l["query"].to_lowercase())
        ),
    );
    // Every address the log answered is an A or AAAA answer of that name's reply.
    let answered =
        |it: &mut dyn Iterator<Item = (String, String)>| it.collect::<BTreeSet<(String, String)>>();
    let logged = answered(&mut lines.iter().flat_map(|l| {
        let q = l["query"].to_lowercase();
        l["answers"]
            .split(',')
            .filter(|a| a.parse::<std::net::IpAddr>().is_ok())
            .map(move |a| (q.clone(), a.to_string()))
            .collect::<Vec<_>>()
    }));
    let stored = answered(&mut responses.iter().flat_map(|r| {
        let Cell::List(answers) = &r["answers"] else {
            panic!("answers")
        };
        let Cell::List(types) = &r["answer_types"] else {
            panic!("types")
        };
        let q = text(&r["qname"]);
        answers
            .iter()
            .zip(types)
            .filter(|(_, t)| matches!(t.str(), "A" | "AAAA"))
            .map(move |(a, _)| (q.clone(), a.str().to_string()))
            .collect::<Vec<_>>()
    }));
    assert!(!logged.is_empty());
    assert_eq!(stored, logged);
}

#[test]
fn damaged_log_lines_are_skipped_with_a_warning_naming_the_first() {
    let good = std::fs::read_to_string(log_data("zat/conn.log")).unwrap();
    let mut lines: Vec<&str> = good.lines().collect();
    let data_lines = lines.iter().filter(|l| !l.starts_with('#')).count();
    // The 12th line (the 4th data line): cut short; the 20th: not a connection.
    lines[11] = "1379288668.082016\tCvNL1g1RGVeCAszIRj\t192.168.33.10";
    lines[19] = "garbage\tx\ty\tz\tw\tv\tu\tt\ts\tr\tq\tp\to\tn\tm\tl\tk\tj\ti\th";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conn.log");
    let mut file = std::fs::File::create(&path).unwrap();
    writeln!(file, "{}", lines.join("\n")).unwrap();
    let offset: usize = lines[..11].iter().map(|l| l.len() + 1).sum();
    let run = common::wormsign(&[&path], &[]);
    run.assert_ok("damaged conn.log");
    assert_eq!(run.flows().len(), data_lines - 2);
    assert_eq!(run.summary()["logs"]["malformed_lines"], 2);
    let warnings = run.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0]["offset"], offset as u64);
    let message = warnings[0]["message"].as_str().unwrap();
    assert!(
        message.contains("2 line(s)") && message.contains("line 12"),
        "{message}"
    );
}

#[test]
fn a_file_neither_capture_nor_log_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "{\"just\": \"json\"}\n").unwrap();
    let run = common::wormsign(&[&path], &[]);
    assert_ne!(run.code(), Some(0), "nothing usable: {}", run.stderr);
    assert!(run.stderr.contains("not a pcap"), "{}", run.stderr);
}

/// µs since the epoch as Zeek's TSV time (`1379288667.706265`).
fn zeek_time(us: i64) -> String {
    format!(
        "{}.{:06}",
        us.div_euclid(1_000_000),
        us.rem_euclid(1_000_000)
    )
}

/// µs since the epoch as Suricata's time (`2013-09-15T23:44:27.706265+0000`).
fn eve_time(us: i64) -> String {
    let (secs, micros) = (us.div_euclid(1_000_000), us.rem_euclid(1_000_000));
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}+0000",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Zeek's transport name of a stored flow, or `None` for what `conn.log` leaves out.
fn zeek_proto(r: &Row) -> Option<&'static str> {
    match r["proto"].str() {
        "tcp" => Some("tcp"),
        "udp" => Some("udp"),
        "icmp" | "icmp6" => Some("icmp"),
        _ => None,
    }
}

/// A `conn.log` of a run's flows, written to Zeek's field specification
/// (`Conn::Info`), in `first_packet` order.
fn write_conn_log(flows: &[Row], path: &Path) {
    let mut out = String::from(
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n\
         #fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\t\
         orig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\t\
         orig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\n\
         #types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\t\
         string\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\n",
    );
    for (i, r) in flows.iter().enumerate() {
        let Some(proto) = zeek_proto(r) else { continue };
        let n = |c: &str| r[c].int().to_string();
        let fields = [
            zeek_time(r["ts"].int()),
            format!("C{i}"),
            text(&r["orig_h"]),
            n("orig_p"),
            text(&r["resp_h"]),
            n("resp_p"),
            proto.into(),
            "-".into(),
            format!("{:.6}", (r["last_ts"].int() - r["ts"].int()) as f64 / 1e6),
            n("orig_bytes"),
            n("resp_bytes"),
            text(&r["conn_state"]),
            "-".into(),
            "-".into(),
            "0".into(),
            Some(r["history"].str())
                .filter(|h| !h.is_empty())
                .unwrap_or("-")
                .into(),
            n("orig_pkts"),
            n("orig_ip_bytes"),
            n("resp_pkts"),
            n("resp_ip_bytes"),
            "(empty)".into(),
        ];
        out.push_str(&fields.join("\t"));
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

/// The items of a list cell as text.
fn list(c: &Cell) -> Vec<String> {
    match c {
        Cell::List(items) => items.iter().map(text).collect(),
        _ => Vec::new(),
    }
}

/// A `dns.log` of a run's DNS messages (`DNS::Info`): each query with the first later
/// reply of the same client, server, ports and id; a reply without a query alone.
fn write_dns_log(messages: &[Row], path: &Path) {
    let mut out = String::from(
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tdns\n\
         #fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\ttrans_id\trtt\tquery\t\
         qclass\tqclass_name\tqtype\tqtype_name\trcode\trcode_name\tAA\tTC\tRD\tRA\tZ\tanswers\tTTLs\trejected\n",
    );
    let key =
        |r: &Row| ["client_h", "client_p", "server_h", "server_p", "trans_id"].map(|c| text(&r[c]));
    let mut open: BTreeMap<[String; 5], Vec<&Row>> = BTreeMap::new();
    let mut pairs: Vec<(Option<&Row>, Option<&Row>)> = Vec::new();
    for r in messages {
        if r["is_response"].bool() {
            match open
                .get_mut(&key(r))
                .and_then(|q| (!q.is_empty()).then(|| q.remove(0)))
            {
                Some(q) => {
                    pairs
                        .iter_mut()
                        .find(|(p, _)| p.is_some_and(|p| std::ptr::eq(p, q)))
                        .unwrap()
                        .1 = Some(r)
                }
                None => pairs.push((None, Some(r))),
            }
        } else {
            open.entry(key(r)).or_default().push(r);
            pairs.push((Some(r), None));
        }
    }
    let flag = |r: &Row, c: &str| if r[c].bool() { "T" } else { "F" };
    for (query, reply) in pairs {
        let first = query.or(reply).unwrap();
        let mut fields = vec![zeek_time(first["ts"].int()), "C".into()];
        fields.extend(
            ["client_h", "client_p", "server_h", "server_p", "proto"].map(|c| text(&first[c])),
        );
        fields.push(text(&first["trans_id"]));
        fields.push(match (query, reply) {
            (Some(q), Some(r)) => format!("{:.6}", (r["ts"].int() - q["ts"].int()) as f64 / 1e6),
            _ => "-".into(),
        });
        fields.extend(["qname", "qclass"].map(|c| text(&first[c])));
        fields.push("-".into());
        fields.push(text(&first["qtype"]));
        fields.push("-".into());
        match reply {
            Some(r) => {
                fields.extend([text(&r["rcode"]), text(&r["rcode_name"])]);
                fields.extend(["AA", "TC", "RD", "RA"].map(|c| flag(r, c).to_string()));
                fields.push("0".into());
                let answers = list(&r["answers"]);
                let ttls: Vec<String> = list(&r["ttls"])
                    .iter()
                    .map(|t| format!("{t}.000000"))
                    .collect();
                let set = |v: Vec<String>| {
                    if v.is_empty() {
                        "-".to_string()
                    } else {
                        v.join(",")
                    }
                };
                fields.extend([set(answers), set(ttls)]);
            }
            None => {
                fields.extend(["-", "-", "F", "F"].map(String::from));
                fields.push(flag(first, "RD").into());
                fields.extend(["F", "0", "-", "-"].map(String::from));
            }
        }
        fields.push("F".into());
        out.push_str(&fields.join("\t"));
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

/// What detection concluded, without the ordinals and ids that number rows by input:
/// alerts (rule, hosts, service, times), host roles with parents, propagation edges.
#[derive(Debug, PartialEq, Eq)]
struct Conclusions {
    alerts: Vec<[String; 6]>,
    hosts: Vec<[String; 3]>,
    edges: Vec<[String; 4]>,
}

impl Conclusions {
    fn of(out: &Path) -> Conclusions {
        fn sorted<const N: usize>(out: &Path, table: &str, columns: [&str; N]) -> Vec<[String; N]> {
            let mut rows: Vec<[String; N]> = common::read_rows(&out.join(table))
                .iter()
                .map(|r| columns.map(|c| text(&r[c])))
                .collect();
            rows.sort();
            rows
        }
        Conclusions {
            alerts: sorted(
                out,
                "alerts.parquet",
                [
                    "rule",
                    "src_ip",
                    "dst_ip",
                    "service",
                    "first_seen",
                    "detected_at",
                ],
            ),
            hosts: sorted(out, "hosts.parquet", ["ip", "role", "parent"]),
            edges: sorted(
                out,
                "propagation.parquet",
                ["parent_ip", "child_ip", "vector", "infected_at"],
            ),
        }
    }
}

/// For each scenario: `write` turns the run's flows and DNS rows into log files, and
/// detection on those logs must conclude what `wormsign detect` does over the run's own
/// flows and DNS tables (without the session facts, ARP and names only packets give).
fn detection_on_logs_equals_detection_on_flows(
    write: impl Fn(&[Row], &[Row], &Path) -> Vec<PathBuf>,
) {
    // (name, capture, least flows the rules use, whether flows alone give edges): the
    // two scenarios, and the real WannaCry trace nobody here made (when ../shared is
    // there), whose flows alone give alerts but no edge.
    let mut inputs = vec![
        (
            "drivelife",
            common::dataset("drivelife").join("capture.pcap.gz"),
            1000,
            true,
        ),
        (
            "wannacry",
            common::dataset("wannacry").join("capture.pcap.gz"),
            1000,
            true,
        ),
    ];
    if common::captures().is_some() {
        inputs.push((
            "real wannacry",
            common::capture("smb/wannacry_lateral.pcap"),
            50,
            false,
        ));
    }
    for (scenario, capture, min_used, edges) in inputs {
        let run = common::wormsign(&[&capture], &[]);
        run.assert_ok(scenario);
        let flows_only = run.dir.path().join("flows-only");
        std::fs::create_dir(&flows_only).unwrap();
        for table in ["flows.parquet", "dns.parquet"] {
            std::fs::copy(run.out().join(table), flows_only.join(table)).unwrap();
        }
        common::wormsign_ok(&["detect".as_ref(), flows_only.as_os_str()]);
        let expected = Conclusions::of(&flows_only);
        assert!(
            !expected.alerts.is_empty() && (!edges || !expected.edges.is_empty()),
            "{scenario}: nothing detected"
        );
        let logs = run.dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let from_logs = common::wormsign(&write(&run.flows(), &run.dns(), &logs), &[]);
        from_logs.assert_ok("logs");
        assert_eq!(from_logs.n("flows"), run.n("flows"), "{scenario}: flows");
        let packets = |rows: Vec<Row>| -> i64 {
            rows.iter()
                .map(|r| r["orig_pkts"].int() + r["resp_pkts"].int())
                .sum()
        };
        assert_eq!(
            packets(from_logs.flows()),
            packets(run.flows()),
            "{scenario}: packets"
        );
        assert_eq!(Conclusions::of(&from_logs.out()), expected, "{scenario}");
        // Zeek's and Suricata's rows show how each connection went.
        let detection = &from_logs.summary()["detection"];
        assert_eq!(detection["flows_without_outcome"], 0, "{scenario}");
        assert!(
            detection["flows_used"].as_u64().unwrap() > min_used,
            "{scenario}"
        );
    }
}

#[test]
fn detection_on_zeek_logs_equals_detection_on_the_flows_they_record() {
    detection_on_logs_equals_detection_on_flows(|flows, dns, dir| {
        let (conn, dns_log) = (dir.join("conn.log"), dir.join("dns.log"));
        write_conn_log(flows, &conn);
        write_dns_log(dns, &dns_log);
        vec![conn, dns_log]
    });
}

/// Suricata's name of a stored flow's protocol.
fn eve_proto(r: &Row) -> String {
    match r["proto"].str() {
        "tcp" => "TCP".into(),
        "udp" => "UDP".into(),
        "icmp" => "ICMP".into(),
        "icmp6" => "IPv6-ICMP".into(),
        _ => text(&r["ip_proto"]),
    }
}

/// An `eve.json` of a run's flows and DNS messages, written to Suricata's EVE format
/// (flow events; DNS events in version 2, one per query and per reply). Suricata counts
/// whole frames: `bytes_*` are the IP bytes plus an Ethernet header per packet.
fn write_eve(flows: &[Row], messages: &[Row], path: &Path) {
    use serde_json::json;
    let mut events: Vec<(i64, serde_json::Value)> = Vec::new();
    for r in flows {
        let n = |c: &str| r[c].int();
        let icmp = matches!(r["proto"].str(), "icmp" | "icmp6");
        let (src_port, dest_port) = if icmp {
            ("icmp_type", "icmp_code")
        } else {
            ("src_port", "dest_port")
        };
        let mut event = json!({
            "timestamp": eve_time(n("last_ts")),
            "flow_id": n("first_packet"),
            "event_type": "flow",
            "src_ip": text(&r["orig_h"]),
            src_port: n("orig_p"),
            "dest_ip": text(&r["resp_h"]),
            dest_port: n("resp_p"),
            "proto": eve_proto(r),
            "flow": {
                "pkts_toserver": n("orig_pkts"),
                "pkts_toclient": n("resp_pkts"),
                "bytes_toserver": n("orig_ip_bytes") + 14 * n("orig_pkts"),
                "bytes_toclient": n("resp_ip_bytes") + 14 * n("resp_pkts"),
                "start": eve_time(n("ts")),
                "end": eve_time(n("last_ts")),
                "state": "closed",
                "reason": "timeout",
            },
        });
        if r["proto"].str() == "tcp" {
            let hex = |c: &str| format!("{:02x}", n(c));
            event["tcp"] = json!({
                "tcp_flags": format!("{:02x}", n("orig_tcp_flags") | n("resp_tcp_flags")),
                "tcp_flags_ts": hex("orig_tcp_flags"),
                "tcp_flags_tc": hex("resp_tcp_flags"),
            });
        }
        events.push((n("last_ts"), event));
    }
    for m in messages {
        let response = m["is_response"].bool();
        let (src, dst) = if response {
            ("server", "client")
        } else {
            ("client", "server")
        };
        let mut dns = json!({
            "type": if response { "answer" } else { "query" },
            "id": m["trans_id"].int(),
            "rrname": text(&m["qname"]),
            "rrtype": text(&m["qtype_name"]),
        });
        if response {
            dns["version"] = json!(2);
            dns["rcode"] = json!(text(&m["rcode_name"]));
            let answers: Vec<serde_json::Value> = list(&m["answers"])
                .into_iter()
                .zip(list(&m["answer_types"]))
                .zip(list(&m["ttls"]))
                .map(|((rdata, rrtype), ttl)| {
                    json!({"rrname": text(&m["qname"]), "rrtype": rrtype, "ttl": ttl.parse::<u64>().unwrap(), "rdata": rdata})
                })
                .collect();
            if !answers.is_empty() {
                dns["answers"] = json!(answers);
            }
        }
        let event = json!({
            "timestamp": eve_time(m["ts"].int()),
            "event_type": "dns",
            "src_ip": text(&m[&format!("{src}_h")]),
            "src_port": m[&format!("{src}_p")].int(),
            "dest_ip": text(&m[&format!("{dst}_h")]),
            "dest_port": m[&format!("{dst}_p")].int(),
            "proto": text(&m["proto"]).to_uppercase(),
            "dns": dns,
        });
        events.push((m["ts"].int(), event));
    }
    // Suricata writes events as they happen: a flow when it ends.
    events.sort_by_key(|(ts, _)| *ts);
    let text: String = events.iter().map(|(_, e)| format!("{e}\n")).collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn detection_on_suricata_eve_equals_detection_on_the_flows_it_records() {
    detection_on_logs_equals_detection_on_flows(|flows, dns, dir| {
        let eve = dir.join("eve.json");
        write_eve(flows, dns, &eve);
        vec![eve]
    });
}
