//! Addresses as text, the form every table and log writes them in, built on the stack.
//!
//! `IpAddr`'s `Display` goes through the formatting machinery: one `write!` per octet or
//! group, each with width and padding checks. Writing the address columns of the flow and
//! DNS tables that way, and the A/AAAA answers of DNS messages, was 5 to 8 % of a
//! DNS-heavy run's CPU. [`IpText`] writes the same text (RFC 5952 for IPv6, as `Display`
//! does: lower-case hex, the first longest run of two or more zero groups as `::`, and
//! IPv4-mapped addresses as `::ffff:a.b.c.d`) with table lookups.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest text: `ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff`, 39 bytes. Each piece is
/// copied as a fixed 4 to 16 bytes of which only the first are kept, so the buffer has 16
/// more to overrun into (`::ffff:` then a 16-byte dotted quad reaches 23).
const CAPACITY: usize = 39 + 16;

/// An address's text, as `IpAddr`'s `Display` writes it.
#[derive(Clone, Copy)]
pub struct IpText {
    bytes: [u8; CAPACITY],
    len: usize,
}

impl IpText {
    /// The text of `ip`.
    pub fn new(ip: IpAddr) -> IpText {
        let mut text = IpText {
            bytes: [0; CAPACITY],
            len: 0,
        };
        match ip {
            IpAddr::V4(v4) => text.push_v4(v4),
            IpAddr::V6(v6) => text.push_v6(v6),
        }
        text
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes())
            .expect("only ASCII digits, hex letters, dots and colons are written")
    }

    /// The text's bytes, all ASCII: for a writer that checks a whole batch of text as
    /// UTF-8 at once rather than each address as [`IpText::as_str`] does.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Copies `N` bytes and keeps the first `keep` of them: fixed-size copies compile
    /// to single moves where a slice of varying length calls `memcpy`.
    fn push<const N: usize>(&mut self, bytes: [u8; N], keep: usize) {
        self.bytes[self.len..self.len + N].copy_from_slice(&bytes);
        self.len += keep;
    }

    fn push_v4(&mut self, v4: Ipv4Addr) {
        // Gathered in a register and stored once: four stores of 4 bytes each, read
        // back by the caller's 16-byte copy of the struct, stalled store forwarding.
        let (mut text, mut len) = (0u128, 0);
        for octet in v4.octets() {
            let (digits_and_dot, n) = OCTET_TEXT[usize::from(octet)];
            text |= u128::from(u32::from_le_bytes(digits_and_dot)) << (8 * len);
            len += n;
        }
        self.push(text.to_le_bytes(), len - 1); // without the last octet's dot
    }

    fn push_v6(&mut self, v6: Ipv6Addr) {
        if let Some(v4) = v6.to_ipv4_mapped() {
            self.push(*b"::ffff:", 7);
            return self.push_v4(v4);
        }
        let groups = v6.segments();
        let (start, len) = longest_zero_run(&groups);
        if len > 1 {
            self.push_groups(&groups[..start]);
            self.push(*b"::", 2);
            self.push_groups(&groups[start + len..]);
        } else {
            self.push_groups(&groups);
        }
    }

    fn push_groups(&mut self, groups: &[u16]) {
        for (i, &group) in groups.iter().enumerate() {
            if i > 0 {
                self.push(*b":", 1);
            }
            self.push_hex(group);
        }
    }

    /// A group in lower-case hex without leading zeros.
    fn push_hex(&mut self, group: u16) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let significant = (16 - group.leading_zeros() as usize).div_ceil(4).max(1);
        // The significant digits moved to the top nibbles, so they come first.
        let top = u32::from(group) << (4 * (4 - significant));
        let digit = |i: usize| HEX[(top >> (12 - 4 * i) & 0xf) as usize];
        self.push([digit(0), digit(1), digit(2), digit(3)], significant);
    }
}

/// (start, length) of the first longest run of zero groups; length 0 if there is none.
fn longest_zero_run(groups: &[u16; 8]) -> (usize, usize) {
    let (mut best, mut current) = ((0, 0), (0, 0));
    for (i, &group) in groups.iter().enumerate() {
        if group != 0 {
            current = (i + 1, 0);
            continue;
        }
        current.1 += 1;
        if current.1 > best.1 {
            best = current;
        }
    }
    best
}

/// Every octet in decimal followed by a dot and zeros, and how many bytes are text.
const OCTET_TEXT: [([u8; 4], usize); 256] = octet_text();

const fn octet_text() -> [([u8; 4], usize); 256] {
    let mut table = [([0u8; 4], 0); 256];
    let mut n = 0;
    while n < 256 {
        let digits = [(n / 100) as u8, (n / 10 % 10) as u8, (n % 10) as u8];
        let skip = if n >= 100 {
            0
        } else if n >= 10 {
            1
        } else {
            2
        };
        // Zeros after the dot, so that octets can be or-ed together.
        let mut text = [0; 4];
        let mut i = skip;
        while i < 3 {
            text[i - skip] = b'0' + digits[i];
            i += 1;
        }
        text[3 - skip] = b'.';
        table[n] = (text, 4 - skip);
        n += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same_as_display(ip: IpAddr) {
        assert_eq!(IpText::new(ip).as_str(), ip.to_string(), "{ip:?}");
    }

    #[test]
    fn every_octet_in_every_position_is_written_as_display_writes_it() {
        for n in 0..=255u8 {
            for at in 0..4 {
                let mut octets = [1, 22, 133, 4];
                octets[at] = n;
                same_as_display(IpAddr::from(octets));
            }
        }
    }

    /// Every pattern of zero and non-zero groups (which decides where `::` goes), with
    /// group values of every hex width, and the mapped and compatible IPv4 forms.
    #[test]
    fn every_zero_pattern_of_ipv6_is_written_as_display_writes_it() {
        let values = [0x1u16, 0xab, 0xf00, 0xffff, 0x10, 0x2001];
        for mask in 0..=255u16 {
            for (k, _) in values.iter().enumerate() {
                let groups: [u16; 8] = std::array::from_fn(|i| {
                    if mask >> i & 1 == 1 {
                        values[(i + k) % values.len()]
                    } else {
                        0
                    }
                });
                same_as_display(IpAddr::from(groups));
            }
        }
        for v4 in [[0, 0, 0, 0], [10, 1, 2, 3], [255, 255, 255, 255]] {
            same_as_display(IpAddr::V6(Ipv4Addr::from(v4).to_ipv6_mapped()));
            same_as_display(IpAddr::V6(Ipv4Addr::from(v4).to_ipv6_compatible()));
        }
    }
}
