//! `wormsign`: the command line. Only this crate touches argv, stdout and the exit code;
//! the work is done by the library crates under `crates/` (see ARCHITECTURE.md).

mod bench_rules;
mod collect;
mod detect;
mod pipeline;
mod summary;
mod synth;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use wormsign_columnar::Partitioning;
use wormsign_flow::FlowConfig;

use pipeline::{Input, PipelineConfig, Progress};

#[derive(Parser)]
#[command(
    name = "wormsign",
    version,
    about = "Worm-outbreak flow analysis for captured traffic"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Build flows, DNS and ARP tables from captures and write them as Parquet.
    Analyze(AnalyzeArgs),
    /// Score detection rule sets (and parameter sweeps) against a labelled capture.
    BenchRules(bench_rules::BenchRulesArgs),
    /// Receive NetFlow v5/v9/IPFIX on a UDP socket into rolling Parquet flow files.
    Collect(collect::CollectArgs),
    /// Run worm-propagation detection over stored flows/dns/arp tables: alerts, hosts,
    /// propagation graph and a responder's report.
    Detect(detect::DetectArgs),
    /// Print the built-in detection rules as TOML (the format `--rules` reads).
    Rules,
    /// Generate a labelled synthetic outbreak capture (capture.pcap + labels.json).
    Synth(synth::SynthArgs),
}

#[derive(Args, Debug)]
struct AnalyzeArgs {
    /// Capture files or directories (searched recursively, in sorted order); `-` reads
    /// standard input. pcap and pcapng, optionally gzip- or zstd-compressed.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output directory for flows.parquet, dns.parquet and arp.parquet.
    #[arg(long, short)]
    out: PathBuf,
    /// Decode workers and flow shards (each), and Parquet encoding threads; default: all
    /// cores.
    #[arg(long)]
    threads: Option<usize>,
    /// Most live flows held at once (split evenly across shards); beyond it the least
    /// recently active flows are evicted and counted.
    #[arg(long, default_value_t = 4_000_000)]
    max_flows: usize,
    /// TCP idle timeout, seconds.
    #[arg(long, default_value_t = 300.0)]
    tcp_timeout: f64,
    /// UDP idle timeout, seconds.
    #[arg(long, default_value_t = 60.0)]
    udp_timeout: f64,
    /// ICMP and other-protocol idle timeout, seconds.
    #[arg(long, default_value_t = 60.0)]
    icmp_timeout: f64,
    /// Active timeout: longer flows are split into several records, seconds.
    #[arg(long, default_value_t = 1800.0)]
    active_timeout: f64,
    /// Also decode UDP datagrams to this port as NetFlow/IPFIX exports (repeatable;
    /// 2055, 9555, 9995, 9996 and 4739 always are).
    #[arg(long = "netflow-port", value_name = "PORT")]
    netflow_ports: Vec<u16>,
    /// Also read TCP PORT as PROTOCOL (smb, tds or rdp) for sessions.parquet, besides
    /// 445/139 (smb), 1433 (tds) and 3389 (rdp); repeatable, e.g. `--inspect-port tds=14330`.
    #[arg(long, value_name = "PROTOCOL=PORT", value_parser = parse_inspect_port)]
    inspect_port: Vec<(wormsign_inspect::Protocol, u16)>,
    /// Bytes of each direction of an SMB/TDS/RDP session read for sessions.parquet; 0 reads
    /// none (detection then rests on flow shapes only).
    #[arg(long, value_name = "BYTES", default_value_t = wormsign_inspect::InspectConfig::default().max_bytes)]
    inspect_bytes: u32,
    /// Also write the run summary as JSON to this file.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// No progress bar and no summary on stderr (warnings are still printed).
    #[arg(long, short)]
    quiet: bool,
    /// Write flows, dns and arp as Hive-partitioned datasets by UTC time of their `ts`:
    /// OUT/flows/day=YYYY-MM-DD[/hour=HH]/part-RUN-N.parquet. Runs over other inputs
    /// into the same OUT add files beside these, forming one table.
    #[arg(long, value_enum, value_name = "PERIOD")]
    partition_by: Option<PartitionBy>,
    /// Do not run detection on the outputs (no alerts, hosts, propagation or report files).
    #[arg(long)]
    no_detect: bool,
    #[command(flatten)]
    detect: detect::DetectOptions,
}

/// `--partition-by`: the time period of one partition directory.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum PartitionBy {
    Hour,
    Day,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.mode {
        Mode::Analyze(args) => analyze(&args),
        Mode::BenchRules(args) => bench_rules::bench_rules(&args),
        Mode::Collect(args) => collect::collect(&args),
        Mode::Detect(args) => detect::detect_cmd(&args),
        Mode::Rules => detect::rules_cmd(),
        Mode::Synth(args) => synth::synth(&args),
    };
    result.unwrap_or_else(|e| {
        eprintln!("wormsign: error: {e:#}");
        ExitCode::from(2)
    })
}

fn seconds_to_ns(name: &str, secs: f64) -> anyhow::Result<i64> {
    anyhow::ensure!(
        secs.is_finite() && secs > 0.0,
        "--{name} must be a positive number of seconds"
    );
    Ok((secs * 1e9).min(i64::MAX as f64) as i64)
}

fn analyze(args: &AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    // Rules are read first, so a bad rules file fails before a long run.
    let detect_config = if args.no_detect {
        None
    } else {
        Some(args.detect.config()?)
    };
    let inputs = expand_inputs(&args.inputs)?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    // The Parquet writer encodes columns on rayon's pool: --threads sizes it too. It
    // can only fail if the pool was already built, and then it is built already.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
    let flow = FlowConfig {
        tcp_idle_ns: seconds_to_ns("tcp-timeout", args.tcp_timeout)?,
        udp_idle_ns: seconds_to_ns("udp-timeout", args.udp_timeout)?,
        other_idle_ns: seconds_to_ns("icmp-timeout", args.icmp_timeout)?,
        active_ns: seconds_to_ns("active-timeout", args.active_timeout)?,
        max_flows: args.max_flows.max(1),
        ..FlowConfig::default()
    };
    let config = PipelineConfig {
        threads,
        flow,
        out_dir: args.out.clone(),
        metadata: parquet_metadata(&inputs, args),
        partitioning: args.partition_by.map(|p| match p {
            PartitionBy::Hour => Partitioning::Hour,
            PartitionBy::Day => Partitioning::Day,
        }),
        netflow_ports: wormsign_netflow::DEFAULT_PORTS
            .into_iter()
            .chain(args.netflow_ports.iter().copied())
            .collect(),
        inspect: inspect_config(args),
    };
    let total_bytes: u64 = inputs
        .iter()
        .filter_map(|i| match i {
            Input::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            Input::Stdin => None,
        })
        .sum();
    let progress = Progress::default();
    // The first SIGINT/SIGTERM asks the pipeline to stop reading and finish complete
    // outputs; a second one while it does so ends the process at once.
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&progress.stop))?;
        signal_hook::flag::register(signal, Arc::clone(&progress.stop))?;
    }
    let show_progress = !args.quiet && std::io::stderr().is_terminal();
    let finished = AtomicBool::new(false);
    let mut summary = std::thread::scope(|s| {
        if show_progress {
            s.spawn(|| draw_progress(&progress, total_bytes, &finished));
        }
        let result = pipeline::run(&inputs, &config, &progress);
        finished.store(true, Ordering::Relaxed);
        result
    })?;
    summary.wall = started.elapsed();
    summary.threads = threads;
    summary.input_bytes = progress.bytes.load(Ordering::Relaxed);

    let mut json = summary.to_json();
    let write_json = |json: &serde_json::Value| -> anyhow::Result<()> {
        if let Some(path) = &args.summary_json {
            let text = serde_json::to_string_pretty(json)?;
            std::fs::write(path, text + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    };
    // Nothing was readable: each input's problem is the error, one line each.
    let usable = summary.inputs_usable > 0;
    let level = if usable { "warning" } else { "error" };
    for w in &summary.warnings {
        eprintln!("wormsign: {level}: {w}");
    }
    let stopped = progress.stop.load(Ordering::Relaxed);
    if usable && !args.quiet {
        eprint!("{}", summary.render());
    }
    if !usable || stopped {
        write_json(&json)?;
        return Ok(ExitCode::from(if usable { 130 } else { 1 }));
    }
    // Detection reads the tables just written, so `wormsign detect DIR` later gives the
    // same results.
    if let Some(config) = &detect_config {
        let d = detect::run(&args.out, &args.out, config, args.quiet)?;
        json["detection"] = detect::stats_json(&d);
    }
    write_json(&json)?;
    Ok(ExitCode::SUCCESS)
}

fn draw_progress(progress: &Progress, total_bytes: u64, finished: &AtomicBool) {
    let bar = if total_bytes > 0 {
        indicatif::ProgressBar::new(total_bytes)
    } else {
        indicatif::ProgressBar::no_length()
    };
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
    )
    .expect("valid template");
    bar.set_style(style);
    let started = Instant::now();
    while !finished.load(Ordering::Relaxed) {
        bar.set_position(progress.bytes.load(Ordering::Relaxed));
        let packets = progress.packets.load(Ordering::Relaxed);
        let pps = packets as f64 / started.elapsed().as_secs_f64().max(1e-3);
        bar.set_message(format!("{packets} packets, {pps:.0} packets/s"));
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}

/// Expands directories recursively, in sorted order; keeps files and `-` as given.
fn expand_inputs(paths: &[PathBuf]) -> anyhow::Result<Vec<Input>> {
    let mut out = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            out.push(Input::Stdin);
        } else if path.is_dir() {
            walk_dir(path, &mut out)?;
        } else {
            anyhow::ensure!(
                path.exists(),
                "{}: no such file or directory",
                path.display()
            );
            out.push(Input::File(path.clone()));
        }
    }
    anyhow::ensure!(!out.is_empty(), "no files found in the inputs");
    Ok(out)
}

fn walk_dir(dir: &Path, out: &mut Vec<Input>) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk_dir(&path, out)?;
        } else if path.is_file() {
            out.push(Input::File(path));
        }
    }
    Ok(())
}

/// Provenance stored in every Parquet file's key-value metadata.
/// `smb=8445` → (SMB, 8445).
fn parse_inspect_port(s: &str) -> Result<(wormsign_inspect::Protocol, u16), String> {
    let (name, port) = s
        .split_once('=')
        .ok_or("expected PROTOCOL=PORT, e.g. tds=14330")?;
    let protocol = wormsign_inspect::Protocol::from_name(name)
        .ok_or_else(|| format!("unknown protocol {name:?}: smb, tds or rdp"))?;
    let port = port.parse().map_err(|e| format!("port {port:?}: {e}"))?;
    Ok((protocol, port))
}

fn inspect_config(args: &AnalyzeArgs) -> wormsign_inspect::InspectConfig {
    use wormsign_inspect::Protocol;
    let mut c = wormsign_inspect::InspectConfig {
        max_bytes: args.inspect_bytes,
        ..Default::default()
    };
    for &(protocol, port) in &args.inspect_port {
        match protocol {
            Protocol::Smb => c.smb_ports.push(port),
            Protocol::Tds => c.tds_ports.push(port),
            Protocol::Rdp => c.rdp_ports.push(port),
        }
    }
    if c.max_bytes == 0 {
        c.smb_ports.clear();
        c.tds_ports.clear();
        c.rdp_ports.clear();
    }
    c
}

fn parquet_metadata(inputs: &[Input], args: &AnalyzeArgs) -> Vec<(String, String)> {
    let names: Vec<String> = inputs.iter().map(Input::name).collect();
    let options = serde_json::json!({
        "max_flows": args.max_flows,
        "tcp_timeout": args.tcp_timeout,
        "udp_timeout": args.udp_timeout,
        "icmp_timeout": args.icmp_timeout,
        "active_timeout": args.active_timeout,
        "netflow_ports": args.netflow_ports,
        "inspect_ports": args.inspect_port.iter().map(|(p, port)| format!("{}={port}", p.as_str())).collect::<Vec<_>>(),
        "inspect_bytes": args.inspect_bytes,
        "partition_by": args.partition_by.map(|p| format!("{p:?}").to_lowercase()),
    });
    vec![
        ("wormsign.version".into(), env!("CARGO_PKG_VERSION").into()),
        (
            "wormsign.inputs".into(),
            serde_json::to_string(&names).unwrap_or_default(),
        ),
        ("wormsign.options".into(), options.to_string()),
    ]
}
