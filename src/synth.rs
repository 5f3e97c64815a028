//! `wormsign synth`: a labelled synthetic outbreak capture (see `wormsign-synth`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use wormsign_synth::export::NetflowVersion;
use wormsign_synth::sflow::sample_capture;
use wormsign_synth::{write_dataset, Dataset, FlowLabel, Scenario, SynthConfig};

/// `wormsign synth`.
#[derive(Args, Debug)]
pub struct SynthArgs {
    /// drivelife, wannacry, stealthy or benign.
    #[arg(long, value_parser = |s: &str| s.parse::<Scenario>())]
    scenario: Scenario,
    /// Seed; the same seed and scale give byte-identical files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory for capture.pcap, labels.json and flow_labels.csv (and
    /// netflow.pcap). flow_labels.csv has one row per flow with a packet in the capture:
    /// community_id, ts (first captured packet, RFC 3339 UTC), proto, orig_h, orig_p
    /// (the side that opened it), resp_h, resp_p, label (exploit, implant_ping,
    /// brute_force_attempt, scan_probe, cnc or benign).
    #[arg(long, short)]
    out: PathBuf,
    /// Multiplies the benign background traffic (clients and sessions); the worm part
    /// stays the same.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Start the capture this many seconds into the scenario (at most 2700): earlier
    /// packets are not written, so sessions in flight appear without their handshake.
    /// The labels keep the whole scenario's ground truth.
    #[arg(long, default_value_t = 0)]
    capture_start: u64,
    /// Also write the same traffic as NetFlow export datagrams (v5, v9 or ipfix) to
    /// netflow.pcap: one record per direction of each flow, metered with idle 15 s and
    /// active 60 s timeouts, sent by 10.164.1.254:50000 to 10.164.1.250 (port 2055, or
    /// 4739 for IPFIX).
    #[arg(long, value_parser = |s: &str| s.parse::<NetflowVersion>())]
    netflow: Option<NetflowVersion>,
    /// Also write the capture as an sFlow v5 agent would sample it, 1 in RATE frames at
    /// random (seeded by --seed), to sflow.pcap: 128-byte sampled headers, up to 8
    /// samples a datagram, sent by 10.164.1.253 to 10.164.1.250 port 6343.
    #[arg(long, value_name = "RATE", value_parser = clap::value_parser!(u32).range(1..))]
    sflow: Option<u32>,
    /// No summary on stderr.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs `wormsign synth`.
pub fn synth(args: &SynthArgs) -> anyhow::Result<ExitCode> {
    let cfg = SynthConfig {
        scenario: args.scenario,
        seed: args.seed,
        scale: args.scale,
        capture_start: args.capture_start,
    };
    cfg.check().map_err(anyhow::Error::msg)?;
    let Dataset {
        output: out,
        exported,
    } = write_dataset(&args.out, &cfg, args.netflow)?;
    let sampled = args
        .sflow
        .map(|rate| {
            let capture = args.out.join("capture.pcap");
            sample_capture(&capture, rate, cfg.seed, &args.out.join("sflow.pcap"))
        })
        .transpose()?;
    if !args.quiet {
        eprintln!(
            "synth: {} seed {} scale {}: {} packets, {:.1} MB, {} infected hosts -> {}",
            cfg.scenario,
            cfg.seed,
            args.scale,
            out.packets,
            out.bytes as f64 / 1e6,
            out.labels.infected.len(),
            args.out.display()
        );
        let flows: Vec<String> = FlowLabel::ALL
            .iter()
            .zip(out.flow_labels)
            .map(|(l, n)| format!("{} {n}", l.as_str()))
            .collect();
        eprintln!("synth: flows labelled: {}", flows.join(", "));
        if let (Some(rate), Some(s)) = (args.sflow, sampled) {
            eprintln!(
                "synth: sflow 1 in {rate}: {} samples of {} frames in {} datagrams",
                s.samples, s.frames, s.datagrams
            );
        }
        if let (Some(version), Some(e)) = (args.netflow, exported) {
            eprintln!(
                "synth: netflow {}: {} datagrams, {} records ({} packets, {} bytes), {:.1} MB",
                version.name(),
                e.datagrams,
                e.records,
                e.packets,
                e.bytes,
                e.file_bytes as f64 / 1e6
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
