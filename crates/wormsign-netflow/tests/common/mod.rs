//! Builders for hand-made export datagrams (shared by the tests and the benchmark).
#![allow(dead_code)]

/// One NetFlow v5 record.
#[derive(Clone, Copy)]
pub struct Rec5 {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub flags: u8,
    pub pkts: u32,
    pub bytes: u32,
    pub first: u32,
    pub last: u32,
    pub in_if: u16,
    pub out_if: u16,
}

impl Rec5 {
    /// Addresses, ports, protocol and TCP flags, as the v9 and IPFIX templates here
    /// start (fields 8, 12, 7, 11, 4, 6).
    pub fn key_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&self.src);
        b.extend_from_slice(&self.dst);
        b.extend_from_slice(&self.sport.to_be_bytes());
        b.extend_from_slice(&self.dport.to_be_bytes());
        b.extend_from_slice(&[self.proto, self.flags]);
        b
    }

    pub fn new(i: u32) -> Self {
        Rec5 {
            src: [10, 0, (i >> 8) as u8, i as u8],
            dst: [192, 168, 1, 1],
            sport: 40000 + (i % 1000) as u16,
            dport: 80,
            proto: 6,
            flags: 0x1b,
            pkts: 10 + i,
            bytes: 1000 + i,
            first: 1000,
            last: 2000,
            in_if: 1,
            out_if: 2,
        }
    }
}

/// NetFlow v5 datagram.
pub fn v5(seq: u32, sampling: u16, uptime: u32, secs: u32, nsecs: u32, recs: &[Rec5]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&5u16.to_be_bytes());
    p.extend_from_slice(&(recs.len() as u16).to_be_bytes());
    p.extend_from_slice(&uptime.to_be_bytes());
    p.extend_from_slice(&secs.to_be_bytes());
    p.extend_from_slice(&nsecs.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[1, 2]);
    p.extend_from_slice(&sampling.to_be_bytes());
    for r in recs {
        p.extend_from_slice(&r.src);
        p.extend_from_slice(&r.dst);
        p.extend_from_slice(&[0, 0, 0, 0]);
        p.extend_from_slice(&r.in_if.to_be_bytes());
        p.extend_from_slice(&r.out_if.to_be_bytes());
        p.extend_from_slice(&r.pkts.to_be_bytes());
        p.extend_from_slice(&r.bytes.to_be_bytes());
        p.extend_from_slice(&r.first.to_be_bytes());
        p.extend_from_slice(&r.last.to_be_bytes());
        p.extend_from_slice(&r.sport.to_be_bytes());
        p.extend_from_slice(&r.dport.to_be_bytes());
        p.extend_from_slice(&[0, r.flags, r.proto, 0]);
        p.extend_from_slice(&65001u16.to_be_bytes());
        p.extend_from_slice(&65002u16.to_be_bytes());
        p.extend_from_slice(&[24, 24, 0, 0]);
    }
    p
}

/// A set (flowset): id, length, body, then `pad` zero bytes (counted in the length).
pub fn set(id: u16, body: &[u8], pad: usize) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&id.to_be_bytes());
    s.extend_from_slice(&((4 + body.len() + pad) as u16).to_be_bytes());
    s.extend_from_slice(body);
    s.extend(std::iter::repeat_n(0u8, pad));
    s
}

/// NetFlow v9 datagram (count = number of sets; decoders must not rely on it).
pub fn v9(seq: u32, source_id: u32, uptime: u32, secs: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&9u16.to_be_bytes());
    p.extend_from_slice(&(sets.len() as u16).to_be_bytes());
    p.extend_from_slice(&uptime.to_be_bytes());
    p.extend_from_slice(&secs.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&source_id.to_be_bytes());
    for s in sets {
        p.extend_from_slice(s);
    }
    p
}

/// IPFIX message.
pub fn ipfix(seq: u32, domain: u32, export: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let body: usize = sets.iter().map(Vec::len).sum();
    let mut p = Vec::new();
    p.extend_from_slice(&10u16.to_be_bytes());
    p.extend_from_slice(&((16 + body) as u16).to_be_bytes());
    p.extend_from_slice(&export.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&domain.to_be_bytes());
    for s in sets {
        p.extend_from_slice(s);
    }
    p
}

/// v9 / IPFIX template record without enterprise fields.
pub fn tpl(tid: u16, fields: &[(u16, u16)]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&tid.to_be_bytes());
    r.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    for (id, len) in fields {
        r.extend_from_slice(&id.to_be_bytes());
        r.extend_from_slice(&len.to_be_bytes());
    }
    r
}

/// IPFIX template record; `(id, len, Some(pen))` sets the enterprise bit.
pub fn tpl_ipfix(tid: u16, fields: &[(u16, u16, Option<u32>)]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&tid.to_be_bytes());
    r.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    for (id, len, pen) in fields {
        let id = if pen.is_some() { id | 0x8000 } else { *id };
        r.extend_from_slice(&id.to_be_bytes());
        r.extend_from_slice(&len.to_be_bytes());
        if let Some(pen) = pen {
            r.extend_from_slice(&pen.to_be_bytes());
        }
    }
    r
}

/// v9 options template record.
pub fn opt_tpl_v9(tid: u16, scope: &[(u16, u16)], opts: &[(u16, u16)]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&tid.to_be_bytes());
    r.extend_from_slice(&((scope.len() * 4) as u16).to_be_bytes());
    r.extend_from_slice(&((opts.len() * 4) as u16).to_be_bytes());
    for (id, len) in scope.iter().chain(opts) {
        r.extend_from_slice(&id.to_be_bytes());
        r.extend_from_slice(&len.to_be_bytes());
    }
    r
}

/// IPFIX options template record (the first `scope` fields are scope fields).
pub fn opt_tpl_ipfix(tid: u16, scope: u16, fields: &[(u16, u16)]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&tid.to_be_bytes());
    r.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    r.extend_from_slice(&scope.to_be_bytes());
    for (id, len) in fields {
        r.extend_from_slice(&id.to_be_bytes());
        r.extend_from_slice(&len.to_be_bytes());
    }
    r
}

/// The v9 flow template used throughout: 34-byte records.
pub const V9_FIELDS: [(u16, u16); 12] = [
    (8, 4),  // src
    (12, 4), // dst
    (7, 2),  // sport
    (11, 2), // dport
    (4, 1),  // proto
    (6, 1),  // tcp flags
    (2, 4),  // packets
    (1, 4),  // bytes
    (22, 4), // first switched
    (21, 4), // last switched
    (10, 2), // input
    (14, 2), // output
];

/// One record of [`V9_FIELDS`].
pub fn v9_rec(i: u32, first: u32, last: u32) -> Vec<u8> {
    let r = Rec5::new(i);
    let mut b = r.key_bytes();
    b.extend_from_slice(&r.pkts.to_be_bytes());
    b.extend_from_slice(&r.bytes.to_be_bytes());
    b.extend_from_slice(&first.to_be_bytes());
    b.extend_from_slice(&last.to_be_bytes());
    b.extend_from_slice(&r.in_if.to_be_bytes());
    b.extend_from_slice(&r.out_if.to_be_bytes());
    b
}

/// The IPFIX flow template used throughout: 45-byte records (64-bit counters, ms times).
pub const IPFIX_FIELDS: [(u16, u16); 10] = [
    (8, 4),
    (12, 4),
    (7, 2),
    (11, 2),
    (4, 1),
    (6, 1),
    (2, 8),
    (1, 8),
    (152, 8),
    (153, 8),
];

/// One record of [`IPFIX_FIELDS`] (times in ms since the epoch).
pub fn ipfix_rec(i: u32, start_ms: u64, end_ms: u64) -> Vec<u8> {
    let r = Rec5::new(i);
    let mut b = r.key_bytes();
    b.extend_from_slice(&u64::from(r.pkts).to_be_bytes());
    b.extend_from_slice(&u64::from(r.bytes).to_be_bytes());
    b.extend_from_slice(&start_ms.to_be_bytes());
    b.extend_from_slice(&end_ms.to_be_bytes());
    b
}
