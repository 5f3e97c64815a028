//! Per-flow ground truth: `flow_labels.csv`, one row per generated flow (TCP session,
//! SYN attempt, DNS exchange) that has a packet in the capture, in the order of its first
//! captured packet.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::IpAddr;

use wormsign_flow::community_id;

use crate::{ip_str, rfc3339, Ip, Us};

/// What a flow is, in the per-flow labels (declared in [`FlowLabel::ALL`] order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FlowLabel {
    /// An MS17-010 exploit session (EternalBlue, then DoublePulsar), whether it worked or
    /// hit a patched host.
    Exploit,
    /// A DoublePulsar check of a host whose implant is already there: probe and ping, no
    /// exploit.
    ImplantPing,
    /// A password-guessing session (SMB, RDP, MSSQL), the one that got in included.
    BruteForceAttempt,
    /// A worm's or scanner's probe: an unanswered or rejected SYN, a vulnerability probe
    /// or service handshake with nothing after it, a honeypot contact, the successful
    /// contacts a slow scanner mixes in.
    ScanProbe,
    /// Command and control: C&C and kill-switch lookups, the payload download.
    Cnc,
    /// Everything else.
    Benign,
}

impl FlowLabel {
    /// Every label.
    pub const ALL: [FlowLabel; 6] = [
        FlowLabel::Exploit,
        FlowLabel::ImplantPing,
        FlowLabel::BruteForceAttempt,
        FlowLabel::ScanProbe,
        FlowLabel::Cnc,
        FlowLabel::Benign,
    ];

    /// The label's name in `flow_labels.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowLabel::Exploit => "exploit",
            FlowLabel::ImplantPing => "implant_ping",
            FlowLabel::BruteForceAttempt => "brute_force_attempt",
            FlowLabel::ScanProbe => "scan_probe",
            FlowLabel::Cnc => "cnc",
            FlowLabel::Benign => "benign",
        }
    }
}

/// A flow as the generator opened it: the side that opened it first.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FlowMeta {
    pub label: FlowLabel,
    pub proto: u8,
    pub orig: (Ip, u16),
    pub resp: (Ip, u16),
}

/// The column names of `flow_labels.csv`.
pub const HEADER: &str = "community_id,ts,proto,orig_h,orig_p,resp_h,resp_p,label";

/// Writes a row for each flow at its first captured packet.
pub(crate) struct FlowLabelWriter<W: Write> {
    w: W,
    /// Flows opened whose first packet has not been written yet.
    pending: HashMap<u64, FlowMeta>,
    /// Rows written per label, in [`FlowLabel::ALL`] order.
    pub counts: [u64; 6],
}

impl<W: Write> FlowLabelWriter<W> {
    pub fn new(mut w: W) -> io::Result<Self> {
        writeln!(w, "{HEADER}")?;
        Ok(FlowLabelWriter {
            w,
            pending: HashMap::new(),
            counts: [0; 6],
        })
    }

    /// Takes the flows the generator opened since the last call.
    pub fn open(&mut self, flows: impl IntoIterator<Item = (u64, FlowMeta)>) {
        self.pending.extend(flows);
    }

    /// A packet of flow `id` was written at `ts`: the flow's row, if this was its first.
    pub fn packet(&mut self, id: u64, ts: Us) -> io::Result<()> {
        let Some(f) = self.pending.remove(&id) else {
            return Ok(());
        };
        let cid = community_id(
            IpAddr::from(f.orig.0),
            f.orig.1,
            IpAddr::from(f.resp.0),
            f.resp.1,
            f.proto,
            true,
        );
        let proto = if f.proto == 6 { "tcp" } else { "udp" };
        writeln!(
            self.w,
            "{cid},{},{proto},{},{},{},{},{}",
            rfc3339(ts),
            ip_str(f.orig.0),
            f.orig.1,
            ip_str(f.resp.0),
            f.resp.1,
            f.label.as_str()
        )?;
        self.counts[f.label as usize] += 1;
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<[u64; 6]> {
        self.w.flush()?;
        Ok(self.counts)
    }
}
