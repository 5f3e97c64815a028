//! SMB1 ([MS-CIFS], [MS-SMB]) and SMB2/3 ([MS-SMB2]) over TCP 445 or the NetBIOS session
//! service on 139 ([RFC 1002] 4.3): dialects, logins, tree connects and the MS17-010
//! exploit and DoublePulsar markers.
//!
//! Requests are remembered by multiplex id (SMB1) or message id (SMB2), at most
//! [`MAX_PENDING`] at once, until their response gives the status. EternalBlue shows as a
//! `TRANS2_SECONDARY` whose multiplex id belongs to an `NT_TRANSACT` that has not sent all
//! its data yet: srv.sys then continues the NT transaction with the TRANS2 secondary's
//! smaller header, the type confusion the exploit rests on. No client does this.
//! DoublePulsar answers its `TRANS2 SESSION_SETUP` with the request's multiplex id plus
//! 0x10: that reply, not the request, says whether the implant is there.

use crate::ntlmssp;
use crate::{ascii, be16, le16, le32, utf16, Fact, Found, Framing, Outcome, SessionParser};

/// Requests awaiting their response; the oldest is dropped beyond this.
pub(crate) const MAX_PENDING: usize = 64;

const STATUS_SUCCESS: u32 = 0;
const STATUS_MORE_PROCESSING_REQUIRED: u32 = 0xC000_0016;
const STATUS_INSUFF_SERVER_RESOURCES: u32 = 0xC000_0205;

const SMB1_NEGOTIATE: u8 = 0x72;
const SMB1_SESSION_SETUP_ANDX: u8 = 0x73;
const SMB1_TREE_CONNECT_ANDX: u8 = 0x75;
const SMB1_TRANSACTION: u8 = 0x25;
const SMB1_TRANSACTION_SECONDARY: u8 = 0x26;
const SMB1_WRITE_ANDX: u8 = 0x2F;
const SMB1_TRANSACTION2: u8 = 0x32;
const SMB1_TRANSACTION2_SECONDARY: u8 = 0x33;
const SMB1_NT_TRANSACT: u8 = 0xA0;
const SMB1_NT_TRANSACT_SECONDARY: u8 = 0xA1;
/// Commands that open or continue a transaction.
const SMB1_TRANSACTIONS: [u8; 6] = [
    SMB1_TRANSACTION,
    SMB1_TRANSACTION_SECONDARY,
    SMB1_TRANSACTION2,
    SMB1_TRANSACTION2_SECONDARY,
    SMB1_NT_TRANSACT,
    SMB1_NT_TRANSACT_SECONDARY,
];

const SMB2_NEGOTIATE: u16 = 0;
const SMB2_SESSION_SETUP: u16 = 1;
const SMB2_TREE_CONNECT: u16 = 3;

/// `TRANS2_SESSION_SETUP`: reserved, never sent by Windows; DoublePulsar's command channel.
const TRANS2_SESSION_SETUP: u16 = 0x000E;
/// `TRANS_PEEK_NMPIPE`: on FID 0 the classic MS17-010 check.
const TRANS_PEEK_NMPIPE: u16 = 0x0023;
/// `NT_TRANSACT_RENAME`: undocumented, used by EternalRomance/Champion/Synergy.
const NT_TRANSACT_RENAME: u16 = 0x0005;
/// How far DoublePulsar moves the multiplex id of its reply when the implant answers:
/// 0x10 done, 0x20 bad parameters, 0x30 allocation failure. No implant: the id is echoed.
const DOUBLEPULSAR_MID_DELTAS: [u16; 3] = [0x10, 0x20, 0x30];

/// Requests whose response completes a fact.
#[derive(Clone, Debug)]
enum Pending {
    Login(ntlmssp::Authenticate),
    Tree(String),
    Probe,
    DoublePulsar { command: &'static str },
}

/// Which id a pending request is remembered by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Id {
    Mid(u16),
    MessageId(u64),
}

/// An SMB1 request's (PID, MID, TID, UID): what srv.sys finds a transaction by.
type TransactionKey = (u16, u16, u16, u16);

#[derive(Debug, Default)]
pub(crate) struct SmbParser {
    /// Dialect strings of the client's SMB1 NEGOTIATE.
    dialects: Vec<String>,
    pending: Vec<(Id, Pending)>,
    /// NT_TRANSACT requests that have not sent all their data.
    open_nt_transacts: Vec<TransactionKey>,
    /// Transaction requests of any kind.
    transactions: Vec<TransactionKey>,
    /// Exploit facts already reported on this session (once each).
    reported: Vec<Fact>,
}

impl SessionParser for SmbParser {
    fn frame(&self, buf: &[u8], _from_client: bool) -> Framing {
        frame(buf)
    }

    /// A NetBIOS session message around something that is not SMB, at the very start of
    /// a direction: a sender writes whole messages, so a capture that begins mid-session
    /// still starts a direction at a header far more often than not, and what starts with
    /// a session header but no SMB magic is another protocol on the port.
    fn foreign(&self, first: &[u8]) -> bool {
        first.len() >= 8 && first[0] == 0 && !is_smb_magic(&first[4..8])
    }

    fn message(&mut self, msg: &[u8], _len: usize, from_client: bool, out: &mut Vec<Found>) {
        let Some(smb) = msg.get(4..) else {
            return;
        };
        match smb.first() {
            Some(0xFF) => self.smb1(smb, from_client, out),
            Some(0xFE) => self.smb2(smb, out),
            // SMB3 encrypts per session or per share: cleartext may follow.
            Some(0xFD) => self.report_once(Fact::Opaque, "SMB3 encrypted messages", out),
            _ => {}
        }
    }

    fn finish(&mut self, out: &mut Vec<Found>) {
        for (_, p) in self.pending.drain(..) {
            out.push(unanswered(p));
        }
    }
}

/// Cuts one NetBIOS session message (4-byte header, then the SMB message) off `buf`.
/// Anything that is not a session message starting with an SMB magic is skipped up to
/// the next place that looks like one, which is how a capture that begins mid-session
/// finds its first message.
fn frame(buf: &[u8]) -> Framing {
    if buf.len() < 8 {
        return Framing::NeedMore;
    }
    const KEEPALIVE_AND_SESSION_SETUP: [u8; 5] = [0x81, 0x82, 0x83, 0x84, 0x85];
    let len = (usize::from(buf[1]) << 16) | usize::from(be16(buf, 2).unwrap_or(0));
    if KEEPALIVE_AND_SESSION_SETUP.contains(&buf[0]) && len < 512 {
        return Framing::Ignore(4 + len);
    }
    if buf[0] == 0 && is_smb_magic(&buf[4..8]) {
        return Framing::Message(4 + len);
    }
    // The next "SMB" preceded by a magic byte and a session message header's type 0.
    let next = memchr::memmem::find_iter(&buf[1..], b"SMB")
        .map(|at| at + 1)
        .filter(|&at| at >= 5)
        .map(|at| at - 5)
        .find(|&start| start > 0 && buf[start] == 0 && is_smb_magic(&buf[start + 4..start + 8]));
    Framing::Skip(next.unwrap_or(buf.len() - 7))
}

fn is_smb_magic(b: &[u8]) -> bool {
    matches!(b[0], 0xFC..=0xFF) && &b[1..4] == b"SMB"
}

/// The fact of a request whose response never came.
fn unanswered(p: Pending) -> Found {
    let mut f = answered(p, None);
    f.outcome = Outcome::Unknown;
    f.status = None;
    f
}

/// The fact of a request and its response's status.
fn answered(p: Pending, status: Option<u32>) -> Found {
    let ok = if status == Some(STATUS_SUCCESS) {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    let mut f = match p {
        Pending::Login(a) => Found {
            user: a.user,
            domain: a.domain,
            workstation: a.workstation,
            ..Found::new(Fact::Login, ok)
        },
        Pending::Tree(path) => Found {
            detail: Some(path),
            ..Found::new(Fact::TreeConnect, ok)
        },
        Pending::Probe => Found::new(
            Fact::Ms17Probe,
            if status == Some(STATUS_INSUFF_SERVER_RESOURCES) {
                Outcome::Vulnerable
            } else {
                Outcome::NotVulnerable
            },
        ),
        Pending::DoublePulsar { command } => Found {
            detail: Some(command.into()),
            ..Found::new(Fact::DoublePulsar, Outcome::Absent)
        },
    };
    f.status = status;
    f
}

/// An SMB1 message's header fields and its parameter words and bytes.
struct Smb1<'a> {
    command: u8,
    status: u32,
    unicode: bool,
    response: bool,
    key: TransactionKey,
    words: &'a [u8],
    bytes: &'a [u8],
    /// Offset of `bytes` from the start of the SMB header (Unicode strings in it are
    /// aligned to an even offset from there).
    bytes_at: usize,
}

fn smb1_parts(smb: &[u8]) -> Option<Smb1<'_>> {
    let wc = usize::from(*smb.get(32)?);
    let words = smb.get(33..33 + 2 * wc)?;
    let bcc = usize::from(le16(smb, 33 + 2 * wc).unwrap_or(0));
    let bytes_at = 35 + 2 * wc;
    let bytes = smb.get(bytes_at..).unwrap_or(&[]);
    Some(Smb1 {
        command: smb[4],
        status: le32(smb, 5)?,
        unicode: le16(smb, 10)? & 0x8000 != 0,
        response: smb[9] & 0x80 != 0,
        // PID (low), MID, TID, UID.
        key: (
            le16(smb, 26)?,
            le16(smb, 30)?,
            le16(smb, 24)?,
            le16(smb, 28)?,
        ),
        words,
        bytes: &bytes[..bcc.min(bytes.len())],
        bytes_at,
    })
}

impl SmbParser {
    fn remember(&mut self, id: Id, p: Pending) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.remove(0);
        }
        self.pending.push((id, p));
    }

    /// Reports an exploit fact unless this session already did.
    fn report_once(&mut self, fact: Fact, detail: &str, out: &mut Vec<Found>) {
        if !self.reported.contains(&fact) {
            self.reported.push(fact);
            out.push(Found {
                detail: Some(detail.into()),
                ..Found::new(fact, Outcome::Unknown)
            });
        }
    }

    fn take(&mut self, pred: impl Fn(Id, &Pending) -> bool) -> Option<(Id, Pending)> {
        let i = self.pending.iter().position(|(id, p)| pred(*id, p))?;
        Some(self.pending.remove(i))
    }

    fn smb1(&mut self, smb: &[u8], from_client: bool, out: &mut Vec<Found>) {
        let Some(m) = smb1_parts(smb) else {
            return;
        };
        if m.response || !from_client {
            self.smb1_response(&m, out);
        } else {
            self.smb1_request(&m, out);
        }
    }

    fn smb1_request(&mut self, m: &Smb1<'_>, out: &mut Vec<Found>) {
        let id = Id::Mid(m.key.1);
        if SMB1_TRANSACTIONS.contains(&m.command) && !self.transactions.contains(&m.key) {
            push_bounded(&mut self.transactions, m.key);
        }
        match m.command {
            SMB1_NEGOTIATE => {
                self.dialects = m
                    .bytes
                    .split(|&b| b == 0)
                    .filter_map(|d| d.strip_prefix(&[2]))
                    .take(32)
                    .map(ascii)
                    .collect();
            }
            SMB1_SESSION_SETUP_ANDX => self.remember(id, Pending::Login(smb1_login(m))),
            SMB1_TREE_CONNECT_ANDX => {
                if let Some(path) = smb1_tree_path(m) {
                    self.remember(id, Pending::Tree(path));
                }
            }
            SMB1_TRANSACTION => {
                // Setup words start at word 14: PeekNamedPipe, then the FID.
                let setup = (le16(m.words, 28), le16(m.words, 30));
                if setup == (Some(TRANS_PEEK_NMPIPE), Some(0)) {
                    self.remember(id, Pending::Probe);
                }
            }
            SMB1_TRANSACTION2 if le16(m.words, 28) == Some(TRANS2_SESSION_SETUP) => {
                let command = doublepulsar_command(le32(m.words, 12).unwrap_or(0));
                self.remember(id, Pending::DoublePulsar { command });
            }
            SMB1_NT_TRANSACT => self.nt_transact(m, out),
            SMB1_TRANSACTION2_SECONDARY if self.open_nt_transacts.contains(&m.key) => {
                let detail = "TRANS2_SECONDARY continuing an NT_TRANSACT";
                self.report_once(Fact::EternalBlue, detail, out);
            }
            SMB1_WRITE_ANDX if self.transactions.contains(&m.key) => {
                let detail = "WRITE_ANDX on an open transaction's ids";
                self.report_once(Fact::EternalSynergy, detail, out);
            }
            _ => {}
        }
    }

    fn nt_transact(&mut self, m: &Smb1<'_>, out: &mut Vec<Found>) {
        // Words: MaxSetupCount (1), reserved (2), then u32 counts from byte 3.
        let (Some(total_params), Some(total_data), Some(params), Some(data)) = (
            le32(m.words, 3),
            le32(m.words, 7),
            le32(m.words, 19),
            le32(m.words, 27),
        ) else {
            return;
        };
        if le16(m.words, 36) == Some(NT_TRANSACT_RENAME) {
            self.report_once(Fact::EternalChampion, "NT_TRANSACT_RENAME", out);
        }
        let unfinished = data < total_data || params < total_params;
        if unfinished && !self.open_nt_transacts.contains(&m.key) {
            push_bounded(&mut self.open_nt_transacts, m.key);
        }
    }

    fn smb1_response(&mut self, m: &Smb1<'_>, out: &mut Vec<Found>) {
        match m.command {
            SMB1_NEGOTIATE => {
                let Some(i) = le16(m.words, 0) else {
                    return;
                };
                let name = self.dialects.get(usize::from(i)).cloned();
                out.push(Found {
                    detail: Some(name.unwrap_or_else(|| format!("SMB1 dialect #{i}"))),
                    ..Found::new(Fact::Dialect, Outcome::Success)
                });
            }
            SMB1_TRANSACTION2 => {
                // DoublePulsar's reply carries the request's id, or that id + 0x10 when the
                // implant answered.
                let mid = m.key.1;
                let present = |id: Id, p: &Pending| {
                    matches!(p, Pending::DoublePulsar { .. })
                        && DOUBLEPULSAR_MID_DELTAS
                            .iter()
                            .any(|&d| id == Id::Mid(mid.wrapping_sub(d)))
                };
                if let Some((_, p)) = self.take(present) {
                    let mut f = answered(p, Some(m.status));
                    f.outcome = Outcome::Present;
                    out.push(f);
                } else if let Some((_, p)) = self.take(|id, _| id == Id::Mid(mid)) {
                    out.push(answered(p, Some(m.status)));
                }
            }
            _ => {
                let request = self.take(|id, _| id == Id::Mid(m.key.1));
                // A step of a multi-leg login (NTLMSSP NEGOTIATE), not its end.
                if let (Some((_, p)), false) =
                    (request, m.status == STATUS_MORE_PROCESSING_REQUIRED)
                {
                    out.push(answered(p, Some(m.status)));
                }
            }
        }
    }

    fn smb2(&mut self, smb: &[u8], out: &mut Vec<Found>) {
        let mut at = 0usize;
        // A compound chain is bounded by the message; 16 links at most.
        for _ in 0..16 {
            let Some(m) = smb.get(at..) else {
                return;
            };
            if m.len() < 64 || &m[..4] != b"\xfeSMB" {
                return;
            }
            self.smb2_one(m, out);
            let next = le32(m, 20).unwrap_or(0) as usize;
            if next < 64 {
                return;
            }
            at += next;
        }
    }

    fn smb2_one(&mut self, m: &[u8], out: &mut Vec<Found>) {
        let (Some(status), Some(command), Some(flags)) = (le32(m, 8), le16(m, 12), le32(m, 16))
        else {
            return;
        };
        let id = Id::MessageId(u64::from_le_bytes(m[24..32].try_into().unwrap_or_default()));
        let body = &m[64..];
        if flags & 1 == 0 {
            match command {
                SMB2_SESSION_SETUP => {
                    let (off, len) = (le16(body, 12), le16(body, 14));
                    let blob = off
                        .zip(len)
                        .and_then(|(o, l)| m.get(usize::from(o)..usize::from(o) + usize::from(l)));
                    let names = blob.and_then(ntlmssp::authenticate).unwrap_or_default();
                    self.remember(id, Pending::Login(names));
                }
                SMB2_TREE_CONNECT => {
                    let (off, len) = (le16(body, 4), le16(body, 6));
                    let path = off
                        .zip(len)
                        .and_then(|(o, l)| m.get(usize::from(o)..usize::from(o) + usize::from(l)));
                    if let Some(p) = path {
                        self.remember(id, Pending::Tree(utf16(p)));
                    }
                }
                _ => {}
            }
            return;
        }
        if command == SMB2_NEGOTIATE && status == STATUS_SUCCESS {
            if let Some(d) = le16(body, 4) {
                out.push(Found {
                    detail: Some(smb2_dialect(d)),
                    ..Found::new(Fact::Dialect, Outcome::Success)
                });
            }
            return;
        }
        let request = self.take(|i, _| i == id);
        if let (Some((_, p)), false) = (request, status == STATUS_MORE_PROCESSING_REQUIRED) {
            out.push(answered(p, Some(status)));
        }
    }
}

/// Appends `key`, dropping the oldest beyond [`MAX_PENDING`].
fn push_bounded(keys: &mut Vec<TransactionKey>, key: TransactionKey) {
    if keys.len() >= MAX_PENDING {
        keys.remove(0);
    }
    keys.push(key);
}

/// DoublePulsar's command, hidden in the TRANS2 Timeout field: the low byte of the sum of
/// its four bytes.
fn doublepulsar_command(timeout: u32) -> &'static str {
    match timeout
        .to_le_bytes()
        .iter()
        .fold(0u8, |a, &b| a.wrapping_add(b))
    {
        0x23 => "ping",
        0xC8 => "exec",
        0x77 => "kill",
        _ => "unknown command",
    }
}

/// The account an SMB1 SESSION_SETUP_ANDX request logs in as: from the NTLMSSP
/// AUTHENTICATE of an extended-security request (12 words), or the AccountName and
/// PrimaryDomain of a plain one (13 words); no names for other steps (Kerberos, NTLMSSP
/// NEGOTIATE, whose reply asks for more).
fn smb1_login(m: &Smb1<'_>) -> ntlmssp::Authenticate {
    smb1_names(m).unwrap_or_default()
}

fn smb1_names(m: &Smb1<'_>) -> Option<ntlmssp::Authenticate> {
    match m.words.len() / 2 {
        12 => {
            let blob_len = usize::from(le16(m.words, 14)?);
            ntlmssp::authenticate(m.bytes.get(..blob_len)?)
        }
        13 => {
            let passwords = usize::from(le16(m.words, 14)?) + usize::from(le16(m.words, 16)?);
            let mut at = passwords;
            if m.unicode && (m.bytes_at + at) % 2 == 1 {
                at += 1;
            }
            let rest = m.bytes.get(at..)?;
            let (user, rest) = smb1_string(rest, m.unicode);
            let (domain, _) = smb1_string(rest, m.unicode);
            Some(ntlmssp::Authenticate {
                user: crate::non_empty(user),
                domain: crate::non_empty(domain),
                workstation: None,
            })
        }
        _ => None,
    }
}

/// A NUL-terminated SMB1 string and what follows it.
fn smb1_string(b: &[u8], unicode: bool) -> (String, &[u8]) {
    if unicode {
        let end = b
            .chunks_exact(2)
            .position(|c| c == [0, 0])
            .map_or(b.len() & !1, |i| 2 * i);
        (utf16(&b[..end]), b.get(end + 2..).unwrap_or(&[]))
    } else {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        (ascii(&b[..end]), b.get(end + 1..).unwrap_or(&[]))
    }
}

/// The share path of an SMB1 TREE_CONNECT_ANDX request.
fn smb1_tree_path(m: &Smb1<'_>) -> Option<String> {
    let mut at = usize::from(le16(m.words, 6)?);
    if m.unicode && (m.bytes_at + at) % 2 == 1 {
        at += 1;
    }
    let (path, _) = smb1_string(m.bytes.get(at..)?, m.unicode);
    Some(path)
}

fn smb2_dialect(d: u16) -> String {
    match d {
        0x0202 => "SMB 2.0.2".into(),
        0x0210 => "SMB 2.1".into(),
        0x0300 => "SMB 3.0".into(),
        0x0302 => "SMB 3.0.2".into(),
        0x0311 => "SMB 3.1.1".into(),
        0x02FF => "SMB 2.???".into(),
        d => format!("SMB2 dialect 0x{d:04x}"),
    }
}

#[cfg(test)]
mod tests;
