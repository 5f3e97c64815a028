//! A usable flow as the detector keeps it until its sorted run: the fields the rules
//! read, and the outcome worked out once.

use std::cmp::Ordering;
use std::net::IpAddr;

use wormsign_flow::FlowRecord;

use crate::outcome::{is_completed, is_failed, shows_outcome};

/// A flow some rule can use, as the detector holds it: 80 bytes where the
/// [`FlowRecord`] it comes from takes 256. A run can gather hundreds of thousands of
/// them (a scan's contacts, all ending with the capture), and sorting and reading them
/// moves every byte of each through the cache, so it keeps only what the rules read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsableFlow {
    pub(crate) ts_first: i64,
    pub(crate) ts_last: i64,
    pub(crate) first_packet: u64,
    /// Payload bytes both ways (brute force tells short, small sessions by it).
    pub(crate) payload_bytes: u64,
    /// [`FlowSource::record_index`](wormsign_flow::FlowSource::record_index).
    pub(crate) record_index: u32,
    pub(crate) orig_addr: IpAddr,
    pub(crate) resp_addr: IpAddr,
    pub(crate) orig_port: u16,
    pub(crate) resp_port: u16,
    pub(crate) proto: u8,
    pub(crate) has_ports: bool,
    /// [`is_failed`].
    pub(crate) failed: bool,
    /// [`is_completed`].
    pub(crate) completed: bool,
    /// [`shows_outcome`].
    pub(crate) shows_outcome: bool,
}

impl From<&FlowRecord> for UsableFlow {
    fn from(f: &FlowRecord) -> Self {
        UsableFlow::with_stored(
            f,
            StoredFields {
                ts_first: f.ts_first,
                ts_last: f.ts_last,
                first_packet: f.first_packet,
                payload_bytes: [f.orig.payload_bytes, f.resp.payload_bytes],
                record_index: f.source.record_index(),
                has_ports: f.has_ports,
            },
        )
    }
}

/// The fields of a [`FlowRecord`] a [`UsableFlow`] reads that storing the record in the
/// flows table can change (times cut to microseconds, counters and the record index
/// capped, `has_ports` implied by the ports), as a read-back gives them.
/// `wormsign_columnar::as_stored` makes a whole stored record; filling these instead
/// spares the pipeline building one for every flow it hands detection. (`From` fills
/// them with the record's own values: a record read back is already as stored.)
#[derive(Clone, Copy, Debug)]
pub struct StoredFields {
    /// [`FlowRecord::ts_first`].
    pub ts_first: i64,
    /// [`FlowRecord::ts_last`].
    pub ts_last: i64,
    /// [`FlowRecord::first_packet`].
    pub first_packet: u64,
    /// The originator's and the responder's payload bytes.
    pub payload_bytes: [u64; 2],
    /// [`FlowSource::record_index`](wormsign_flow::FlowSource::record_index).
    pub record_index: u32,
    /// [`FlowRecord::has_ports`].
    pub has_ports: bool,
}

impl UsableFlow {
    /// `f` with `stored` in place of its own fields of those names, which must be `f`'s
    /// as stored (or its own). Storing leaves what the outcome reads as it was (the
    /// source's kind, the protocol, the state, the TCP flags, and whether a counter is
    /// above 0 or 3, which no cap changes), so that is read from `f`.
    pub fn with_stored(f: &FlowRecord, stored: StoredFields) -> UsableFlow {
        let [orig_payload, resp_payload] = stored.payload_bytes;
        UsableFlow {
            ts_first: stored.ts_first,
            ts_last: stored.ts_last,
            first_packet: stored.first_packet,
            payload_bytes: orig_payload.saturating_add(resp_payload),
            record_index: stored.record_index,
            orig_addr: f.orig_addr,
            resp_addr: f.resp_addr,
            orig_port: f.orig_port,
            resp_port: f.resp_port,
            proto: f.proto,
            has_ports: stored.has_ports,
            failed: is_failed(f),
            completed: is_completed(f),
            shows_outcome: shows_outcome(f),
        }
    }

    /// When the flow started (ns since the Unix epoch).
    pub fn start(&self) -> i64 {
        self.ts_first
    }

    /// The responder's address.
    pub fn responder(&self) -> IpAddr {
        self.resp_addr
    }

    /// [`FlowRecord::detection_order`].
    pub fn detection_order(&self) -> (i64, u64, u32) {
        (self.ts_first, self.first_packet, self.record_index)
    }

    /// [`FlowRecord::detection_cmp`]: the same order over the same fields.
    pub fn detection_cmp(&self, other: &UsableFlow) -> Ordering {
        let key = |f: &UsableFlow| (f.orig_addr, f.orig_port, f.resp_addr, f.resp_port, f.proto);
        self.detection_order()
            .cmp(&other.detection_order())
            .then_with(|| key(self).cmp(&key(other)))
    }
}

#[cfg(test)]
mod tests {
    use wormsign_flow::{ConnState, DirCounters, EndReason, FlowSource, History, LogKind};

    use super::*;
    use crate::outcome::tests::{netflow, sflow};

    /// The size the doc promises: a field added without thought shows here.
    #[test]
    fn a_usable_flow_is_80_bytes() {
        assert_eq!(std::mem::size_of::<UsableFlow>(), 80);
    }

    fn side(packets: u64, payload_bytes: u64, tcp_flags: u8) -> DirCounters {
        DirCounters {
            packets,
            ip_bytes: packets * 40 + payload_bytes,
            payload_bytes,
            tcp_flags,
        }
    }

    /// Records that differ in every field the order and the outcome read, with ties in
    /// each key but the last.
    fn records() -> Vec<FlowRecord> {
        let sources = [
            FlowSource::Packets,
            netflow(0),
            netflow(7),
            sflow(3),
            FlowSource::Log(LogKind::Suricata),
            FlowSource::Log(LogKind::Zeek),
        ];
        let states = [
            ConnState::S0,
            ConnState::SF,
            ConnState::RSTR,
            ConnState::REJ,
        ];
        let mut out = Vec::new();
        for (i, source) in sources.into_iter().enumerate() {
            for (j, &conn_state) in states.iter().enumerate() {
                for proto in [6u8, 17] {
                    let n = (i * 8 + j * 2) as u64 + u64::from(proto == 17);
                    out.push(FlowRecord {
                        first_packet: n % 5,
                        ts_first: (n % 3) as i64,
                        ts_last: 10 + n as i64,
                        orig_addr: IpAddr::from([10, 0, 0, (n % 4) as u8]),
                        orig_port: 40_000 + (n % 2) as u16,
                        resp_addr: IpAddr::from([10, 0, 1, (n % 7) as u8]),
                        resp_port: 445,
                        has_ports: true,
                        proto,
                        vlan: None,
                        tunnel: None,
                        orig: side(3 + n % 2, n % 3 * 100, 0x18 * (n % 2) as u8),
                        resp: side(n % 3, n % 2 * 50, 0x18),
                        conn_state,
                        history: History::default(),
                        end_reason: EndReason::Idle,
                        source,
                    });
                }
            }
        }
        out
    }

    /// The detector reads these in place of the records: same order, same payload. (The
    /// outcome fields are `outcome.rs`'s answers, which `with_stored` sets and
    /// `outcomes_follow_the_documented_states` checks; here the grid only has to cover
    /// both outcomes.)
    #[test]
    fn a_usable_flow_says_what_its_record_says() {
        let records = records();
        let (mut failed, mut completed) = (0, 0);
        for r in &records {
            let u = UsableFlow::from(r);
            assert_eq!(u.detection_order(), r.detection_order());
            assert_eq!(u.payload_bytes, r.orig.payload_bytes + r.resp.payload_bytes);
            (failed, completed) = (
                failed + usize::from(u.failed),
                completed + usize::from(u.completed),
            );
        }
        assert!(failed > 0 && completed > 0, "both outcomes covered");
        for a in &records {
            for b in &records {
                let (ua, ub) = (UsableFlow::from(a), UsableFlow::from(b));
                assert_eq!(ua.detection_cmp(&ub), a.detection_cmp(b), "{a:?} {b:?}");
            }
        }
    }
}
