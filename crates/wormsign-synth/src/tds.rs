//! TDS ([MS-TDS]) sessions as a SQL Server client and server exchange them in the clear:
//! PRELOGIN (encryption not supported on either side), LOGIN7 with the user name and
//! obfuscated password, the login answer (ENVCHANGE, LOGINACK, DONE; or ERROR 18456
//! "login failed", DONE), then SQL batches and their rows.

use crate::bytes::{utf16, Le};
use crate::Turn;

const SQL_BATCH: u8 = 0x01;
const TABULAR_RESULT: u8 = 0x04;
const LOGIN7: u8 = 0x10;
const PRELOGIN: u8 = 0x12;
/// Bytes of message in one TDS packet at most (packet size 4096 less the header).
const MAX_BODY: usize = 4096 - 8;
/// TDS 7.4, as LOGIN7 sends it (little-endian) and LOGINACK answers it (big-endian).
const TDS_7_4: u32 = 0x7400_0004;
/// SQL Server's "Login failed for user" error number.
pub(crate) const LOGIN_FAILED: u32 = 18_456;

const TOKEN_COLMETADATA: u8 = 0x81;
const TOKEN_ERROR: u8 = 0xAA;
const TOKEN_LOGINACK: u8 = 0xAD;
const TOKEN_ROW: u8 = 0xD1;
const TOKEN_ENVCHANGE: u8 = 0xE3;
const TOKEN_DONE: u8 = 0xFD;

/// A TDS message of `kind` cut into packets of at most [`MAX_BODY`] bytes: an 8-byte
/// header each (type, status 1 on the last, big-endian length, SPID 0, packet id, window
/// 0).
fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(body.len() + 16);
    let chunks: Vec<&[u8]> = if body.is_empty() {
        vec![body]
    } else {
        body.chunks(MAX_BODY).collect()
    };
    for (k, chunk) in chunks.iter().enumerate() {
        let last = k + 1 == chunks.len();
        m.push(kind);
        m.push(u8::from(last));
        m.extend_from_slice(&((chunk.len() + 8) as u16).to_be_bytes());
        m.extend_from_slice(&[0, 0, (k + 1) as u8, 0]);
        m.extend_from_slice(chunk);
    }
    m
}

/// A PRELOGIN option list (token, big-endian offset and length; then the data).
fn prelogin_options(options: &[(u8, &[u8])]) -> Vec<u8> {
    let mut at = options.len() * 5 + 1;
    let mut head = Vec::new();
    let mut data = Vec::new();
    for (token, value) in options {
        head.push(*token);
        head.extend_from_slice(&(at as u16).to_be_bytes());
        head.extend_from_slice(&(value.len() as u16).to_be_bytes());
        data.extend_from_slice(value);
        at += value.len();
    }
    head.push(0xFF);
    head.extend(data);
    head
}

/// PRELOGIN and the server's answer, neither side supporting encryption, so the login
/// goes in the clear.
fn prelogin() -> Turn {
    const ENCRYPT_NOT_SUP: u8 = 2;
    let client = prelogin_options(&[
        (0, &[0x0B, 0, 0x08, 0x34, 0, 0]), // version 11.0.2100
        (1, &[ENCRYPT_NOT_SUP]),
        (2, &[0]),          // instance
        (3, &[0, 0, 0, 0]), // thread id
        (4, &[0]),          // MARS off
    ]);
    let server = prelogin_options(&[
        (0, &[0x0F, 0, 0x0F, 0xA0, 0, 0]), // 15.0.4000
        (1, &[ENCRYPT_NOT_SUP]),
        (2, &[0]),
        (3, &[]),
        (4, &[0]),
    ]);
    Turn {
        request: message(PRELOGIN, &client),
        reply: message(TABULAR_RESULT, &server),
    }
}

/// A worm's or scanner's look at a SQL Server: the PRELOGIN exchange alone.
pub(crate) fn probe() -> Vec<Turn> {
    vec![prelogin()]
}

/// What a LOGIN7 says.
#[derive(Clone, Debug)]
pub(crate) struct Login<'a> {
    pub host: &'a str,
    pub user: &'a str,
    pub password: &'a str,
    pub app: &'a str,
    pub server: &'a str,
    pub database: &'a str,
}

/// The password as LOGIN7 carries it: each UTF-16 byte's nibbles swapped, XOR 0xA5.
fn obfuscated(password: &str) -> Vec<u8> {
    utf16(password)
        .into_iter()
        .map(|b| b.rotate_left(4) ^ 0xA5)
        .collect()
}

/// The LOGIN7 record: 94 bytes of fixed fields and (offset, length) pairs, then the
/// UTF-16 strings they point to.
fn login7(l: &Login<'_>) -> Vec<u8> {
    const FIXED: usize = 94;
    let fields: [(Vec<u8>, usize); 9] = [
        (utf16(l.host), l.host.encode_utf16().count()),
        (utf16(l.user), l.user.encode_utf16().count()),
        (obfuscated(l.password), l.password.encode_utf16().count()),
        (utf16(l.app), l.app.encode_utf16().count()),
        (utf16(l.server), l.server.encode_utf16().count()),
        (Vec::new(), 0), // extension
        (utf16("ODBC"), 4),
        (Vec::new(), 0), // language
        (utf16(l.database), l.database.encode_utf16().count()),
    ];
    let total = FIXED + fields.iter().map(|f| f.0.len()).sum::<usize>();
    let mut m = Le::default()
        .u32(total as u32)
        .u32(TDS_7_4)
        .u32(4096) // packet size
        .u32(0x0700_0000) // client program version
        .u32(4242) // client PID
        .u32(0) // connection id
        .u8(0xE0) // OptionFlags1: USE_DB, SET_LANG warnings, init db fatal
        .u8(0x03) // OptionFlags2: ODBC, language fatal
        .u8(0) // TypeFlags
        .u8(0) // OptionFlags3
        .u32(0) // client time zone
        .u32(0x0409); // client LCID
    let mut at = FIXED;
    for (bytes, chars) in &fields {
        m = m.u16(at as u16).u16(*chars as u16);
        at += bytes.len();
    }
    m = m
        .raw(&[0x02, 0, 0x0A, 0xA4, 1, 0x0C]) // ClientID: a MAC address
        .u16(at as u16)
        .u16(0) // SSPI
        .u16(at as u16)
        .u16(0) // AtchDBFile
        .u16(at as u16)
        .u16(0) // ChangePassword
        .u32(0); // cbSSPILong
    for (bytes, _) in &fields {
        m = m.raw(bytes);
    }
    message(LOGIN7, &m.0)
}

/// A B_VARCHAR: the length in characters as one byte, then UTF-16.
fn b_varchar(s: &str) -> Vec<u8> {
    let mut v = vec![s.encode_utf16().count() as u8];
    v.extend(utf16(s));
    v
}

/// A token with a two-byte length.
fn token(kind: u8, data: &[u8]) -> Vec<u8> {
    Le::default().u8(kind).u16(data.len() as u16).raw(data).0
}

/// DONE with `status` (0x10: the row count is valid; 0x02: error), the current command
/// and the row count.
fn done(status: u16, command: u16, rows: u64) -> Vec<u8> {
    Le::default()
        .u8(TOKEN_DONE)
        .u16(status)
        .u16(command)
        .u64(rows)
        .0
}

/// The server's answer to a login: ENVCHANGE (database), LOGINACK and DONE when
/// `accepted`; ERROR 18456 and DONE (error) otherwise.
fn login_answer(l: &Login<'_>, accepted: bool) -> Vec<u8> {
    let body = if accepted {
        let env = Le::default()
            .u8(1) // database
            .raw(&b_varchar(l.database))
            .raw(&b_varchar("master"));
        let ack = Le::default()
            .u8(1) // SQL interface
            .raw(&TDS_7_4.to_be_bytes())
            .raw(&b_varchar("Microsoft SQL Server"))
            .raw(&[15, 0, 0x0F, 0xA0]);
        let mut b = token(TOKEN_ENVCHANGE, &env.0);
        b.extend(token(TOKEN_LOGINACK, &ack.0));
        b.extend(done(0, 0, 0));
        b
    } else {
        let text = format!("Login failed for user '{}'.", l.user);
        let error = Le::default()
            .u32(LOGIN_FAILED)
            .u8(1) // state
            .u8(14) // class
            .u16(text.encode_utf16().count() as u16)
            .raw(&utf16(&text))
            .raw(&b_varchar(l.server))
            .raw(&b_varchar(""))
            .u32(1); // line number
        let mut b = token(TOKEN_ERROR, &error.0);
        b.extend(done(0x02, 0, 0));
        b
    };
    message(TABULAR_RESULT, &body)
}

/// A SQL batch of about `n` bytes: ALL_HEADERS (a transaction descriptor), then the text.
pub(crate) fn sql_batch(n: usize, salt: u32) -> Vec<u8> {
    let query = format!(
        "SELECT id, customer, status, total FROM dbo.orders WHERE region = {} AND id > {}",
        salt % 17,
        salt % 10_007
    );
    let text = pad_text(query, n / 2);
    let body = Le::default()
        .u32(22)
        .u32(18)
        .u16(2) // transaction descriptor
        .u64(0)
        .u32(1)
        .raw(&utf16(&text));
    message(SQL_BATCH, &body.0)
}

/// `s`, lengthened with a trailing comment to about `chars` characters.
fn pad_text(s: String, chars: usize) -> String {
    if s.len() + 6 >= chars {
        return s;
    }
    let mut t = s;
    t.push_str(" -- ");
    while t.len() < chars {
        t.push_str("orders ");
    }
    t
}

/// The rows of about `n` bytes answering a batch: COLMETADATA (one NVARCHAR column),
/// ROWs, DONE with the count.
pub(crate) fn result_rows(n: usize, salt: u32) -> Vec<u8> {
    let meta = Le::default()
        .u16(1) // columns
        .u32(0) // user type
        .u16(0x0009) // flags: nullable, updateable
        .u8(0xE7) // NVARCHAR
        .u16(8000)
        .raw(&[0x09, 0x04, 0xD0, 0x00, 0x34]) // collation
        .raw(&b_varchar("line"));
    let mut body = Le::default().u8(TOKEN_COLMETADATA).raw(&meta.0);
    let mut rows = 0u64;
    while body.len() < n.max(1) {
        let line = format!(
            "order {} shipped {:08x}",
            rows,
            salt.rotate_left(rows as u32)
        );
        let v = utf16(&line);
        body = body.u8(TOKEN_ROW).u16(v.len() as u16).raw(&v);
        rows += 1;
    }
    let body = body.raw(&done(0x10, 0xC1, rows));
    message(TABULAR_RESULT, &body.0)
}

/// The turns of [`login_session`] before its batches: PRELOGIN, LOGIN7.
pub(crate) const LOGIN_TURNS: usize = 2;

/// A session logging in as `login`: PRELOGIN, LOGIN7 and the answer ([`LOGIN_TURNS`]
/// turns), then (when `accepted`) `rounds` of batches and rows of about (request,
/// reply) bytes.
pub(crate) fn login_session(
    login: &Login<'_>,
    accepted: bool,
    rounds: &[(usize, usize)],
    salt: u32,
) -> Vec<Turn> {
    let mut turns = vec![
        prelogin(),
        Turn {
            request: login7(login),
            reply: login_answer(login, accepted),
        },
    ];
    if accepted {
        for (k, &(up, down)) in rounds.iter().enumerate() {
            let salt = salt.wrapping_add(k as u32);
            turns.push(Turn {
                request: sql_batch(up, salt),
                reply: result_rows(down, salt),
            });
        }
    }
    turns
}
