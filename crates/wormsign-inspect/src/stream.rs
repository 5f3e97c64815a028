//! One direction of a TCP session, put back in sequence order and cut into messages.
//!
//! Segments arrive in capture order, which is not always sequence order: a retransmitted
//! segment repeats bytes already taken (trimmed), and a segment from beyond the next
//! expected byte waits (at most [`MAX_WAITING`] of them) until the hole fills. When too
//! many wait, the hole is counted as a gap and reading resumes after it; the protocol's
//! framer then finds the next message boundary. At most `max_bytes` of a direction are
//! taken, and of each message only its first [`MAX_MESSAGE`] bytes are buffered: the
//! rest of a long message (an exploit's payload, a file's data) is counted off without
//! being kept.

use crate::{Found, Framing, InspectStats, SessionParser};

/// Bytes of one message kept for its parser; the rest of a longer message is skipped.
/// Headers, NTLMSSP blobs and LOGIN7 records all fit.
pub const MAX_MESSAGE: usize = 16 * 1024;

/// Out-of-order segments held per direction while a hole is open.
pub const MAX_WAITING: usize = 32;

/// Bytes a framer may skip in a direction looking for a message boundary before the
/// bytes are taken for another protocol (a mid-stream start finds a boundary within a
/// message; searching a whole megabyte of something else costs more than it can tell).
pub const MAX_UNFRAMED: usize = 64 * 1024;

/// One direction's reassembly state.
#[derive(Debug, Default)]
pub struct Direction {
    /// Sequence number of the next byte expected; set by the first segment with data.
    next_seq: Option<u32>,
    /// Stream bytes taken so far (buffered or skipped).
    taken: u32,
    /// Contiguous bytes not yet cut into messages.
    buf: Vec<u8>,
    /// Bytes of the current message still to count off unbuffered.
    skip: usize,
    /// Bytes the framer skipped looking for a message boundary.
    unframed: usize,
    /// Whether any message (or ignored unit) was framed yet.
    framed: bool,
    /// Segments from beyond `next_seq`, waiting for the hole before them.
    waiting: Vec<(u32, Vec<u8>)>,
    /// Ordinal of the last packet seen in this direction.
    pub(crate) last_packet: u64,
}

impl Direction {
    /// Whether `max_bytes` have been taken.
    pub fn full(&self, max_bytes: u32) -> bool {
        self.taken >= max_bytes
    }

    /// Adds a segment whose first byte has sequence number `seq`.
    pub fn push(&mut self, seq: u32, payload: &[u8], max_bytes: u32, stats: &mut InspectStats) {
        if payload.is_empty() || self.full(max_bytes) {
            return;
        }
        let next = *self.next_seq.get_or_insert(seq);
        let ahead = seq.wrapping_sub(next) as i32;
        if ahead > 0 {
            if self.waiting.len() < MAX_WAITING {
                self.waiting.push((seq, payload.to_vec()));
                return;
            }
            // Too many segments wait on one hole: give it up and go on from the
            // earliest waiting segment.
            stats.gaps += 1;
            self.waiting
                .sort_unstable_by_key(|(s, _)| s.wrapping_sub(next));
            let resume = self.waiting[0].0;
            self.buf.clear();
            self.skip = 0;
            self.next_seq = Some(resume);
            self.waiting.push((seq, payload.to_vec()));
            self.take_waiting(max_bytes);
            return;
        }
        self.append_at(seq, payload, max_bytes);
        self.take_waiting(max_bytes);
    }

    /// Appends the part of a segment starting at `seq` (at or before `next_seq`) that is new.
    fn append_at(&mut self, seq: u32, payload: &[u8], max_bytes: u32) {
        let next = self.next_seq.unwrap_or(seq);
        let behind = next.wrapping_sub(seq) as usize;
        let Some(new) = payload.get(behind..).filter(|b| !b.is_empty()) else {
            return;
        };
        let room = max_bytes.saturating_sub(self.taken) as usize;
        let new = &new[..new.len().min(room)];
        self.taken += new.len() as u32;
        self.next_seq = Some(next.wrapping_add(new.len() as u32));
        let skipped = self.skip.min(new.len());
        self.skip -= skipped;
        self.buf.extend_from_slice(&new[skipped..]);
    }

    /// Appends every waiting segment that the hole no longer separates.
    fn take_waiting(&mut self, max_bytes: u32) {
        while let Some(next) = self.next_seq {
            let Some(i) = self
                .waiting
                .iter()
                .position(|(s, _)| (s.wrapping_sub(next) as i32) <= 0)
            else {
                break;
            };
            let (seq, bytes) = self.waiting.swap_remove(i);
            self.append_at(seq, &bytes, max_bytes);
        }
    }

    /// Cuts whole messages off the buffer with the parser's framer and hands each to the
    /// parser (its first [`MAX_MESSAGE`] bytes and its full length). Returns true when the
    /// framer says the bytes are not the protocol.
    pub(crate) fn drain_messages(
        &mut self,
        parser: &mut dyn SessionParser,
        from_client: bool,
        found: &mut Vec<Found>,
    ) -> bool {
        let mut message =
            |p: &mut dyn SessionParser, m: &[u8], len| p.message(m, len, from_client, found);
        let untouched = !self.framed && self.unframed == 0;
        if untouched && parser.foreign(&self.buf) {
            self.buf.clear();
            return true;
        }
        let mut start = 0;
        // Each turn consumes bytes or stops, so this ends within `buf.len()` turns.
        while start < self.buf.len() {
            let rest = &self.buf[start..];
            match parser.frame(rest, from_client) {
                Framing::Message(len) if len <= rest.len() => {
                    message(parser, &rest[..len], len);
                    start += len.max(1);
                    self.framed = true;
                }
                Framing::Message(len) if rest.len() >= MAX_MESSAGE => {
                    message(parser, &rest[..MAX_MESSAGE], len);
                    self.skip = len - rest.len();
                    start = self.buf.len();
                    self.framed = true;
                }
                Framing::Message(_) | Framing::NeedMore => {
                    if rest.len() >= MAX_MESSAGE {
                        start = self.buf.len();
                    }
                    break;
                }
                Framing::Ignore(n) => {
                    start += n.clamp(1, rest.len());
                    self.framed = true;
                }
                Framing::Skip(n) => {
                    let n = n.clamp(1, rest.len());
                    start += n;
                    self.unframed += n;
                    if self.unframed > MAX_UNFRAMED {
                        self.buf.clear();
                        return true;
                    }
                }
                Framing::Opaque => {
                    self.buf.clear();
                    return true;
                }
            }
        }
        self.buf.drain(..start);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages of "length byte + body", gathered.
    #[derive(Default)]
    struct LengthPrefixed(Vec<Vec<u8>>);

    impl SessionParser for LengthPrefixed {
        fn frame(&self, b: &[u8], _: bool) -> Framing {
            Framing::Message(usize::from(b[0]))
        }
        fn message(&mut self, m: &[u8], _: usize, _: bool, _: &mut Vec<Found>) {
            self.0.push(m.to_vec());
        }
    }

    fn messages(d: &mut Direction) -> Vec<Vec<u8>> {
        let mut p = LengthPrefixed::default();
        d.drain_messages(&mut p, true, &mut Vec::new());
        p.0
    }

    #[test]
    fn out_of_order_and_repeated_segments_come_out_in_sequence() {
        let mut d = Direction::default();
        let mut stats = InspectStats::default();
        d.push(100, &[3, b'a', b'b'], 1000, &mut stats);
        d.push(106, &[2, b'z'], 1000, &mut stats); // ahead: waits
        d.push(101, &[b'a', b'b', 3, b'x'], 1000, &mut stats); // overlaps two bytes
        d.push(105, b"y", 1000, &mut stats); // fills the hole
        assert_eq!(
            messages(&mut d),
            vec![vec![3, b'a', b'b'], vec![3, b'x', b'y'], vec![2, b'z']]
        );
        assert_eq!(stats.gaps, 0);
    }

    /// A framer that never finds a boundary.
    struct NoBoundary;

    impl SessionParser for NoBoundary {
        fn frame(&self, _: &[u8], _: bool) -> Framing {
            Framing::Skip(1000)
        }
        fn message(&mut self, _: &[u8], _: usize, _: bool, _: &mut Vec<Found>) {}
    }

    #[test]
    fn bytes_with_no_message_boundary_are_given_up_after_max_unframed() {
        let mut d = Direction::default();
        let mut stats = InspectStats::default();
        let chunk = vec![7u8; 16 * 1024];
        let mut gave_up_after = None;
        for i in 0..8u32 {
            d.push(i * chunk.len() as u32, &chunk, 1 << 20, &mut stats);
            if d.drain_messages(&mut NoBoundary, true, &mut Vec::new()) {
                gave_up_after = Some((i as usize + 1) * chunk.len());
                break;
            }
        }
        assert_eq!(gave_up_after, Some(MAX_UNFRAMED + chunk.len()));
    }

    #[test]
    fn stops_taking_at_the_bound() {
        let mut d = Direction::default();
        let mut stats = InspectStats::default();
        d.push(0, &[2, 1, 2, 9], 3, &mut stats);
        assert!(d.full(3));
        d.push(4, &[2, 1], 3, &mut stats);
        assert_eq!(messages(&mut d), vec![vec![2, 1]]);
    }

    #[test]
    fn a_hole_nobody_fills_is_a_gap_and_reading_goes_on() {
        let mut d = Direction::default();
        let mut stats = InspectStats::default();
        d.push(0, &[2, 0], 1 << 20, &mut stats);
        assert_eq!(messages(&mut d), vec![vec![2, 0]]);
        for i in 0..=MAX_WAITING as u32 {
            d.push(10 + 2 * i, &[2, i as u8], 1 << 20, &mut stats);
        }
        assert_eq!(stats.gaps, 1);
        let got = messages(&mut d);
        assert_eq!(got.len(), 1 + MAX_WAITING);
        assert_eq!(got[0], vec![2, 0]);
        assert_eq!(got[MAX_WAITING], vec![2, MAX_WAITING as u8]);
    }
}
