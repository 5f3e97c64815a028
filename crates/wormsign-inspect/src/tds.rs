//! TDS ([MS-TDS]), the Microsoft SQL Server protocol: the LOGIN7 user and whether the
//! server answered LOGINACK or an ERROR token (18456: login failed).
//!
//! With "encrypt login only" the LOGIN7 travels inside TLS records while the server's
//! answer stays plain, so an encrypted login still has an outcome, without a user. A
//! session that is TLS throughout goes opaque.

use crate::{be16, le16, le32, non_empty, utf16, Fact, Found, Framing, Outcome, SessionParser};

const PRELOGIN: u8 = 0x12;
const LOGIN7: u8 = 0x10;
const TABULAR_RESULT: u8 = 0x04;
/// Packet types a client or server sends ([MS-TDS] 2.2.3.1.1).
const PACKET_TYPES: [u8; 11] = [
    0x01, 0x02, 0x03, 0x04, 0x06, 0x07, 0x08, 0x0E, 0x0F, 0x10, 0x11,
];
/// TLS record content types (change cipher spec, alert, handshake, application data).
const TLS_RECORDS: [u8; 4] = [0x14, 0x15, 0x16, 0x17];
const TLS_APPLICATION_DATA: u8 = 0x17;

const TOKEN_ERROR: u8 = 0xAA;
const TOKEN_LOGINACK: u8 = 0xAD;
/// Tokens with a two-byte length that may come before LOGINACK or ERROR.
const TOKENS_U16_LEN: [u8; 4] = [0xAA, 0xAB, 0xAD, 0xE3];

#[derive(Debug, Default)]
pub(crate) struct TdsParser {
    /// A login was sent and not yet answered: the user (None when encrypted).
    login: Option<Option<String>>,
    workstation: Option<String>,
    /// The login was answered: a connection logs in once, the rest is queries.
    answered: bool,
}

impl SessionParser for TdsParser {
    fn frame(&self, buf: &[u8], _from_client: bool) -> Framing {
        if buf.len() < 5 {
            return Framing::NeedMore;
        }
        if TLS_RECORDS.contains(&buf[0]) && buf[1] == 3 {
            return Framing::Message(5 + usize::from(be16(buf, 3).unwrap_or(0)));
        }
        if buf.len() < 8 {
            return Framing::NeedMore;
        }
        let len = usize::from(be16(buf, 2).unwrap_or(0));
        if len < 8 || !(PACKET_TYPES.contains(&buf[0]) || buf[0] == PRELOGIN) {
            return Framing::Opaque;
        }
        Framing::Message(len)
    }

    fn message(&mut self, msg: &[u8], _len: usize, from_client: bool, out: &mut Vec<Found>) {
        if TLS_RECORDS.contains(&msg[0]) && msg[1] == 3 {
            if from_client && msg[0] == TLS_APPLICATION_DATA && self.login.is_none() {
                self.login = Some(None);
            }
            return;
        }
        let body = &msg[8..];
        match msg[0] {
            LOGIN7 if from_client => {
                let field = |at: usize| -> Option<String> {
                    let (off, chars) = (
                        usize::from(le16(body, at)?),
                        usize::from(le16(body, at + 2)?),
                    );
                    non_empty(utf16(body.get(off..off + 2 * chars)?))
                };
                self.workstation = field(36);
                self.login = Some(field(40));
            }
            TABULAR_RESULT if !from_client && self.login.is_some() => {
                if let Some((outcome, status)) = login_result(body) {
                    self.answered = true;
                    let user = self.login.take().flatten();
                    out.push(Found {
                        user,
                        workstation: self.workstation.take(),
                        status,
                        ..Found::new(Fact::Login, outcome)
                    });
                }
            }
            _ => {}
        }
    }

    fn done(&self) -> bool {
        self.answered
    }

    fn finish(&mut self, out: &mut Vec<Found>) {
        if let Some(user) = self.login.take() {
            out.push(Found {
                user,
                workstation: self.workstation.take(),
                ..Found::new(Fact::Login, Outcome::Unknown)
            });
        }
    }
}

/// Walks the tokens of a login response: LOGINACK is success; an ERROR token (its
/// number as the status) without LOGINACK is failure. `None` when neither shows.
fn login_result(tokens: &[u8]) -> Option<(Outcome, Option<u32>)> {
    let mut at = 0;
    let mut error = None;
    // Every turn advances by at least three bytes.
    while let Some(&token) = tokens.get(at) {
        if TOKENS_U16_LEN.contains(&token) {
            let len = usize::from(le16(tokens, at + 1)?);
            let data = tokens.get(at + 3..at + 3 + len)?;
            match token {
                TOKEN_LOGINACK => return Some((Outcome::Success, None)),
                TOKEN_ERROR if error.is_none() => error = le32(data, 0),
                _ => {}
            }
            at += 3 + len;
        } else {
            // DONE ends the answer; any other token means the login is over and the
            // tokens that could tell have passed.
            break;
        }
    }
    error.map(|n| (Outcome::Failure, Some(n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut p = vec![kind, 1];
        p.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0, 1, 0]);
        p.extend_from_slice(body);
        p
    }

    pub(crate) fn login7(user: &str) -> Vec<u8> {
        let enc = |s: &str| {
            s.encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect::<Vec<u8>>()
        };
        let mut body = vec![0u8; 94];
        let (host, name) = (enc("APP-01"), enc(user));
        body[36..38].copy_from_slice(&94u16.to_le_bytes());
        body[38..40].copy_from_slice(&6u16.to_le_bytes());
        body[40..42].copy_from_slice(&(94 + host.len() as u16).to_le_bytes());
        body[42..44].copy_from_slice(&(user.len() as u16).to_le_bytes());
        body.extend(host);
        body.extend(name);
        packet(LOGIN7, &body)
    }

    fn run(messages: &[(bool, Vec<u8>)]) -> Vec<Found> {
        crate::parse_messages(&mut TdsParser::default(), messages)
    }

    #[test]
    fn loginack_is_success_and_error_18456_is_failure() {
        let ack = packet(TABULAR_RESULT, &[0xE3, 2, 0, 9, 9, 0xAD, 1, 0, 0x74, 0xFD]);
        let got = run(&[(true, login7("sa")), (false, ack)]);
        assert_eq!(
            (got[0].outcome, got[0].user.as_deref()),
            (Outcome::Success, Some("sa"))
        );
        assert_eq!(got[0].workstation.as_deref(), Some("APP-01"));

        let mut err = vec![0xAA, 8, 0];
        err.extend_from_slice(&18456u32.to_le_bytes());
        err.extend_from_slice(&[1, 14, 0, 0, 0xFD]);
        let got = run(&[(true, login7("sa")), (false, packet(TABULAR_RESULT, &err))]);
        assert_eq!(
            (got[0].outcome, got[0].status),
            (Outcome::Failure, Some(18456))
        );
    }

    #[test]
    fn an_unanswered_login_is_unknown_and_tls_throughout_is_opaque() {
        let got = run(&[(true, login7("sa"))]);
        assert_eq!(got[0].outcome, Outcome::Unknown);
        let p = TdsParser::default();
        assert_eq!(p.frame(b"GET / HTTP/1.1\r\n", true), Framing::Opaque);
    }
}
