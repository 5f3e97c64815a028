//! Reading big-endian fields and clocks off the wire.

use std::net::{IpAddr, Ipv4Addr};

#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Seconds between the NTP epoch (1900) and the Unix epoch.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

pub(crate) fn ntp_to_ns(v: u64) -> i64 {
    let secs = (v >> 32).saturating_sub(NTP_UNIX_OFFSET);
    let frac = ((v & 0xffff_ffff) * 1_000_000_000) >> 32;
    to_i64(secs)
        .saturating_mul(1_000_000_000)
        .saturating_add(frac as i64)
}

pub(crate) const UNSPECIFIED: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
