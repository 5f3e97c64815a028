//! What a flow's connection state says of the contact: a failed first contact or a
//! completed session. Every rule that counts contacts reads flows through these two.

use wormsign_flow::{tcp_flags, ConnState, DirCounters, FlowRecord, FlowSource, LogKind};

const TCP: u8 = 6;
const UDP: u8 = 17;

fn is_netflow(f: &FlowRecord) -> bool {
    matches!(f.source, FlowSource::Netflow(_))
}

/// Whether a flow was metered from sFlow samples: 1 in N packets, so its state and
/// counters show the few packets sampled, not how the connection went. Such a flow is
/// neither a failed first contact nor a completed session; it still counts as a contact
/// (scan fan-out reads contacts).
fn is_sampled(f: &FlowRecord) -> bool {
    matches!(f.source, FlowSource::Sflow(_))
}

/// Whether one side sent payload. Suricata's flow events count no payload bytes, only
/// whole packets; there a TCP side that set PSH (which stacks set on the segments that
/// carry data) or a UDP side that sent anything counts as having sent payload.
fn sent_payload(f: &FlowRecord, side: &DirCounters) -> bool {
    if f.source != FlowSource::Log(LogKind::Suricata) {
        return side.payload_bytes > 0;
    }
    match f.proto {
        TCP => side.tcp_flags & tcp_flags::PSH != 0,
        _ => side.packets > 0,
    }
}

/// Whether a flow's source shows how the connection went at all: not for flows metered
/// from sFlow samples, nor for one-way NetFlow UDP records (the reply, if any, is
/// another record). Such flows are neither failed nor completed.
pub fn shows_outcome(f: &FlowRecord) -> bool {
    !(is_sampled(f) || is_netflow(f) && f.proto == UDP)
}

/// Whether a flow is a failed first contact: TCP S0, REJ, RSTOS0, or RSTR with no
/// payload either way; UDP S0. For NetFlow records (one direction only, state from the
/// source's TCP flags) a UDP record is never counted as failed: the reply, if any, is a
/// separate record, so an unanswered datagram cannot be told from an answered one.
pub fn is_failed(f: &FlowRecord) -> bool {
    if !shows_outcome(f) {
        return false;
    }
    match f.proto {
        TCP => match f.conn_state {
            ConnState::S0 | ConnState::REJ | ConnState::RSTOS0 => true,
            ConnState::RSTR => !sent_payload(f, &f.orig) && !sent_payload(f, &f.resp),
            _ => false,
        },
        UDP => f.conn_state == ConnState::S0,
        _ => false,
    }
}

/// Whether a flow is a completed session: payload both ways, and TCP state SF, S1, S2, S3,
/// RSTO, RSTR or OTH (OTH: the handshake was not captured, as in captures filtered to
/// data packets); any UDP state. A NetFlow record (source side only) is completed when
/// its TCP flags show an established connection (SF, S1, S2, S3, RSTO, RSTR) and it
/// carried at least three packets (handshake ACK plus data); UDP NetFlow records never
/// are.
pub fn is_completed(f: &FlowRecord) -> bool {
    if is_sampled(f) {
        return false;
    }
    if is_netflow(f) {
        return f.proto == TCP && f.orig.packets >= 3 && is_established(f.conn_state);
    }
    let payload = sent_payload(f, &f.orig) && sent_payload(f, &f.resp);
    payload
        && match f.proto {
            TCP => is_established(f.conn_state) || f.conn_state == ConnState::OTH,
            _ => true,
        }
}

/// TCP states of a connection whose handshake completed (closed normally, half-closed,
/// or reset after it).
fn is_established(state: ConnState) -> bool {
    matches!(
        state,
        ConnState::SF
            | ConnState::S1
            | ConnState::S2
            | ConnState::S3
            | ConnState::RSTO
            | ConnState::RSTR
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::IpAddr;

    use wormsign_flow::{EndReason, History, NetflowOrigin, SflowOrigin};

    use super::*;
    use ConnState::{OTH, REJ, RSTOS0, RSTR, S0, S1, SF};

    /// A flow to port 445 from `source` in `state`, `packets` from the originator and
    /// `payload` bytes each way; a side that sent payload set PSH, as stacks do.
    fn flow(
        source: FlowSource,
        proto: u8,
        state: ConnState,
        packets: u64,
        payload: [u64; 2],
    ) -> FlowRecord {
        let side = |packets: u64, payload_bytes: u64| DirCounters {
            packets,
            ip_bytes: packets * 40 + payload_bytes,
            payload_bytes,
            tcp_flags: if payload_bytes > 0 { 0x18 } else { 0x10 },
        };
        FlowRecord {
            first_packet: 0,
            ts_first: 0,
            ts_last: 1_000_000,
            orig_addr: IpAddr::from([10, 0, 0, 1]),
            orig_port: 49_152,
            resp_addr: IpAddr::from([10, 0, 0, 2]),
            resp_port: 445,
            has_ports: true,
            proto,
            vlan: None,
            tunnel: None,
            orig: side(packets, payload[0]),
            resp: side(u64::from(payload[1] > 0), payload[1]),
            conn_state: state,
            history: History::default(),
            end_reason: EndReason::Idle,
            source,
        }
    }

    /// Record `record_index` of a NetFlow v9 export.
    pub(crate) fn netflow(record_index: u32) -> FlowSource {
        FlowSource::Netflow(NetflowOrigin {
            exporter: IpAddr::from([192, 0, 2, 1]),
            version: 9,
            sampling_interval: 1,
            record_index,
            input_if: 0,
            output_if: 0,
        })
    }

    /// Record `record_index` of an sFlow agent sampling 1 packet in 100.
    pub(crate) fn sflow(record_index: u32) -> FlowSource {
        FlowSource::Sflow(SflowOrigin {
            agent: IpAddr::from([192, 0, 2, 2]),
            sampling_rate: 100,
            record_index,
        })
    }

    /// Each case as the functions' docs (and Zeek's `conn_state`) say it, written out
    /// rather than derived: (failed, completed, shows an outcome).
    #[test]
    fn outcomes_follow_the_documented_states() {
        let (packets, netflow, sflow) = (FlowSource::Packets, netflow(0), sflow(0));
        // Suricata counts no payload bytes, only packets and flags: a side with payload
        // shows it by PSH alone.
        let suricata = |packets, payload| {
            let mut f = flow(
                FlowSource::Log(LogKind::Suricata),
                TCP,
                SF,
                packets,
                payload,
            );
            (f.orig.payload_bytes, f.resp.payload_bytes) = (0, 0);
            f
        };
        let cases = [
            // Unanswered, refused, reset before any data: failed.
            (flow(packets, TCP, S0, 1, [0, 0]), (true, false, true)),
            (flow(packets, TCP, REJ, 1, [0, 0]), (true, false, true)),
            (flow(packets, TCP, RSTOS0, 1, [0, 0]), (true, false, true)),
            (flow(packets, TCP, RSTR, 2, [0, 0]), (true, false, true)),
            // Payload both ways in an established (or handshake-less) connection: completed.
            (flow(packets, TCP, RSTR, 4, [100, 50]), (false, true, true)),
            (flow(packets, TCP, SF, 5, [100, 50]), (false, true, true)),
            (flow(packets, TCP, OTH, 5, [100, 50]), (false, true, true)),
            // A handshake without data, or data one way only: neither.
            (flow(packets, TCP, SF, 3, [0, 0]), (false, false, true)),
            (flow(packets, TCP, S1, 3, [100, 0]), (false, false, true)),
            // UDP: unanswered is failed, payload both ways completed.
            (flow(packets, UDP, S0, 1, [60, 0]), (true, false, true)),
            (flow(packets, UDP, SF, 1, [60, 80]), (false, true, true)),
            // NetFlow: one direction per record; UDP shows nothing, TCP its flags.
            (flow(netflow, UDP, S0, 1, [60, 0]), (false, false, false)),
            (flow(netflow, TCP, S0, 1, [0, 0]), (true, false, true)),
            (flow(netflow, TCP, SF, 3, [0, 0]), (false, true, true)),
            (flow(netflow, TCP, SF, 2, [0, 0]), (false, false, true)),
            // sFlow samples show no outcome at all.
            (flow(sflow, TCP, S0, 1, [0, 0]), (false, false, false)),
            (flow(sflow, TCP, SF, 5, [100, 50]), (false, false, false)),
            // Suricata: PSH both ways stands for payload.
            (suricata(5, [100, 50]), (false, true, true)),
            (suricata(3, [0, 0]), (false, false, true)),
        ];
        for (f, expected) in cases {
            let got = (is_failed(&f), is_completed(&f), shows_outcome(&f));
            assert_eq!(
                got, expected,
                "{:?} {:?} {:?}",
                f.source, f.proto, f.conn_state
            );
        }
    }
}
