//! The one hostile template shape `synthetic.rs` leaves out: an IPFIX template of
//! 10 000 plain (non-enterprise) fields. (Zero-length fields in v9 and IPFIX, and
//! v9's 10 000-field template, are in `synthetic.rs`; its IPFIX case uses 6 001
//! enterprise fields, as 10 000 of those would not fit a 65 535-byte message.)

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{ipfix, set, tpl};
use wormsign_netflow::NetflowDecoder;

#[test]
fn ipfix_ten_thousand_plain_fields_is_bounded() {
    let start = Instant::now();
    let from: SocketAddr = "172.16.0.1:50000".parse().unwrap();
    let mut dec = NetflowDecoder::default();
    let mut out = Vec::new();
    // 9 999 zero-length fields and one 1-byte protocol field: 40 008 bytes of template.
    let mut fields = vec![(999u16, 0u16); 9_999];
    fields.push((4, 1));
    let p = ipfix(0, 1, 1_700_000_000, &[set(2, &tpl(256, &fields), 0)]);
    assert!(p.len() > 40_000);
    dec.decode(from, 0, &p, &mut out);
    assert_eq!(dec.stats().templates, 1);
    // 20 000 one-byte records: each must not cost a walk over 10 000 fields.
    let p = ipfix(1, 1, 1_700_000_000, &[set(256, &[17u8; 20_000], 0)]);
    dec.decode(from, 0, &p, &mut out);
    assert_eq!(out.len(), 20_000);
    assert!(out.iter().all(|r| r.proto == 17));
    assert_eq!(dec.stats().malformed, 0);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
}
