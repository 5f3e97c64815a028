//! Hostile pcapng shapes the `capture/` suite does not already cover: a packet's
//! caplen beyond its block, its file and the 256 KiB limit, and a block length running
//! past the end of the file. (Legacy pcap's caplen beyond the file and beyond the limit,
//! and pcapng block lengths of 0 or absurdly large, are in `capture/damage.rs`.)

#[allow(dead_code)] // the shared builders; this file uses only a few of them
#[path = "capture/build.rs"]
mod build;

use std::time::{Duration, Instant};

use build::{read_all, Ng};
use wormsign_capture::CaptureError;

/// A little-endian pcapng with one good packet `a` then `b`; returns the bytes and
/// the offset of `b`'s block.
fn two_packets() -> (Vec<u8>, usize) {
    let mut ng = Ng::new();
    ng.shb(false);
    ng.idb(1, None, None);
    ng.epb(0, 0, 1, b"a");
    let at = ng.epb(0, 0, 1, b"b") as usize;
    (ng.out, at)
}

/// Reads `bytes`, expecting record `a` then an error at `at`; returns the error.
fn damage_after_first(bytes: &[u8], at: usize) -> CaptureError {
    let start = Instant::now();
    let o = read_all(bytes, 1 << 20).expect("opens");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(o.records.len(), 1, "the record before the damage is kept");
    assert_eq!(o.records[0].1, b"a");
    let e = o.error.expect("an error");
    assert_eq!(e.offset(), Some(at as u64), "{e}");
    e
}

/// The EPB caplen field sits 20 bytes into the block (type, length, interface,
/// timestamp high and low).
fn set_epb_caplen(bytes: &mut [u8], at: usize, caplen: u32) {
    bytes[at + 20..at + 24].copy_from_slice(&caplen.to_le_bytes());
}

#[test]
fn pcapng_caplen_beyond_block_and_file_is_corrupt() {
    let (mut bytes, at) = two_packets();
    // Larger than the block and than the whole file, within the 256 KiB limit.
    set_epb_caplen(&mut bytes, at, 100_000);
    let e = damage_after_first(&bytes, at);
    assert!(matches!(e, CaptureError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("caplen 100000 does not fit"), "{e}");
}

#[test]
fn pcapng_caplen_over_256_kib_is_corrupt_not_an_allocation() {
    for caplen in [262_145, u32::MAX] {
        let (mut bytes, at) = two_packets();
        set_epb_caplen(&mut bytes, at, caplen);
        let e = damage_after_first(&bytes, at);
        assert!(matches!(e, CaptureError::Corrupt { .. }), "{e}");
        assert!(
            e.to_string()
                .contains(&format!("caplen {caplen} exceeds the 262144-byte limit")),
            "{e}"
        );
    }
}

#[test]
fn pcapng_block_length_past_the_end_is_truncated() {
    // A packet block (buffered whole) and an unknown block (skipped without being
    // buffered), each claiming 1 MiB in a file of a few hundred bytes.
    for unknown in [false, true] {
        let (mut bytes, at) = two_packets();
        if unknown {
            bytes[at..at + 4].copy_from_slice(&0x0bad_u32.to_le_bytes());
        }
        bytes[at + 4..at + 8].copy_from_slice(&(1u32 << 20).to_le_bytes());
        let available = (bytes.len() - at) as u64;
        match damage_after_first(&bytes, at) {
            CaptureError::Truncated {
                needed,
                available: got,
                ..
            } => assert_eq!((needed, got), (1 << 20, available), "unknown {unknown}"),
            e => panic!("unknown {unknown}: {e}"),
        }
    }
}
