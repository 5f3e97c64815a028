//! `LINKTYPE_*` values (tcpdump.org link-layer header types) used by wormsign.
//!
//! [`crate::RecordMeta::link_type`] carries the value found in the file,
//! masked to its low 16 bits; this crate does not rename values.

/// BSD loopback: 4-byte address family in host byte order.
pub const NULL: u16 = 0;
/// Ethernet II / 802.3.
pub const ETHERNET: u16 = 1;
/// PPP (RFC 1661).
pub const PPP: u16 = 9;
/// `DLT_RAW` as written by most platforms other than OpenBSD (value 12):
/// raw IPv4 or IPv6. Treat as [`RAW`].
pub const RAW_OPENBSD: u16 = 12;
/// `DLT_RAW` as written by OpenBSD (value 14): raw IPv4 or IPv6. Treat as [`RAW`].
pub const RAW_DLT14: u16 = 14;
/// Raw IPv4 or IPv6, version in the first nibble.
pub const RAW: u16 = 101;
/// OpenBSD loopback: 4-byte address family in network byte order.
pub const LOOP: u16 = 108;
/// Linux "cooked" capture v1 (16-byte header).
pub const LINUX_SLL: u16 = 113;
/// Raw IPv4.
pub const IPV4: u16 = 228;
/// Raw IPv6.
pub const IPV6: u16 = 229;
/// Linux netfilter NFLOG.
pub const NFLOG: u16 = 239;
/// Linux "cooked" capture v2 (20-byte header).
pub const LINUX_SLL2: u16 = 276;

/// True for link types whose frames start directly with an IPv4 or IPv6
/// header whose version nibble tells which: [`RAW`], [`RAW_OPENBSD`] (12)
/// and [`RAW_DLT14`] (14).
pub fn is_raw_ip(link_type: u16) -> bool {
    matches!(link_type, RAW | RAW_OPENBSD | RAW_DLT14)
}

#[cfg(test)]
mod tests {
    #[test]
    fn raw_variants() {
        assert!(super::is_raw_ip(101) && super::is_raw_ip(12) && super::is_raw_ip(14));
        assert!(!super::is_raw_ip(super::IPV4) && !super::is_raw_ip(super::ETHERNET));
    }
}
