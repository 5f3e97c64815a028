//! A refillable read buffer over the (decompressed) stream.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Size of one `read()` buffer. Records are copied out of it into chunks.
pub(crate) const BUF_SIZE: usize = 2 << 20;
/// Compact before reading when less than this is free at the end.
const MIN_READ: usize = 256 << 10;

/// Counts the bytes read from the raw (possibly compressed) source.
pub(crate) struct Counting<R> {
    pub(crate) inner: R,
    pub(crate) count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Bytes `buf[pos..end]` are read but not consumed; `consumed` is the stream
/// offset of `buf[pos]`.
pub(crate) struct InBuf {
    src: Box<dyn Read + Send>,
    pub(crate) buf: Vec<u8>,
    pub(crate) pos: usize,
    pub(crate) end: usize,
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

    /// Reads until at least `need` bytes are buffered or the stream ends.
    /// Returns the number of buffered bytes (less than `need` only at end of input).
    pub(crate) fn fill(&mut self, need: usize) -> io::Result<usize> {
        while self.avail() < need && !self.eof {
            if self.pos > 0
                && (self.buf.len() - self.pos < need || self.buf.len() - self.end < MIN_READ)
            {
                self.buf.copy_within(self.pos..self.end, 0);
                self.end -= self.pos;
                self.pos = 0;
            }
            if self.buf.len() - self.pos < need {
                self.buf.resize(self.pos + need.next_power_of_two(), 0);
            }
            match self.src.read(&mut self.buf[self.end..]) {
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
