//! Builders of pcap and pcapng byte streams, and the one reading helper.

use std::io::Cursor;
use wormsign_capture::{CaptureError, CaptureReader, Chunk, RecordMeta};

/// Which legacy pcap flavour to write.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Usec,
    Nsec,
    Modified,
}

/// One record to write: seconds, fraction (usec or nsec), orig_len, data.
pub type Rec<'a> = (u32, u32, u32, &'a [u8]);

fn put32(out: &mut Vec<u8>, v: u32, be: bool) {
    out.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() });
}

fn put16(out: &mut Vec<u8>, v: u16, be: bool) {
    out.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() });
}

/// A legacy pcap file; returns the bytes and the header offset of each record.
pub fn pcap(be: bool, kind: Kind, link_field: u32, recs: &[Rec]) -> (Vec<u8>, Vec<u64>) {
    let magic = match kind {
        Kind::Usec => 0xa1b2_c3d4,
        Kind::Nsec => 0xa1b2_3c4d,
        Kind::Modified => 0xa1b2_cd34,
    };
    let mut out = Vec::new();
    put32(&mut out, magic, be);
    put16(&mut out, 2, be);
    put16(&mut out, 4, be);
    put32(&mut out, 0, be);
    put32(&mut out, 0, be);
    put32(&mut out, 65535, be);
    put32(&mut out, link_field, be);
    let mut offsets = Vec::new();
    for &(sec, frac, orig, data) in recs {
        offsets.push(out.len() as u64);
        put32(&mut out, sec, be);
        put32(&mut out, frac, be);
        put32(&mut out, data.len() as u32, be);
        put32(&mut out, orig, be);
        if let Kind::Modified = kind {
            put32(&mut out, 7, be); // ifindex
            put16(&mut out, 0x0800, be); // protocol
            out.extend_from_slice(&[0, 0]); // pkt_type, pad
        }
        out.extend_from_slice(data);
    }
    (out, offsets)
}

/// Writes pcapng blocks; every method returns the offset of the block it wrote.
pub struct Ng {
    pub out: Vec<u8>,
    be: bool,
}

impl Ng {
    pub fn new() -> Self {
        Ng {
            out: Vec::new(),
            be: false,
        }
    }

    fn block(&mut self, btype: u32, body: &[u8]) -> u64 {
        let at = self.out.len() as u64;
        let len = 12 + body.len().div_ceil(4) * 4;
        let be = self.be;
        put32(&mut self.out, btype, be);
        put32(&mut self.out, len as u32, be);
        self.out.extend_from_slice(body);
        self.out.resize(self.out.len() + (len - 12 - body.len()), 0);
        put32(&mut self.out, len as u32, be);
        at
    }

    /// Section header block in the given byte order (switches the writer's order).
    pub fn shb(&mut self, be: bool) -> u64 {
        self.be = be;
        let mut b = Vec::new();
        put32(&mut b, 0x1A2B_3C4D, be);
        put16(&mut b, 1, be);
        put16(&mut b, 0, be);
        b.extend_from_slice(&[0xff; 8]); // section length unknown
        self.block(0x0A0D_0D0A, &b)
    }

    /// Interface description block with optional if_tsresol and if_tsoffset.
    pub fn idb(&mut self, link_type: u16, tsresol: Option<u8>, tsoffset: Option<i64>) -> u64 {
        let be = self.be;
        let mut b = Vec::new();
        put16(&mut b, link_type, be);
        put16(&mut b, 0, be);
        put32(&mut b, 262_144, be);
        // An unrelated option first (if_name, 3 bytes + padding).
        put16(&mut b, 2, be);
        put16(&mut b, 3, be);
        b.extend_from_slice(b"et0\0");
        if let Some(r) = tsresol {
            put16(&mut b, 9, be);
            put16(&mut b, 1, be);
            b.extend_from_slice(&[r, 0, 0, 0]);
        }
        if let Some(o) = tsoffset {
            put16(&mut b, 14, be);
            put16(&mut b, 8, be);
            b.extend_from_slice(&if be { o.to_be_bytes() } else { o.to_le_bytes() });
        }
        put16(&mut b, 0, be);
        put16(&mut b, 0, be);
        self.block(1, &b)
    }

    /// Enhanced packet block (with one trailing comment option).
    pub fn epb(&mut self, if_id: u32, ticks: u64, orig: u32, data: &[u8]) -> u64 {
        let be = self.be;
        let mut b = Vec::new();
        put32(&mut b, if_id, be);
        put32(&mut b, (ticks >> 32) as u32, be);
        put32(&mut b, ticks as u32, be);
        put32(&mut b, data.len() as u32, be);
        put32(&mut b, orig, be);
        b.extend_from_slice(data);
        b.resize(b.len().div_ceil(4) * 4, 0);
        put16(&mut b, 1, be); // opt_comment
        put16(&mut b, 2, be);
        b.extend_from_slice(b"hi\0\0");
        put16(&mut b, 0, be);
        put16(&mut b, 0, be);
        self.block(6, &b)
    }

    /// Obsolete packet block (type 2).
    pub fn pb(&mut self, if_id: u16, ticks: u64, orig: u32, data: &[u8]) -> u64 {
        let be = self.be;
        let mut b = Vec::new();
        put16(&mut b, if_id, be);
        put16(&mut b, 0, be); // drops
        put32(&mut b, (ticks >> 32) as u32, be);
        put32(&mut b, ticks as u32, be);
        put32(&mut b, data.len() as u32, be);
        put32(&mut b, orig, be);
        b.extend_from_slice(data);
        self.block(2, &b)
    }

    /// Simple packet block: orig_len then the (padded) data.
    pub fn spb(&mut self, orig: u32, data: &[u8]) -> u64 {
        let be = self.be;
        let mut b = Vec::new();
        put32(&mut b, orig, be);
        b.extend_from_slice(data);
        self.block(3, &b)
    }

    /// Any other block (skipped by the reader).
    pub fn other(&mut self, btype: u32, body: &[u8]) -> u64 {
        self.block(btype, body)
    }
}

/// Everything read from one input.
#[derive(Debug)]
pub struct Outcome {
    pub records: Vec<(RecordMeta, Vec<u8>)>,
    pub error: Option<CaptureError>,
    /// Number of `read_chunk` calls that returned `Ok(true)`.
    pub n_full_chunks: usize,
}

/// Reads `reader` to its end (or first error) with chunks of `target` bytes,
/// checking the chunk invariants on the way.
pub fn drain(mut reader: CaptureReader, target: usize, max_calls: usize) -> Outcome {
    let mut chunk = Chunk::default();
    let mut out = Outcome {
        records: Vec::new(),
        error: None,
        n_full_chunks: 0,
    };
    for _ in 0..max_calls {
        let r = reader.read_chunk(&mut chunk, target);
        for (m, d) in chunk.iter() {
            assert_eq!(d.len(), m.data_len as usize);
            out.records.push((*m, d.to_vec()));
        }
        match r {
            Ok(true) => {
                assert!(!chunk.is_empty(), "Ok(true) with an empty chunk");
                out.n_full_chunks += 1;
            }
            Ok(false) => return out,
            Err(e) => {
                // After an error the reader is finished.
                assert!(!reader.read_chunk(&mut chunk, target).unwrap());
                assert!(chunk.is_empty());
                out.error = Some(e);
                return out;
            }
        }
    }
    panic!("reader did not finish within {max_calls} calls");
}

/// Opens `bytes` in memory and reads it all.
pub fn read_all(bytes: &[u8], target: usize) -> Result<Outcome, CaptureError> {
    let reader = CaptureReader::new(Box::new(Cursor::new(bytes.to_vec())))?;
    Ok(drain(reader, target, bytes.len() + 2))
}

/// What one record should look like: ts_ns, link_type, orig_len, offset, data.
pub type Want<'a> = (i64, u16, u32, u64, &'a [u8]);

/// Reads `bytes` with a few chunk sizes and checks every record and a clean end.
pub fn check(bytes: &[u8], want: &[Want]) {
    for target in [0, 1, 100, 1 << 20] {
        let o = read_all(bytes, target).expect("opens");
        assert!(o.error.is_none(), "unexpected error: {:?}", o.error);
        let got: Vec<Want> = o
            .records
            .iter()
            .map(|(m, d)| (m.ts_ns, m.link_type, m.orig_len, m.offset, &d[..]))
            .collect();
        assert_eq!(got, want, "chunk target {target}");
    }
}
