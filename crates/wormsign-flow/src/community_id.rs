//! Community ID v1 (<https://github.com/corelight/community-id-spec>), seed 0.

use std::net::IpAddr;

use base64::Engine as _;
use sha1::Digest as _;

/// A Community ID v1 string: `1:` and the base64 of a 20-byte SHA-1, 30 ASCII bytes.
/// Held inline rather than as a `String`: one is made for every flow written.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CommunityId([u8; COMMUNITY_ID_LEN]);

const COMMUNITY_ID_LEN: usize = 30;

impl CommunityId {
    /// The text, e.g. `1:LQU9qZlK+B5F3KDmev6m5PMibrg=`.
    pub fn as_str(&self) -> &str {
        // Only `1:` and base64 output are ever stored, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The text's bytes, all ASCII (`1:` and base64).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Display for CommunityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for CommunityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl PartialEq<&str> for CommunityId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Computes the Community ID v1 (seed 0) of a flow as seen from its originator. For
/// ICMP/ICMPv6 the ports are the originator's type and code.
pub fn community_id(
    src: IpAddr,
    src_port: u16,
    dst: IpAddr,
    dst_port: u16,
    proto: u8,
    has_ports: bool,
) -> CommunityId {
    let (mut sport, mut dport, mut one_way) = (src_port, dst_port, false);
    if proto == 1 || proto == 58 {
        (sport, dport, one_way) = icmp_port_equivalents(proto, src_port, dst_port);
    }
    let (mut a, mut b) = ((src, sport), (dst, dport));
    // `IpAddr` orders addresses of one family as the spec does, by their bytes.
    let ordered = (a.0 < b.0) || (a.0 == b.0 && a.1 <= b.1);
    if !one_way && !ordered {
        std::mem::swap(&mut a, &mut b);
    }
    // The hashed tuple, at most 2 + 16 + 16 + 2 + 4 bytes, assembled on the stack.
    let mut input = [0u8; 40];
    let mut len = 2; // the seed, 0
    for part in [octets(a.0).as_slice(), octets(b.0).as_slice(), &[proto, 0]] {
        input[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    }
    if has_ports {
        input[len..len + 2].copy_from_slice(&a.1.to_be_bytes());
        input[len + 2..len + 4].copy_from_slice(&b.1.to_be_bytes());
        len += 4;
    }
    let digest: [u8; 20] = sha1::Sha1::digest(&input[..len]).into();
    let mut text = [0u8; COMMUNITY_ID_LEN];
    text[..2].copy_from_slice(b"1:");
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(digest, &mut text[2..])
        .unwrap_or(0);
    debug_assert_eq!(written, COMMUNITY_ID_LEN - 2);
    CommunityId(text)
}

/// The address's bytes in network order (4 or 16 of them), without allocating.
fn octets(a: IpAddr) -> Octets {
    match a {
        IpAddr::V4(v) => Octets::V4(v.octets()),
        IpAddr::V6(v) => Octets::V6(v.octets()),
    }
}

enum Octets {
    V4([u8; 4]),
    V6([u8; 16]),
}

impl Octets {
    fn as_slice(&self) -> &[u8] {
        match self {
            Octets::V4(o) => o,
            Octets::V6(o) => o,
        }
    }
}

/// The spec's `get_port_equivalents`: the type as source port, the counterpart type (or
/// the code) as destination port, and whether the message is one-way.
fn icmp_port_equivalents(proto: u8, icmp_type: u16, code: u16) -> (u16, u16, bool) {
    let counterpart: &[(u16, u16)] = if proto == 1 {
        &[
            (8, 0),
            (0, 8),
            (13, 14),
            (14, 13),
            (15, 16),
            (16, 15),
            (10, 9),
            (9, 10),
            (17, 18),
            (18, 17),
        ]
    } else {
        &[
            (128, 129),
            (129, 128),
            (133, 134),
            (134, 133),
            (135, 136),
            (136, 135),
            (130, 131),
            (131, 130),
            (139, 140),
            (140, 139),
            (144, 145),
            (145, 144),
        ]
    };
    match counterpart.iter().find(|(t, _)| *t == icmp_type) {
        Some(&(_, other)) => (icmp_type, other, false),
        None => (icmp_type, code, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values from the community-id-spec baseline (`baseline/baseline_deflt.json`).
    #[test]
    fn matches_spec_baseline() {
        let cases = [
            (
                "128.232.110.120",
                34855,
                "66.35.250.204",
                80,
                6,
                "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            ),
            (
                "66.35.250.204",
                80,
                "128.232.110.120",
                34855,
                6,
                "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            ),
            (
                "192.168.1.52",
                54585,
                "8.8.8.8",
                53,
                17,
                "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            ),
            (
                "192.168.0.89",
                8,
                "192.168.0.1",
                0,
                1,
                "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
            ),
            (
                "192.168.0.1",
                0,
                "192.168.0.89",
                8,
                1,
                "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
            ),
            (
                "fe80::200:86ff:fe05:80da",
                135,
                "fe80::260:97ff:fe07:69ea",
                0,
                58,
                "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=",
            ),
        ];
        for (s, sp, d, dp, proto, want) in cases {
            let got = community_id(s.parse().unwrap(), sp, d.parse().unwrap(), dp, proto, true);
            assert_eq!(got, want, "{s}:{sp} -> {d}:{dp} proto {proto}");
        }
    }
}
