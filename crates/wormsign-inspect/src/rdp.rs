//! RDP's connection setup ([MS-RDPBCGR] 2.2.1.1-2): the X.224 Connection Request with its
//! `Cookie: mstshash=` user name and the security protocols the client asks for, and the
//! Connection Confirm with the protocol the server selected or why it refused.
//!
//! Everything after the confirm is TLS, CredSSP or RDP's own encryption: whether a login
//! then succeeded cannot be seen, so brute force on RDP stays a matter of flow shapes.

use crate::{be16, le32, Fact, Found, Framing, Outcome, SessionParser};

const X224_CONNECTION_REQUEST: u8 = 0xE0;
const X224_CONNECTION_CONFIRM: u8 = 0xD0;
const NEG_REQ: u8 = 0x01;
const NEG_RSP: u8 = 0x02;
const NEG_FAILURE: u8 = 0x03;
const COOKIE: &[u8] = b"Cookie: mstshash=";

#[derive(Debug, Default)]
pub(crate) struct RdpParser {
    request: Option<(Option<String>, Option<u32>)>,
    done: bool,
}

impl SessionParser for RdpParser {
    fn frame(&self, buf: &[u8], _from_client: bool) -> Framing {
        if buf.len() < 4 {
            return Framing::NeedMore;
        }
        let len = usize::from(be16(buf, 2).unwrap_or(0));
        if buf[0] != 3 || buf[1] != 0 || len < 7 {
            return Framing::Opaque;
        }
        Framing::Message(len)
    }

    fn message(&mut self, msg: &[u8], _len: usize, from_client: bool, out: &mut Vec<Found>) {
        let (Some(&code), Some(var)) = (msg.get(5), msg.get(11..)) else {
            return;
        };
        match code & 0xF0 {
            X224_CONNECTION_REQUEST if from_client => {
                let (cookie, rest) = cookie(var);
                let requested = (rest.first() == Some(&NEG_REQ))
                    .then(|| le32(rest, 4))
                    .flatten();
                self.request = Some((cookie, requested));
            }
            X224_CONNECTION_CONFIRM if !from_client => {
                let (user, requested) = self.request.take().unwrap_or((None, None));
                let (outcome, status, selected) = match var.first() {
                    Some(&NEG_RSP) => (Outcome::Success, None, le32(var, 4)),
                    Some(&NEG_FAILURE) => (Outcome::Failure, le32(var, 4), None),
                    // A server that knows no negotiation speaks standard RDP security.
                    _ => (Outcome::Success, None, Some(0)),
                };
                out.push(Found {
                    user,
                    status,
                    detail: Some(describe(requested, selected)),
                    ..Found::new(Fact::RdpNegotiation, outcome)
                });
                self.done = true;
            }
            _ => {}
        }
    }

    fn done(&self) -> bool {
        self.done
    }

    fn finish(&mut self, out: &mut Vec<Found>) {
        if let Some((user, requested)) = self.request.take() {
            out.push(Found {
                user,
                detail: Some(describe(requested, None)),
                ..Found::new(Fact::RdpNegotiation, Outcome::Unknown)
            });
        }
    }
}

/// The `mstshash` cookie's user name, and the bytes after the cookie line.
fn cookie(var: &[u8]) -> (Option<String>, &[u8]) {
    let Some(line_end) = var.windows(2).position(|w| w == b"\r\n") else {
        return (None, var);
    };
    let rest = &var[line_end + 2..];
    let user = var[..line_end]
        .strip_prefix(COOKIE)
        .map(|u| String::from_utf8_lossy(&u[..u.len().min(256)]).into_owned());
    // A routing token ("Cookie: msts=") is a line too, with no user in it.
    if user.is_none() && !var.starts_with(b"Cookie: ") {
        return (None, var);
    }
    (user, rest)
}

/// "requested=tls+hybrid; selected=hybrid".
fn describe(requested: Option<u32>, selected: Option<u32>) -> String {
    let names = |p: Option<u32>| match p {
        None => "none".to_string(),
        Some(0) => "rdp".to_string(),
        Some(bits) => {
            const NAMES: [(u32, &str); 5] = [
                (1, "tls"),
                (2, "hybrid"),
                (4, "rdstls"),
                (8, "hybrid_ex"),
                (16, "rdsaad"),
            ];
            let v: Vec<&str> = NAMES
                .iter()
                .filter(|(b, _)| bits & b != 0)
                .map(|(_, n)| *n)
                .collect();
            if v.is_empty() {
                format!("0x{bits:x}")
            } else {
                v.join("+")
            }
        }
    };
    format!(
        "requested={}; selected={}",
        names(requested),
        names(selected)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tpkt(x224: &[u8]) -> Vec<u8> {
        let mut m = vec![3, 0];
        m.extend_from_slice(&((4 + x224.len()) as u16).to_be_bytes());
        m.extend_from_slice(x224);
        m
    }

    #[test]
    fn cookie_requested_and_selected_protocols() {
        let mut cr = vec![0, X224_CONNECTION_REQUEST, 0, 0, 0, 0, 0];
        cr.extend_from_slice(b"Cookie: mstshash=administr\r\n");
        cr.extend_from_slice(&[NEG_REQ, 0, 8, 0, 3, 0, 0, 0]);
        let cc = [
            0,
            X224_CONNECTION_CONFIRM,
            0,
            0,
            0,
            0,
            0,
            NEG_RSP,
            0,
            8,
            0,
            2,
            0,
            0,
            0,
        ];
        let mut p = RdpParser::default();
        let out = crate::parse_messages(&mut p, &[(true, tpkt(&cr)), (false, tpkt(&cc))]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].user.as_deref(), Some("administr"));
        assert_eq!(
            out[0].detail.as_deref(),
            Some("requested=tls+hybrid; selected=hybrid")
        );
        assert_eq!((out[0].outcome, out[0].status), (Outcome::Success, None));
        // After the confirm the session has nothing more to tell.
        assert!(p.done());
    }
}
