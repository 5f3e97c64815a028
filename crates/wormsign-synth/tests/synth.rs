//! The synth crate on its own: checksums, DNS wire format, labels, per-flow labels and
//! determinism.

use wormsign_synth::wire::{begin_frame, dns_message, fold, sum16, Rng};
use wormsign_synth::{
    generate, generate_labelled, rfc3339, FlowLabel, Scenario, SynthConfig, FLOW_LABELS_HEADER,
};

#[test]
fn ipv4_and_udp_checksums_verify() {
    let mut buf = Vec::new();
    let payload = b"hello, world";
    let mut f = begin_frame(&mut buf, &[2; 6], &[4; 6], None, 0x0800);
    f.ipv4([10, 0, 0, 1], [10, 0, 0, 2], 17, 8 + payload.len(), 7, 64);
    f.buf.extend_from_slice(&[0x30, 0x39, 0, 53]);
    f.buf
        .extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.buf.extend_from_slice(&[0, 0]);
    f.buf.extend_from_slice(payload);
    assert_eq!(f.finish(), 60);
    // A correct header sums to 0xffff (its checksum folds to 0).
    assert_eq!(fold(sum16(&buf[14..34], 0)), 0);
    let udp_len = 8 + payload.len();
    let pseudo = sum16(&buf[26..34], (udp_len + 17) as u64);
    assert_eq!(fold(sum16(&buf[34..34 + udp_len], pseudo)), 0);
}

#[test]
fn dns_response_has_a_record() {
    let m = dns_message(0x1234, true, 0, "t.awcna.com", 1, &[[45, 76, 102, 17]], 300);
    assert_eq!(&m[..4], &[0x12, 0x34, 0x81, 0x80]);
    assert_eq!(&m[4..12], &[0, 1, 0, 1, 0, 0, 0, 0]);
    assert_eq!(&m[12..25], b"\x01t\x05awcna\x03com\x00");
    assert_eq!(&m[m.len() - 4..], &[45, 76, 102, 17]);
    let q = dns_message(1, false, 0, "x.org", 1, &[], 0);
    assert_eq!(&q[6..8], &[0, 0], "a query has no answers");
}

#[test]
fn rng_and_time_are_stable() {
    let (mut a, mut b) = (Rng::new(1), Rng::new(1));
    let v: Vec<u64> = (0..8).map(|_| a.below(1000)).collect();
    assert_eq!(v, (0..8).map(|_| b.below(1000)).collect::<Vec<_>>());
    assert!(v.iter().all(|&x| x < 1000) && v.iter().any(|&x| x != v[0]));
    assert_eq!(
        rfc3339(1_709_542_800_000_000),
        "2024-03-04T09:00:00.000000Z"
    );
}

#[test]
fn same_seed_same_bytes_other_scale_same_outbreak() {
    let run = |seed, scale| {
        let mut out = Vec::new();
        let o = generate(
            &SynthConfig {
                scenario: Scenario::Wannacry,
                seed,
                scale,
                capture_start: 0,
            },
            &mut out,
        )
        .unwrap();
        (out, o.labels)
    };
    let (a, la) = run(3, 1.0);
    let (b, lb) = run(3, 1.0);
    assert!(a == b);
    assert_eq!(la.to_json(), lb.to_json());
    let (c, lc) = run(3, 0.5);
    assert!(c.len() < a.len());
    assert_eq!(la.infected, lc.infected);
    assert!(!la.infected.is_empty());
    assert_eq!(la.patient_zero.len(), 1);
    assert!(la.infected.iter().all(|h| h.first_scan_at.is_some()));
}

#[test]
fn flow_labels_have_a_row_per_flow_in_capture_order() {
    let cfg = SynthConfig {
        scenario: Scenario::Wannacry,
        seed: 1,
        scale: 0.1,
        capture_start: 600,
    };
    let (mut pcap, mut csv) = (Vec::new(), Vec::new());
    let out = generate_labelled(&cfg, &mut pcap, &mut csv, |_, _| {}).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(FLOW_LABELS_HEADER));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len() as u64, out.flow_labels.iter().sum::<u64>());
    let names: Vec<&str> = FlowLabel::ALL.iter().map(|l| l.as_str()).collect();
    for (k, name) in names.iter().enumerate() {
        let n = rows.iter().filter(|r| r[7] == *name).count() as u64;
        assert_eq!(n, out.flow_labels[k], "{name}");
    }
    assert!(rows.iter().all(|r| r.len() == 8 && r[0].starts_with("1:")));
    // In the order of each flow's first packet, none before the capture start.
    assert!(rows.windows(2).all(|w| w[0][1] <= w[1][1]));
    assert!(rows[0][1] >= "2024-03-04T09:10:00.000000Z", "{:?}", rows[0]);
    assert_eq!(
        rfc3339(out.labels.capture_start),
        "2024-03-04T09:10:00.000000Z"
    );
    // The outbreak's flows: exploits, sibling implant checks, probes, the kill switch.
    for label in ["exploit", "implant_ping", "scan_probe", "cnc", "benign"] {
        assert!(rows.iter().any(|r| r[7] == label), "no {label} flow");
    }
}
