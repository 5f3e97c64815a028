//! pcapng: sections, interfaces and packet blocks, parsed by hand.
//!
//! Only the blocks that matter for packets are parsed (SHB, IDB, EPB, SPB
//! and the obsolete PB); every other block is skipped by its length without
//! being buffered whole.

use crate::chunk::Chunk;
use crate::error::CaptureError;
use crate::input::InBuf;
use crate::MAX_CAPLEN;

/// Section Header Block type; a palindrome, so it reads the same in both orders.
pub(crate) const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
const BOM: u32 = 0x1A2B_3C4D;

/// Largest block that is buffered whole (SHB, IDB, EPB, PB, SPB); larger ones are corrupt.
const MAX_PARSED_BLOCK: u32 = 16 << 20;

const OPT_ENDOFOPT: u16 = 0;
const IF_TSRESOL: u16 = 9;
const IF_TSOFFSET: u16 = 14;

/// One Interface Description Block of the current section.
#[derive(Clone, Copy, Debug)]
struct Interface {
    link_type: u16,
    /// `if_tsresol` byte: high bit clear → 10^-n s, set → 2^-n s.
    tsresol: u8,
    /// `if_tsoffset`, seconds.
    tsoffset: i64,
}

/// Per-stream pcapng state: byte order and interfaces of the current section.
#[derive(Debug, Default)]
pub(crate) struct NgState {
    big_endian: bool,
    interfaces: Vec<Interface>,
    /// Timestamp of the last EPB/PB, used for SPBs (which have none).
    last_ts_ns: i64,
}

/// Outcome of reading records.
pub(crate) enum Walk {
    /// The chunk reached its target.
    Full,
    /// The input ended cleanly on a block boundary.
    End,
}

#[inline]
fn u16_at(b: &[u8], at: usize, be: bool) -> u16 {
    let w = [b[at], b[at + 1]];
    if be {
        u16::from_be_bytes(w)
    } else {
        u16::from_le_bytes(w)
    }
}

#[inline]
fn u32_at(b: &[u8], at: usize, be: bool) -> u32 {
    let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if be {
        u32::from_be_bytes(w)
    } else {
        u32::from_le_bytes(w)
    }
}

fn u64_at(b: &[u8], at: usize, be: bool) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    if be {
        u64::from_be_bytes(w)
    } else {
        u64::from_le_bytes(w)
    }
}

/// Converts a pcapng timestamp in interface units to Unix nanoseconds,
/// clamped to the `i64` range.
pub(crate) fn ts_to_ns(ticks: u64, tsresol: u8, tsoffset: i64) -> i64 {
    let t = ticks as u128;
    let exp = u32::from(tsresol & 0x7f);
    let ns: u128 = if tsresol & 0x80 != 0 {
        // 2^-exp seconds per tick; t * 10^9 < 2^94 so no overflow.
        (t * 1_000_000_000) >> exp
    } else if exp <= 9 {
        t * 10u128.pow(9 - exp)
    } else {
        match 10u128.checked_pow(exp - 9) {
            Some(div) => t / div,
            None => 0,
        }
    };
    let total = ns as i128 + i128::from(tsoffset) * 1_000_000_000;
    total.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

fn corrupt(offset: u64, reason: impl Into<String>) -> CaptureError {
    CaptureError::Corrupt {
        offset,
        reason: reason.into(),
    }
}

/// Appends whole packet records to `chunk` until the blocks read for it span
/// `target` bytes of the buffer or the input ends.
pub(crate) fn read_records(
    inb: &mut InBuf,
    st: &mut NgState,
    chunk: &mut Chunk,
    target: usize,
) -> Result<Walk, CaptureError> {
    loop {
        let offset = inb.offset();
        let avail = inb.fill(8)?;
        if avail == 0 {
            return Ok(Walk::End);
        }
        if avail < 8 {
            return Err(CaptureError::Truncated {
                offset,
                needed: 8,
                available: avail as u64,
            });
        }
        let btype_raw = u32_at(inb.data(), 0, false);
        if btype_raw == SHB {
            // The byte-order magic decides how to read the length.
            let avail = inb.fill(12)?;
            if avail < 12 {
                return Err(CaptureError::Truncated {
                    offset,
                    needed: 12,
                    available: avail as u64,
                });
            }
            st.big_endian = match u32_at(inb.data(), 8, false) {
                BOM => false,
                m if m.swap_bytes() == BOM => true,
                m => {
                    return Err(corrupt(
                        offset,
                        format!("section header has bad byte-order magic {m:#010x}"),
                    ))
                }
            };
        }
        let be = st.big_endian;
        let btype = u32_at(inb.data(), 0, be);
        let len = u32_at(inb.data(), 4, be);
        if len < 12 || len % 4 != 0 {
            return Err(corrupt(
                offset,
                format!("block type {btype:#x} has invalid length {len}"),
            ));
        }
        if !matches!(btype, SHB | IDB | EPB | PB | SPB) {
            let skipped = inb.skip(u64::from(len))?;
            if skipped < u64::from(len) {
                return Err(CaptureError::Truncated {
                    offset,
                    needed: u64::from(len),
                    available: skipped,
                });
            }
            continue;
        }
        if len > MAX_PARSED_BLOCK {
            return Err(corrupt(
                offset,
                format!(
                    "block type {btype:#x} length {len} exceeds the {MAX_PARSED_BLOCK}-byte limit"
                ),
            ));
        }
        let len = len as usize;
        let avail = inb.fill(len)?;
        if avail < len {
            return Err(CaptureError::Truncated {
                offset,
                needed: len as u64,
                available: avail as u64,
            });
        }
        let block = &inb.data()[..len];
        let trailer = u32_at(block, len - 4, be);
        if trailer as usize != len {
            return Err(corrupt(
                offset,
                format!(
                    "block type {btype:#x} length {len} does not match trailing length {trailer}"
                ),
            ));
        }
        // After the block type and length, before the trailing length.
        const BODY: usize = 8;
        let body = &block[BODY..len - 4];
        // Where `body[at..at + n]` lies in the buffer the chunk takes over.
        let in_buffer = |at: usize, n: usize| {
            let start = inb.index() + BODY + at;
            start..start + n
        };
        match btype {
            SHB => {
                if body.len() < 16 {
                    return Err(corrupt(
                        offset,
                        format!("section header block too short ({len} bytes)"),
                    ));
                }
                st.interfaces.clear();
            }
            IDB => {
                if body.len() < 8 {
                    return Err(corrupt(
                        offset,
                        format!("interface description block too short ({len} bytes)"),
                    ));
                }
                let mut iface = Interface {
                    link_type: u16_at(body, 0, be),
                    tsresol: 6,
                    tsoffset: 0,
                };
                parse_idb_options(&body[8..], be, &mut iface);
                st.interfaces.push(iface);
            }
            EPB | PB => {
                if body.len() < 20 {
                    return Err(corrupt(
                        offset,
                        format!("packet block too short ({len} bytes)"),
                    ));
                }
                let if_id = if btype == EPB {
                    u32_at(body, 0, be)
                } else {
                    u32::from(u16_at(body, 0, be))
                };
                let ticks = (u64::from(u32_at(body, 4, be)) << 32) | u64::from(u32_at(body, 8, be));
                let caplen = u32_at(body, 12, be);
                let orig_len = u32_at(body, 16, be);
                if caplen > MAX_CAPLEN {
                    return Err(corrupt(
                        offset,
                        format!("packet caplen {caplen} exceeds the {MAX_CAPLEN}-byte limit"),
                    ));
                }
                if caplen as usize > body.len() - 20 {
                    return Err(corrupt(
                        offset,
                        format!("packet caplen {caplen} does not fit in a {len}-byte block"),
                    ));
                }
                let Some(iface) = st.interfaces.get(if_id as usize) else {
                    return Err(corrupt(
                        offset,
                        format!(
                            "packet refers to interface {if_id} but the section has {}",
                            st.interfaces.len()
                        ),
                    ));
                };
                let ts_ns = ts_to_ns(ticks, iface.tsresol, iface.tsoffset);
                st.last_ts_ns = ts_ns;
                chunk.push(
                    ts_ns,
                    iface.link_type,
                    orig_len,
                    offset,
                    in_buffer(20, caplen as usize),
                );
            }
            SPB => {
                if body.len() < 4 {
                    return Err(corrupt(
                        offset,
                        format!("simple packet block too short ({len} bytes)"),
                    ));
                }
                let Some(iface) = st.interfaces.first() else {
                    return Err(corrupt(offset, "simple packet block before any interface"));
                };
                let orig_len = u32_at(body, 0, be);
                let caplen = (orig_len as usize).min(body.len() - 4);
                if caplen > MAX_CAPLEN as usize {
                    return Err(corrupt(
                        offset,
                        format!("packet caplen {caplen} exceeds the {MAX_CAPLEN}-byte limit"),
                    ));
                }
                chunk.push(
                    st.last_ts_ns,
                    iface.link_type,
                    orig_len,
                    offset,
                    in_buffer(4, caplen),
                );
            }
            _ => {}
        }
        inb.consume(len);
        inb.keep_consumed();
        if inb.index() >= target && !chunk.is_empty() {
            return Ok(Walk::Full);
        }
    }
}

/// Reads `if_tsresol` and `if_tsoffset`; tolerates malformed option lists by
/// stopping at the first option that does not fit.
fn parse_idb_options(mut opts: &[u8], be: bool, iface: &mut Interface) {
    while opts.len() >= 4 {
        let code = u16_at(opts, 0, be);
        let olen = usize::from(u16_at(opts, 2, be));
        if code == OPT_ENDOFOPT {
            break;
        }
        let padded = (olen + 3) & !3;
        if opts.len() - 4 < olen {
            break;
        }
        let val = &opts[4..4 + olen];
        match (code, olen) {
            (IF_TSRESOL, 1) => iface.tsresol = val[0],
            (IF_TSOFFSET, 8) => iface.tsoffset = u64_at(val, 0, be) as i64,
            _ => {}
        }
        opts = opts.get(4 + padded..).unwrap_or(&[]);
    }
}

#[cfg(test)]
mod tests {
    use super::ts_to_ns;

    #[test]
    fn ts_resolutions() {
        assert_eq!(ts_to_ns(1_500_000, 6, 0), 1_500_000_000);
        assert_eq!(ts_to_ns(7, 9, 0), 7);
        assert_eq!(ts_to_ns(1024, 0x80 | 10, 0), 1_000_000_000);
        assert_eq!(ts_to_ns(1, 0x80 | 10, 0), 976_562);
        assert_eq!(ts_to_ns(12_345, 12, 0), 12);
        assert_eq!(ts_to_ns(5, 0, 2), 7_000_000_000);
        assert_eq!(ts_to_ns(5, 0, -7), -2_000_000_000);
    }

    #[test]
    fn ts_extremes_clamp_instead_of_overflowing() {
        assert_eq!(ts_to_ns(u64::MAX, 0, 0), i64::MAX);
        assert_eq!(ts_to_ns(u64::MAX, 0x80, i64::MAX), i64::MAX);
        assert_eq!(ts_to_ns(u64::MAX, 0x80 | 127, 0), 0);
        assert_eq!(ts_to_ns(u64::MAX, 127, 0), 0);
        assert_eq!(ts_to_ns(0, 6, i64::MIN), i64::MIN);
        assert_eq!(ts_to_ns(u64::MAX, 9, 0), i64::MAX);
    }
}
