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
