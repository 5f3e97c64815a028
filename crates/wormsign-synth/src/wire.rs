//! Packet builders and a pcap writer: Ethernet (optionally 802.1Q), IPv4/IPv6 headers
//! with correct lengths and checksums, the Internet checksum, ARP, DNS wire format, and
//! a small deterministic PRNG. Shared by `wormsign synth` and `examples/gen_capture.rs`.

use std::io::{self, Write};

/// TCP FIN.
pub const FIN: u8 = 0x01;
/// TCP SYN.
pub const SYN: u8 = 0x02;
/// TCP RST.
pub const RST: u8 = 0x04;
/// TCP PSH.
pub const PSH: u8 = 0x08;
/// TCP ACK.
pub const ACK: u8 = 0x10;

/// xorshift64* seeded through splitmix64: tiny, fast, deterministic on every platform.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next() >> 32) * u128::from(n)) >> 32) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform signed in `lo..=hi`.
    pub fn irange(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `per_mille`/1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// Adds `data` as big-endian 16-bit words (odd length: zero-padded) to `acc`.
pub fn sum16(data: &[u8], acc: u64) -> u64 {
    let mut words = data.chunks_exact(2);
    let mut sum = acc;
    for w in &mut words {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

/// Folds a one's-complement sum and complements it: the Internet checksum.
pub fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A frame being appended to a reused buffer: Ethernet header, then [`Frame::ipv4`] or
/// [`Frame::ipv6`], then the transport header and payload, then [`Frame::finish`].
pub struct Frame<'a> {
    /// The frame so far.
    pub buf: &'a mut Vec<u8>,
    l4: usize,
    proto: u8,
    pseudo: u64,
}

/// Starts an Ethernet frame in `buf` (cleared): addresses, an optional 802.1Q tag and the
/// EtherType.
pub fn begin_frame<'a>(
    buf: &'a mut Vec<u8>,
    dst_mac: &[u8; 6],
    src_mac: &[u8; 6],
    vlan: Option<u16>,
    ethertype: u16,
) -> Frame<'a> {
    buf.clear();
    buf.extend_from_slice(dst_mac);
    buf.extend_from_slice(src_mac);
    if let Some(vid) = vlan {
        buf.extend_from_slice(&0x8100u16.to_be_bytes());
        buf.extend_from_slice(&vid.to_be_bytes());
    }
    buf.extend_from_slice(&ethertype.to_be_bytes());
    Frame {
        buf,
        l4: 0,
        proto: 0,
        pseudo: 0,
    }
}

impl Frame<'_> {
    /// Writes an IPv4 header (DF set, checksum filled in) for `l4_len` bytes of transport
    /// header and payload.
    pub fn ipv4(&mut self, src: [u8; 4], dst: [u8; 4], proto: u8, l4_len: usize, id: u16, ttl: u8) {
        self.proto = proto;
        self.pseudo = if proto == 1 {
            0 // ICMP has no pseudo-header
        } else {
            sum16(&src, sum16(&dst, (l4_len + usize::from(proto)) as u64))
        };
        let total = (20 + l4_len) as u16;
        let mut h = [0u8; 20];
        h[0] = 0x45;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[4..6].copy_from_slice(&id.to_be_bytes());
        h[6] = 0x40; // DF
        h[8] = ttl;
        h[9] = proto;
        h[12..16].copy_from_slice(&src);
        h[16..20].copy_from_slice(&dst);
        let sum = fold(sum16(&h, 0));
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        self.buf.extend_from_slice(&h);
        self.l4 = self.buf.len();
    }

    /// Writes an IPv6 header (hop limit 64) for `l4_len` bytes of transport header and
    /// payload; `next` is the transport protocol (58 for ICMPv6).
    pub fn ipv6(&mut self, src: &[u8; 16], dst: &[u8; 16], next: u8, l4_len: usize) {
        self.proto = next;
        self.pseudo = sum16(src, sum16(dst, (l4_len + usize::from(next)) as u64));
        self.buf.extend_from_slice(&[0x60, 0, 0, 0]);
        self.buf.extend_from_slice(&(l4_len as u16).to_be_bytes());
        self.buf.extend_from_slice(&[next, 64]);
        self.buf.extend_from_slice(src);
        self.buf.extend_from_slice(dst);
        self.l4 = self.buf.len();
    }

    /// Fills in the transport checksum (TCP, UDP, ICMP, ICMPv6), pads to the Ethernet
    /// minimum of 60 bytes and returns the frame's length.
    pub fn finish(self) -> usize {
        let at = match self.proto {
            6 => 16,
            17 => 6,
            _ => 2, // ICMP, ICMPv6
        };
        let mut sum = fold(sum16(&self.buf[self.l4..], self.pseudo));
        if sum == 0 && self.proto == 17 {
            sum = 0xffff; // 0 means "no checksum" in UDP
        }
        self.buf[self.l4 + at..self.l4 + at + 2].copy_from_slice(&sum.to_be_bytes());
        if self.buf.len() < 60 {
            self.buf.resize(60, 0);
        }
        self.buf.len()
    }
}

/// Appends an ARP packet over Ethernet (request: broadcast who-has; reply: unicast) to
/// `buf` (cleared), padded to 60 bytes.
pub fn arp_frame(
    buf: &mut Vec<u8>,
    request: bool,
    sender_mac: &[u8; 6],
    sender_ip: [u8; 4],
    target_mac: &[u8; 6],
    target_ip: [u8; 4],
) {
    let dst = if request { [0xff; 6] } else { *target_mac };
    let f = begin_frame(buf, &dst, sender_mac, None, 0x0806);
    f.buf
        .extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, if request { 1 } else { 2 }]);
    f.buf.extend_from_slice(sender_mac);
    f.buf.extend_from_slice(&sender_ip);
    f.buf
        .extend_from_slice(if request { &[0; 6] } else { target_mac });
    f.buf.extend_from_slice(&target_ip);
    buf.resize(60, 0);
}

/// A DNS message in wire format: one question (class IN) and, in a response, A answers
/// whose owner is a compression pointer to the question.
pub fn dns_message(
    id: u16,
    response: bool,
    rcode: u8,
    qname: &str,
    qtype: u16,
    answers: &[[u8; 4]],
    ttl: u32,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(64 + qname.len());
    m.extend_from_slice(&id.to_be_bytes());
    let flags: u16 = if response {
        0x8180 | u16::from(rcode & 0xf)
    } else {
        0x0100
    };
    m.extend_from_slice(&flags.to_be_bytes());
    let an = if response { answers.len() as u16 } else { 0 };
    for v in [1, an, 0, 0] {
        m.extend_from_slice(&v.to_be_bytes());
    }
    for label in qname.trim_end_matches('.').split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    if response {
        for a in answers {
            m.extend_from_slice(&0xc00cu16.to_be_bytes());
            m.extend_from_slice(&1u16.to_be_bytes());
            m.extend_from_slice(&1u16.to_be_bytes());
            m.extend_from_slice(&ttl.to_be_bytes());
            m.extend_from_slice(&4u16.to_be_bytes());
            m.extend_from_slice(a);
        }
    }
    m
}

/// A legacy pcap writer: little-endian, microsecond timestamps, snaplen 65535,
/// LINKTYPE_ETHERNET.
pub struct PcapWriter<W: Write> {
    w: W,
    /// Records written.
    pub packets: u64,
    /// Bytes written, the file header included.
    pub bytes: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header.
    pub fn new(mut w: W) -> io::Result<Self> {
        w.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
        w.write_all(&2u16.to_le_bytes())?;
        w.write_all(&4u16.to_le_bytes())?;
        w.write_all(&[0; 8])?;
        w.write_all(&65_535u32.to_le_bytes())?;
        w.write_all(&1u32.to_le_bytes())?;
        Ok(PcapWriter {
            w,
            packets: 0,
            bytes: 24,
        })
    }

    /// Writes one record captured at `ts_us` microseconds since the epoch.
    pub fn write(&mut self, ts_us: u64, frame: &[u8]) -> io::Result<()> {
        let len = frame.len() as u32;
        self.w
            .write_all(&((ts_us / 1_000_000) as u32).to_le_bytes())?;
        self.w
            .write_all(&((ts_us % 1_000_000) as u32).to_le_bytes())?;
        self.w.write_all(&len.to_le_bytes())?;
        self.w.write_all(&len.to_le_bytes())?;
        self.w.write_all(frame)?;
        self.packets += 1;
        self.bytes += 16 + u64::from(len);
        Ok(())
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}
