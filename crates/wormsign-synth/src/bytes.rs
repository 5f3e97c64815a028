//! Little-endian field writing and UTF-16LE text, for the protocol messages of
//! [`crate::smb`] and [`crate::tds`].

/// A message body written field by field, little-endian.
#[derive(Clone, Debug, Default)]
pub(crate) struct Le(pub Vec<u8>);

impl Le {
    pub fn u8(mut self, v: u8) -> Le {
        self.0.push(v);
        self
    }

    pub fn u16(mut self, v: u16) -> Le {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u32(mut self, v: u32) -> Le {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u64(mut self, v: u64) -> Le {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn raw(mut self, b: &[u8]) -> Le {
        self.0.extend_from_slice(b);
        self
    }

    /// Zero bytes up to a length that is a multiple of `n`, counted from `base` (the
    /// offset of this buffer's first byte in the message).
    pub fn align(mut self, base: usize, n: usize) -> Le {
        while (base + self.0.len()) % n != 0 {
            self.0.push(0);
        }
        self
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// `s` as UTF-16LE, without a terminator.
pub(crate) fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// `s` as UTF-16LE with its two-byte NUL terminator.
pub(crate) fn utf16z(s: &str) -> Vec<u8> {
    let mut v = utf16(s);
    v.extend_from_slice(&[0, 0]);
    v
}
