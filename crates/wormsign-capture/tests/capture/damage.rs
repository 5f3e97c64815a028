//! Truncation, corruption, garbage and fuzzing: never a panic, always the
//! whole records before the damage.

use crate::build::{drain, pcap, read_all, Kind, Ng, Rec};
use std::io::Cursor;
use wormsign_capture::{CaptureError, CaptureReader};

fn twenty() -> (Vec<u8>, Vec<u64>, Vec<Vec<u8>>) {
    let data: Vec<Vec<u8>> = (0..20u32)
        .map(|i| vec![i as u8 + 1; (i as usize * 13) % 70])
        .collect();
    let recs: Vec<Rec> = data
        .iter()
        .enumerate()
        .map(|(i, d)| (i as u32, 0, 99, &d[..]))
        .collect();
    let (bytes, offs) = pcap(false, Kind::Usec, 1, &recs);
    (bytes, offs, data)
}

#[test]
fn truncated_pcap_keeps_prefix_at_every_cut() {
    let (bytes, offs, data) = twenty();
    let ends: Vec<u64> = offs
        .iter()
        .zip(&data)
        .map(|(o, d)| o + 16 + d.len() as u64)
        .collect();
    for cut in 0..=bytes.len() {
        let input = &bytes[..cut];
        let opened = CaptureReader::new(Box::new(Cursor::new(input.to_vec())));
        if cut < 4 {
            assert!(
                matches!(opened, Err(CaptureError::NotACapture { .. })),
                "cut {cut}"
            );
            continue;
        }
        if cut < 24 {
            match opened {
                Err(CaptureError::Truncated {
                    offset: 0,
                    needed: 24,
                    available,
                }) => {
                    assert_eq!(available, cut as u64)
                }
                other => panic!("cut {cut}: {other:?}"),
            }
            continue;
        }
        for target in [0, 64, 1 << 20] {
            let o = drain(opened_again(input), target, 100);
            let n_whole = ends.iter().filter(|&&e| e <= cut as u64).count();
            assert_eq!(o.records.len(), n_whole, "cut {cut}");
            for (i, (m, d)) in o.records.iter().enumerate() {
                assert_eq!((m.offset, &d[..]), (offs[i], &data[i][..]));
            }
            let boundary = cut == 24 || ends.contains(&(cut as u64));
            match o.error {
                None => assert!(boundary, "cut {cut} inside a record gave a clean end"),
                Some(CaptureError::Truncated {
                    offset,
                    needed,
                    available,
                }) => {
                    assert!(!boundary, "cut {cut}");
                    assert_eq!(offset, offs[n_whole], "cut {cut}");
                    assert_eq!(available, cut as u64 - offset);
                    let want = if available < 16 {
                        16
                    } else {
                        16 + data[n_whole].len() as u64
                    };
                    assert_eq!(needed, want, "cut {cut}");
                }
                Some(e) => panic!("cut {cut}: {e}"),
            }
        }
    }
}

fn opened_again(input: &[u8]) -> CaptureReader {
    CaptureReader::new(Box::new(Cursor::new(input.to_vec()))).unwrap()
}

#[test]
fn truncated_pcapng_keeps_prefix_at_every_cut() {
    let mut ng = Ng::new();
    let mut blocks = vec![ng.shb(false), ng.idb(1, None, None)];
    let mut packets = Vec::new();
    for i in 0..6u8 {
        let at = if i % 2 == 0 {
            ng.epb(0, u64::from(i), 9, &vec![i; usize::from(i) * 3])
        } else {
            ng.spb(9, &[i; 5])
        };
        blocks.push(at);
        packets.push(at);
        if i == 3 {
            blocks.push(ng.other(5, &[1; 20]));
            blocks.push(ng.shb(true));
            blocks.push(ng.idb(1, None, None));
        }
    }
    let bytes = ng.out;
    blocks.push(bytes.len() as u64);
    for cut in 4..=bytes.len() {
        let o = drain(opened_again(&bytes[..cut]), 1, 100);
        let cut = cut as u64;
        let whole: Vec<u64> = packets
            .iter()
            .copied()
            .filter(|&p| blocks[blocks.iter().position(|&b| b == p).unwrap() + 1] <= cut)
            .collect();
        let got: Vec<u64> = o.records.iter().map(|(m, _)| m.offset).collect();
        assert_eq!(got, whole, "cut {cut}");
        let boundary = blocks.contains(&cut);
        match o.error {
            None => assert!(boundary, "cut {cut}"),
            Some(CaptureError::Truncated {
                offset, available, ..
            }) => {
                assert!(!boundary, "cut {cut}");
                let start = *blocks.iter().filter(|&&b| b < cut).max().unwrap();
                assert_eq!((offset, available), (start, cut - start), "cut {cut}");
            }
            Some(e) => panic!("cut {cut}: {e}"),
        }
    }
}

#[test]
fn pcap_caplen_over_limit_is_corrupt_not_an_allocation() {
    let (mut bytes, offs) = pcap(
        true,
        Kind::Nsec,
        1,
        &[(1, 1, 4, b"abcd"), (2, 2, 4, b"efgh")],
    );
    let at = offs[1] as usize + 8;
    bytes[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    let o = read_all(&bytes, 1 << 20).unwrap();
    assert_eq!(o.records.len(), 1);
    let e = o.error.unwrap();
    assert!(matches!(e, CaptureError::Corrupt { .. }), "{e}");
    assert_eq!(e.offset(), Some(offs[1]));
    assert!(e.to_string().contains("4294967295"), "{e}");
    // Just over the limit is corrupt too.
    bytes[at..at + 4].copy_from_slice(&262_145u32.to_be_bytes());
    assert!(matches!(
        read_all(&bytes, 0).unwrap().error,
        Some(CaptureError::Corrupt { .. })
    ));
}

#[test]
fn pcap_caplen_beyond_end_of_file_is_truncated() {
    let (mut bytes, offs) = pcap(
        false,
        Kind::Usec,
        1,
        &[(1, 1, 4, b"abcd"), (2, 2, 4, b"efgh")],
    );
    let at = offs[1] as usize + 8;
    bytes[at..at + 4].copy_from_slice(&200_000u32.to_le_bytes());
    let o = read_all(&bytes, 1 << 20).unwrap();
    assert_eq!(o.records.len(), 1);
    match o.error {
        Some(CaptureError::Truncated {
            offset,
            needed,
            available,
        }) => {
            assert_eq!((offset, needed, available), (offs[1], 200_016, 20));
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn pcapng_bad_block_lengths_are_corrupt() {
    for bad_len in [0u32, 8, 13, 30, 0xffff_fffc] {
        let mut ng = Ng::new();
        ng.shb(false);
        ng.idb(1, None, None);
        ng.epb(0, 0, 1, b"a");
        let at = ng.epb(0, 0, 1, b"b") as usize;
        let mut bytes = ng.out;
        bytes[at + 4..at + 8].copy_from_slice(&bad_len.to_le_bytes());
        let o = read_all(&bytes, 1 << 20).unwrap();
        assert_eq!(o.records.len(), 1, "len {bad_len}");
        let e = o.error.expect("error");
        assert_eq!(e.offset(), Some(at as u64), "len {bad_len}");
        assert!(
            matches!(
                e,
                CaptureError::Corrupt { .. } | CaptureError::Truncated { .. }
            ),
            "{e}"
        );
        if bad_len < 12 || bad_len % 4 != 0 {
            assert!(matches!(e, CaptureError::Corrupt { .. }), "{e}");
        }
    }
}

#[test]
fn garbage_is_not_a_capture() {
    let zip = b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec();
    let e = CaptureReader::new(Box::new(Cursor::new(zip))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "not a pcap or pcapng capture (starts with 50 4b 03 04)"
    );
    assert_eq!(e.offset(), None);
    let e = CaptureReader::new(Box::new(Cursor::new(Vec::new()))).unwrap_err();
    assert_eq!(e.to_string(), "empty input");
    let e = CaptureReader::new(Box::new(Cursor::new(b"\xd4\xc3".to_vec()))).unwrap_err();
    assert!(matches!(e, CaptureError::NotACapture { .. }));
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2000 {
        let n = (rng.next() % 200) as usize;
        let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        // A random prefix that happens to be a valid magic may open; fine.
        if let Err(CaptureError::NotACapture { reason }) = read_all(&bytes, 100) {
            assert!(!reason.contains('\n'));
        }
    }
}

pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let data: Vec<Vec<u8>> = (0..12u32)
        .map(|i| vec![i as u8; (i as usize * 11) % 60])
        .collect();
    let recs: Vec<Rec> = data
        .iter()
        .enumerate()
        .map(|(i, d)| (i as u32, 0, 60, &d[..]))
        .collect();
    let mut ng = Ng::new();
    ng.shb(false);
    ng.idb(1, Some(9), Some(3));
    ng.idb(101, Some(0x8a), None);
    for (i, d) in data.iter().enumerate() {
        ng.epb((i % 2) as u32, i as u64, 60, d);
        if i == 5 {
            ng.spb(10, b"spb!");
            ng.pb(1, 7, 2, b"pb");
            ng.other(0x8000_0001, b"custom");
            ng.shb(true);
            ng.idb(113, None, None);
            ng.idb(1, None, None);
        }
    }
    vec![
        pcap(false, Kind::Usec, 1, &recs).0,
        pcap(true, Kind::Nsec, 101, &recs).0,
        pcap(false, Kind::Modified, 113, &recs).0,
        ng.out,
    ]
}

#[test]
fn fuzz_mutated_files_never_panic() {
    let seeds = seeds();
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut n_records = 0usize;
    let mut n_errors = 0usize;
    for iter in 0..4000 {
        let mut b = seeds[iter % seeds.len()].clone();
        for _ in 0..1 + rng.next() % 6 {
            let len = b.len().max(1);
            let at = (rng.next() as usize) % len;
            match rng.next() % 6 {
                0 | 1 => {
                    if let Some(x) = b.get_mut(at) {
                        *x ^= 1 << (rng.next() % 8);
                    }
                }
                2 => b.truncate(at),
                3 => b.insert(at.min(b.len()), rng.next() as u8),
                4 => {
                    if at < b.len() {
                        b.remove(at);
                    }
                }
                _ => {
                    let v = [0u32, 11, 12, 0xffff_ffff, 262_145, 0x0a0d_0d0a, 0x1a2b_3c4d]
                        [(rng.next() % 7) as usize];
                    let bytes = if rng.next() % 2 == 0 {
                        v.to_le_bytes()
                    } else {
                        v.to_be_bytes()
                    };
                    if at + 4 <= b.len() {
                        b[at..at + 4].copy_from_slice(&bytes);
                    }
                }
            }
        }
        // Keep the magic most of the time so the parsers get exercised.
        if iter % 4 != 0 && b.len() >= 4 {
            b[..4].copy_from_slice(&seeds[iter % seeds.len()][..4]);
        }
        let target = [0usize, 1, 50, 1 << 20][(rng.next() % 4) as usize];
        if let Ok(o) = read_all(&b, target) {
            let mut last = None;
            for (m, d) in &o.records {
                assert!(last < Some(m.offset), "offsets must increase");
                assert!(m.offset + u64::from(m.data_len) <= b.len() as u64);
                assert_eq!(d.len(), m.data_len as usize);
                last = Some(m.offset);
            }
            n_records += o.records.len();
            n_errors += usize::from(o.error.is_some());
        }
    }
    assert!(
        n_records > 10_000 && n_errors > 500,
        "fuzz too shallow: {n_records} records, {n_errors} errors"
    );
}
