//! Exact records from synthesized pcap and pcapng streams.

use crate::build::{check, pcap, read_all, Kind, Ng, Rec};
use std::io::Cursor;
use wormsign_capture::{linktype, CaptureError, CaptureReader, Chunk, Compression, Container};

const S: i64 = 1_000_000_000;

fn three() -> Vec<Rec<'static>> {
    vec![
        (1_700_000_000, 1, 60, b"\x01\x02\x03"),
        (1_700_000_001, 999_999, 1500, b""),
        (4_294_967_295, 500_000, 9, b"abcdefghi"),
    ]
}

fn check_pcap(be: bool, kind: Kind, frac_mul: i64, hdr: u64) {
    let (bytes, offs) = pcap(be, kind, 1, &three());
    assert_eq!(offs, vec![24, 24 + hdr + 3, 24 + 2 * hdr + 3]);
    let r = CaptureReader::new(Box::new(Cursor::new(bytes.clone()))).unwrap();
    let modified = matches!(kind, Kind::Modified);
    let nanos = matches!(kind, Kind::Nsec);
    assert_eq!(
        r.container(),
        Container::Pcap {
            big_endian: be,
            nanos,
            modified
        }
    );
    assert_eq!(r.compression(), Compression::None);
    check(
        &bytes,
        &[
            (
                1_700_000_000 * S + frac_mul,
                1,
                60,
                offs[0],
                b"\x01\x02\x03",
            ),
            (
                1_700_000_001 * S + 999_999 * frac_mul,
                1,
                1500,
                offs[1],
                b"",
            ),
            (
                4_294_967_295 * S + 500_000 * frac_mul,
                1,
                9,
                offs[2],
                b"abcdefghi",
            ),
        ],
    );
}

#[test]
fn pcap_le_usec() {
    check_pcap(false, Kind::Usec, 1000, 16);
}

#[test]
fn pcap_be_usec() {
    check_pcap(true, Kind::Usec, 1000, 16);
}

#[test]
fn pcap_le_nsec() {
    check_pcap(false, Kind::Nsec, 1, 16);
}

#[test]
fn pcap_be_nsec() {
    check_pcap(true, Kind::Nsec, 1, 16);
}

#[test]
fn pcap_kuznetsov_le_and_be() {
    check_pcap(false, Kind::Modified, 1000, 24);
    check_pcap(true, Kind::Modified, 1000, 24);
}

#[test]
fn pcap_linktype_field_masks_fcs_bits() {
    for be in [false, true] {
        let (bytes, _) = pcap(be, Kind::Usec, 0x3000_00e5, &[(0, 0, 1, b"\x60")]);
        check(&bytes, &[(0, linktype::IPV6, 1, 24, b"\x60")]);
    }
}

#[test]
fn pcap_header_only_is_clean_end() {
    let (bytes, _) = pcap(false, Kind::Usec, 1, &[]);
    let o = read_all(&bytes, 1 << 20).unwrap();
    assert!(o.records.is_empty() && o.error.is_none() && o.n_full_chunks == 0);
}

#[test]
fn pcap_caplen_above_orig_len_and_invalid_usec_are_kept() {
    let (bytes, _) = pcap(false, Kind::Usec, 1, &[(2, 1_500_000, 2, b"abcd")]);
    check(&bytes, &[(2 * S + 1_500_000_000, 1, 2, 24, b"abcd")]);
}

#[test]
fn pcap_caplen_at_limit_is_read() {
    let big = vec![0x5a; 262_144];
    let (bytes, _) = pcap(
        false,
        Kind::Usec,
        1,
        &[(0, 0, 262_144, &big), (0, 1, 1, b"z")],
    );
    check(
        &bytes,
        &[
            (0, 1, 262_144, 24, &big),
            (1000, 1, 1, 24 + 16 + 262_144, b"z"),
        ],
    );
}

#[test]
fn chunks_hold_whole_records_up_to_target() {
    let data: Vec<Vec<u8>> = (0..50u32)
        .map(|i| vec![i as u8; (i as usize * 37) % 300])
        .collect();
    let recs: Vec<Rec> = data
        .iter()
        .enumerate()
        .map(|(i, d)| (i as u32, 0, 1000, &d[..]))
        .collect();
    let (bytes, _) = pcap(false, Kind::Usec, 1, &recs);
    let mut r = CaptureReader::new(Box::new(Cursor::new(bytes))).unwrap();
    let mut chunk = Chunk::default();
    let mut n = 0;
    loop {
        let more = r.read_chunk(&mut chunk, 1000).unwrap();
        // Below the target until the last record, which reaches it.
        if more {
            let before_last: usize = chunk
                .iter()
                .take(chunk.len() - 1)
                .map(|(_, d)| d.len())
                .sum();
            assert!(before_last < 1000 && chunk.buf.len() >= 1000);
        }
        for (m, d) in chunk.iter() {
            assert_eq!(d, &data[n][..]);
            assert_eq!(m.ts_ns, n as i64 * S);
            n += 1;
        }
        if !more {
            break;
        }
    }
    assert_eq!(n, 50);
    assert!(!r.read_chunk(&mut chunk, 1000).unwrap() && chunk.is_empty());
}

/// Section 1 (LE): Ethernet with ns resolution, raw IP with 2^-10 resolution
/// and a 100 s offset, SPBs, an obsolete PB and skipped blocks. Section 2
/// (BE): one Linux SLL interface with the default µs resolution.
fn two_sections() -> (Vec<u8>, Vec<u64>) {
    let mut ng = Ng::new();
    let mut offs = Vec::new();
    ng.shb(false);
    ng.idb(linktype::ETHERNET, Some(9), None);
    ng.idb(linktype::RAW, Some(0x80 | 10), Some(100));
    offs.push(ng.spb(60, b"spb0")); // before any timestamp: ts 0
    offs.push(ng.epb(0, 1_700_000_000_123_456_789, 60, b"\xaa\xbb\xcc\xdd\xee")); // padded to 8
    ng.other(4, b"name resolution block body.."); // NRB, skipped
    offs.push(ng.epb(1, 1024 * 5 + 512, 40, b"\x45\x00"));
    ng.other(0x0BAD, &[7; 13]); // custom, skipped
    offs.push(ng.spb(3, b"abcdef")); // orig_len 3 < data: caplen 3
    offs.push(ng.pb(0, 42, 10, b"pb"));
    ng.shb(true);
    ng.idb(linktype::LINUX_SLL, None, None);
    offs.push(ng.epb(0, 2_500_000, 16, b"sll"));
    offs.push(ng.spb(2, b"xy"));
    (ng.out, offs)
}

#[test]
fn pcapng_two_sections_mixed_endian() {
    let (bytes, o) = two_sections();
    let r = CaptureReader::new(Box::new(Cursor::new(bytes.clone()))).unwrap();
    assert_eq!(r.container(), Container::PcapNg);
    let raw_ts = 100 * S + 5 * S + S / 2;
    check(
        &bytes,
        &[
            (0, linktype::ETHERNET, 60, o[0], b"spb0"),
            (
                1_700_000_000_123_456_789,
                linktype::ETHERNET,
                60,
                o[1],
                b"\xaa\xbb\xcc\xdd\xee",
            ),
            (raw_ts, linktype::RAW, 40, o[2], b"\x45\x00"),
            (raw_ts, linktype::ETHERNET, 3, o[3], b"abc"),
            (42, linktype::ETHERNET, 10, o[4], b"pb"),
            (2_500_000_000, linktype::LINUX_SLL, 16, o[5], b"sll"),
            (2_500_000_000, linktype::LINUX_SLL, 2, o[6], b"xy"),
        ],
    );
}

#[test]
fn pcapng_new_section_resets_interfaces() {
    let mut ng = Ng::new();
    ng.shb(false);
    ng.idb(1, None, None);
    ng.idb(101, None, None);
    ng.epb(1, 0, 1, b"a");
    ng.shb(true);
    ng.idb(113, None, None);
    ng.epb(0, 0, 1, b"b");
    let bad = ng.epb(1, 0, 1, b"c");
    let o = read_all(&ng.out, 1 << 20).unwrap();
    let lts: Vec<u16> = o.records.iter().map(|(m, _)| m.link_type).collect();
    assert_eq!(lts, vec![101, 113]);
    match o.error {
        Some(CaptureError::Corrupt { offset, ref reason }) => {
            assert_eq!(offset, bad);
            assert!(reason.contains("interface 1"), "{reason}");
        }
        ref e => panic!("expected Corrupt, got {e:?}"),
    }
}

#[test]
fn pcapng_without_packets_is_clean_end() {
    let mut ng = Ng::new();
    ng.shb(true);
    ng.idb(1, None, None);
    ng.other(5, &[0; 40]); // interface statistics
    let o = read_all(&ng.out, 0).unwrap();
    assert!(o.records.is_empty() && o.error.is_none());
}

#[test]
fn pcapng_tsoffset_negative_and_huge_ticks_clamp() {
    let mut ng = Ng::new();
    ng.shb(false);
    ng.idb(1, Some(0), Some(-5)); // 1-second ticks
    ng.idb(1, Some(0), Some(i64::MAX));
    ng.epb(0, 3, 1, b"a");
    ng.epb(1, u64::MAX, 1, b"b");
    let o = read_all(&ng.out, 1 << 20).unwrap();
    let ts: Vec<i64> = o.records.iter().map(|(m, _)| m.ts_ns).collect();
    assert_eq!(ts, vec![-2 * S, i64::MAX]);
}

#[test]
fn pcap_before_2_3_swaps_caplen_and_len_when_caplen_is_larger() {
    // libpcap < 2.3 could write len before caplen; readers swap them back.
    let (mut bytes, _) = pcap(false, Kind::Usec, 1, &[(0, 0, 3, b"abc")]);
    // Record: caplen 3 stays, but write orig_len 300000 in the caplen slot.
    bytes[24 + 8..24 + 12].copy_from_slice(&300_000u32.to_le_bytes());
    bytes[24 + 12..24 + 16].copy_from_slice(&3u32.to_le_bytes());
    bytes[6..8].copy_from_slice(&2u16.to_le_bytes()); // version 2.2
    check(&bytes, &[(0, 1, 300_000, 24, b"abc")]);
    // Version 2.4 does not swap: 300000 is a corrupt caplen.
    bytes[6..8].copy_from_slice(&4u16.to_le_bytes());
    let e = read_all(&bytes, 0).unwrap().error.unwrap();
    assert!(matches!(e, CaptureError::Corrupt { offset: 24, .. }), "{e}");
}

/// A source that returns at most a few bytes to kilobytes per `read()`, cycling
/// through awkward sizes, like a pipe or a decompressor.
struct Trickle {
    data: Vec<u8>,
    at: usize,
    turn: usize,
}

impl std::io::Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        const SIZES: [usize; 6] = [1, 7, 4093, 65_536, 300_000, 2_000_000];
        self.turn += 1;
        let n = SIZES[self.turn % SIZES.len()]
            .min(buf.len())
            .min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Several megabytes of records of every size up to 9 000 bytes, each with distinct
/// bytes, read through short reads: records must come out intact whichever chunk
/// they fall in, while the reader hands its buffer to each chunk, continues in the
/// previous chunk's storage, grows it for large targets and compacts around skipped
/// pcapng blocks.
#[test]
fn records_survive_short_reads_and_buffer_hand_over() {
    let payloads: Vec<Vec<u8>> = (0..2_000u32)
        .map(|i| {
            let len = (i as usize * 4_099) % 9_001;
            (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
        })
        .collect();
    let recs: Vec<Rec> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| (1_700_000_000 + i as u32, 0, p.len() as u32, &p[..]))
        .collect();
    let (pcap_bytes, _) = pcap(false, Kind::Usec, 1, &recs);
    let mut ng = Ng::new();
    ng.shb(false);
    ng.idb(linktype::ETHERNET, None, None);
    for (i, p) in payloads.iter().enumerate() {
        ng.epb(0, i as u64, p.len() as u32, p);
        if i % 100 == 0 {
            // An unknown block: consumed without being kept, so compaction drops it.
            ng.other(0x0bad, &vec![0xee; 200_000]);
        }
    }
    for bytes in [pcap_bytes, ng.out] {
        assert!(bytes.len() > 8 << 20, "spans many read buffers");
        for target in [1, 5_000, 1 << 20, 3 << 20] {
            let source = Trickle {
                data: bytes.clone(),
                at: 0,
                turn: 0,
            };
            let reader = CaptureReader::new(Box::new(source)).unwrap();
            let o = crate::build::drain(reader, target, bytes.len());
            assert!(o.error.is_none(), "target {target}: {:?}", o.error);
            let got: Vec<&[u8]> = o.records.iter().map(|(_, d)| &d[..]).collect();
            let want: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
            assert!(got == want, "target {target}: records differ");
        }
    }
}
