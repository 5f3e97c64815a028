//! Legacy pcap: the record walk (the hot path).

use crate::chunk::Chunk;
use crate::error::CaptureError;
use crate::input::InBuf;
use crate::MAX_CAPLEN;

/// Bytes of the global file header.
pub(crate) const FILE_HEADER_LEN: usize = 24;

/// What the global header says about the records that follow.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PcapFormat {
    pub(crate) big_endian: bool,
    pub(crate) nanos: bool,
    /// Kuznetsov's modified pcap: 24-byte record headers.
    pub(crate) modified: bool,
    pub(crate) link_type: u16,
    /// Written by libpcap before 2.3, which could swap caplen and len: when
    /// caplen > len, the two are exchanged (as libpcap and Wireshark do).
    pub(crate) maybe_swapped: bool,
}

/// Recognises the 4 magic bytes of a legacy pcap file.
/// Returns `(big_endian, nanos, modified)`.
pub(crate) fn magic(m: [u8; 4]) -> Option<(bool, bool, bool)> {
    match u32::from_le_bytes(m) {
        0xa1b2_c3d4 => Some((false, false, false)),
        0xa1b2_3c4d => Some((false, true, false)),
        0xa1b2_cd34 => Some((false, false, true)),
        0xd4c3_b2a1 => Some((true, false, false)),
        0x4d3c_b2a1 => Some((true, true, false)),
        0x34cd_b2a1 => Some((true, false, true)),
        _ => None,
    }
}

/// Parses the 24-byte global header (the magic was already recognised).
pub(crate) fn parse_file_header(h: &[u8; FILE_HEADER_LEN]) -> PcapFormat {
    let (big_endian, nanos, modified) =
        magic([h[0], h[1], h[2], h[3]]).unwrap_or((false, false, false));
    let u16_at = |at: usize| {
        let w = [h[at], h[at + 1]];
        if big_endian {
            u16::from_be_bytes(w)
        } else {
            u16::from_le_bytes(w)
        }
    };
    let (major, minor) = (u16_at(4), u16_at(6));
    let raw = [h[20], h[21], h[22], h[23]];
    let lt = if big_endian {
        u32::from_be_bytes(raw)
    } else {
        u32::from_le_bytes(raw)
    };
    PcapFormat {
        big_endian,
        nanos,
        modified,
        // The upper bits carry the FCS length and flags; the low 16 bits are
        // the link type.
        link_type: (lt & 0xffff) as u16,
        maybe_swapped: major == 2 && minor < 3,
    }
}

/// Outcome of one walk over the buffered bytes.
pub(crate) enum Walk {
    /// The chunk reached its target.
    Full,
    /// The input ended cleanly on a record boundary.
    End,
}

#[inline(always)]
fn u32_at<const BE: bool>(b: &[u8], at: usize) -> u32 {
    let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if BE {
        u32::from_be_bytes(w)
    } else {
        u32::from_le_bytes(w)
    }
}

/// Appends whole records to `chunk` until they and their headers span `target`
/// bytes of the buffer or the input ends.
pub(crate) fn read_records(
    inb: &mut InBuf,
    f: &PcapFormat,
    chunk: &mut Chunk,
    target: usize,
) -> Result<Walk, CaptureError> {
    match (f.big_endian, f.modified) {
        (false, false) => walk::<false, 16>(inb, f, chunk, target),
        (true, false) => walk::<true, 16>(inb, f, chunk, target),
        (false, true) => walk::<false, 24>(inb, f, chunk, target),
        (true, true) => walk::<true, 24>(inb, f, chunk, target),
    }
}

fn walk<const BE: bool, const HDR: usize>(
    inb: &mut InBuf,
    f: &PcapFormat,
    chunk: &mut Chunk,
    target: usize,
) -> Result<Walk, CaptureError> {
    let frac_mul: i64 = if f.nanos { 1 } else { 1_000 };
    let link_type = f.link_type;
    let maybe_swapped = f.maybe_swapped;
    loop {
        // Walk every whole record already buffered.
        let base = inb.offset();
        let index = inb.index();
        let data = inb.data();
        let mut p = 0usize;
        let mut need = HDR;
        let mut full = false;
        let mut corrupt = None;
        while data.len() - p >= HDR {
            let mut caplen = u32_at::<BE>(data, p + 8);
            let mut orig_len = u32_at::<BE>(data, p + 12);
            if maybe_swapped && caplen > orig_len {
                std::mem::swap(&mut caplen, &mut orig_len);
            }
            if caplen > MAX_CAPLEN {
                corrupt = Some(caplen);
                break;
            }
            let total = HDR + caplen as usize;
            if data.len() - p < total {
                need = total;
                break;
            }
            let sec = u32_at::<BE>(data, p) as i64;
            let frac = u32_at::<BE>(data, p + 4) as i64;
            // Cannot overflow: both terms are below 2^32 * 10^9 < 2^63 / 2.
            let ts_ns = sec * 1_000_000_000 + frac * frac_mul;
            chunk.push(
                ts_ns,
                link_type,
                orig_len,
                base + p as u64,
                index + p + HDR..index + p + total,
            );
            p += total;
            if index + p >= target {
                full = true;
                break;
            }
        }
        inb.consume(p);
        inb.keep_consumed();
        if let Some(caplen) = corrupt {
            return Err(CaptureError::Corrupt {
                offset: inb.offset(),
                reason: format!("record caplen {caplen} exceeds the {MAX_CAPLEN}-byte limit"),
            });
        }
        if full {
            return Ok(Walk::Full);
        }
        let avail = inb.fill(need)?;
        if avail == 0 {
            return Ok(Walk::End);
        }
        if avail < need {
            return Err(CaptureError::Truncated {
                offset: inb.offset(),
                needed: need as u64,
                available: avail as u64,
            });
        }
    }
}
