//! `seedgen OUT INPUT...`: builds seed corpora for the fuzz targets from captures.
//!
//! INPUT is a capture file or a directory searched recursively. Writes, under OUT:
//! - `capture/`: each file's first 64 KiB (and of its decompressed content, if
//!   compressed);
//! - `decode/`: frames as `[link type u16 BE][frame]`, a few per kind of packet;
//! - `dns/`: UDP and TCP payloads to or from port 53, and DHCP (67, 68) and NetBIOS name
//!   service (137) datagrams;
//! - `netflow/`: NetFlow/IPFIX payloads framed as the netflow target reads them
//!   (`[u16 BE: exporter bit | length][datagram]`), each alone and each file's whole
//!   sequence in one seed (so data follows its template);
//! - `inspect/`: each SMB/TDS/RDP TCP session's segments in capture order, framed as the
//!   inspect target reads them (`[selector]` then `[flags][u16 BE length][payload]`);
//! - `findings/`: what each of two detection parts finds over the file's flows under the
//!   findings target's rules, as the bytes a Spark task sends the driver
//!   (`PartFindings::to_bytes`), framed as the target reads them: each half alone and
//!   both together.
//!
//! Files are named by a hash of their content, so reruns do not duplicate seeds.
//! Unreadable or non-capture inputs are skipped with a message.

use std::collections::{hash_map::DefaultHasher, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use wormsign_capture::{CaptureReader, Chunk};
use wormsign_decode::{decode, Decoded};
use wormsign_flow::{FlowConfig, FlowRecord, FlowTable};

// The fuzz targets' own code, for the findings target's rules and framing.
#[allow(dead_code)]
#[path = "../../replay.rs"]
mod replay;

/// Largest seed: larger ones slow every execution of the fuzzer.
const MAX_SEED: usize = 64 << 10;
/// Frames kept per file for each kind of packet (see `shape`).
const PER_SHAPE: usize = 3;
/// DNS payloads and single NetFlow datagrams kept per file.
const PER_FILE: usize = 100;

struct Out {
    dir: PathBuf,
    written: HashMap<&'static str, usize>,
}

impl Out {
    fn write(&mut self, target: &'static str, bytes: &[u8]) {
        let mut h = DefaultHasher::new();
        bytes.hash(&mut h);
        let dir = self.dir.join(target);
        let path = dir.join(format!("{:016x}", h.finish()));
        if path.exists() {
            return;
        }
        std::fs::create_dir_all(&dir).expect("creating the corpus directory");
        std::fs::write(&path, bytes).expect("writing a seed");
        *self.written.entry(target).or_default() += 1;
    }
}

fn files(path: &Path, out: &mut Vec<PathBuf>) {
    match std::fs::read_dir(path) {
        Ok(rd) => {
            let mut entries: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            entries.sort();
            for e in entries {
                files(&e, out);
            }
        }
        Err(_) if path.is_file() => out.push(path.to_path_buf()),
        Err(e) => eprintln!("seedgen: skipping {}: {e}", path.display()),
    }
}

fn decompressed(bytes: &[u8]) -> Option<Vec<u8>> {
    let reader: Box<dyn Read> = match bytes {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(bytes)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Box::new(zstd::stream::read::Decoder::new(bytes).ok()?),
        _ => return None,
    };
    let mut plain = Vec::new();
    // A cut or damaged stream still gives its prefix.
    let _ = reader.take(MAX_SEED as u64).read_to_end(&mut plain);
    Some(plain)
}

/// A coarse kind of packet: frames of the same kind exercise much the same code.
fn shape(link_type: u16, d: &Decoded) -> String {
    match d {
        Decoded::Ip(p) => format!(
            "{link_type} {:?} {} {} {} {:?} {:?} {} {} {}",
            p.tunnel.map(|t| t.kind),
            p.src.is_ipv4(),
            p.proto,
            p.has_ports,
            p.vlan.is_some(),
            p.inner_vlan.is_some(),
            p.fragment.is_some(),
            p.truncated,
            p.src_port.min(p.dst_port).min(1024),
        ),
        other => format!("{link_type} {other:?}"),
    }
}

fn is_netflow(payload: &[u8]) -> bool {
    matches!(payload, [0, 5 | 9 | 10, ..])
}

fn frame_netflow(exporter_bit: u16, datagram: &[u8], into: &mut Vec<u8>) {
    let len = datagram.len().min(0x7fff);
    into.extend_from_slice(&((exporter_bit << 15) | len as u16).to_be_bytes());
    into.extend_from_slice(&datagram[..len]);
}

fn seed_file(path: &Path, out: &mut Out) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    // Even a file the reader rejects (a headerless pcapng, say) is a good container seed.
    out.write("capture", &bytes[..bytes.len().min(MAX_SEED)]);
    if let Some(plain) = decompressed(&bytes) {
        out.write("capture", &plain);
    }
    let mut reader =
        CaptureReader::new(Box::new(std::io::Cursor::new(bytes))).map_err(|e| e.to_string())?;
    let mut shapes: HashMap<String, usize> = HashMap::new();
    let mut dns = HashSet::new();
    let mut netflow_single = HashSet::new();
    let mut exporters: Vec<IpAddr> = Vec::new();
    let mut sequence = Vec::new();
    let mut sessions: HashMap<(IpAddr, u16, IpAddr, u16), Vec<u8>> = HashMap::new();
    let mut table = FlowTable::new(FlowConfig::default());
    let (mut flows, mut packets) = (Vec::new(), 0);
    let mut chunk = Chunk::default();
    loop {
        // Damage ends the file; what was read before it still makes seeds.
        let more = reader.read_chunk(&mut chunk, 1 << 20).unwrap_or(false);
        for (meta, frame) in chunk.iter() {
            packets += 1;
            let d = decode(meta.link_type, frame);
            let n = shapes.entry(shape(meta.link_type, &d)).or_default();
            if *n < PER_SHAPE && frame.len() + 2 <= MAX_SEED {
                *n += 1;
                let mut seed = meta.link_type.to_be_bytes().to_vec();
                seed.extend_from_slice(frame);
                out.write("decode", &seed);
            }
            let Decoded::Ip(p) = d else { continue };
            table.observe(meta.ts_ns, packets, &p, &mut flows);
            let start = p.payload_offset as usize;
            let Some(payload) = frame.get(start..start + p.payload_captured as usize) else {
                continue;
            };
            if p.proto == 6 && p.has_ports {
                inspect_segment(&p, payload, &mut sessions);
            }
            if payload.is_empty() || !p.has_ports {
                continue;
            }
            let naming = [53, 67, 68, 137];
            if (p.proto == 6 || p.proto == 17)
                && (naming.contains(&p.src_port) || naming.contains(&p.dst_port))
                && dns.len() < PER_FILE
                && dns.insert(payload.to_vec())
            {
                out.write("dns", payload);
            }
            if p.proto == 17 && is_netflow(payload) {
                let i = match exporters.iter().position(|&e| e == p.src) {
                    Some(i) => i,
                    None => {
                        exporters.push(p.src);
                        exporters.len() - 1
                    }
                };
                let bit = (i % 2) as u16;
                if netflow_single.len() < PER_FILE && netflow_single.insert(payload.to_vec()) {
                    let mut seed = Vec::new();
                    frame_netflow(bit, payload, &mut seed);
                    out.write("netflow", &seed);
                }
                if sequence.len() + payload.len() + 2 <= MAX_SEED {
                    frame_netflow(bit, payload, &mut sequence);
                }
            }
        }
        if !more {
            break;
        }
    }
    if netflow_single.len() > 1 {
        out.write("netflow", &sequence);
    }
    let mut sessions: Vec<_> = sessions.into_iter().collect();
    sessions.sort();
    for (_, seed) in sessions.iter().take(PER_FILE) {
        out.write("inspect", seed);
    }
    flows.extend(table.flush());
    findings_seeds(&flows, out);
    Ok(())
}

/// The findings of each half of a two-part detection over `flows`, alone and together.
fn findings_seeds(flows: &[FlowRecord], out: &mut Out) {
    let halves = replay::part_findings(flows, 2);
    let seeds = [
        replay::framed(&[&halves[0]]),
        replay::framed(&[&halves[1]]),
        replay::framed(&[&halves[0], &halves[1]]),
    ];
    for seed in seeds.iter().filter(|s| s.len() <= MAX_SEED) {
        out.write("findings", seed);
    }
}

/// The inspect target's selector of a server port (0 SMB, 1 TDS, 2 RDP).
fn inspect_selector(port: u16) -> Option<u8> {
    match port {
        445 | 139 => Some(0),
        1433 => Some(1),
        3389 => Some(2),
        _ => None,
    }
}

/// Appends a TCP segment to its session's inspect seed, in order (flags: sent by the
/// client, FIN, RST).
fn inspect_segment(
    p: &wormsign_decode::PacketSummary,
    payload: &[u8],
    sessions: &mut HashMap<(IpAddr, u16, IpAddr, u16), Vec<u8>>,
) {
    let (key, from_client, selector) =
        match (inspect_selector(p.dst_port), inspect_selector(p.src_port)) {
            (Some(s), _) => ((p.src, p.src_port, p.dst, p.dst_port), true, s),
            (None, Some(s)) => ((p.dst, p.dst_port, p.src, p.src_port), false, s),
            _ => return,
        };
    let seed = sessions.entry(key).or_insert_with(|| vec![selector]);
    if payload.is_empty() && p.tcp_flags & 0x05 == 0 || seed.len() + payload.len() + 3 > MAX_SEED {
        return;
    }
    let flags = u8::from(from_client) | (p.tcp_flags & 1) << 1 | (p.tcp_flags & 4);
    seed.push(flags);
    seed.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    seed.extend_from_slice(payload);
}

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let Some((dir, inputs)) = args.split_first() else {
        eprintln!("usage: seedgen OUT_DIR INPUT...");
        std::process::exit(2);
    };
    let mut paths = Vec::new();
    for input in inputs {
        files(input, &mut paths);
    }
    let mut out = Out {
        dir: dir.clone(),
        written: HashMap::new(),
    };
    let mut skipped = 0;
    for path in &paths {
        // Manifests, labels and READMEs beside the captures.
        if path
            .extension()
            .is_some_and(|e| e == "tsv" || e == "json" || e == "md")
        {
            continue;
        }
        if let Err(e) = seed_file(path, &mut out) {
            skipped += 1;
            eprintln!("seedgen: {}: {e} (container seed only)", path.display());
        }
    }
    let mut counts: Vec<_> = out.written.into_iter().collect();
    counts.sort();
    eprintln!(
        "seedgen: {} inputs ({skipped} not readable as captures); new seeds: {counts:?}",
        paths.len()
    );
}
