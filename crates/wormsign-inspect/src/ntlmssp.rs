//! The NTLMSSP AUTHENTICATE message inside an SMB session setup's security blob: who
//! is logging in ([MS-NLMP] 2.2.1.3). The blob is usually wrapped in SPNEGO; the
//! message is found by its `NTLMSSP\0` signature rather than by walking the ASN.1.

use crate::{ascii, le16, le32, non_empty, utf16};

const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";
const AUTHENTICATE: u32 = 3;
const NEGOTIATE_UNICODE: u32 = 0x1;

/// The names an AUTHENTICATE message carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Authenticate {
    pub user: Option<String>,
    pub domain: Option<String>,
    pub workstation: Option<String>,
}

/// The AUTHENTICATE message in `blob`, if it holds one.
pub(crate) fn authenticate(blob: &[u8]) -> Option<Authenticate> {
    let at = blob.windows(SIGNATURE.len()).position(|w| w == SIGNATURE)?;
    let m = &blob[at..];
    // The fixed part runs to the negotiate flags at 60.
    if m.len() < 64 || le32(m, 8)? != AUTHENTICATE {
        return None;
    }
    let unicode = le32(m, 60).is_some_and(|f| f & NEGOTIATE_UNICODE != 0);
    let field = |at: usize| -> Option<String> {
        let (len, off) = (usize::from(le16(m, at)?), le32(m, at + 4)? as usize);
        let bytes = m.get(off..off.checked_add(len)?)?;
        non_empty(if unicode { utf16(bytes) } else { ascii(bytes) })
    };
    Some(Authenticate {
        domain: field(28),
        user: field(36),
        workstation: field(44),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An AUTHENTICATE message with these names (UTF-16) and empty responses.
    pub(crate) fn message(user: &str, domain: &str, workstation: &str) -> Vec<u8> {
        let enc = |s: &str| {
            s.encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect::<Vec<u8>>()
        };
        let (d, u, w) = (enc(domain), enc(user), enc(workstation));
        let mut m = SIGNATURE.to_vec();
        m.extend_from_slice(&AUTHENTICATE.to_le_bytes());
        let mut off = 72u32;
        let mut fields = Vec::new();
        for bytes in [&[][..], &[][..], &d, &u, &w, &[][..]] {
            fields.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            fields.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            fields.extend_from_slice(&off.to_le_bytes());
            off += bytes.len() as u32;
        }
        m.extend_from_slice(&fields);
        m.extend_from_slice(&NEGOTIATE_UNICODE.to_le_bytes());
        m.resize(72, 0);
        m.extend_from_slice(&d);
        m.extend_from_slice(&u);
        m.extend_from_slice(&w);
        m
    }

    #[test]
    fn reads_the_names_behind_a_spnego_wrapper() {
        let mut blob = vec![0xa1, 0x81, 0x90, 0x30, 0x02];
        blob.extend(message("administrator", "CORP", "WKS-7"));
        let a = authenticate(&blob).unwrap();
        assert_eq!(a.user.as_deref(), Some("administrator"));
        assert_eq!(a.domain.as_deref(), Some("CORP"));
        assert_eq!(a.workstation.as_deref(), Some("WKS-7"));
    }

    #[test]
    fn names_pointing_outside_the_blob_are_absent_not_a_panic() {
        let mut m = message("u", "d", "w");
        m[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(authenticate(&m).unwrap().user, None);
        assert_eq!(authenticate(&m[..20]), None);
    }
}
