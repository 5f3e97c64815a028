//! SMB sessions as the wire carries them: SMB1 and SMB2/3 messages in NetBIOS session
//! messages, with NTLMSSP logins inside. The scripts a worm, a scanner, a password
//! guesser or an ordinary client run ([`ms17_010_session`], [`password_guesses`],
//! [`file_session`]) are lists of [`Turn`]s that [`crate`]'s TCP sessions carry.
//!
//! Layouts follow [MS-CIFS]/[MS-SMB] (SMB1: a 32-byte header, the parameter words, the
//! data bytes), [MS-SMB2] and [MS-NLMP]. The MS17-010 messages are what EternalBlue,
//! DoublePulsar and the WannaCry probe send: a `PeekNamedPipe` on FID 0, an
//! `NT_TRANSACT` announcing more data than it sends continued by `TRANS2_SECONDARY`s on
//! the same PID/MID/TID/UID, and `TRANS2 SESSION_SETUP`s whose Timeout bytes sum to the
//! command and whose reply moves the multiplex id by 0x10 when the implant answers.

use crate::bytes::{utf16, utf16z, Le};
use crate::wire::Rng;
use crate::{filler, ip_str, Ip, Turn};

const STATUS_SUCCESS: u32 = 0;
const STATUS_NOT_IMPLEMENTED: u32 = 0xC000_0002;
const STATUS_INVALID_HANDLE: u32 = 0xC000_0008;
const STATUS_MORE_PROCESSING_REQUIRED: u32 = 0xC000_0016;
const STATUS_LOGON_FAILURE: u32 = 0xC000_006D;
const STATUS_INSUFF_SERVER_RESOURCES: u32 = 0xC000_0205;

const SMB1_NEGOTIATE: u8 = 0x72;
const SMB1_SESSION_SETUP_ANDX: u8 = 0x73;
const SMB1_TREE_CONNECT_ANDX: u8 = 0x75;
const SMB1_TRANSACTION: u8 = 0x25;
const SMB1_WRITE_ANDX: u8 = 0x2F;
const SMB1_TRANSACTION2: u8 = 0x32;
const SMB1_TRANSACTION2_SECONDARY: u8 = 0x33;
const SMB1_NT_TRANSACT: u8 = 0xA0;

const SMB2_NEGOTIATE: u16 = 0;
const SMB2_SESSION_SETUP: u16 = 1;
const SMB2_TREE_CONNECT: u16 = 3;

/// `TRANS_PEEK_NMPIPE`, the MS17-010 check's TRANS subcommand (on FID 0).
const TRANS_PEEK_NMPIPE: u16 = 0x0023;
/// `TRANS2_SESSION_SETUP`, DoublePulsar's command channel.
const TRANS2_SESSION_SETUP: u16 = 0x000E;
/// DoublePulsar's reply moves the multiplex id by this when the implant is there.
const IMPLANT_MID_DELTA: u16 = 0x10;
/// TRANS2 Timeouts whose four bytes sum (mod 256) to DoublePulsar's ping (0x23) and
/// exec (0xC8) commands; the ping's is WannaCry's.
const PING_TIMEOUT: u32 = 0x00EE_3401;
const EXEC_TIMEOUT: u32 = 0x001A_8925;
/// The payload bytes one DoublePulsar exec request uploads.
const EXEC_CHUNK: usize = 4096;

/// Multiplex ids of the exploit's transaction, the ping and the upload (as WannaCry).
const EXPLOIT_MID: u16 = 64;
const PING_MID: u16 = 65;
const EXEC_MID: u16 = 66;
/// The process id WannaCry's SMB client uses.
const WORM_PID: u16 = 0xFEFF;

/// EternalBlue's NT_TRANSACT: 30 parameter bytes and 66 512 data bytes announced, 976
/// sent; the rest follows as TRANS2_SECONDARYs of 4 KiB (the first few of them here).
const EB_TOTAL_PARAMS: u32 = 30;
const EB_TOTAL_DATA: u32 = 66_512;
const EB_FIRST_DATA: usize = 976;
const EB_SECONDARY_DATA: usize = 4096;
const EB_SECONDARIES: usize = 3;

/// Dialects an SMB1 client offers (WannaCry's list); the server picks `NT LM 0.12`.
const DIALECTS: [&str; 6] = [
    "PC NETWORK PROGRAM 1.0",
    "LANMAN1.0",
    "Windows for Workgroups 3.1a",
    "LM1.2X002",
    "LANMAN2.1",
    "NT LM 0.12",
];
const NT_LM_0_12: u16 = 5;
/// SMB1 capabilities: extended security, unicode, NT status, large files and reads/writes.
const SMB1_CAPABILITIES: u32 = 0x8001_F3FD;
/// AndXCommand "none", reserved, AndXOffset 0: an AndX block that chains nothing.
const NO_ANDX: [u8; 4] = [0xFF, 0, 0, 0];
/// 2024-03-04T09:00:00Z as a Windows FILETIME.
const SERVER_TIME: u64 = (1_709_542_800 + 11_644_473_600) * 10_000_000;
const SERVER_GUID: [u8; 16] = *b"\x8f\x1d\x3a\x52\x6c\x07\x4e\x91\xa2\x5b\x0e\x33\x7d\xc4\x19\x60";
const SERVER_OS: &str = "Windows 7 Professional 7601 Service Pack 1";
const SERVER_LANMAN: &str = "Windows 7 Professional 6.1";

/// An SMB1 request's header ids.
#[derive(Clone, Copy, Debug)]
struct Ids {
    tid: u16,
    pid: u16,
    uid: u16,
    mid: u16,
}

impl Ids {
    fn mid(self, mid: u16) -> Ids {
        Ids { mid, ..self }
    }
}

/// A NetBIOS session message around `msg`.
fn nbss(msg: Vec<u8>) -> Vec<u8> {
    let n = msg.len();
    let mut m = vec![0, (n >> 16) as u8, (n >> 8) as u8, n as u8];
    m.extend(msg);
    m
}

/// An SMB1 message: the 32-byte header (flags 0x18 for a request, 0x98 for a reply;
/// flags2 0xC807: Unicode, NT status, extended security), the parameter words, the data
/// bytes.
fn smb1(command: u8, status: u32, reply: bool, ids: Ids, words: &[u8], bytes: &[u8]) -> Vec<u8> {
    let m = Le(b"\xffSMB".to_vec())
        .u8(command)
        .u32(status)
        .u8(if reply { 0x98 } else { 0x18 })
        .u16(0xC807)
        .raw(&[0; 12]) // PID high, signature, reserved
        .u16(ids.tid)
        .u16(ids.pid)
        .u16(ids.uid)
        .u16(ids.mid)
        .u8((words.len() / 2) as u8)
        .raw(words)
        .u16(bytes.len() as u16)
        .raw(bytes);
    nbss(m.0)
}

fn request(command: u8, ids: Ids, words: &Le, bytes: &Le) -> Vec<u8> {
    smb1(command, STATUS_SUCCESS, false, ids, &words.0, &bytes.0)
}

fn reply(command: u8, status: u32, ids: Ids, words: &Le, bytes: &Le) -> Vec<u8> {
    smb1(command, status, true, ids, &words.0, &bytes.0)
}

/// A reply with no words and no bytes (errors, interim responses).
fn bare_reply(command: u8, status: u32, ids: Ids) -> Vec<u8> {
    smb1(command, status, true, ids, &[], &[])
}

/// Offset of an SMB1 message's data bytes from its header, for `words` bytes of words.
fn bytes_at(words: usize) -> usize {
    32 + 1 + words + 2
}

/// NEGOTIATE offering [`DIALECTS`], answered with `NT LM 0.12` and extended security.
fn negotiate(ids: Ids) -> Turn {
    let mut dialects = Le::default();
    for d in DIALECTS {
        dialects = dialects.u8(2).raw(d.as_bytes()).u8(0);
    }
    let words = Le::default()
        .u16(NT_LM_0_12)
        .u8(0x03) // user-level security, encrypted passwords
        .u16(50) // MaxMpxCount
        .u16(1) // MaxNumberVcs
        .u32(16_644) // MaxBufferSize
        .u32(65_536) // MaxRawSize
        .u32(0) // SessionKey
        .u32(SMB1_CAPABILITIES)
        .u64(SERVER_TIME)
        .u16(0) // ServerTimeZone
        .u8(0); // ChallengeLength
    Turn {
        request: request(SMB1_NEGOTIATE, ids, &Le::default(), &dialects),
        reply: reply(
            SMB1_NEGOTIATE,
            STATUS_SUCCESS,
            ids,
            &words,
            &Le(SERVER_GUID.to_vec()),
        ),
    }
}

/// SESSION_SETUP_ANDX parameter words of a request: the 13-word NT LM 0.12 form
/// (`blob` None: passwords, here empty) or the 12-word extended-security form.
fn setup_words(blob: Option<usize>) -> Le {
    let w = Le(NO_ANDX.to_vec())
        .u16(16_644) // MaxBufferSize
        .u16(50) // MaxMpxCount
        .u16(0) // VcNumber
        .u32(0); // SessionKey
    match blob {
        Some(len) => w.u16(len as u16).u32(0).u32(SMB1_CAPABILITIES),
        None => w.u16(0).u16(0).u32(0).u32(0x0000_00D4),
    }
}

/// The strings that end a SESSION_SETUP_ANDX's bytes, aligned for Unicode from `at`.
fn native_strings(bytes: Le, at: usize, strings: &[&str]) -> Le {
    let mut b = bytes.align(at, 2);
    for s in strings {
        b = b.raw(&utf16z(s));
    }
    b
}

/// The null session: an anonymous SESSION_SETUP_ANDX, accepted with `uid`.
fn anonymous_login(ids: Ids, uid: u16) -> Turn {
    let bytes = native_strings(
        Le::default(),
        bytes_at(26),
        &["", "", "Windows 2000 2195", "Windows 2000 5.0"],
    );
    let answer = native_strings(
        Le::default(),
        bytes_at(6),
        &[SERVER_OS, SERVER_LANMAN, "WORKGROUP"],
    );
    Turn {
        request: request(SMB1_SESSION_SETUP_ANDX, ids, &setup_words(None), &bytes),
        reply: reply(
            SMB1_SESSION_SETUP_ANDX,
            STATUS_SUCCESS,
            Ids { uid, ..ids },
            &Le(NO_ANDX.to_vec()).u16(0),
            &answer,
        ),
    }
}

/// An extended-security SESSION_SETUP_ANDX carrying `blob`.
fn ntlm_setup_request(ids: Ids, blob: &[u8]) -> Vec<u8> {
    let bytes = native_strings(
        Le(blob.to_vec()),
        bytes_at(24),
        &[
            "Windows 7 Ultimate 7601 Service Pack 1",
            "Windows 7 Ultimate 6.1",
        ],
    );
    request(
        SMB1_SESSION_SETUP_ANDX,
        ids,
        &setup_words(Some(blob.len())),
        &bytes,
    )
}

/// The server's extended-security SESSION_SETUP_ANDX answer carrying `blob`.
fn ntlm_setup_reply(ids: Ids, status: u32, blob: &[u8]) -> Vec<u8> {
    let words = Le(NO_ANDX.to_vec()).u16(0).u16(blob.len() as u16);
    let bytes = native_strings(Le(blob.to_vec()), bytes_at(8), &[SERVER_OS, SERVER_LANMAN]);
    reply(SMB1_SESSION_SETUP_ANDX, status, ids, &words, &bytes)
}

/// TREE_CONNECT_ANDX to `path`, accepted with `tid` for a share of `service` (`IPC`,
/// `A:`) on `file_system`.
fn tree_connect(ids: Ids, tid: u16, path: &str, service: &str, file_system: &str) -> Turn {
    let words = Le(NO_ANDX.to_vec()).u16(0x0008).u16(1); // extended response; password 1 byte
    let bytes = Le::default()
        .u8(0)
        .align(bytes_at(8), 2)
        .raw(&utf16z(path))
        .raw(b"?????\0");
    let answer_words = Le(NO_ANDX.to_vec())
        .u16(0x0001) // OptionalSupport: search bits
        .u32(0x001F_01FF) // MaximalShareAccessRights
        .u32(0); // GuestMaximalShareAccessRights
    let answer = Le(service.as_bytes().to_vec())
        .u8(0)
        .align(bytes_at(14), 2)
        .raw(&utf16z(file_system));
    Turn {
        request: request(SMB1_TREE_CONNECT_ANDX, ids, &words, &bytes),
        reply: reply(
            SMB1_TREE_CONNECT_ANDX,
            STATUS_SUCCESS,
            Ids { tid, ..ids },
            &answer_words,
            &answer,
        ),
    }
}

/// The MS17-010 check: TRANS `PeekNamedPipe` on FID 0, answered
/// STATUS_INSUFF_SERVER_RESOURCES by a vulnerable server, STATUS_INVALID_HANDLE by a
/// patched one.
fn peek_named_pipe(ids: Ids, vulnerable: bool) -> Turn {
    let name = Le::default()
        .align(bytes_at(32), 2)
        .raw(&utf16z("\\PIPE\\"));
    let at = (bytes_at(32) + name.len()) as u16;
    let words = Le::default()
        .u16(0) // TotalParameterCount
        .u16(0) // TotalDataCount
        .u16(0xFFFF) // MaxParameterCount
        .u16(0xFFFF) // MaxDataCount
        .u8(0) // MaxSetupCount
        .u8(0)
        .u16(0) // Flags
        .u32(0) // Timeout
        .u16(0)
        .u16(0) // ParameterCount
        .u16(at) // ParameterOffset
        .u16(0) // DataCount
        .u16(at) // DataOffset
        .u8(2) // SetupCount
        .u8(0)
        .u16(TRANS_PEEK_NMPIPE)
        .u16(0); // FID
    let status = if vulnerable {
        STATUS_INSUFF_SERVER_RESOURCES
    } else {
        STATUS_INVALID_HANDLE
    };
    Turn {
        request: request(SMB1_TRANSACTION, ids, &words, &name),
        reply: bare_reply(SMB1_TRANSACTION, status, ids),
    }
}

/// EternalBlue: an NT_TRANSACT (function 0) announcing [`EB_TOTAL_DATA`] bytes of
/// extended-attribute list and sending the first [`EB_FIRST_DATA`] (interim reply),
/// continued by TRANS2_SECONDARYs with the same ids, which srv.sys takes for the NT
/// transaction's continuation.
fn eternalblue(ids: Ids) -> Vec<Turn> {
    let base = bytes_at(40);
    let pad = Le::default().align(base, 4);
    let param_at = base + pad.len();
    let params = pad.raw(&[0; EB_TOTAL_PARAMS as usize]).align(base, 4);
    let data_at = base + params.len();
    // The FEA list: its 64 KiB size, then empty entries (the overflow comes later).
    let mut fea = vec![0u8; EB_FIRST_DATA];
    fea[..4].copy_from_slice(&0x0001_0000u32.to_le_bytes());
    let words = Le::default()
        .u8(1) // MaxSetupCount
        .u16(0)
        .u32(EB_TOTAL_PARAMS)
        .u32(EB_TOTAL_DATA)
        .u32(EB_TOTAL_PARAMS) // MaxParameterCount
        .u32(0) // MaxDataCount
        .u32(EB_TOTAL_PARAMS) // ParameterCount
        .u32(param_at as u32)
        .u32(EB_FIRST_DATA as u32) // DataCount
        .u32(data_at as u32)
        .u8(1) // SetupCount
        .u16(0) // Function
        .u16(0); // Setup[0]
    let mut turns = vec![Turn {
        request: request(SMB1_NT_TRANSACT, ids, &words, &params.raw(&fea)),
        reply: bare_reply(SMB1_NT_TRANSACT, STATUS_SUCCESS, ids),
    }];
    for k in 0..EB_SECONDARIES {
        let displacement = EB_FIRST_DATA + k * EB_SECONDARY_DATA;
        turns.push(Turn::unanswered(trans2_secondary(ids, displacement)));
    }
    turns
}

/// A TRANS2_SECONDARY with [`EB_SECONDARY_DATA`] bytes at `displacement`.
fn trans2_secondary(ids: Ids, displacement: usize) -> Vec<u8> {
    let base = bytes_at(18);
    let pad = Le::default().align(base, 4);
    let data_at = base + pad.len();
    let words = Le::default()
        .u16(EB_TOTAL_PARAMS as u16)
        .u16(EB_TOTAL_DATA as u16) // the NT transaction's total, cut to 16 bits
        .u16(0) // ParameterCount
        .u16(0) // ParameterOffset
        .u16(0) // ParameterDisplacement
        .u16(EB_SECONDARY_DATA as u16)
        .u16(data_at as u16)
        .u16(displacement as u16)
        .u16(0); // FID
    request(
        SMB1_TRANSACTION2_SECONDARY,
        ids,
        &words,
        &pad.raw(&[0; EB_SECONDARY_DATA]),
    )
}

/// DoublePulsar's TRANS2 SESSION_SETUP with this Timeout (the command) and `data` (the
/// upload); the reply carries the multiplex id + 0x10 when `present`, else echoes it.
fn doublepulsar(ids: Ids, timeout: u32, data: &[u8], present: bool) -> Turn {
    let base = bytes_at(30);
    let pad = Le::default().align(base, 2);
    let param_at = base + pad.len();
    let data_at = param_at + 12;
    let words = Le::default()
        .u16(12) // TotalParameterCount
        .u16(data.len() as u16) // TotalDataCount
        .u16(1) // MaxParameterCount
        .u16(0) // MaxDataCount
        .u8(0) // MaxSetupCount
        .u8(0)
        .u16(0) // Flags
        .u32(timeout)
        .u16(0)
        .u16(12) // ParameterCount
        .u16(param_at as u16)
        .u16(data.len() as u16) // DataCount
        .u16(data_at as u16)
        .u8(1) // SetupCount
        .u8(0)
        .u16(TRANS2_SESSION_SETUP);
    let answered = if present {
        ids.mid(ids.mid + IMPLANT_MID_DELTA)
    } else {
        ids
    };
    Turn {
        request: request(SMB1_TRANSACTION2, ids, &words, &pad.raw(&[0; 12]).raw(data)),
        reply: bare_reply(SMB1_TRANSACTION2, STATUS_NOT_IMPLEMENTED, answered),
    }
}

/// What one MS17-010 session does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ms17 {
    /// The vulnerability check alone (a scanner; a worm finding a patched host).
    Probe { vulnerable: bool },
    /// Probe, EternalBlue, DoublePulsar's ping (the implant now answers) and the payload
    /// upload, which is the session's last turn.
    Infect,
    /// EternalBlue without a probe against a patched host: the ping finds no implant.
    BlindExploit,
    /// A host whose implant is already there: probe and ping, no exploit.
    ImplantCheck,
}

/// An MS17-010 session with `server`: negotiate, null session, `IPC$`, then `kind`.
pub(crate) fn ms17_010_session(kind: Ms17, server: Ip, rng: &mut Rng) -> Vec<Turn> {
    let (uid, tid) = (
        rng.range(0x0800, 0x4FFF) as u16,
        rng.range(0x0800, 0x4FFF) as u16,
    );
    let start = Ids {
        tid: 0,
        pid: WORM_PID,
        uid: 0,
        mid: 1,
    };
    let ipc = format!("\\\\{}\\IPC$", ip_str(server));
    let mut turns = vec![negotiate(start), anonymous_login(start.mid(2), uid)];
    turns.push(tree_connect(
        Ids { uid, ..start }.mid(3),
        tid,
        &ipc,
        "IPC",
        "",
    ));
    let ids = Ids { uid, tid, ..start };
    let probe = |vulnerable| peek_named_pipe(ids.mid(4), vulnerable);
    match kind {
        Ms17::Probe { vulnerable } => turns.push(probe(vulnerable)),
        Ms17::Infect => {
            turns.push(probe(true));
            turns.extend(eternalblue(ids.mid(EXPLOIT_MID)));
            turns.push(doublepulsar(ids.mid(PING_MID), PING_TIMEOUT, &[], true));
            let payload = filler(EXEC_CHUNK, rng.next() as u32);
            turns.push(doublepulsar(
                ids.mid(EXEC_MID),
                EXEC_TIMEOUT,
                &payload,
                true,
            ));
        }
        Ms17::BlindExploit => {
            turns.extend(eternalblue(ids.mid(EXPLOIT_MID)));
            turns.push(doublepulsar(ids.mid(PING_MID), PING_TIMEOUT, &[], false));
        }
        Ms17::ImplantCheck => {
            turns.push(probe(true));
            turns.push(doublepulsar(ids.mid(PING_MID), PING_TIMEOUT, &[], true));
        }
    }
    turns
}

/// A NEGOTIATE and its answer alone: what a honeypot shows a worm's SMB probe.
pub(crate) fn negotiate_only() -> Vec<Turn> {
    vec![negotiate(Ids {
        tid: 0,
        pid: WORM_PID,
        uid: 0,
        mid: 1,
    })]
}

// ---------------------------------------------------------------------------------------
// NTLMSSP ([MS-NLMP] 2.2.1).

const NTLM_UNICODE: u32 = 0x0000_0001;
/// Flags of NEGOTIATE, CHALLENGE and AUTHENTICATE: Unicode, NTLM, always sign,
/// extended session security, target info (CHALLENGE), version, 128-bit, key exchange.
const NTLM_FLAGS: u32 = 0xE288_8215 | NTLM_UNICODE;
const NTLM_CHALLENGE_FLAGS: u32 = NTLM_FLAGS | 0x0080_0000 | 0x0002_0000;
const NTLM_VERSION: [u8; 8] = [6, 1, 0xB1, 0x1D, 0, 0, 0, 0x0F];

/// Who logs in over NTLMSSP.
#[derive(Clone, Debug)]
pub(crate) struct Account {
    pub user: String,
    pub domain: String,
    pub workstation: String,
}

fn ntlm_negotiate() -> Vec<u8> {
    Le(b"NTLMSSP\0".to_vec())
        .u32(1)
        .u32(NTLM_FLAGS)
        .raw(&[0; 16]) // domain and workstation fields: empty
        .raw(&NTLM_VERSION)
        .0
}

/// A CHALLENGE from server `computer` of `domain`, with its target info (AV pairs).
fn ntlm_challenge(domain: &str, computer: &str, rng: &mut Rng) -> Vec<u8> {
    let target = utf16(domain);
    let mut info = Le::default();
    for (id, value) in [(2u16, domain), (1, computer)] {
        let v = utf16(value);
        info = info.u16(id).u16(v.len() as u16).raw(&v);
    }
    let info = info.u32(0); // MsvAvEOL
    const FIXED: u32 = 56;
    let info_at = FIXED + target.len() as u32;
    Le(b"NTLMSSP\0".to_vec())
        .u32(2)
        .u16(target.len() as u16)
        .u16(target.len() as u16)
        .u32(FIXED)
        .u32(NTLM_CHALLENGE_FLAGS)
        .u64(rng.next()) // server challenge
        .u64(0)
        .u16(info.len() as u16)
        .u16(info.len() as u16)
        .u32(info_at)
        .raw(&NTLM_VERSION)
        .raw(&target)
        .raw(&info.0)
        .0
}

/// An AUTHENTICATE for `account` with NTLMv1-sized (24-byte) responses.
fn ntlm_authenticate(account: &Account, rng: &mut Rng) -> Vec<u8> {
    let mut response = Le::default();
    for _ in 0..3 {
        response = response.u64(rng.next());
    }
    let lm = [0u8; 24];
    let fields: [&[u8]; 6] = [
        &lm,
        &response.0,
        &utf16(&account.domain),
        &utf16(&account.user),
        &utf16(&account.workstation),
        &[],
    ];
    const FIXED: u32 = 72;
    let mut m = Le(b"NTLMSSP\0".to_vec()).u32(3);
    let mut at = FIXED;
    for f in fields {
        m = m.u16(f.len() as u16).u16(f.len() as u16).u32(at);
        at += f.len() as u32;
    }
    m = m.u32(NTLM_FLAGS).raw(&NTLM_VERSION);
    for f in fields {
        m = m.raw(f);
    }
    m.0
}

// ---------------------------------------------------------------------------------------
// Password guessing and file sessions.

/// One login of a password-guessing session.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Guess<'a> {
    pub user: &'a str,
    pub accepted: bool,
}

/// An SMB1 session from `workstation` guessing passwords on `server`: each guess is an
/// NTLMSSP NEGOTIATE (answered STATUS_MORE_PROCESSING_REQUIRED with a CHALLENGE) and an
/// AUTHENTICATE, answered STATUS_LOGON_FAILURE or, for an accepted guess, STATUS_SUCCESS;
/// an accepted login connects to `ADMIN$` and writes `payload` bytes there.
pub(crate) fn password_guesses(
    server: Ip,
    workstation: &str,
    guesses: &[Guess<'_>],
    payload: usize,
    rng: &mut Rng,
) -> Vec<Turn> {
    let start = Ids {
        tid: 0,
        pid: rng.range(1000, 9000) as u16,
        uid: 0,
        mid: 1,
    };
    let mut turns = vec![negotiate(start)];
    let mut mid = 2;
    let mut next_mid = || {
        mid += 1;
        mid
    };
    for g in guesses {
        let uid = rng.range(0x0800, 0x4FFF) as u16;
        let challenge = ntlm_challenge("WORKGROUP", &server_name(server), rng);
        let ids = start.mid(next_mid());
        turns.push(Turn {
            request: ntlm_setup_request(ids, &ntlm_negotiate()),
            reply: ntlm_setup_reply(
                Ids { uid, ..ids },
                STATUS_MORE_PROCESSING_REQUIRED,
                &challenge,
            ),
        });
        let account = Account {
            user: g.user.into(),
            domain: "WORKGROUP".into(),
            workstation: workstation.into(),
        };
        let ids = Ids { uid, ..start }.mid(next_mid());
        let authenticate = ntlm_setup_request(ids, &ntlm_authenticate(&account, rng));
        let answer = if g.accepted {
            ntlm_setup_reply(ids, STATUS_SUCCESS, &[])
        } else {
            bare_reply(SMB1_SESSION_SETUP_ANDX, STATUS_LOGON_FAILURE, ids)
        };
        turns.push(Turn {
            request: authenticate,
            reply: answer,
        });
        if g.accepted {
            let tid = rng.range(0x0800, 0x4FFF) as u16;
            let admin = format!("\\\\{}\\ADMIN$", ip_str(server));
            turns.push(tree_connect(
                Ids { uid, ..start }.mid(next_mid()),
                tid,
                &admin,
                "A:",
                "NTFS",
            ));
            let ids = Ids { uid, tid, ..start };
            let salt = rng.next() as u32;
            for (k, off) in (0..payload).step_by(WRITE_CHUNK).enumerate() {
                let n = WRITE_CHUNK.min(payload - off);
                let data = filler(n, salt.wrapping_add(k as u32));
                turns.push(write_andx(ids.mid(next_mid()), off as u32, &data));
            }
            break;
        }
    }
    turns
}

/// Bytes one WRITE_ANDX of a payload drop carries.
const WRITE_CHUNK: usize = 4096;
/// The file a payload is written to (a FID the server handed out earlier).
const PAYLOAD_FID: u16 = 0x4000;

/// WRITE_ANDX of `data` at `offset` to the payload file, and its answer.
fn write_andx(ids: Ids, offset: u32, data: &[u8]) -> Turn {
    let base = bytes_at(28);
    let pad = Le::default().align(base, 2);
    let words = Le(NO_ANDX.to_vec())
        .u16(PAYLOAD_FID)
        .u32(offset)
        .u32(0) // Timeout
        .u16(0) // WriteMode
        .u16(0) // Remaining
        .u16(0) // DataLengthHigh
        .u16(data.len() as u16)
        .u16((base + pad.len()) as u16) // DataOffset
        .u32(0); // OffsetHigh
    let answer = Le(NO_ANDX.to_vec())
        .u16(data.len() as u16)
        .u16(0xFFFF) // Available
        .u16(0)
        .u16(0);
    Turn {
        request: request(SMB1_WRITE_ANDX, ids, &words, &pad.raw(data)),
        reply: reply(
            SMB1_WRITE_ANDX,
            STATUS_SUCCESS,
            ids,
            &answer,
            &Le::default(),
        ),
    }
}

/// The NetBIOS name a server answers with in its NTLMSSP CHALLENGE.
fn server_name(ip: Ip) -> String {
    format!("HOST-{}", ip[3])
}

/// An SMB2 message: the 64-byte header, then `body`.
fn smb2(command: u16, status: u32, reply: bool, ids: Smb2Ids, body: &Le) -> Vec<u8> {
    let m = Le(b"\xfeSMB".to_vec())
        .u16(64)
        .u16(1) // CreditCharge
        .u32(status)
        .u16(command)
        .u16(if reply { 1 } else { 31 }) // credits
        .u32(u32::from(reply)) // Flags: SERVER_TO_REDIR
        .u32(0) // NextCommand
        .u64(ids.message_id)
        .u32(0xFEFF) // process id
        .u32(ids.tree_id)
        .u64(ids.session_id)
        .raw(&[0; 16])
        .raw(&body.0);
    nbss(m.0)
}

#[derive(Clone, Copy, Debug)]
struct Smb2Ids {
    message_id: u64,
    session_id: u64,
    tree_id: u32,
}

/// An SMB2 request and its answer with the same ids.
fn smb2_turn(command: u16, status: u32, ids: Smb2Ids, request: &Le, answer: &Le) -> Turn {
    Turn {
        request: smb2(command, STATUS_SUCCESS, false, ids, request),
        reply: smb2(command, status, true, ids, answer),
    }
}

/// SMB 2.0.2 to 3.0.2 offered, 3.0.2 chosen.
fn smb2_negotiate(ids: Smb2Ids) -> Turn {
    let dialects = [0x0202u16, 0x0210, 0x0300, 0x0302];
    let mut req = Le::default()
        .u16(36)
        .u16(dialects.len() as u16)
        .u16(1) // SecurityMode: signing enabled
        .u16(0)
        .u32(0x7F) // Capabilities
        .raw(&[0x5A; 16]) // ClientGuid
        .u64(0); // ClientStartTime
    for d in dialects {
        req = req.u16(d);
    }
    let answer = Le::default()
        .u16(65)
        .u16(1) // SecurityMode
        .u16(0x0302)
        .u16(0)
        .raw(&SERVER_GUID)
        .u32(0x2F) // Capabilities
        .u32(8_388_608) // MaxTransactSize
        .u32(8_388_608) // MaxReadSize
        .u32(8_388_608) // MaxWriteSize
        .u64(SERVER_TIME)
        .u64(0) // ServerStartTime
        .u16(128) // SecurityBufferOffset
        .u16(0) // SecurityBufferLength
        .u32(0);
    smb2_turn(SMB2_NEGOTIATE, STATUS_SUCCESS, ids, &req, &answer)
}

/// SMB2 SESSION_SETUP carrying `blob`, answered with `status` and `answer_blob`.
fn smb2_session_setup(ids: Smb2Ids, blob: &[u8], status: u32, answer_blob: &[u8]) -> Turn {
    let req = Le::default()
        .u16(25)
        .u8(0) // Flags
        .u8(1) // SecurityMode
        .u32(1) // Capabilities: DFS
        .u32(0) // Channel
        .u16(64 + 24) // SecurityBufferOffset
        .u16(blob.len() as u16)
        .u64(0) // PreviousSessionId
        .raw(blob);
    let answer = Le::default()
        .u16(9)
        .u16(0) // SessionFlags
        .u16(64 + 8)
        .u16(answer_blob.len() as u16)
        .raw(answer_blob);
    smb2_turn(SMB2_SESSION_SETUP, status, ids, &req, &answer)
}

fn smb2_tree_connect(ids: Smb2Ids, path: &str) -> Turn {
    let path = utf16(path);
    let req = Le::default()
        .u16(9)
        .u16(0)
        .u16(64 + 8) // PathOffset
        .u16(path.len() as u16)
        .raw(&path);
    let answer = Le::default()
        .u16(16)
        .u8(1) // ShareType: disk
        .u8(0)
        .u32(0) // ShareFlags
        .u32(0) // Capabilities
        .u32(0x001F_01FF); // MaximalAccess
    smb2_turn(SMB2_TREE_CONNECT, STATUS_SUCCESS, ids, &req, &answer)
}

/// An encrypted SMB3 message (a TRANSFORM_HEADER and `n` bytes of ciphertext) of
/// `session_id`.
pub(crate) fn encrypted(n: usize, session_id: u64, salt: u32) -> Vec<u8> {
    let m = Le(b"\xfdSMB".to_vec())
        .raw(&filler(16, salt ^ 0x5167)) // Signature
        .raw(&filler(11, salt ^ 0x4E0C)) // Nonce (AES-128-CCM)
        .raw(&[0; 5])
        .u32(n as u32) // OriginalMessageSize
        .u16(0)
        .u16(1) // Flags: encrypted
        .u64(session_id)
        .raw(&filler(n, salt));
    nbss(m.0)
}

/// An ordinary SMB 3.0.2 session of `account` on `share` of `server`: negotiate, an
/// NTLMSSP login that succeeds, the tree connect, then `rounds` (request bytes, reply
/// bytes) of encrypted traffic.
pub(crate) fn file_session(
    server: Ip,
    share: &str,
    account: &Account,
    rounds: &[(usize, usize)],
    rng: &mut Rng,
) -> Vec<Turn> {
    let session_id = rng.next() | 1;
    let tree_id = rng.range(1, 16) as u32;
    let ids = |message_id: u64, session_id: u64, tree_id: u32| Smb2Ids {
        message_id,
        session_id,
        tree_id,
    };
    let challenge = ntlm_challenge("CORP", &server_name(server), rng);
    let mut turns = vec![
        smb2_negotiate(ids(0, 0, 0)),
        smb2_session_setup(
            ids(1, 0, 0),
            &ntlm_negotiate(),
            STATUS_MORE_PROCESSING_REQUIRED,
            &challenge,
        ),
        smb2_session_setup(
            ids(2, session_id, 0),
            &ntlm_authenticate(account, rng),
            STATUS_SUCCESS,
            &[],
        ),
        smb2_tree_connect(
            ids(3, session_id, tree_id),
            &format!("\\\\{}\\{share}", ip_str(server)),
        ),
    ];
    let salt = rng.next() as u32;
    for (k, &(up, down)) in rounds.iter().enumerate() {
        let salt = salt.wrapping_add(2 * k as u32);
        turns.push(Turn {
            request: encrypted(up, session_id, salt),
            reply: encrypted(down, session_id, salt ^ 1),
        });
    }
    turns
}
