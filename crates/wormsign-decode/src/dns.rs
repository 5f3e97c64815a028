//! DNS message parsing (header, first question, answer section).
//!
//! [`parse`] takes one DNS message (a UDP payload); [`parse_tcp`] takes the start
//! of a TCP payload carrying the RFC 1035 two-byte length prefix. [`parse_into`] and
//! [`parse_tcp_into`] do the same into a message the caller keeps, reusing its buffers.
//!
//! Names are decoded with compression, lower-cased (ASCII only), without the
//! trailing dot; the root name is the empty string. Bytes outside the printable
//! ASCII range `!`..=`~` (including space) are written as `\DDD` (three decimal
//! digits, as in zone files and tshark), and a literal `.` or `\` inside a label is
//! escaped as `\.` / `\\`.
//!
//! Errors in the header or the first question make [`parse`] fail. The answer
//! section is parsed leniently: at most [`MAX_ANSWERS`] records are decoded and
//! parsing stops, keeping the answers decoded so far, at the first record that is
//! truncated or malformed (so a response whose later records are corrupt still
//! yields its query and first answers). Authority and additional sections are
//! ignored.
//!
//! Parsing never panics and always terminates: compression pointers are followed
//! at most [`MAX_POINTER_JUMPS`] times per name and names are limited to 255 bytes
//! in wire format.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::IpText;

/// Maximum number of answer records decoded into [`DnsMessage::answers`].
pub const MAX_ANSWERS: usize = 64;
/// Maximum number of compression pointers followed while decoding one name.
pub const MAX_POINTER_JUMPS: usize = 128;
/// Maximum length of a name in wire format (RFC 1035 §3.1).
pub const MAX_NAME_LEN: usize = 255;
/// Bytes reserved for a name's text before it is read (most names are shorter).
const NAME_ROOM: usize = 64;
/// The smallest resource record: a root owner name, type, class, TTL, rdata length.
const MIN_RECORD_LEN: usize = 11;

/// A parsed DNS message: header fields, the first question and the answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsMessage {
    /// Transaction id.
    pub id: u16,
    /// QR bit: true for a response.
    pub is_response: bool,
    /// Opcode (0 query, 1 inverse query, 2 status, 4 notify, 5 update).
    pub opcode: u8,
    /// Response code (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, …; header bits only).
    pub rcode: u8,
    /// AA bit.
    pub authoritative: bool,
    /// TC bit.
    pub truncated: bool,
    /// RD bit.
    pub recursion_desired: bool,
    /// RA bit.
    pub recursion_available: bool,
    /// Name of the first question (see the [module docs](self) for the format);
    /// `None` if the message has no question.
    pub qname: Option<String>,
    /// Type of the first question (0 if none).
    pub qtype: u16,
    /// Class of the first question (0 if none; for mDNS the top bit is the
    /// unicast-response flag and is kept).
    pub qclass: u16,
    /// Decoded answer records (at most [`MAX_ANSWERS`]).
    pub answers: Vec<DnsAnswer>,
}

/// One resource record of the answer section. Its owner name is not kept: like Zeek's
/// `answers`, a row lists what the records say, which for a chain of CNAMEs is each
/// name in turn, then the addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsAnswer {
    /// Record type.
    pub rtype: u16,
    /// Time to live in seconds.
    pub ttl: u32,
    /// Record data as text:
    ///
    /// * A / AAAA: the address (`"192.0.2.1"`, `"2001:db8::1"`);
    /// * CNAME / NS / PTR / DNAME: the target name;
    /// * MX: `"<preference> <exchange>"`;
    /// * SRV: `"<priority> <weight> <port> <target>"`;
    /// * SOA: `"<mname> <rname> <serial> <refresh> <retry> <expire> <minimum>"`;
    /// * TXT / SPF: the character-strings concatenated, printable ASCII kept
    ///   (including space), `\` written as `\\`, other bytes as `\DDD`;
    /// * anything else, or data that does not fit its type: the RFC 3597 generic
    ///   form `"\# <length> <hex>"` (`"\# 0"` for empty data).
    pub data: String,
}

/// Why a DNS message could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
#[non_exhaustive]
pub enum DnsError {
    /// The message ends before the header, the question or a name is complete
    /// (or a TCP message is shorter than 2 bytes / has length 0).
    #[error("DNS message truncated")]
    Truncated,
    /// A label uses the reserved `01`/`10` length prefixes (length byte 0x40..=0xbf,
    /// i.e. a label longer than 63 bytes or an extended label type).
    #[error("bad DNS label type")]
    BadLabel,
    /// A compression pointer points outside the message.
    #[error("DNS compression pointer out of range")]
    BadPointer,
    /// Too many compression pointers in one name (a pointer loop).
    #[error("DNS compression pointer loop")]
    PointerLoop,
    /// A name is longer than 255 bytes in wire format.
    #[error("DNS name too long")]
    NameTooLong,
}

/// Parses one DNS message (e.g. a UDP payload).
pub fn parse(msg: &[u8]) -> Result<DnsMessage, DnsError> {
    let mut m = DnsMessage::default();
    parse_into(msg, &mut m).map(|()| m)
}

/// Parses one DNS message into `m`, as [`parse`] does, reusing the buffers `m` holds
/// from an earlier message: the question name's, the answer list's, and the data
/// strings of as many answers as the earlier message kept (the others are dropped, so
/// a response after a query still allocates one string per answer). After an error
/// `m` holds no particular message.
pub fn parse_into(msg: &[u8], m: &mut DnsMessage) -> Result<(), DnsError> {
    let Some(h) = msg.get(..12) else {
        return Err(DnsError::Truncated);
    };
    let flags = u16::from_be_bytes([h[2], h[3]]);
    let qdcount = u16::from_be_bytes([h[4], h[5]]);
    let ancount = u16::from_be_bytes([h[6], h[7]]);
    m.id = u16::from_be_bytes([h[0], h[1]]);
    m.is_response = flags & 0x8000 != 0;
    m.opcode = ((flags >> 11) & 0x0f) as u8;
    m.authoritative = flags & 0x0400 != 0;
    m.truncated = flags & 0x0200 != 0;
    m.recursion_desired = flags & 0x0100 != 0;
    m.recursion_available = flags & 0x0080 != 0;
    m.rcode = (flags & 0x0f) as u8;
    let mut name = m.qname.take().unwrap_or_default();
    name.clear();
    (m.qtype, m.qclass) = (0, 0);
    let mut pos = 12;
    if qdcount > 0 {
        pos = read_name(msg, pos, &mut name)?;
        let (Some(t), Some(c)) = (be16(msg, pos), be16(msg, pos + 2)) else {
            return Err(DnsError::Truncated);
        };
        m.qname = Some(name);
        m.qtype = t;
        m.qclass = c;
        pos += 4;
        // Skip further questions (rare); give up on answers if they are broken.
        for _ in 1..qdcount {
            match skip_name(msg, pos) {
                Some(p) if p + 4 <= msg.len() => pos = p + 4,
                _ => {
                    m.answers.clear();
                    return Ok(());
                }
            }
        }
    }
    let n = usize::from(ancount).min(MAX_ANSWERS);
    let room = msg.len().saturating_sub(pos) / MIN_RECORD_LEN;
    // Capacity for the answers the message has room for (`reserve` counts beyond the
    // answers the list still holds from the message before).
    m.answers
        .reserve(n.min(room).saturating_sub(m.answers.len()));
    let mut read = 0;
    while read < n {
        if read == m.answers.len() {
            m.answers.push(DnsAnswer::default());
        }
        match read_answer(msg, pos, &mut m.answers[read]) {
            Some(next) => pos = next,
            None => break,
        }
        read += 1;
    }
    m.answers.truncate(read);
    Ok(())
}

/// Parses the length-prefixed DNS message at the start of a TCP payload.
///
/// If the segment holds less than the announced length, the captured prefix is
/// parsed (the header and question are usually complete).
pub fn parse_tcp(segment: &[u8]) -> Result<DnsMessage, DnsError> {
    let mut m = DnsMessage::default();
    parse_tcp_into(segment, &mut m).map(|()| m)
}

/// [`parse_tcp`] into `m`, reusing its buffers as [`parse_into`] does.
pub fn parse_tcp_into(segment: &[u8], m: &mut DnsMessage) -> Result<(), DnsError> {
    let Some(len) = be16(segment, 0) else {
        return Err(DnsError::Truncated);
    };
    let len = usize::from(len);
    if len == 0 {
        return Err(DnsError::Truncated);
    }
    let body = segment.get(2..).unwrap_or(&[]);
    parse_into(&body[..len.min(body.len())], m)
}

/// Mnemonic of a DNS query/record type (`1` → `"A"`, `255` → `"ANY"`), or `None`
/// for types without an assigned mnemonic.
pub fn qtype_name(qtype: u16) -> Option<&'static str> {
    Some(match qtype {
        1 => "A",
        2 => "NS",
        3 => "MD",
        4 => "MF",
        5 => "CNAME",
        6 => "SOA",
        7 => "MB",
        8 => "MG",
        9 => "MR",
        10 => "NULL",
        11 => "WKS",
        12 => "PTR",
        13 => "HINFO",
        14 => "MINFO",
        15 => "MX",
        16 => "TXT",
        17 => "RP",
        18 => "AFSDB",
        19 => "X25",
        20 => "ISDN",
        21 => "RT",
        22 => "NSAP",
        23 => "NSAP-PTR",
        24 => "SIG",
        25 => "KEY",
        26 => "PX",
        27 => "GPOS",
        28 => "AAAA",
        29 => "LOC",
        30 => "NXT",
        31 => "EID",
        32 => "NIMLOC",
        33 => "SRV",
        34 => "ATMA",
        35 => "NAPTR",
        36 => "KX",
        37 => "CERT",
        38 => "A6",
        39 => "DNAME",
        40 => "SINK",
        41 => "OPT",
        42 => "APL",
        43 => "DS",
        44 => "SSHFP",
        45 => "IPSECKEY",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        49 => "DHCID",
        50 => "NSEC3",
        51 => "NSEC3PARAM",
        52 => "TLSA",
        53 => "SMIMEA",
        55 => "HIP",
        56 => "NINFO",
        57 => "RKEY",
        58 => "TALINK",
        59 => "CDS",
        60 => "CDNSKEY",
        61 => "OPENPGPKEY",
        62 => "CSYNC",
        63 => "ZONEMD",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        100 => "UINFO",
        101 => "UID",
        102 => "GID",
        103 => "UNSPEC",
        104 => "NID",
        105 => "L32",
        106 => "L64",
        107 => "LP",
        108 => "EUI48",
        109 => "EUI64",
        249 => "TKEY",
        250 => "TSIG",
        251 => "IXFR",
        252 => "AXFR",
        253 => "MAILB",
        254 => "MAILA",
        255 => "ANY",
        256 => "URI",
        257 => "CAA",
        258 => "AVC",
        259 => "DOA",
        260 => "AMTRELAY",
        32768 => "TA",
        32769 => "DLV",
        _ => return None,
    })
}

#[inline]
fn be16(d: &[u8], i: usize) -> Option<u16> {
    crate::be16(d, i)
}

/// Decodes the (possibly compressed) name at `pos` into `out`; returns the
/// position just after the name in the original byte stream.
fn read_name(msg: &[u8], pos: usize, out: &mut String) -> Result<usize, DnsError> {
    // Room for a usual name at once: growing label by label was the largest cost of
    // parsing a message.
    out.reserve(NAME_ROOM);
    walk_name(msg, pos, |label, first| {
        if !first {
            out.push('.');
        }
        push_label(out, label);
    })
}

/// Follows the (possibly compressed) name at `pos` to its end, checking it as
/// [`read_name`] does, and hands each label to `on_label` with whether it is the first;
/// returns the position just after the name in the original byte stream.
fn walk_name(
    msg: &[u8],
    mut pos: usize,
    mut on_label: impl FnMut(&[u8], bool),
) -> Result<usize, DnsError> {
    let mut after: Option<usize> = None;
    let mut jumps = 0usize;
    let mut wire_len = 1usize; // the terminating root label
    let mut first = true;
    loop {
        let Some(&len) = msg.get(pos) else {
            return Err(DnsError::Truncated);
        };
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    return Ok(after.unwrap_or(pos + 1));
                }
                let len = usize::from(len);
                wire_len += 1 + len;
                if wire_len > MAX_NAME_LEN {
                    return Err(DnsError::NameTooLong);
                }
                let Some(label) = msg.get(pos + 1..pos + 1 + len) else {
                    return Err(DnsError::Truncated);
                };
                on_label(label, first);
                first = false;
                pos += 1 + len;
            }
            0xc0 => {
                let Some(&lo) = msg.get(pos + 1) else {
                    return Err(DnsError::Truncated);
                };
                if after.is_none() {
                    after = Some(pos + 2);
                }
                jumps += 1;
                if jumps > MAX_POINTER_JUMPS {
                    return Err(DnsError::PointerLoop);
                }
                let target = usize::from(len & 0x3f) << 8 | usize::from(lo);
                if target >= msg.len() {
                    return Err(DnsError::BadPointer);
                }
                pos = target;
            }
            _ => return Err(DnsError::BadLabel),
        }
    }
}

/// Skips the name at `pos` without following pointers; returns the position after it.
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)?;
        match len & 0xc0 {
            0x00 if len == 0 => return Some(pos + 1),
            0x00 => pos += 1 + usize::from(len),
            0xc0 => return Some(pos + 2),
            _ => return None,
        }
    }
}

fn push_ddd(out: &mut String, b: u8) {
    let _ = write!(out, "\\{b:03}");
}

/// Appends one label: ASCII lower-cased, `.` and `\` escaped, non-printables `\DDD`.
fn push_label(out: &mut String, label: &[u8]) {
    for &b in label {
        match b {
            b'.' => out.push_str("\\."),
            b'\\' => out.push_str("\\\\"),
            b'!'..=b'~' => out.push(char::from(b.to_ascii_lowercase())),
            _ => push_ddd(out, b),
        }
    }
}

/// Appends TXT character-string bytes: printable ASCII and space kept, `\` escaped.
fn push_text(out: &mut String, text: &[u8]) {
    for &b in text {
        match b {
            b'\\' => out.push_str("\\\\"),
            b' '..=b'~' => out.push(char::from(b)),
            _ => push_ddd(out, b),
        }
    }
}

/// Reads the resource record at `pos` into `answer`; returns the position after it, or
/// `None` if it is truncated or malformed (leaving `answer` holding no particular record).
fn read_answer(msg: &[u8], pos: usize, answer: &mut DnsAnswer) -> Option<usize> {
    // The owner name is checked (a broken one ends the answers) but not kept: no table
    // or rule reads it, and no longer decoding it into a string of its own made parsing
    // a response with three answers about a quarter faster (criterion,
    // `dns/parse_response`).
    let pos = walk_name(msg, pos, |_, _| {}).ok()?;
    answer.rtype = be16(msg, pos)?;
    answer.ttl = crate::be32(msg, pos + 4)?;
    let rdlen = usize::from(be16(msg, pos + 8)?);
    let start = pos + 10;
    let rdata = msg.get(start..start + rdlen)?;
    write_rdata_text(msg, answer.rtype, start, rdata, &mut answer.data);
    Some(start + rdlen)
}

/// Writes record data as text into `out` (see [`DnsAnswer::data`]).
fn write_rdata_text(msg: &[u8], rtype: u16, start: usize, rdata: &[u8], out: &mut String) {
    out.clear();
    if push_typed_rdata_text(msg, rtype, start, rdata, out).is_none() {
        out.clear();
        push_generic(out, rdata);
    }
}

/// Appends the text form of record data of a type it knows to `out`; `None` for other
/// types, or data that does not fit its type, in which case `out` may hold part of the
/// text (the caller clears it).
fn push_typed_rdata_text(
    msg: &[u8],
    rtype: u16,
    start: usize,
    rdata: &[u8],
    out: &mut String,
) -> Option<()> {
    let end = start + rdata.len();
    // Names inside rdata may use compression pointers into the whole message, but
    // the uncompressed part must stay inside the rdata.
    let name_at = |pos: usize, out: &mut String| -> Option<usize> {
        let next = read_name(msg, pos, out).ok()?;
        (next <= end).then_some(next)
    };
    match rtype {
        1 => out.push_str(IpText::new(<[u8; 4]>::try_from(rdata).ok()?.into()).as_str()),
        28 => out.push_str(IpText::new(<[u8; 16]>::try_from(rdata).ok()?.into()).as_str()),
        2 | 5 | 12 | 39 => {
            name_at(start, out)?;
        }
        15 => {
            let pref = be16(rdata, 0)?;
            let _ = write!(out, "{pref} ");
            name_at(start + 2, out)?;
        }
        33 => {
            let (p, w, port) = (be16(rdata, 0)?, be16(rdata, 2)?, be16(rdata, 4)?);
            let _ = write!(out, "{p} {w} {port} ");
            name_at(start + 6, out)?;
        }
        6 => {
            let p = name_at(start, out)?;
            out.push(' ');
            let p = name_at(p, out)?;
            let nums = msg.get(p..end)?;
            if nums.len() != 20 {
                return None;
            }
            for c in nums.chunks_exact(4) {
                let _ = write!(out, " {}", u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
            }
        }
        16 | 99 => {
            let mut rest = rdata;
            while let Some((&n, tail)) = rest.split_first() {
                let chunk = tail.get(..usize::from(n))?;
                push_text(out, chunk);
                rest = &tail[chunk.len()..];
            }
        }
        _ => return None,
    }
    Some(())
}

/// RFC 3597 generic rdata text: `\# <len> <hex>`.
fn push_generic(out: &mut String, rdata: &[u8]) {
    out.reserve(8 + rdata.len() * 2);
    let _ = write!(out, "\\# {}", rdata.len());
    if !rdata.is_empty() {
        out.push(' ');
        for b in rdata {
            let _ = write!(out, "{b:02x}");
        }
    }
}

/// One DNS message with where and when it was seen: a row of the DNS table (built by
/// `wormsign-columnar`), from a captured packet or another tool's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsRow {
    /// Capture time, ns since the Unix epoch.
    pub ts_ns: i64,
    /// Global ordinal of the packet.
    pub packet: u64,
    /// The side that asks (the query's sender, the response's receiver).
    pub client: IpAddr,
    /// Its port.
    pub client_port: u16,
    /// The side that answers.
    pub server: IpAddr,
    /// Its port.
    pub server_port: u16,
    /// Carried over TCP (else UDP).
    pub tcp: bool,
    /// The parsed message.
    pub message: DnsMessage,
}

/// Names of the DNS response codes 0 to 10, then `other` for every higher one.
pub const RCODE_NAMES: [&str; 12] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE", "other",
];

/// Index of a response code's name in [`RCODE_NAMES`].
pub fn rcode_index(rcode: u8) -> usize {
    usize::from(rcode).min(RCODE_NAMES.len() - 1)
}

/// Name of a DNS response code.
pub fn rcode_name(rcode: u8) -> &'static str {
    RCODE_NAMES[rcode_index(rcode)]
}
