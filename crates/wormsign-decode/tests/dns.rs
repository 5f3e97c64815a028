//! DNS parser tests with hand-built messages.

use wormsign_decode::dns::{self, DnsAnswer, DnsError, DnsMessage};

fn name(s: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for label in s.split('.').filter(|l| !l.is_empty()) {
        v.push(label.len() as u8);
        v.extend_from_slice(label.as_bytes());
    }
    v.push(0);
    v
}

fn header(id: u16, flags: u16, qd: u16, an: u16) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [id, flags, qd, an, 0, 0] {
        v.extend(x.to_be_bytes());
    }
    v
}

fn question(v: &mut Vec<u8>, qname: &[u8], qtype: u16) {
    v.extend_from_slice(qname);
    v.extend(qtype.to_be_bytes());
    v.extend(1u16.to_be_bytes());
}

fn rr(v: &mut Vec<u8>, owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) {
    v.extend_from_slice(owner);
    v.extend(rtype.to_be_bytes());
    v.extend(1u16.to_be_bytes());
    v.extend(ttl.to_be_bytes());
    v.extend((rdata.len() as u16).to_be_bytes());
    v.extend_from_slice(rdata);
}

const PTR_QNAME: [u8; 2] = [0xc0, 0x0c];
const RESPONSE: u16 = 0x8180; // QR, RD, RA

fn answer(rtype: u16, ttl: u32, data: &str) -> DnsAnswer {
    DnsAnswer {
        rtype,
        ttl,
        data: data.into(),
    }
}

#[test]
fn a_response_with_compression() {
    let mut m = header(0xbeef, RESPONSE, 1, 2);
    question(&mut m, &name("Example.COM"), 1);
    rr(&mut m, &PTR_QNAME, 1, 300, &[93, 184, 216, 34]);
    rr(&mut m, &PTR_QNAME, 1, 300, &[93, 184, 216, 35]);
    assert_eq!(
        dns::parse(&m),
        Ok(DnsMessage {
            id: 0xbeef,
            is_response: true,
            opcode: 0,
            rcode: 0,
            authoritative: false,
            truncated: false,
            recursion_desired: true,
            recursion_available: true,
            qname: Some("example.com".into()),
            qtype: 1,
            qclass: 1,
            answers: vec![
                answer(1, 300, "93.184.216.34"),
                answer(1, 300, "93.184.216.35"),
            ],
        })
    );
}

#[test]
fn aaaa_cname_mx_txt_and_others() {
    let mut m = header(1, RESPONSE | 0x0400, 1, 9);
    question(&mut m, &name("www.example.org"), 255);
    // CNAME www.example.org -> example.org (pointer to offset 16 = "example.org").
    rr(&mut m, &PTR_QNAME, 5, 60, &[0xc0, 16]);
    let ex = [0xc0, 16];
    let mut aaaa = [0u8; 16];
    aaaa[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    aaaa[15] = 1;
    rr(&mut m, &ex, 28, 60, &aaaa);
    let mut mx = 10u16.to_be_bytes().to_vec();
    mx.extend(b"\x04mail");
    mx.extend(ex);
    rr(&mut m, &ex, 15, 3600, &mx);
    rr(&mut m, &ex, 16, 1, b"\x07v=spf1 \x04-all\x03a\\\x01");
    rr(&mut m, &ex, 2, 5, &name("NS1.example.org"));
    rr(&mut m, &ex, 12, 5, &[0xc0, 12]);
    let mut srv = [0, 1, 0, 2, 0x13, 0xc4].to_vec();
    srv.extend(name("sip.example.org"));
    rr(&mut m, &ex, 33, 5, &srv);
    let mut soa = name("ns.example.org");
    soa.extend(name("hostmaster.example.org"));
    for x in [2024u32, 7200, 3600, 1209600, 300] {
        soa.extend(x.to_be_bytes());
    }
    rr(&mut m, &ex, 6, 5, &soa);
    rr(&mut m, &ex, 13, 5, &[1, b'x', 0]); // HINFO: generic form
    let msg = dns::parse(&m).unwrap();
    assert!(msg.authoritative);
    assert_eq!(msg.qname.as_deref(), Some("www.example.org"));
    assert_eq!(msg.qtype, 255);
    let e = "example.org";
    assert_eq!(
        msg.answers,
        vec![
            answer(5, 60, e),
            answer(28, 60, "2001:db8::1"),
            answer(15, 3600, "10 mail.example.org"),
            answer(16, 1, "v=spf1 -alla\\\\\\001"),
            answer(2, 5, "ns1.example.org"),
            answer(12, 5, "www.example.org"),
            answer(33, 5, "1 2 5060 sip.example.org"),
            answer(
                6,
                5,
                "ns.example.org hostmaster.example.org 2024 7200 3600 1209600 300"
            ),
            answer(13, 5, "\\# 3 017800"),
        ]
    );
}

#[test]
fn rdata_that_does_not_fit_its_type_is_generic() {
    let mut m = header(1, RESPONSE, 1, 3);
    question(&mut m, &name("a.b"), 1);
    rr(&mut m, &PTR_QNAME, 1, 1, &[1, 2, 3]); // A with 3 bytes
    rr(&mut m, &PTR_QNAME, 5, 1, b"\x03abc"); // CNAME name runs out of rdata
    rr(&mut m, &PTR_QNAME, 99, 1, &[]);
    let msg = dns::parse(&m).unwrap();
    let data: Vec<&str> = msg.answers.iter().map(|a| a.data.as_str()).collect();
    assert_eq!(data, ["\\# 3 010203", "\\# 4 03616263", ""]);
}

#[test]
fn name_escaping() {
    let mut m = header(7, 0x0100, 1, 0);
    let mut q = vec![5, b'A', b'.', b'\\', b' ', 0xff, 2, b'O', b'K'];
    q.push(0);
    question(&mut m, &q, 16);
    let msg = dns::parse(&m).unwrap();
    assert_eq!(msg.qname.as_deref(), Some("a\\.\\\\\\032\\255.ok"));
    assert!(!msg.is_response);
    assert!(msg.answers.is_empty());
}

#[test]
fn root_and_no_question() {
    let mut m = header(7, 0x0100, 1, 0);
    question(&mut m, &[0], 2);
    assert_eq!(dns::parse(&m).unwrap().qname.as_deref(), Some(""));
    let m = header(7, 0x0100, 0, 0);
    let msg = dns::parse(&m).unwrap();
    assert_eq!((msg.qname, msg.qtype, msg.qclass), (None, 0, 0));
}

#[test]
fn compression_pointer_loops_terminate_with_an_error() {
    // Pointer to itself.
    let mut m = header(1, 0, 1, 0);
    question(&mut m, &[0xc0, 12], 1);
    assert_eq!(dns::parse(&m), Err(DnsError::PointerLoop));
    // Two pointers pointing at each other.
    let mut m = header(1, 0, 1, 0);
    m.extend([0xc0, 14, 0xc0, 12, 0, 1, 0, 1]);
    assert_eq!(dns::parse(&m), Err(DnsError::PointerLoop));
    // A label followed by a pointer back to it: the name grows each round.
    let mut m = header(1, 0, 1, 0);
    m.extend([3, b'a', b'b', b'c', 0xc0, 12, 0, 1, 0, 1]);
    assert_eq!(dns::parse(&m), Err(DnsError::NameTooLong));
    // The same loop in an answer stops answer parsing but keeps the question.
    let mut m = header(1, RESPONSE, 1, 2);
    question(&mut m, &name("ok.test"), 1);
    rr(&mut m, &PTR_QNAME, 1, 1, &[1, 2, 3, 4]);
    let loop_at = m.len() as u8;
    rr(&mut m, &[0xc0, loop_at], 1, 1, &[1, 2, 3, 4]);
    let msg = dns::parse(&m).unwrap();
    assert_eq!(msg.qname.as_deref(), Some("ok.test"));
    assert_eq!(msg.answers.len(), 1);
}

#[test]
fn bad_labels_pointers_and_lengths() {
    // Length byte 64 (0x40 prefix): a label longer than 63.
    let mut m = header(1, 0, 1, 0);
    m.push(64);
    m.extend([b'a'; 64]);
    m.extend([0, 0, 1, 0, 1]);
    assert_eq!(dns::parse(&m), Err(DnsError::BadLabel));
    let mut m = header(1, 0, 1, 0);
    m.extend([0x80, 1, 0, 0, 1, 0, 1]);
    assert_eq!(dns::parse(&m), Err(DnsError::BadLabel));
    // Pointer past the end.
    let mut m = header(1, 0, 1, 0);
    m.extend([0xc1, 0, 0, 1, 0, 1]);
    assert_eq!(dns::parse(&m), Err(DnsError::BadPointer));
    // 255 bytes in wire format is the maximum.
    let long = |labels: &[usize]| {
        let mut m = header(1, 0, 1, 0);
        for &l in labels {
            m.push(l as u8);
            m.extend(std::iter::repeat_n(b'x', l));
        }
        m.extend([0, 0, 1, 0, 1]);
        m
    };
    let ok = dns::parse(&long(&[63, 63, 63, 61])).unwrap();
    assert_eq!(ok.qname.unwrap().len(), 253);
    assert_eq!(
        dns::parse(&long(&[63, 63, 63, 62])),
        Err(DnsError::NameTooLong)
    );
}

/// An answer's owner name is not kept, but it is still read as a name: one that points
/// outside the message, loops, or runs past 255 bytes ends the answers there.
#[test]
fn a_broken_owner_name_ends_the_answers() {
    let with_second_owner = |owner: &[u8]| {
        let mut m = header(1, RESPONSE, 1, 2);
        question(&mut m, &name("example.com"), 1);
        rr(&mut m, &PTR_QNAME, 1, 1, &[1, 1, 1, 1]);
        rr(&mut m, owner, 1, 1, &[2, 2, 2, 2]);
        dns::parse(&m).unwrap().answers
    };
    let first = vec![answer(1, 1, "1.1.1.1")];
    let both = vec![answer(1, 1, "1.1.1.1"), answer(1, 1, "2.2.2.2")];
    assert_eq!(with_second_owner(&name("Other.Example")), both);
    assert_eq!(with_second_owner(&[3, b'w', b'w', b'w', 0xc0, 12]), both);
    assert_eq!(
        with_second_owner(&[0xc3, 0xff]),
        first,
        "a pointer past the end"
    );
    // The owner points to itself: a pointer loop.
    let loop_at = 12 + name("example.com").len() + 4 + 2 + 10 + 4;
    let looped = [0xc0 | (loop_at >> 8) as u8, loop_at as u8];
    assert_eq!(with_second_owner(&looped), first, "a pointer loop");
    let mut long = Vec::new();
    for _ in 0..5 {
        long.push(63);
        long.extend([b'x'; 63]);
    }
    long.push(0);
    assert_eq!(with_second_owner(&long), first, "a name over 255 bytes");
    assert_eq!(with_second_owner(&[0x40]), first, "a reserved label type");
}

#[test]
fn truncated_messages() {
    assert_eq!(dns::parse(&[]), Err(DnsError::Truncated));
    assert_eq!(dns::parse(&[0; 11]), Err(DnsError::Truncated));
    let mut m = header(1, RESPONSE, 1, 2);
    question(&mut m, &name("example.com"), 1);
    for cut in 12..m.len() {
        assert_eq!(dns::parse(&m[..cut]), Err(DnsError::Truncated), "cut {cut}");
    }
    // Answers cut: the complete ones are kept.
    rr(&mut m, &PTR_QNAME, 1, 1, &[1, 1, 1, 1]);
    let one = m.len();
    rr(&mut m, &PTR_QNAME, 1, 1, &[2, 2, 2, 2]);
    assert_eq!(dns::parse(&m[..m.len() - 1]).unwrap().answers.len(), 1);
    assert_eq!(dns::parse(&m[..one]).unwrap().answers.len(), 1);
    assert_eq!(dns::parse(&m).unwrap().answers.len(), 2);
    assert_eq!(DnsError::Truncated.to_string(), "DNS message truncated");
}

#[test]
fn nxdomain() {
    let mut m = header(0x4242, 0x8183, 1, 0);
    question(&mut m, &name("nonexistent.invalid"), 28);
    let msg = dns::parse(&m).unwrap();
    assert_eq!(msg.rcode, 3);
    assert!(msg.is_response && msg.recursion_available);
    assert_eq!(msg.qtype, 28);
    assert!(msg.answers.is_empty());
}

#[test]
fn opcode_and_flags() {
    let mut m = header(1, 0x0800 | 0x0200, 1, 0); // inverse query, TC
    question(&mut m, &[0], 1);
    let msg = dns::parse(&m).unwrap();
    assert_eq!(
        (msg.opcode, msg.truncated, msg.recursion_desired),
        (1, true, false)
    );
}

#[test]
fn multiple_questions_are_skipped() {
    let mut m = header(1, RESPONSE, 2, 1);
    question(&mut m, &name("first.test"), 1);
    question(&mut m, &[0xc0, 18], 28); // "test"
    rr(&mut m, &PTR_QNAME, 1, 9, &[9, 9, 9, 9]);
    let msg = dns::parse(&m).unwrap();
    assert_eq!(msg.qname.as_deref(), Some("first.test"));
    assert_eq!(msg.answers, vec![answer(1, 9, "9.9.9.9")]);
}

#[test]
fn answers_are_capped() {
    let mut m = header(1, RESPONSE, 1, 100);
    question(&mut m, &name("many.test"), 1);
    for i in 0..100u8 {
        rr(&mut m, &PTR_QNAME, 1, 1, &[10, 0, 0, i]);
    }
    let msg = dns::parse(&m).unwrap();
    assert_eq!(msg.answers.len(), dns::MAX_ANSWERS);
    assert_eq!(msg.answers[63].data, "10.0.0.63");
}

#[test]
fn tcp_length_prefix() {
    let mut m = header(9, RESPONSE, 1, 1);
    question(&mut m, &name("tcp.test"), 1);
    rr(&mut m, &PTR_QNAME, 1, 1, &[4, 3, 2, 1]);
    let mut seg = (m.len() as u16).to_be_bytes().to_vec();
    seg.extend(&m);
    seg.extend(b"next message bytes");
    assert_eq!(dns::parse_tcp(&seg), dns::parse(&m));
    assert_eq!(dns::parse_tcp(&seg).unwrap().answers[0].data, "4.3.2.1");
    // Message continues in the next segment: the prefix is parsed.
    let partial = dns::parse_tcp(&seg[..2 + m.len() - 2]).unwrap();
    assert_eq!(partial.qname.as_deref(), Some("tcp.test"));
    assert!(partial.answers.is_empty());
    assert_eq!(dns::parse_tcp(&[0]), Err(DnsError::Truncated));
    assert_eq!(dns::parse_tcp(&[0, 0, 1, 2]), Err(DnsError::Truncated));
}

#[test]
fn qtype_names() {
    assert_eq!(dns::qtype_name(1), Some("A"));
    assert_eq!(dns::qtype_name(28), Some("AAAA"));
    assert_eq!(dns::qtype_name(5), Some("CNAME"));
    assert_eq!(dns::qtype_name(16), Some("TXT"));
    assert_eq!(dns::qtype_name(255), Some("ANY"));
    assert_eq!(dns::qtype_name(65), Some("HTTPS"));
    assert_eq!(dns::qtype_name(54), None);
    assert_eq!(dns::qtype_name(65280), None);
}
