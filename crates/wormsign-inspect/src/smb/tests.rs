use super::*;
use crate::ntlmssp::tests::message as ntlm_authenticate;

/// A NetBIOS session message holding an SMB1 message.
fn smb1(command: u8, status: u32, response: bool, mid: u16, words: &[u8], bytes: &[u8]) -> Vec<u8> {
    let mut m = vec![0xFF, b'S', b'M', b'B', command];
    m.extend_from_slice(&status.to_le_bytes());
    m.push(if response { 0x98 } else { 0x18 });
    m.extend_from_slice(&0xC807u16.to_le_bytes()); // flags2: Unicode, NT status, ext. security
    m.extend_from_slice(&[0; 12]); // PID high, signature, reserved
    m.extend_from_slice(&[0; 6]); // TID, PID, UID
    m.extend_from_slice(&mid.to_le_bytes());
    m.push((words.len() / 2) as u8);
    m.extend_from_slice(words);
    m.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    m.extend_from_slice(bytes);
    nbss(m)
}

fn nbss(smb: Vec<u8>) -> Vec<u8> {
    let mut m = vec![0, 0];
    m.extend_from_slice(&(smb.len() as u16).to_be_bytes());
    m.extend(smb);
    m
}

/// TRANS2 (or TRANS) request words with this setup word and total data count.
fn trans_words(setup: &[u16], total_data: u16) -> Vec<u8> {
    let mut w = vec![0u8; 28];
    w[2..4].copy_from_slice(&total_data.to_le_bytes());
    w[26] = setup.len() as u8;
    for s in setup {
        w.extend_from_slice(&s.to_le_bytes());
    }
    w
}

/// NT_TRANSACT request words: total and sent data counts, function.
fn nt_transact_words(total_data: u32, data: u32, function: u16) -> Vec<u8> {
    let mut w = vec![0u8; 38];
    w[7..11].copy_from_slice(&total_data.to_le_bytes());
    w[27..31].copy_from_slice(&data.to_le_bytes());
    w[36..38].copy_from_slice(&function.to_le_bytes());
    w
}

fn run(messages: &[(bool, Vec<u8>)]) -> Vec<Found> {
    crate::parse_messages(&mut SmbParser::default(), messages)
}

fn facts(found: &[Found]) -> Vec<(Fact, Outcome)> {
    found.iter().map(|f| (f.fact, f.outcome)).collect()
}

#[test]
fn ntlmssp_login_takes_the_status_of_its_response() {
    let blob = ntlm_authenticate("administrator", "WORKGROUP", "KALI");
    let mut words = vec![0u8; 24];
    words[14..16].copy_from_slice(&(blob.len() as u16).to_le_bytes());
    let failed = run(&[
        (
            true,
            smb1(SMB1_SESSION_SETUP_ANDX, 0, false, 7, &words, &blob),
        ),
        (
            false,
            smb1(SMB1_SESSION_SETUP_ANDX, 0xC000_006D, true, 7, &[], &[]),
        ),
    ]);
    assert_eq!(facts(&failed), vec![(Fact::Login, Outcome::Failure)]);
    assert_eq!(failed[0].status, Some(0xC000_006D));
    assert_eq!(failed[0].user.as_deref(), Some("administrator"));
    assert_eq!(failed[0].domain.as_deref(), Some("WORKGROUP"));
    let ok = run(&[
        (
            true,
            smb1(SMB1_SESSION_SETUP_ANDX, 0, false, 8, &words, &blob),
        ),
        (false, smb1(SMB1_SESSION_SETUP_ANDX, 0, true, 8, &[], &[])),
    ]);
    assert_eq!(facts(&ok), vec![(Fact::Login, Outcome::Success)]);
}

#[test]
fn eternalblue_is_a_trans2_secondary_continuing_an_unfinished_nt_transact() {
    let nt = smb1(
        SMB1_NT_TRANSACT,
        0,
        false,
        64,
        &nt_transact_words(0x10FE8, 0x3D0, 0),
        &[],
    );
    let secondary = smb1(SMB1_TRANSACTION2_SECONDARY, 0, false, 64, &[0; 18], &[]);
    let found = run(&[
        (true, nt.clone()),
        (true, secondary.clone()),
        (true, secondary),
    ]);
    assert_eq!(facts(&found), vec![(Fact::EternalBlue, Outcome::Unknown)]);
    // A complete NT_TRANSACT, or a secondary of another multiplex id, is not the exploit.
    let whole = smb1(
        SMB1_NT_TRANSACT,
        0,
        false,
        64,
        &nt_transact_words(16, 16, 0),
        &[],
    );
    let other = smb1(SMB1_TRANSACTION2_SECONDARY, 0, false, 65, &[0; 18], &[]);
    let ordinary = smb1(SMB1_TRANSACTION2_SECONDARY, 0, false, 64, &[0; 18], &[]);
    assert!(run(&[(true, whole), (true, ordinary)]).is_empty());
    assert!(run(&[(true, nt), (true, other)]).is_empty());
}

#[test]
fn nt_rename_is_eternalchampion_once_per_session() {
    let rename = smb1(
        SMB1_NT_TRANSACT,
        0,
        false,
        9,
        &nt_transact_words(0, 0, NT_TRANSACT_RENAME),
        &[],
    );
    assert_eq!(
        facts(&run(&[(true, rename.clone()), (true, rename)])),
        vec![(Fact::EternalChampion, Outcome::Unknown)]
    );
}

#[test]
fn write_andx_on_a_transaction_s_ids_is_eternalsynergy() {
    let trans = smb1(
        SMB1_TRANSACTION,
        0,
        false,
        12,
        &trans_words(&[0x26], 0),
        &[],
    );
    let write_same = smb1(SMB1_WRITE_ANDX, 0, false, 12, &[0; 24], &[]);
    let write_other = smb1(SMB1_WRITE_ANDX, 0, false, 13, &[0; 24], &[]);
    assert_eq!(
        facts(&run(&[(true, trans.clone()), (true, write_same)])),
        vec![(Fact::EternalSynergy, Outcome::Unknown)]
    );
    assert!(run(&[(true, trans), (true, write_other)]).is_empty());
}

#[test]
fn doublepulsar_reply_id_says_whether_the_implant_is_there() {
    // WannaCry's ping: Timeout 0x00ee3401, whose bytes sum to 0x23.
    let mut ping_words = trans_words(&[TRANS2_SESSION_SETUP], 0);
    ping_words[12..16].copy_from_slice(&0x00ee_3401u32.to_le_bytes());
    let ping = smb1(SMB1_TRANSACTION2, 0, false, 65, &ping_words, &[]);
    let present = smb1(SMB1_TRANSACTION2, 0xC000_0002, true, 81, &[], &[]);
    let absent = smb1(SMB1_TRANSACTION2, 0xC000_0002, true, 65, &[], &[]);
    let found = run(&[(true, ping.clone()), (false, present)]);
    assert_eq!(facts(&found), vec![(Fact::DoublePulsar, Outcome::Present)]);
    assert_eq!(found[0].detail.as_deref(), Some("ping"));
    assert_eq!(
        facts(&run(&[(true, ping.clone()), (false, absent)])),
        vec![(Fact::DoublePulsar, Outcome::Absent)]
    );
    let mut exec_words = trans_words(&[TRANS2_SESSION_SETUP], 4096);
    exec_words[12..16].copy_from_slice(&0x0000_00c8u32.to_le_bytes());
    let exec = smb1(SMB1_TRANSACTION2, 0, false, 66, &exec_words, &[]);
    // The implant answers bad parameters with the id moved by 0x20: still there.
    let bad_params = smb1(SMB1_TRANSACTION2, 0xC000_0002, true, 66 + 0x20, &[], &[]);
    let found = run(&[(true, exec.clone()), (false, bad_params)]);
    assert_eq!(facts(&found), vec![(Fact::DoublePulsar, Outcome::Present)]);
    assert_eq!(found[0].detail.as_deref(), Some("exec"));
    assert_eq!(
        facts(&run(&[(true, exec)])),
        vec![(Fact::DoublePulsar, Outcome::Unknown)]
    );
}

#[test]
fn peek_named_pipe_on_fid_zero_probes_for_ms17_010() {
    let probe = smb1(
        SMB1_TRANSACTION,
        0,
        false,
        70,
        &trans_words(&[TRANS_PEEK_NMPIPE, 0], 0),
        &[],
    );
    let vulnerable = smb1(
        SMB1_TRANSACTION,
        STATUS_INSUFF_SERVER_RESOURCES,
        true,
        70,
        &[],
        &[],
    );
    let patched = smb1(SMB1_TRANSACTION, 0xC000_0022, true, 70, &[], &[]);
    assert_eq!(
        facts(&run(&[(true, probe.clone()), (false, vulnerable)])),
        vec![(Fact::Ms17Probe, Outcome::Vulnerable)]
    );
    assert_eq!(
        facts(&run(&[(true, probe), (false, patched)])),
        vec![(Fact::Ms17Probe, Outcome::NotVulnerable)]
    );
}

#[test]
fn mid_stream_bytes_are_skipped_to_the_next_smb_header() {
    let mut bytes = b"tail of an earlier message".to_vec();
    let at = bytes.len();
    bytes.extend(smb1(SMB1_NEGOTIATE, 0, false, 1, &[], &[]));
    assert_eq!(frame(&bytes), Framing::Skip(at));
    assert!(matches!(frame(&bytes[at..]), Framing::Message(_)));
    // Encrypted SMB3 is a message like any other (cleartext may follow it).
    assert_eq!(frame(b"\0\0\0\x40\xfdSMB"), Framing::Message(0x44));
}

#[test]
fn smb2_negotiate_session_setup_and_tree_connect() {
    fn smb2(command: u16, status: u32, response: bool, message_id: u64, body: &[u8]) -> Vec<u8> {
        let mut m = b"\xfeSMB".to_vec();
        m.extend_from_slice(&64u16.to_le_bytes());
        m.extend_from_slice(&[0, 0]);
        m.extend_from_slice(&status.to_le_bytes());
        m.extend_from_slice(&command.to_le_bytes());
        m.extend_from_slice(&[0, 0]);
        m.extend_from_slice(&u32::from(response).to_le_bytes());
        m.extend_from_slice(&[0; 4]);
        m.extend_from_slice(&message_id.to_le_bytes());
        m.resize(64, 0);
        m.extend_from_slice(body);
        nbss(m)
    }
    let blob = ntlm_authenticate("bob", "CORP", "PC1");
    let mut setup = vec![0u8; 24];
    setup[12..14].copy_from_slice(&88u16.to_le_bytes());
    setup[14..16].copy_from_slice(&(blob.len() as u16).to_le_bytes());
    setup.extend(&blob);
    let path: Vec<u8> = r"\\srv\IPC$"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let mut tree = vec![9, 0, 0, 0, 72, 0, path.len() as u8, 0];
    tree.extend(&path);
    let found = run(&[
        (
            false,
            smb2(SMB2_NEGOTIATE, 0, true, 0, &[65, 0, 1, 0, 0x11, 3]),
        ),
        (true, smb2(SMB2_SESSION_SETUP, 0, false, 2, &setup)),
        (false, smb2(SMB2_SESSION_SETUP, 0, true, 2, &[])),
        (true, smb2(SMB2_TREE_CONNECT, 0, false, 3, &tree)),
        (false, smb2(SMB2_TREE_CONNECT, 0xC000_0022, true, 3, &[])),
    ]);
    assert_eq!(
        facts(&found),
        vec![
            (Fact::Dialect, Outcome::Success),
            (Fact::Login, Outcome::Success),
            (Fact::TreeConnect, Outcome::Failure)
        ]
    );
    assert_eq!(found[0].detail.as_deref(), Some("SMB 3.1.1"));
    assert_eq!(found[1].user.as_deref(), Some("bob"));
    assert_eq!(found[2].detail.as_deref(), Some(r"\\srv\IPC$"));
}
