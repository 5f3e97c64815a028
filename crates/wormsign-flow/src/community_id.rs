//! Community ID v1 (<https://github.com/corelight/community-id-spec>), seed 0.

use std::net::IpAddr;

use base64::Engine as _;

/// Computes the Community ID v1 string (`1:` + base64 of a SHA-1) of a flow as seen from
/// its originator. For ICMP/ICMPv6 the ports are the originator's type and code.
pub fn community_id(
    src: IpAddr,
    src_port: u16,
    dst: IpAddr,
    dst_port: u16,
    proto: u8,
    has_ports: bool,
) -> String {
    let (mut sport, mut dport, mut one_way) = (src_port, dst_port, false);
    if proto == 1 || proto == 58 {
        let (s, d, o) = icmp_port_equivalents(proto, src_port, dst_port);
        (sport, dport, one_way) = (s, d, o);
    }
    let (mut a, mut b) = ((src, sport), (dst, dport));
    let ordered = (octets(a.0) < octets(b.0)) || (a.0 == b.0 && a.1 <= b.1);
    if !one_way && !ordered {
        std::mem::swap(&mut a, &mut b);
    }
    let mut h = sha1_smol::Sha1::new();
    h.update(&0u16.to_be_bytes());
    h.update(&octets(a.0));
    h.update(&octets(b.0));
    h.update(&[proto, 0]);
    if has_ports {
        h.update(&a.1.to_be_bytes());
        h.update(&b.1.to_be_bytes());
    }
    let digest = h.digest().bytes();
    format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
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
