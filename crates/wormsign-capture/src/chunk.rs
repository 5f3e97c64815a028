//! Owned batches of whole records.

use std::ops::Range;

/// Metadata of one captured record inside a [`Chunk`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    /// Capture time in nanoseconds since the Unix epoch (UTC), with the
    /// interface's `if_tsoffset` applied. Clamped to the `i64` range, never
    /// wrapped.
    pub ts_ns: i64,
    /// `LINKTYPE_*` value of the file (pcap) or of the record's interface
    /// (pcapng), low 16 bits only; see [`crate::linktype`].
    pub link_type: u16,
    /// Length of the packet on the wire.
    pub orig_len: u32,
    /// Byte offset of this record's header (pcap) or block (pcapng) in the
    /// decompressed stream.
    pub offset: u64,
    /// Start of this record's captured bytes in [`Chunk::buf`].
    pub data_start: u32,
    /// Number of captured bytes (caplen; may exceed `orig_len` in damaged files).
    pub data_len: u32,
}

/// Whole records, owned, ready to cross a thread boundary.
///
/// `buf` is the reader's buffer, taken over as it was filled by `read()` (the
/// capture's record headers and blocks still in it), so captured bytes are never
/// copied; `records` says where each record's bytes are. Reuse one `Chunk` per worker
/// (or recycle them through a channel): the reader continues in a recycled chunk's
/// buffer, so allocations stay off the hot path.
#[derive(Default, Debug)]
pub struct Chunk {
    /// Storage holding every record's captured bytes; only the ranges `records`
    /// name are meaningful.
    pub buf: Vec<u8>,
    /// One entry per record, in capture-file order.
    pub records: Vec<RecordMeta>,
}

impl Chunk {
    /// Captured bytes of `r`. Returns an empty slice if `r` does not lie
    /// inside this chunk (e.g. it came from another chunk).
    pub fn data(&self, r: &RecordMeta) -> &[u8] {
        let start = r.data_start as usize;
        let end = start.saturating_add(r.data_len as usize);
        self.buf.get(start..end).unwrap_or(&[])
    }

    /// Iterates over every record with its captured bytes, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&RecordMeta, &[u8])> {
        self.records.iter().map(move |r| (r, self.data(r)))
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when the chunk holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Removes every record; the storage is kept for reuse.
    pub fn clear(&mut self) {
        self.records.clear();
    }

    /// Appends one record whose captured bytes are `buf[data]`.
    #[inline]
    pub(crate) fn push(
        &mut self,
        ts_ns: i64,
        link_type: u16,
        orig_len: u32,
        offset: u64,
        data: Range<usize>,
    ) {
        // Callers bound chunks to well under 4 GiB of storage (see reader::MAX_CHUNK).
        self.records.push(RecordMeta {
            ts_ns,
            link_type,
            orig_len,
            offset,
            data_start: data.start as u32,
            data_len: data.len() as u32,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_iter_clear() {
        let mut c = Chunk::default();
        assert!(c.is_empty());
        c.buf = b"..abc.de".to_vec();
        c.push(1, 1, 10, 24, 2..5);
        c.push(2, 101, 2, 43, 6..8);
        assert_eq!(c.len(), 2);
        let v: Vec<_> = c.iter().map(|(r, d)| (r.ts_ns, d.to_vec())).collect();
        assert_eq!(v, vec![(1, b"abc".to_vec()), (2, b"de".to_vec())]);
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.buf.len(), 8, "the storage is kept for reuse");
    }

    #[test]
    fn data_of_foreign_record_is_empty() {
        let c = Chunk::default();
        let r = RecordMeta {
            ts_ns: 0,
            link_type: 1,
            orig_len: 5,
            offset: 0,
            data_start: u32::MAX,
            data_len: u32::MAX,
        };
        assert!(c.data(&r).is_empty());
    }
}
