//! The run summary: counters gathered from every stage, as text (the CLI prints it on
//! stderr) and as JSON (`--summary-json`, Python's `summary`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};
use wormsign_decode::{SkipReason, TunnelKind};
use wormsign_flow::FlowStats;
use wormsign_logs::LogStats;
use wormsign_netflow::{NetflowStats, SflowStats};

use crate::Input;

/// A problem with one input that did not stop the run.
#[derive(Clone, Debug)]
pub struct Warning {
    /// The input's name.
    pub input: String,
    /// Byte offset of the damage in the (decompressed) stream, when known.
    pub offset: Option<u64>,
    /// What went wrong.
    pub message: String,
}

impl Warning {
    pub(crate) fn new(input: &Input, offset: Option<u64>, message: String) -> Warning {
        Warning {
            input: input.name(),
            offset,
            message,
        }
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The capture reader's messages already name the byte offset.
        write!(f, "{}: {}", self.input, self.message)
    }
}

/// Counters of the decode workers.
#[derive(Clone, Debug, Default)]
pub struct DecodeStats {
    /// Records read from the inputs.
    pub packets: u64,
    /// Sum of original (wire) lengths.
    pub wire_bytes: u64,
    /// Sum of captured lengths.
    pub captured_bytes: u64,
    /// Packets with an IP header.
    pub ip_packets: u64,
    /// ARP packets.
    pub arp_packets: u64,
    /// Naming facts read from DHCP and NetBIOS name service datagrams.
    pub name_facts: u64,
    /// IP packets cut short by the snap length.
    pub truncated: u64,
    /// IP packets unwrapped from a tunnel, by the outermost tunnel's kind (indexed like
    /// `TunnelKind::ALL`).
    pub tunnelled: [u64; TunnelKind::ALL.len()],
    /// Packets skipped, by reason (indexed like `SkipReason::ALL`).
    pub skipped: [u64; 4],
    /// Packets per link type that wormsign cannot decode.
    pub unknown_link_types: BTreeMap<u16, u64>,
    /// DNS messages parsed.
    pub dns_messages: u64,
    /// Port-53 payloads that were not valid DNS.
    pub dns_errors: u64,
}

impl DecodeStats {
    pub(crate) fn count_skip(&mut self, reason: SkipReason) {
        let idx = SkipReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.skipped[idx] += 1;
    }

    /// The tunnel kinds seen, by name, with their packet counts.
    pub fn tunnelled_by_kind(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        TunnelKind::ALL
            .iter()
            .zip(self.tunnelled)
            .filter(|(_, n)| *n > 0)
            .map(|(kind, n)| (kind.as_str(), n))
    }

    pub(crate) fn merge(&mut self, o: &DecodeStats) {
        self.packets += o.packets;
        self.wire_bytes += o.wire_bytes;
        self.captured_bytes += o.captured_bytes;
        self.ip_packets += o.ip_packets;
        self.arp_packets += o.arp_packets;
        self.name_facts += o.name_facts;
        self.truncated += o.truncated;
        for (a, b) in self.tunnelled.iter_mut().zip(o.tunnelled) {
            *a += b;
        }
        for (a, b) in self.skipped.iter_mut().zip(o.skipped) {
            *a += b;
        }
        for (lt, n) in &o.unknown_link_types {
            *self.unknown_link_types.entry(*lt).or_default() += n;
        }
        self.dns_messages += o.dns_messages;
        self.dns_errors += o.dns_errors;
    }
}

/// Everything a run reports.
#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    /// Inputs named (after expanding directories).
    pub inputs: u64,
    /// Inputs that were captures (possibly damaged).
    pub inputs_usable: u64,
    /// Bytes read from the inputs (compressed size for compressed inputs).
    pub input_bytes: u64,
    /// Decode counters.
    pub decode: DecodeStats,
    /// Flow-table counters, summed over shards.
    pub flow: FlowStats,
    /// NetFlow/IPFIX decoding counters, summed over shards.
    pub netflow: NetflowStats,
    /// sFlow decoding and metering counters, summed over shards.
    pub sflow: SflowStats,
    /// What the Zeek and Suricata logs among the inputs held.
    pub logs: LogStats,
    /// Rows in `flows.parquet`.
    pub flows: u64,
    /// Rows in `dns.parquet`.
    pub dns_records: u64,
    /// Rows in `arp.parquet`.
    pub arp_records: u64,
    /// Rows in `names.parquet`.
    pub name_records: u64,
    /// Rows in `sessions.parquet`.
    pub session_records: u64,
    /// Protocol inspection counters, summed over shards.
    pub inspect: wormsign_inspect::InspectStats,
    /// Damaged or unreadable inputs.
    pub warnings: Vec<Warning>,
    /// Wall time of the run, until its tables were complete (detection that overlaps
    /// their end, in `analyze_and_detect`, is not counted).
    pub wall: Duration,
    /// Threads used per stage.
    pub threads: usize,
}

impl RunSummary {
    fn rates(&self) -> (f64, f64) {
        let secs = self.wall.as_secs_f64().max(1e-9);
        (
            self.decode.packets as f64 / secs,
            self.input_bytes as f64 / secs / 1e6,
        )
    }

    /// The summary as JSON (the `--summary-json` file).
    pub fn to_json(&self) -> Value {
        let (pps, mbps) = self.rates();
        let skipped: serde_json::Map<String, Value> = SkipReason::ALL
            .iter()
            .zip(self.decode.skipped)
            .map(|(r, n)| (r.as_str().to_string(), json!(n)))
            .collect();
        let unknown: serde_json::Map<String, Value> = self
            .decode
            .unknown_link_types
            .iter()
            .map(|(lt, n)| (lt.to_string(), json!(n)))
            .collect();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "inputs": self.inputs,
            "inputs_usable": self.inputs_usable,
            "input_bytes": self.input_bytes,
            "packets": self.decode.packets,
            "wire_bytes": self.decode.wire_bytes,
            "captured_bytes": self.decode.captured_bytes,
            "ip_packets": self.decode.ip_packets,
            "arp_packets": self.decode.arp_packets,
            "name_facts": self.decode.name_facts,
            "truncated_packets": self.decode.truncated,
            "tunnelled_packets": self
                .decode
                .tunnelled_by_kind()
                .map(|(kind, n)| (kind.to_string(), json!(n)))
                .collect::<serde_json::Map<_, _>>(),
            "skipped": skipped,
            "unknown_link_types": unknown,
            "fragments": self.flow.fragments,
            "fragments_unmatched": self.flow.fragments_unmatched,
            "fragments_evicted": self.flow.fragments_evicted,
            "flows": self.flows,
            "flows_evicted": self.flow.evicted,
            "peak_live_flows": self.flow.peak_flows,
            "dns_records": self.dns_records,
            "dns_parse_errors": self.decode.dns_errors,
            "arp_records": self.arp_records,
            "name_records": self.name_records,
            "session_records": self.session_records,
            "inspect": json!({
                "sessions": self.inspect.streams,
                "sessions_refused": self.inspect.streams_refused,
                "sessions_truncated": self.inspect.streams_truncated,
                "gaps": self.inspect.gaps,
            }),
            "netflow": netflow_json(&self.netflow),
            "sflow": sflow_json(&self.sflow),
            "logs": json!({
                "flow_records": self.logs.flows,
                "dns_records": self.logs.dns,
                "other_records": self.logs.other,
                "malformed_lines": self.logs.malformed,
            }),
            "warnings": self.warnings.iter().map(|w| json!({
                "input": w.input, "offset": w.offset, "message": w.message,
            })).collect::<Vec<_>>(),
            "threads": self.threads,
            "wall_seconds": self.wall.as_secs_f64(),
            "packets_per_second": pps,
            "megabytes_per_second": mbps,
        })
    }

    /// The human-readable summary printed on stderr.
    pub fn render(&self) -> String {
        let (pps, mbps) = self.rates();
        let d = &self.decode;
        let mut s = String::new();
        let records = self.logs.flows + self.logs.dns;
        let logged = if records > 0 {
            format!(" and {records} log records")
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "wormsign: {} packets ({} wire bytes){logged} from {}/{} inputs in {:.2}s: {:.0} packets/s, {:.1} MB/s, {} threads",
            d.packets,
            d.wire_bytes,
            self.inputs_usable,
            self.inputs,
            self.wall.as_secs_f64(),
            pps,
            mbps,
            self.threads
        );
        let _ = writeln!(
            s,
            "  flows {} (evicted {}, peak live {}), dns records {}, arp records {}",
            self.flows, self.flow.evicted, self.flow.peak_flows, self.dns_records, self.arp_records
        );
        let _ = writeln!(
            s,
            "  ip packets {}, truncated {}, fragments {} (unmatched {})",
            d.ip_packets, d.truncated, self.flow.fragments, self.flow.fragments_unmatched
        );
        let i = &self.inspect;
        if i.streams > 0 {
            let _ = writeln!(
                s,
                "  smb/tds/rdp sessions read {} (refused at the cap {}, cut at the byte bound {}), sequence gaps {}, session facts {}",
                i.streams, i.streams_refused, i.streams_truncated, i.gaps, self.session_records
            );
        }
        let nf = &self.netflow;
        if nf.packets > 0 || nf.malformed > 0 || nf.unknown_version > 0 {
            let _ = writeln!(
                s,
                "  netflow: {} export packets, {} records, {} templates, {} data sets without template, {} lost (sequence), {} malformed, {} unknown version",
                nf.packets, nf.records, nf.templates + nf.options_templates, nf.data_sets_without_template,
                nf.sequence_lost, nf.malformed, nf.unknown_version
            );
        }
        let sf = &self.sflow;
        if sf.datagrams > 0 {
            let _ = writeln!(
                s,
                "  sflow: {} datagrams, {} flow samples ({} metered), {} counter samples, {} malformed",
                sf.datagrams, sf.flow_samples, sf.sampled_packets, sf.counter_samples, sf.malformed
            );
        }
        let logs = &self.logs;
        if *logs != LogStats::default() {
            let _ = writeln!(
                s,
                "  logs: {} connection records, {} dns records, {} other records skipped, {} malformed lines skipped",
                logs.flows, logs.dns, logs.other, logs.malformed
            );
        }
        let tunnelled: Vec<String> = d
            .tunnelled_by_kind()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        if !tunnelled.is_empty() {
            let _ = writeln!(s, "  tunnelled: {}", tunnelled.join(", "));
        }
        let skipped: Vec<String> = SkipReason::ALL
            .iter()
            .zip(d.skipped)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{} {n}", r.as_str()))
            .collect();
        if !skipped.is_empty() {
            let _ = writeln!(s, "  skipped: {}", skipped.join(", "));
        }
        for (lt, n) in &d.unknown_link_types {
            let _ = writeln!(s, "  unknown link type {lt}: {n} packets");
        }
        s
    }
}

/// The sFlow counters as a JSON object (the `sflow` key of the summary).
pub fn sflow_json(s: &SflowStats) -> Value {
    json!({
        "datagrams": s.datagrams,
        "flow_samples": s.flow_samples,
        "counter_samples": s.counter_samples,
        "other_samples": s.other_samples,
        "sampled_packets": s.sampled_packets,
        "samples_not_metered": s.samples_not_metered,
        "malformed": s.malformed,
        "samples_beyond_limit": s.samples_beyond_limit,
        "sources_refused": s.sources_refused,
        "flows_evicted": s.flows_evicted,
    })
}

/// The NetFlow counters as a JSON object (the `netflow` key of the summary).
pub fn netflow_json(n: &NetflowStats) -> Value {
    json!({
        "export_packets": n.packets,
        "records": n.records,
        "options_records": n.options_records,
        "templates": n.templates,
        "options_templates": n.options_templates,
        "template_withdrawals": n.template_withdrawals,
        "templates_rejected": n.templates_rejected,
        "data_sets_buffered": n.data_sets_buffered,
        "records_from_pending": n.records_from_pending,
        "data_sets_without_template": n.data_sets_without_template,
        "sequence_lost": n.sequence_lost,
        "sequence_resets": n.sequence_resets,
        "malformed": n.malformed,
        "unknown_version": n.unknown_version,
        "sets_skipped": n.sets_skipped,
        "streams_rejected": n.streams_rejected,
    })
}
