//! gzip and zstd wrappers give the same records as the plain stream.

use crate::build::{drain, pcap, read_all, Kind, Ng, Outcome, Rec};
use std::io::{Cursor, Write};
use wormsign_capture::{CaptureError, CaptureReader, Compression, Container};

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn zstd(b: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(b, 3).unwrap()
}

fn samples() -> Vec<Vec<u8>> {
    let data: Vec<Vec<u8>> = (0..300u32)
        .map(|i| (0..(i * 7) % 1500).map(|j| (i ^ j) as u8).collect())
        .collect();
    let recs: Vec<Rec> = data
        .iter()
        .enumerate()
        .map(|(i, d)| (i as u32, 7, 1500, &d[..]))
        .collect();
    let mut ng = Ng::new();
    ng.shb(true);
    ng.idb(1, Some(9), None);
    for (i, d) in data.iter().enumerate() {
        ng.epb(0, i as u64, 1500, d);
    }
    vec![
        pcap(false, Kind::Usec, 1, &recs).0,
        pcap(true, Kind::Modified, 1, &recs).0,
        ng.out,
    ]
}

fn same(a: &Outcome, b: &Outcome) {
    assert!(a.error.is_none() && b.error.is_none());
    assert_eq!(a.records, b.records);
}

#[test]
fn gzip_and_zstd_match_plain() {
    for plain in samples() {
        let want = read_all(&plain, 4096).unwrap();
        assert_eq!(want.records.len(), 300);
        for (packed, kind) in [
            (gzip(&plain), Compression::Gzip),
            (zstd(&plain), Compression::Zstd),
        ] {
            let r = CaptureReader::new(Box::new(Cursor::new(packed.clone()))).unwrap();
            assert_eq!(r.compression(), kind);
            let inner = CaptureReader::new(Box::new(Cursor::new(plain.clone())))
                .unwrap()
                .container();
            assert_eq!(r.container(), inner);
            same(&want, &read_all(&packed, 4096).unwrap());
        }
    }
}

#[test]
fn source_bytes_read_counts_compressed_bytes() {
    let plain = &samples()[0];
    let packed = gzip(plain);
    let r = CaptureReader::new(Box::new(Cursor::new(packed.clone()))).unwrap();
    assert!(r.source_bytes_read() <= packed.len() as u64);
    let mut r2 = CaptureReader::new(Box::new(Cursor::new(packed.clone()))).unwrap();
    let mut c = wormsign_capture::Chunk::default();
    while r2.read_chunk(&mut c, 1 << 20).unwrap() {}
    assert_eq!(r2.source_bytes_read(), packed.len() as u64);
    drop(r);
}

#[test]
fn concatenated_gzip_members_are_one_stream() {
    let plain = &samples()[0];
    let (a, b) = plain.split_at(plain.len() / 2);
    let mut packed = gzip(a);
    packed.extend(gzip(b));
    same(
        &read_all(plain, 1 << 20).unwrap(),
        &read_all(&packed, 1 << 20).unwrap(),
    );
}

#[test]
fn compressed_garbage_and_empty_are_not_captures() {
    for packed in [gzip(b"PK\x03\x04 hello"), zstd(b"PK\x03\x04 hello")] {
        let e = CaptureReader::new(Box::new(Cursor::new(packed))).unwrap_err();
        assert!(matches!(e, CaptureError::NotACapture { .. }));
        assert!(e.to_string().ends_with("(starts with 50 4b 03 04)"), "{e}");
    }
    let e = CaptureReader::new(Box::new(Cursor::new(gzip(b"")))).unwrap_err();
    assert!(e.to_string().starts_with("empty input"), "{e}");
}

#[test]
fn truncated_gzip_keeps_whole_records_then_errors() {
    let plain = &samples()[0];
    let packed = gzip(plain);
    let cut = &packed[..packed.len() / 2];
    let r = CaptureReader::new(Box::new(Cursor::new(cut.to_vec()))).unwrap();
    assert_eq!(
        r.container(),
        Container::Pcap {
            big_endian: false,
            nanos: false,
            modified: false
        }
    );
    let o = drain(r, 4096, 10_000);
    assert!(
        o.error.is_some(),
        "a cut gzip stream must not look complete"
    );
    let want = read_all(plain, 4096).unwrap().records;
    assert!(o.records.len() < want.len());
    assert_eq!(o.records[..], want[..o.records.len()]);
}
