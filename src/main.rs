//! `wormsign`: the command line. Only this crate touches argv, stdout and the exit code;
//! the work is done by the library crates under `crates/` (see ARCHITECTURE.md).

mod bench_rules;
mod carve;
mod collect;
mod detect;
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
use wormsign_engine::{expand_inputs, Control, Input, Output, PipelineConfig, PipelineOptions};
use wormsign_flow::FlowConfig;

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
    /// Write the packets behind an alert, a host, a propagation edge or a flow to a pcap.
    Carve(carve::CarveArgs),
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
    #[arg(long, default_value_t = FlowConfig::default().max_flows)]
    max_flows: usize,
    /// TCP idle timeout, seconds.
    #[arg(long, default_value_t = secs(FlowConfig::default().tcp_idle_ns))]
    tcp_timeout: f64,
    /// UDP idle timeout, seconds.
    #[arg(long, default_value_t = secs(FlowConfig::default().udp_idle_ns))]
    udp_timeout: f64,
    /// ICMP and other-protocol idle timeout, seconds.
    #[arg(long, default_value_t = secs(FlowConfig::default().other_idle_ns))]
    icmp_timeout: f64,
    /// Active timeout: longer flows are split into several records, seconds.
    #[arg(long, default_value_t = secs(FlowConfig::default().active_ns))]
    active_timeout: f64,
    /// Also unwrap UDP datagrams to or from PORT as TUNNEL (vxlan, geneve, gtpu or teredo),
    /// besides 4789 (vxlan), 6081 (geneve), 2152 (gtpu) and 3544 (teredo); repeatable,
    /// e.g. `--tunnel-port vxlan=8472`. GRE, ERSPAN and IP-in-IP are found by IP protocol.
    #[arg(long, value_name = "TUNNEL=PORT", value_parser = parse_tunnel_port)]
    tunnel_port: Vec<(wormsign_decode::TunnelKind, u16)>,
    /// Most tunnels unwrapped around one packet; 0 keeps every packet as its outer
    /// headers.
    #[arg(long, value_name = "N", default_value_t = wormsign_decode::TunnelConfig::default().max_depth)]
    tunnel_depth: u8,
    /// Also decode UDP datagrams to this port as NetFlow/IPFIX or sFlow exports
    /// (repeatable; 2055, 9555, 9995, 9996, 4739 and sFlow's 6343 always are).
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
        Mode::Carve(args) => carve::carve_cmd(&args),
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

/// Writes `json`, pretty-printed, to `path`: under a temporary name until complete when
/// it is a regular or new file ([`wormsign_columnar::StagedFile::replace`]).
fn write_json_file(path: &Path, json: &serde_json::Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(json)? + "\n";
    wormsign_columnar::StagedFile::replace(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// A duration setting's default, as the seconds the options take.
fn secs(ns: i64) -> f64 {
    ns as f64 / 1e9
}

impl AnalyzeArgs {
    /// The options laid over the engine's defaults.
    fn pipeline_config(&self) -> anyhow::Result<PipelineConfig> {
        let options = PipelineOptions {
            threads: self.threads,
            max_flows: Some(self.max_flows),
            tcp_timeout: Some(self.tcp_timeout),
            udp_timeout: Some(self.udp_timeout),
            icmp_timeout: Some(self.icmp_timeout),
            active_timeout: Some(self.active_timeout),
            tunnel_ports: self.tunnel_port.clone(),
            tunnel_depth: Some(self.tunnel_depth),
            netflow_ports: self.netflow_ports.clone(),
            inspect_ports: self.inspect_port.clone(),
            inspect_bytes: Some(self.inspect_bytes),
            partition_by: self.partition_by.map(|p| match p {
                PartitionBy::Hour => Partitioning::Hour,
                PartitionBy::Day => Partitioning::Day,
            }),
        };
        Ok(options.config()?)
    }
}

fn analyze(args: &AnalyzeArgs) -> anyhow::Result<ExitCode> {
    // Rules are read first, so a bad rules file fails before a long run.
    let detect_config = if args.no_detect {
        None
    } else {
        Some(args.detect.config()?)
    };
    let inputs = expand_inputs(&args.inputs)?;
    let config = args.pipeline_config()?;
    let total_bytes: u64 = inputs.iter().filter_map(Input::size).sum();
    let control = Control::default();
    let output = Output::Parquet(args.out.clone());
    // Detection is fed from the pipeline as it stores the tables, so `wormsign detect DIR`
    // later gives the same results without this run reading them back.
    let (analysis, detected) =
        watched(&control, total_bytes, args.quiet, || match &detect_config {
            Some(detect) => {
                wormsign_engine::analyze_and_detect(&inputs, &config, detect, &control, &output)
            }
            None => {
                wormsign_engine::analyze(&inputs, &config, &control, &output).map(|a| (a, None))
            }
        })??;
    let summary = analysis.summary;

    let mut json = summary.to_json();
    let write_json = |json: &serde_json::Value| match &args.summary_json {
        Some(path) => write_json_file(path, json),
        None => Ok(()),
    };
    // Nothing was readable: each input's problem is the error, one line each.
    let usable = summary.inputs_usable > 0;
    let level = if usable { "warning" } else { "error" };
    for w in &summary.warnings {
        eprintln!("wormsign: {level}: {w}");
    }
    let stopped = control.stop.load(Ordering::Relaxed);
    if usable && !args.quiet {
        eprint!("{}", summary.render());
    }
    if !usable || stopped {
        write_json(&json)?;
        return Ok(ExitCode::from(if usable { 130 } else { 1 }));
    }
    if let Some(detected) = detected {
        let (input, warnings) = (detected.input.name(), detected.warnings.clone());
        // analyze_and_detect wrote the detection outputs beside the tables.
        let d = detect::report(&args.out, detected, args.quiet);
        json["detection"] = wormsign_engine::stats_json(&d);
        json["detection"]["input"] = input.into();
        json["detection"]["warnings"] = warnings.into();
    }
    write_json(&json)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `work` with SIGINT/SIGTERM wired to `control.stop` (the first asks the pipeline
/// to stop reading and finish complete outputs; a second one while it does so ends the
/// process at once), and a progress bar on a terminal unless `quiet`.
pub(crate) fn watched<T: Send>(
    control: &Control,
    total_bytes: u64,
    quiet: bool,
    work: impl FnOnce() -> T + Send,
) -> anyhow::Result<T> {
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&control.stop))?;
        signal_hook::flag::register(signal, Arc::clone(&control.stop))?;
    }
    let show_progress = !quiet && std::io::stderr().is_terminal();
    let finished = AtomicBool::new(false);
    Ok(std::thread::scope(|s| {
        if show_progress {
            s.spawn(|| draw_progress(control, total_bytes, &finished));
        }
        let result = work();
        finished.store(true, Ordering::Relaxed);
        result
    }))
}

fn draw_progress(progress: &Control, total_bytes: u64, finished: &AtomicBool) {
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

/// `--tunnel-port`: `vxlan=8472` → (VXLAN, 8472).
fn parse_tunnel_port(s: &str) -> Result<(wormsign_decode::TunnelKind, u16), String> {
    wormsign_engine::parse_tunnel_port(s).map_err(|e| e.to_string())
}

/// `--inspect-port`: `smb=8445` → (SMB, 8445).
fn parse_inspect_port(s: &str) -> Result<(wormsign_inspect::Protocol, u16), String> {
    wormsign_engine::parse_inspect_port(s).map_err(|e| e.to_string())
}
