//! TCP endpoint states, Zeek's `conn_state` and `history`.
//!
//! The states and the derivation of `conn_state` follow Zeek's
//! `scripts/base/protocols/conn/main.zeek` so that analysts read the column the way they
//! read `conn.log`.

use std::fmt;

/// TCP flag bits as they appear in the TCP header.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}
use tcp_flags::{ACK, FIN, RST, SYN};

/// What one TCP endpoint has done so far (Zeek's `TCP_ENDPOINT_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// Sent nothing yet.
    #[default]
    Inactive,
    /// Sent a SYN without ACK.
    SynSent,
    /// Sent a SYN+ACK.
    SynAckSent,
    /// Seen only mid-stream (no SYN from it).
    Partial,
    /// Completed the handshake.
    Established,
    /// Sent a FIN.
    Closed,
    /// Sent a RST.
    Reset,
}

impl Endpoint {
    fn inactive(self) -> bool {
        matches!(self, Endpoint::Inactive | Endpoint::Partial)
    }
}

/// Advances the sender's and the peer's endpoint state for one TCP segment.
pub(crate) fn tcp_transition(sender: &mut Endpoint, peer: &mut Endpoint, flags: u8) {
    use Endpoint::*;
    if flags & RST != 0 {
        *sender = Reset;
    } else if flags & SYN != 0 && flags & ACK == 0 {
        if *sender == Inactive {
            *sender = SynSent;
        }
    } else if flags & SYN != 0 {
        if matches!(*sender, Inactive | SynSent) {
            if *peer == SynSent {
                // The SYN-ACK answers the peer's SYN: Zeek counts the connection as
                // established from here on ("Sh" logs as S1).
                *sender = Established;
                *peer = Established;
            } else {
                *sender = SynAckSent;
            }
        }
    } else if flags & FIN != 0 {
        if *sender != Reset {
            *sender = Closed;
        }
    } else {
        match *sender {
            Inactive => *sender = Partial,
            SynSent if *peer == SynAckSent => {
                *sender = Established;
                *peer = Established;
            }
            SynAckSent => *sender = Established,
            _ => {}
        }
    }
}

/// Zeek's connection state summary, one value per flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConnState {
    /// Connection attempt seen, no reply.
    S0,
    /// Connection established, not terminated.
    S1,
    /// Normal establishment and termination.
    SF,
    /// Connection attempt rejected.
    REJ,
    /// Established, close attempt by originator seen (but no reply from responder).
    S2,
    /// Established, close attempt by responder seen (but no reply from originator).
    S3,
    /// Established, originator aborted (sent a RST).
    RSTO,
    /// Responder sent a RST.
    RSTR,
    /// Originator sent a SYN followed by a RST, never saw a SYN-ACK from the responder.
    RSTOS0,
    /// Responder sent a SYN-ACK followed by a RST, never saw a SYN from the originator.
    RSTRH,
    /// Originator sent a SYN followed by a FIN, never saw a SYN-ACK ("half open").
    SH,
    /// Responder sent a SYN-ACK followed by a FIN, never saw a SYN from the originator.
    SHR,
    /// No SYN seen, just midstream traffic; also every non-TCP/UDP flow.
    OTH,
}

impl ConnState {
    /// Every value, in declaration order (the Parquet dictionary order).
    pub const ALL: [ConnState; 13] = [
        ConnState::S0,
        ConnState::S1,
        ConnState::SF,
        ConnState::REJ,
        ConnState::S2,
        ConnState::S3,
        ConnState::RSTO,
        ConnState::RSTR,
        ConnState::RSTOS0,
        ConnState::RSTRH,
        ConnState::SH,
        ConnState::SHR,
        ConnState::OTH,
    ];

    /// The value Zeek writes as `name`, if any.
    pub fn from_name(name: &str) -> Option<ConnState> {
        ConnState::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// The name as Zeek writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnState::S0 => "S0",
            ConnState::S1 => "S1",
            ConnState::SF => "SF",
            ConnState::REJ => "REJ",
            ConnState::S2 => "S2",
            ConnState::S3 => "S3",
            ConnState::RSTO => "RSTO",
            ConnState::RSTR => "RSTR",
            ConnState::RSTOS0 => "RSTOS0",
            ConnState::RSTRH => "RSTRH",
            ConnState::SH => "SH",
            ConnState::SHR => "SHR",
            ConnState::OTH => "OTH",
        }
    }

    /// Derives the TCP state the way Zeek's `conn_state()` does.
    pub(crate) fn from_tcp(
        orig: Endpoint,
        resp: Endpoint,
        orig_sent_syn: bool,
        no_payload: bool,
    ) -> ConnState {
        use Endpoint::*;
        let (o_inactive, r_inactive) = (orig.inactive(), resp.inactive());
        if resp == Reset {
            if matches!(orig, SynSent | SynAckSent) || (orig == Reset && no_payload) {
                ConnState::REJ
            } else if o_inactive {
                ConnState::RSTRH
            } else {
                ConnState::RSTR
            }
        } else if orig == Reset {
            match (r_inactive, orig_sent_syn) {
                (false, _) => ConnState::RSTO,
                (true, true) => ConnState::RSTOS0,
                (true, false) => ConnState::OTH,
            }
        } else if orig == Closed && resp == Closed {
            ConnState::SF
        } else if orig == Closed {
            if r_inactive {
                ConnState::SH
            } else {
                ConnState::S2
            }
        } else if resp == Closed {
            if o_inactive {
                ConnState::SHR
            } else {
                ConnState::S3
            }
        } else if orig == SynSent && resp == Inactive {
            ConnState::S0
        } else if orig == Established && resp == Established {
            ConnState::S1
        } else {
            ConnState::OTH
        }
    }

    /// UDP: Zeek's S0 (only the originator spoke), SF (both), SHR (only the responder).
    pub(crate) fn from_datagram(orig_packets: u64, resp_packets: u64) -> ConnState {
        match (orig_packets > 0, resp_packets > 0) {
            (true, true) => ConnState::SF,
            (true, false) => ConnState::S0,
            (false, true) => ConnState::SHR,
            (false, false) => ConnState::OTH,
        }
    }
}

impl fmt::Display for ConnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The letters of Zeek's `history`, in first-seen order; upper case is the originator.
///
/// Each letter is recorded once per direction (Zeek repeats some letters on a
/// logarithmic scale; we do not). Letters implemented: `^` (direction flipped), S, H, A,
/// D, F, R, T (retransmitted payload), W (zero window), I (SYN+RST), Q (SYN+FIN).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct History {
    letters: [u8; 24],
    len: u8,
    seen: u32,
}

const LETTERS: &[u8] = b"SHADFRTWIQ^";

impl History {
    /// Number of letters so far.
    pub(crate) fn len(&self) -> u8 {
        self.len
    }

    /// Appends `letter` (upper case) for the originator, or its lower case for the
    /// responder, unless that direction already has it.
    pub(crate) fn add(&mut self, letter: u8, from_orig: bool) {
        let Some(idx) = LETTERS.iter().position(|&l| l == letter) else {
            return;
        };
        let bit = 1u32 << (idx * 2 + usize::from(!from_orig));
        if self.seen & bit != 0 || usize::from(self.len) >= self.letters.len() {
            return;
        }
        self.seen |= bit;
        let ch = if from_orig {
            letter
        } else {
            letter.to_ascii_lowercase()
        };
        self.letters[usize::from(self.len)] = ch;
        self.len += 1;
    }

    /// A history another tool wrote (Zeek's `conn.log`), kept as written: its first 24
    /// letters, any character but ASCII letters and `^` left out.
    pub fn from_letters(text: &str) -> History {
        let mut history = History::default();
        for letter in text
            .bytes()
            .filter(|b| b.is_ascii_alphabetic() || *b == b'^')
        {
            if usize::from(history.len) == history.letters.len() {
                break;
            }
            history.letters[usize::from(history.len)] = letter;
            history.len += 1;
        }
        history
    }

    /// The history string, e.g. `ShADadFf`.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.letters[..usize::from(self.len)]).unwrap_or("")
    }
}

/// The history letters one TCP segment contributes, in the order Zeek records them.
pub(crate) fn tcp_history_letters(flags: u8, has_payload: bool, zero_window: bool) -> [u8; 3] {
    let mut out = [0u8; 3];
    let syn = flags & SYN != 0;
    let fin = flags & FIN != 0;
    let rst = flags & RST != 0;
    let ack = flags & ACK != 0;
    out[0] = match () {
        _ if syn && rst => b'I',
        _ if syn && fin => b'Q',
        _ if syn && ack => b'H',
        _ if syn => b'S',
        _ if rst => b'R',
        _ if fin => b'F',
        _ if has_payload => b'D',
        _ if ack => b'A',
        _ => 0,
    };
    if has_payload && out[0] != b'D' {
        out[1] = b'D';
    }
    if zero_window && !syn && !rst {
        out[2] = b'W';
    }
    out
}
