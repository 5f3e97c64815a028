//! Detection on a real capture: WannaCry spreading over SMB in a lab network
//! (`../shared/captures/smb/wannacry_lateral.pcap`). Skips with a message when the
//! shared captures are absent, and fails then under CI (`wormsign-testutil`).
//!
//! What the capture shows (checked with tshark): 4981 packets over 460 s, 2017-05-18,
//! in 192.168.116.0/24. It holds only data segments (no SYN or SYN-ACK at all), so every
//! flow is `OTH` and failed first contacts are invisible. 192.168.116.149 opens 56 short
//! SMB (445) sessions to .138, .143, .150 and .172 from 354 s on, among them the large
//! exploit transfers (~120 kB) to .138 and .172; from 428 s on, .138 opens 19 SMB
//! sessions of its own to .143, .149, .150 and .172.

use std::net::IpAddr;
use std::path::Path;

use wormsign_capture::{CaptureReader, Chunk};
use wormsign_decode::{decode, Decoded};
use wormsign_detect::{detect, render_report, ArpEvent, DetectConfig, Role, Rule};
use wormsign_flow::{FlowConfig, FlowRecord, FlowTable};
use wormsign_testutil::shared_capture;

fn flows_of(path: &Path) -> (Vec<FlowRecord>, Vec<ArpEvent>) {
    let mut reader = CaptureReader::open(path).expect("open capture");
    let mut table = FlowTable::new(FlowConfig::default());
    let (mut flows, mut arp) = (Vec::new(), Vec::new());
    let mut chunk = Chunk::default();
    let mut idx = 0u64;
    loop {
        let more = reader
            .read_chunk(&mut chunk, 1 << 20)
            .expect("read capture");
        for (meta, data) in chunk.iter() {
            match decode(meta.link_type, data) {
                Decoded::Ip(p) => table.observe(meta.ts_ns, idx, &p, &mut flows),
                Decoded::Arp(a) => arp.push(ArpEvent {
                    ts_ns: meta.ts_ns,
                    sender: a.sender_ip,
                    target: a.target_ip,
                    is_request: a.op == 1,
                    sender_mac: a.sender_mac,
                }),
                Decoded::Skipped(_) => {}
            }
            idx += 1;
        }
        if !more {
            break;
        }
    }
    flows.extend(table.flush());
    (flows, arp)
}

#[test]
fn wannacry_lateral_scanner_is_detected_and_infected() {
    let Some(path) = shared_capture("smb/wannacry_lateral.pcap") else {
        return;
    };
    let (flows, arp) = flows_of(&path);
    let d = detect(&DetectConfig::default(), &flows, &[], &arp);
    let report = render_report(&d);
    eprintln!("{report}");
    let spreader: IpAddr = "192.168.116.149".parse().unwrap();
    let brute: Vec<_> = d.alerts_for(spreader, Rule::BruteForce).collect();
    assert!(!brute.is_empty(), "{report}");
    assert!(brute.iter().all(|a| a.service == "smb"));
    assert!(d.is_infected(spreader), "{report}");
    assert_eq!(d.patient_zeros(), vec![spreader], "{report}");
    assert_eq!(d.host(spreader).unwrap().role, Role::PatientZero);
    // Its victims are at least targets.
    for v in ["192.168.116.138", "192.168.116.172"] {
        let h = d.host(v.parse().unwrap()).expect(v);
        assert!(
            matches!(h.role, Role::Target | Role::Infected),
            "{v}: {:?}",
            h.role
        );
    }
}
