//! A refillable read buffer over the (decompressed) stream.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Initial size of the read buffer; it becomes a chunk's storage (see
/// [`InBuf::hand_over`]), so it holds a whole chunk of the pipeline's 1 MiB target plus
/// the read-ahead (at most [`MIN_READ`] beyond what is needed).
pub(crate) const BUF_SIZE: usize = 3 << 19;
/// Compact before reading when less than this is free at the end; also the most one
/// `read()` asks for beyond what is needed, so that little read-ahead is left over
/// (and copied) when a chunk is handed over.
const MIN_READ: usize = 256 << 10;

/// Counts the bytes read from the raw (possibly compressed) source, for progress and the
/// summary's input bytes.
pub struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R> Counting<R> {
    /// `inner`, adding every byte read from it to `count`.
    pub fn new(inner: R, count: Arc<AtomicU64>) -> Self {
        Counting { inner, count }
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Bytes `buf[pos..end]` are read but not consumed; `consumed` is the stream
/// offset of `buf[pos]`. Bytes before `keep` hold records of the chunk being read,
/// which point into `buf` by index: compaction never moves them, and the chunk takes
/// the whole buffer over when it is complete ([`InBuf::hand_over`]), so captured
/// bytes are never copied after `read()`.
pub(crate) struct InBuf {
    src: Box<dyn Read + Send>,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    keep: usize,
    eof: bool,
    consumed: u64,
}

impl InBuf {
    /// `prefix` holds bytes already read from `src` (used for format detection).
    pub(crate) fn new(src: Box<dyn Read + Send>, prefix: &[u8]) -> Self {
        let mut buf = vec![0u8; BUF_SIZE.max(prefix.len())];
        buf[..prefix.len()].copy_from_slice(prefix);
        InBuf {
            src,
            buf,
            pos: 0,
            end: prefix.len(),
            keep: 0,
            eof: false,
            consumed: 0,
        }
    }

    /// Unconsumed bytes currently buffered.
    #[inline]
    pub(crate) fn avail(&self) -> usize {
        self.end - self.pos
    }

    /// The unconsumed bytes currently buffered.
    #[inline]
    pub(crate) fn data(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// Stream offset of the first unconsumed byte.
    #[inline]
    pub(crate) fn offset(&self) -> u64 {
        self.consumed
    }

    /// Marks `n` buffered bytes as consumed (`n <= avail()`).
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.avail());
        self.pos += n;
        self.consumed += n as u64;
    }

    /// Where `data()[0]` lies in the buffer a chunk receives from [`InBuf::hand_over`].
    #[inline]
    pub(crate) fn index(&self) -> usize {
        self.pos
    }

    /// Keeps every consumed byte in place until the next [`InBuf::hand_over`]: a
    /// chunk's records point at them.
    #[inline]
    pub(crate) fn keep_consumed(&mut self) {
        self.keep = self.pos;
    }

    /// Gives the buffer, with every kept byte at its index, to a chunk and continues
    /// in `spare` (a recycled chunk's buffer), moving the unconsumed bytes there.
    pub(crate) fn hand_over(&mut self, mut spare: Vec<u8>) -> Vec<u8> {
        let rest = self.avail();
        // A recycled buffer keeps its length, so it is zeroed only once.
        if spare.len() < BUF_SIZE.max(rest) {
            spare.resize(BUF_SIZE.max(rest), 0);
        }
        spare[..rest].copy_from_slice(&self.buf[self.pos..self.end]);
        (self.pos, self.end, self.keep) = (0, rest, 0);
        std::mem::replace(&mut self.buf, spare)
    }

    /// Reads until at least `need` bytes are buffered or the stream ends.
    /// Returns the number of buffered bytes (less than `need` only at end of input).
    pub(crate) fn fill(&mut self, need: usize) -> io::Result<usize> {
        while self.avail() < need && !self.eof {
            // Move the unconsumed bytes down onto the consumed ones no record keeps.
            if self.pos > self.keep
                && (self.buf.len() - self.pos < need || self.buf.len() - self.end < MIN_READ)
            {
                self.buf.copy_within(self.pos..self.end, self.keep);
                self.end -= self.pos - self.keep;
                self.pos = self.keep;
            }
            // Kept bytes cannot move down: grow instead (geometrically; indices stay).
            if self.buf.len() - self.pos < need || self.end == self.buf.len() {
                let len = (self.pos + need).max(2 * self.buf.len());
                self.buf.resize(len, 0);
            }
            let stop = self
                .buf
                .len()
                .min(self.end + (need - self.avail()).max(MIN_READ));
            match self.src.read(&mut self.buf[self.end..stop]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.avail())
    }

    /// Consumes `n` bytes, reading and discarding as needed. Returns how many
    /// were actually skipped (less than `n` only at end of input).
    pub(crate) fn skip(&mut self, n: u64) -> io::Result<u64> {
        let mut left = n;
        loop {
            let take = (self.avail() as u64).min(left);
            self.consume(take as usize);
            left -= take;
            if left == 0 {
                return Ok(n);
            }
            if self.fill(1)? == 0 {
                return Ok(n - left);
            }
        }
    }
}

/// Reads up to `n` bytes from `r` (fewer only at end of input).
pub(crate) fn read_prefix(r: &mut dyn Read, n: usize) -> io::Result<Vec<u8>> {
    let mut v = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match r.read(&mut v[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    v.truncate(got);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns at most 3 bytes per read, to exercise refills.
    struct Dribble(Vec<u8>, usize);
    impl Read for Dribble {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(3).min(self.0.len() - self.1);
            buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }

    #[test]
    fn fill_grows_and_skip_counts() {
        let data: Vec<u8> = (0..=255u8).cycle().take(BUF_SIZE * 2 + 7).collect();
        let mut b = InBuf::new(Box::new(Dribble(data.clone(), 2)), &data[..2]);
        assert_eq!(b.fill(10).unwrap(), 11);
        b.consume(5);
        assert_eq!(b.offset(), 5);
        assert_eq!(b.data()[0], 5);
        // A request larger than the buffer grows it.
        assert!(b.fill(BUF_SIZE + 1).unwrap() > BUF_SIZE);
        assert_eq!(b.skip(BUF_SIZE as u64).unwrap(), BUF_SIZE as u64);
        assert_eq!(b.data()[0], data[5 + BUF_SIZE]);
        let rest = (data.len() - 5 - BUF_SIZE) as u64;
        assert_eq!(b.skip(rest + 100).unwrap(), rest);
        assert_eq!(b.fill(1).unwrap(), 0);
    }
}
