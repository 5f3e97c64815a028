//! Direction-free flow keys and the symmetric shard hash.

use std::net::IpAddr;

use wormsign_decode::PacketSummary;

/// Identifies a bidirectional flow regardless of which side sent a packet.
///
/// The two endpoints are stored in canonical order (lower `(address, port)` first), so
/// both directions of a conversation hash and compare equal. Addresses are kept as plain
/// integers (IPv4 in the low 32 bits) so that hashing and comparing a key, which happens
/// for every packet, is a handful of integer operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    lo: u128,
    hi: u128,
    lo_port: u16,
    hi_port: u16,
    proto: u8,
    is_v6: bool,
    /// Outermost VLAN id, so the same addresses on two VLANs stay two flows (as Zeek
    /// does); `NO_VLAN` when untagged.
    vlan: u16,
    /// The packet's tunnel chain (`Tunnel::chain`), so that address spaces inside two
    /// tunnels never meet; 0 for a packet that came bare.
    tunnel: u32,
}

const NO_VLAN: u16 = u16::MAX;

/// One direction of a [`FlowKey`]: who sent this packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Endpoints {
    pub src: IpAddr,
    pub src_port: u16,
    pub dst: IpAddr,
    pub dst_port: u16,
}

fn to_bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl FlowKey {
    /// Builds the key from a packet's directed endpoints; also returns whether the
    /// packet's source is the key's lower endpoint.
    pub(crate) fn new(e: Endpoints, proto: u8, vlan: Option<u16>, tunnel: u32) -> (FlowKey, bool) {
        let (src, dst) = (to_bits(e.src), to_bits(e.dst));
        let src_is_lo = (src, e.src_port) <= (dst, e.dst_port);
        let (lo, lo_port, hi, hi_port) = if src_is_lo {
            (src, e.src_port, dst, e.dst_port)
        } else {
            (dst, e.dst_port, src, e.src_port)
        };
        let key = FlowKey {
            lo,
            hi,
            lo_port,
            hi_port,
            proto,
            is_v6: e.src.is_ipv6(),
            vlan: vlan.unwrap_or(NO_VLAN),
            tunnel,
        };
        (key, src_is_lo)
    }

    fn addr(&self, bits: u128) -> IpAddr {
        if self.is_v6 {
            IpAddr::V6(bits.into())
        } else {
            IpAddr::V4((bits as u32).into())
        }
    }

    /// The lower endpoint's address.
    pub fn lo_addr(&self) -> IpAddr {
        self.addr(self.lo)
    }

    /// The higher endpoint's address.
    pub fn hi_addr(&self) -> IpAddr {
        self.addr(self.hi)
    }

    /// A value read from the key's first and last fields (see `FlowStore::warm`).
    pub(crate) fn touch(&self) -> u64 {
        self.lo as u64 ^ u64::from(self.vlan)
    }

    /// The IP protocol number.
    pub fn proto(&self) -> u8 {
        self.proto
    }

    /// The outermost VLAN id, if tagged.
    pub fn vlan(&self) -> Option<u16> {
        (self.vlan != NO_VLAN).then_some(self.vlan)
    }
}

const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// Whether `proto` is ICMP or ICMPv6, whose "ports" are type and code.
pub(crate) fn is_icmp(proto: u8) -> bool {
    proto == ICMP || proto == ICMPV6
}

/// Maps an ICMP message to directed pseudo-ports so that a request and its reply meet
/// in one flow, the way Zeek and Community ID pair them: the request type is used as
/// the originator's "port" on both, the code as the responder's. Returns the directed
/// `(src_port, dst_port)` of the key.
pub(crate) fn icmp_key_ports(proto: u8, icmp_type: u16, code: u16) -> (u16, u16) {
    let request_of_reply = match (proto, icmp_type) {
        (ICMP, 0) => Some(8),
        (ICMP, 14) => Some(13),
        (ICMP, 16) => Some(15),
        (ICMP, 18) => Some(17),
        (ICMPV6, 129) => Some(128),
        (ICMPV6, 131) => Some(130),
        (ICMPV6, 136) => Some(135),
        _ => None,
    };
    match request_of_reply {
        Some(request) => (code, request),
        None => (icmp_type, code),
    }
}

/// Picks the worker shard for a packet by a hash that is symmetric in the addresses and
/// ignores the ports, so both directions of a flow *and* all fragments of a datagram
/// (which carry no ports after the first) land on the same shard without locks.
pub fn shard_of(packet: &PacketSummary, n_shards: usize) -> usize {
    fn fold(addr: IpAddr) -> u64 {
        match addr {
            IpAddr::V4(a) => u64::from(u32::from(a)),
            IpAddr::V6(a) => {
                let v = u128::from(a);
                (v as u64) ^ ((v >> 64) as u64)
            }
        }
    }
    if n_shards <= 1 {
        return 0;
    }
    let sym = fold(packet.src) ^ fold(packet.dst) ^ u64::from(packet.proto);
    // A fixed multiplicative mix (splitmix64 finaliser) spreads neighbouring addresses.
    let mut h = sym.wrapping_add(0x9E37_79B9_7F4A_7C15);
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^= h >> 31;
    // The high half of h × n: in 0..n, as evenly spread as h % n, without the 64-bit
    // division that drew about 8 % of the decode workers' samples with two shards.
    ((u128::from(h) * n_shards as u128) >> 64) as usize
}
