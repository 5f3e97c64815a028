//! Real NetFlow / IPFIX captures from `../shared/captures/netflow`, checked
//! against the tshark-derived `EXPECTED.tsv`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use wormsign_capture::{CaptureReader, Chunk};
use wormsign_decode::{decode, Decoded};
use wormsign_netflow::{NetflowConfig, NetflowDecoder, NetflowRecord, NetflowStats, DEFAULT_PORTS};
// A missing corpus or file is a printed skip, and a failure under CI.
use wormsign_testutil::{shared_capture, shared_captures};

/// tshark's default cflow ports plus the `-d udp.port==…,cflow` of EXPECTED.tsv.
const EXTRA_PORTS: [u16; 4] = [9990, 9991, 9992, 2057];

fn is_export_port(p: u16) -> bool {
    DEFAULT_PORTS.contains(&p) || EXTRA_PORTS.contains(&p)
}

/// Feeds every UDP export datagram of `path` to `dec`.
fn feed(dec: &mut NetflowDecoder, path: &Path, out: &mut Vec<NetflowRecord>) {
    let mut reader =
        CaptureReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut chunk = Chunk::default();
    loop {
        let more = reader
            .read_chunk(&mut chunk, 1 << 20)
            .expect("capture reads cleanly");
        for (meta, data) in chunk.iter() {
            let Decoded::Ip(s) = decode(meta.link_type, data) else {
                continue;
            };
            if s.proto != 17 || !s.has_ports || !is_export_port(s.dst_port) || s.fragment.is_some()
            {
                continue;
            }
            let start = s.payload_offset as usize;
            let payload = &data[start..start + s.payload_captured as usize];
            dec.decode(SocketAddr::new(s.src, s.src_port), meta.ts_ns, payload, out);
        }
        if !more {
            break;
        }
    }
}

fn expected(dir: &Path) -> BTreeMap<(String, String), String> {
    let text = std::fs::read_to_string(dir.join("EXPECTED.tsv")).expect("EXPECTED.tsv");
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (path, metric, value) = (f.next()?, f.next()?, f.next()?);
            path.starts_with("netflow/")
                .then(|| ((path.to_string(), metric.to_string()), value.to_string()))
        })
        .collect()
}

/// Our value for an EXPECTED.tsv metric.
fn ours(metric: &str, st: &NetflowStats, at_arrival_without_template: u64) -> Option<u64> {
    Some(match metric {
        "cflow_export_packets" => st.packets,
        // tshark sums "(N flows)" over data sets it could decode: flows and options data.
        "flow_records_decoded" => st.records + st.options_records,
        "template_records" => st.templates,
        "options_template_records" => st.options_templates,
        "data_sets_without_template" => at_arrival_without_template,
        _ => return None,
    })
}

/// Known, explained differences: (file, metric) -> (our value, why).
fn explained(file: &str, metric: &str) -> Option<(u64, &'static str)> {
    EXPLAINED
        .iter()
        .find(|(f, m, _, _)| *f == file && *m == metric)
        .map(|&(_, _, v, why)| (v, why))
}

const EXPLAINED: &[(&str, &str, u64, &str)] = &[
    (
        "netflow/graylog_softflowd_nfv9.pcap",
        "template_records",
        2,
        "frame 1 holds templates 1024 and 2048 (IPv6), an options template and data, but softflowd \
         wrote Count 1 in the v9 header and tshark stops after Count flowsets; we walk the sets by length",
    ),
    (
        "netflow/graylog_softflowd_nfv9.pcap",
        "flow_records_decoded",
        22,
        "tshark misses frame 1's options record and flow and the 2 data sets of template 2048 (3 flows); \
         21 flows + 1 options record, the 22 the Graylog test expects",
    ),
    (
        "netflow/graylog_softflowd_nfv9.pcap",
        "data_sets_without_template",
        0,
        "template 2048 is in frame 1 (see template_records)",
    ),
    (
        "netflow/nfv9_template_plus_data.pcap",
        "flow_records_decoded",
        22,
        "the first data set precedes its template in the same packet: tshark counts it without template, \
         we buffer it and decode its 11 flows when the template follows (11 + 11)",
    ),
    (
        "netflow/pmacct_ipfix_sll_options_reassign.pcap",
        "flow_records_decoded",
        85,
        "the exporter restarts from a new UDP source port (frame 11); tshark scopes templates by \
         address and port (RFC 7011 transport session), we by address (as nfdump), so template 347 \
         from frame 10 decodes 9 more flows in frames 11 and 21. With scope_by_source_port: 76",
    ),
    (
        "netflow/pmacct_ipfix_sll_options_reassign.pcap",
        "data_sets_without_template",
        4,
        "same: the 2 data sets of template 347 after the restart are decoded. With scope_by_source_port: 6",
    ),
];

#[test]
fn captures_match_expected() {
    let Some(dir) = shared_captures() else {
        return;
    };
    let exp = expected(&dir);
    let files: std::collections::BTreeSet<&String> = exp.keys().map(|(f, _)| f).collect();
    let mut failures = Vec::new();
    let mut table = String::new();
    for file in files {
        let mut dec = NetflowDecoder::default();
        let mut out = Vec::new();
        // Data sets without a template at the moment they arrive (what tshark
        // reports): those buffered, as counted before any later template.
        for part in file.split('+') {
            let path: PathBuf = dir.join(part);
            feed(&mut dec, &path, &mut out);
        }
        let st = dec.stats();
        let at_arrival = st.data_sets_buffered;
        dec.finish();
        let fin = dec.stats();
        for ((f, metric), value) in exp.range((file.clone(), String::new())..) {
            if f != file {
                break;
            }
            let Some(got) = ours(metric, &fin, at_arrival) else {
                continue;
            };
            let want: u64 = value.parse().unwrap();
            let mark = if got == want {
                "ok".to_string()
            } else if let Some((v, why)) = explained(file, metric) {
                if v != got {
                    failures.push(format!("{file} {metric}: explained value {v}, got {got}"));
                }
                format!("explained: {why}")
            } else {
                failures.push(format!("{file} {metric}: expected {want}, got {got}"));
                "MISMATCH".to_string()
            };
            table.push_str(&format!("{file}\t{metric}\t{want}\t{got}\t{mark}\n"));
        }
        table.push_str(&format!(
            "{file}\t(ours)\tflows={} options={} from_pending={} never_templated={} lost={} resets={} malformed={} rejected={}\n",
            fin.records, fin.options_records, fin.records_from_pending, fin.data_sets_without_template,
            fin.sequence_lost, fin.sequence_resets, fin.malformed, fin.templates_rejected
        ));
        let mut sampling: Vec<u32> = out.iter().map(|r| r.sampling_interval).collect();
        sampling.sort_unstable();
        sampling.dedup();
        table.push_str(&format!(
            "{file}\t(ours)\tsampling intervals {sampling:?}\n"
        ));
        assert_eq!(fin.malformed, 0, "{file}: {fin:?}");
        assert_eq!(out.len() as u64, fin.records);
    }
    println!("{table}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The one file where scoping templates by source port matters: with it, tshark's numbers.
#[test]
fn options_reassign_capture_with_port_scoped_templates_matches_tshark() {
    let Some(path) = shared_capture("netflow/pmacct_ipfix_sll_options_reassign.pcap") else {
        return;
    };
    let cfg = NetflowConfig {
        scope_by_source_port: true,
        ..NetflowConfig::default()
    };
    let mut dec = NetflowDecoder::new(cfg);
    let mut out = Vec::new();
    feed(&mut dec, &path, &mut out);
    let st = dec.stats();
    assert_eq!(st.data_sets_buffered, 6);
    assert_eq!(st.records + st.options_records, 76);
    // Default scoping: the restart is seen as a source-port change, not as
    // 1.28 M lost records.
    let mut dec = NetflowDecoder::default();
    feed(&mut dec, &path, &mut Vec::new());
    // 1 record really is missing: frame 20 (seq 2175763, 7 records) is followed
    // by frame 21 with seq 2175771.
    let st = dec.stats();
    assert_eq!((st.sequence_lost, st.sequence_resets), (1, 1), "{st:?}");
}

/// v9 sequence accounting agrees with tshark's "(expected N)" annotations.
#[test]
fn v9_sequence_loss_matches_tshark() {
    // (file, packets lost per tshark, backward steps per tshark)
    let cases = [
        ("netflow/pmacct_nfv9_cisco_40pkts.pcap", 24, 1),
        ("netflow/pmacct_nfv9_cisco_sampling.pcap", 38, 2),
        ("netflow/graylog_softflowd_nfv9.pcap", 8, 0),
    ];
    for (file, lost, back) in cases {
        let Some(path) = shared_capture(file) else {
            return;
        };
        let mut dec = NetflowDecoder::default();
        feed(&mut dec, &path, &mut Vec::new());
        let st = dec.stats();
        assert_eq!(
            (st.sequence_lost, st.sequence_resets),
            (lost, back),
            "{file}"
        );
    }
}

/// Sampling intervals bound to records through options data.
#[test]
fn sampling_from_options_data() {
    // (file, every record's interval)
    let cases = [
        // v5 header: mode 1, interval 100.
        ("netflow/graylog_softflowd_nfv5.pcap", 100),
        // v9 options: scope interface, SAMPLING_INTERVAL 100 (frame 1).
        ("netflow/graylog_softflowd_nfv9.pcap", 100),
        // IPFIX options: selectorId 1, samplingPacketInterval 1, samplingSize 1,
        // samplingPopulation 256 (random 1-out-of-256); data records carry selectorId 1.
        ("netflow/pmacct_ipfix_ipv6_sampling_option.pcap", 256),
        // Records carry FLOW_SAMPLER_ID 1 but no options data says its interval.
        ("netflow/pmacct_nfv9_cisco_sampling.pcap", 1),
    ];
    for (file, want) in cases {
        let Some(path) = shared_capture(file) else {
            return;
        };
        let mut dec = NetflowDecoder::default();
        let mut out = Vec::new();
        feed(&mut dec, &path, &mut out);
        assert!(!out.is_empty(), "{file}");
        assert!(
            out.iter().all(|r| r.sampling_interval == want),
            "{file}: {:?}",
            out.iter().map(|r| r.sampling_interval).collect::<Vec<_>>()
        );
    }
}
