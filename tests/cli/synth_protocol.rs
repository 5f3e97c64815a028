//! What `wormsign synth`'s worm services say, read by tshark (the independent reader)
//! and compared with the generator's own per-flow labels (`flow_labels.csv`) and ground
//! truth (`labels.json`): every session labelled `exploit` carries EternalBlue's
//! NT_TRANSACT and TRANS2_SECONDARY, every `exploit` and `implant_ping` session a
//! DoublePulsar TRANS2 SESSION_SETUP, the hosts whose implant answered an upload are the
//! EternalBlue infections, every SMB `brute_force_attempt` holds NTLMSSP AUTHENTICATEs
//! answered STATUS_LOGON_FAILURE, every MSSQL one a LOGIN7 as `sa`, and the pooled
//! application logins are LOGIN7s as `app_svc`. Also: `--capture-start` cuts sessions in
//! flight, the inspector still reads them, and each labelled flow is a flow of the
//! analysis.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;
use wormsign_detect::parse_rfc3339;

use crate::common::{have_tool, read_rows, tshark_fields, wormsign};
use crate::synth::{synth, synth_with};

/// A TCP session: client address and port, server address and port.
type Tcp = (String, u16, String, u16);

/// The fields read of each SMB1 or TDS message besides its addresses and ports.
const FIELDS: [&str; 7] = [
    "smb.cmd",
    "smb.trans2.cmd",
    "smb.nt_status",
    "smb.mid",
    "ntlmssp.messagetype",
    "tds.type",
    "tds.7login.username",
];

/// One SMB1 or TDS message as tshark decoded it.
struct Pdu {
    tcp: Tcp,
    /// Sent by the server (from port 445 or 1433).
    reply: bool,
    fields: BTreeMap<&'static str, String>,
}

impl Pdu {
    fn is(&self, field: &str, value: &str) -> bool {
        self.fields.get(field).is_some_and(|v| v == value)
    }
}

fn tshark_pdus(pcap: &Path) -> Vec<Pdu> {
    let mut names = vec!["ip.src", "tcp.srcport", "ip.dst", "tcp.dstport"];
    names.extend(FIELDS);
    let text = tshark_fields(pcap, &["-n", "-Y", "smb || tds"], &names);
    text.lines()
        .map(|line| {
            let v: Vec<&str> = line.split('\t').collect();
            let port = |i: usize| v[i].parse::<u16>().expect("a port");
            let reply = [445, 1433].contains(&port(1));
            let tcp = if reply {
                (v[2].to_string(), port(3), v[0].to_string(), port(1))
            } else {
                (v[0].to_string(), port(1), v[2].to_string(), port(3))
            };
            let fields = FIELDS
                .iter()
                .zip(&v[4..])
                .filter(|(_, x)| !x.is_empty())
                .map(|(f, x)| (*f, x.to_string()))
                .collect();
            Pdu { tcp, reply, fields }
        })
        .collect()
}

fn sessions(pdus: &[Pdu], pred: impl Fn(&Pdu) -> bool) -> BTreeSet<Tcp> {
    pdus.iter()
        .filter(|p| pred(p))
        .map(|p| p.tcp.clone())
        .collect()
}

/// The sessions on `port` that `flow_labels.csv` in `dir` labels `label`.
fn labelled(dir: &Path, label: &str, port: u16) -> BTreeSet<Tcp> {
    let csv = std::fs::read_to_string(dir.join("flow_labels.csv")).expect("flow_labels.csv");
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|r| r[7] == label && r[2] == "tcp" && r[6] == port.to_string())
        .map(|r| {
            let p = |s: &str| s.parse::<u16>().expect("a port");
            (r[3].to_string(), p(r[4]), r[5].to_string(), p(r[6]))
        })
        .collect()
}

/// Asserts that the generator's and tshark's sessions are the same; returns how many.
fn same(what: &str, labels: &BTreeSet<Tcp>, tshark: &BTreeSet<Tcp>) -> usize {
    assert!(
        labels == tshark,
        "{what}: {} labelled, {} per tshark; labelled only {:?}; tshark only {:?}",
        labels.len(),
        tshark.len(),
        labels.difference(tshark).take(3).collect::<Vec<_>>(),
        tshark.difference(labels).take(3).collect::<Vec<_>>()
    );
    labels.len()
}

fn eternalblue_infections(labels: &Value) -> BTreeSet<String> {
    labels["infected"]
        .as_array()
        .expect("infected")
        .iter()
        .filter(|h| h["vector"] == "eternalblue_smb")
        .map(|h| h["ip"].as_str().expect("ip").to_string())
        .collect()
}

#[test]
fn synth_protocol_sessions_decode_in_tshark_as_labelled() {
    if !have_tool("tshark") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    for scenario in ["drivelife", "wannacry"] {
        let dir = tmp.path().join(scenario);
        let (_, truth) = synth(scenario, 1, 0.1, &dir);
        let pdus = tshark_pdus(&dir.join("capture.pcap"));
        let request = |cmd: &'static str| move |p: &Pdu| !p.reply && p.is("smb.cmd", cmd);

        let exploit = labelled(&dir, "exploit", 445);
        let pings = labelled(&dir, "implant_ping", 445);
        let n_exploit = same(
            "exploit: NT_TRANSACT",
            &exploit,
            &sessions(&pdus, request("0xa0")),
        );
        same(
            "exploit: TRANS2_SECONDARY",
            &exploit,
            &sessions(&pdus, request("0x33")),
        );
        let doublepulsar = sessions(&pdus, |p| {
            request("0x32")(p) && p.is("smb.trans2.cmd", "0x000e")
        });
        let n_pulsar = same(
            "exploit + implant_ping: DoublePulsar TRANS2 SESSION_SETUP",
            &exploit.union(&pings).cloned().collect(),
            &doublepulsar,
        );
        // The implant answered an upload (multiplex id 66 + 0x10) on exactly the hosts
        // the labels say fell to EternalBlue.
        let uploads = sessions(&pdus, |p| {
            p.reply && p.is("smb.cmd", "0x32") && p.is("smb.mid", "82")
        });
        let fell: BTreeSet<String> = uploads.iter().map(|t| t.2.clone()).collect();
        assert_eq!(fell, eternalblue_infections(&truth), "{scenario}");

        let authenticate = sessions(&pdus, |p| p.is("ntlmssp.messagetype", "0x00000003"));
        let logon_failure = sessions(&pdus, |p| p.reply && p.is("smb.nt_status", "0xc000006d"));
        // Attempts on a host that firewalled 445 after its infection never reach SMB.
        let spoke_smb = sessions(&pdus, |p| p.fields.contains_key("smb.cmd"));
        let n_smb_brute = same(
            "brute_force_attempt (smb): AUTHENTICATE answered STATUS_LOGON_FAILURE",
            &labelled(&dir, "brute_force_attempt", 445)
                .intersection(&spoke_smb)
                .cloned()
                .collect(),
            &authenticate.intersection(&logon_failure).cloned().collect(),
        );
        let login7 = |user: &'static str| {
            move |p: &Pdu| p.is("tds.type", "16") && p.is("tds.7login.username", user)
        };
        let n_sql_brute = same(
            "brute_force_attempt (mssql): LOGIN7 as sa",
            &labelled(&dir, "brute_force_attempt", 1433),
            &sessions(&pdus, login7("sa")),
        );
        let n_pooled = same(
            "benign (mssql): LOGIN7 as app_svc",
            &labelled(&dir, "benign", 1433),
            &sessions(&pdus, login7("app_svc")),
        );
        println!(
            "{scenario}: tshark agrees with the labels on {n_exploit} exploit sessions, \
             {n_pulsar} DoublePulsar sessions ({} hosts fell), {n_smb_brute} SMB and \
             {n_sql_brute} MSSQL brute-force sessions, {n_pooled} pooled MSSQL logins",
            fell.len()
        );
        assert!(
            n_exploit > 0 && n_pooled > 100,
            "{scenario}: nothing to compare"
        );
        if scenario == "drivelife" {
            assert!(n_smb_brute > 0 && n_sql_brute > 0 && n_exploit > fell.len());
        } else {
            assert!(
                !pings.is_empty(),
                "wannacry: no sibling re-checked an implant"
            );
        }
    }
}

/// `--capture-start` drops the first seconds: the capture and the flow labels start
/// there, each label row is one flow of the analysis, sessions in flight have no
/// handshake, and their SMB is still read.
#[test]
fn capture_start_cuts_sessions_in_flight() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("late");
    let (pcap, labels) = synth_with("benign", 1, 0.2, &["--capture-start", "120"], &dir);
    let start = labels["capture_start"].as_str().expect("capture_start");
    assert_eq!(start, "2024-03-04T09:02:00.000000Z");
    // The first record's timestamp (seconds, after the 24-byte file header).
    let first_s = u32::from_le_bytes(pcap[24..28].try_into().unwrap());
    assert!(first_s >= 1_709_542_800 + 120, "first packet at {first_s}");
    let csv = std::fs::read_to_string(dir.join("flow_labels.csv")).expect("flow_labels.csv");
    assert!(csv
        .lines()
        .skip(1)
        .all(|l| l.split(',').nth(1) >= Some(start)));

    let run = wormsign(&[dir.join("capture.pcap")], &["--no-detect"]);
    run.assert_ok("late start");
    // Each labelled flow is one row of flows.parquet: same Community ID, same first packet.
    let labelled: BTreeSet<(String, i64)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let r: Vec<&str> = l.split(',').collect();
            let ts_ns = parse_rfc3339(r[1]).expect("an RFC 3339 time");
            (r[0].to_string(), ts_ns / 1000)
        })
        .collect();
    let flows: BTreeSet<(String, i64)> = run
        .flows()
        .iter()
        .map(|f| (f["community_id"].str().to_string(), f["ts"].int()))
        .collect();
    assert_eq!(
        labelled.len(),
        csv.lines().count() - 1,
        "duplicate label rows"
    );
    assert!(
        labelled == flows,
        "flow_labels.csv and flows.parquet differ"
    );
    let midstream: BTreeSet<String> = run
        .flows()
        .iter()
        .filter(|f| f["resp_p"].int() == 445 || f["orig_p"].int() == 445)
        .filter(|f| !f["history"].str().contains(['S', 'H']))
        .map(|f| f["community_id"].str().to_string())
        .collect();
    assert!(!midstream.is_empty(), "no SMB session in flight at 120 s");
    let facts = read_rows(&run.out().join("sessions.parquet"));
    assert!(
        facts
            .iter()
            .any(|r| midstream.contains(r["community_id"].str()) && r["fact"].str() == "opaque"),
        "no SMB message read in a session that began before the capture"
    );
}
