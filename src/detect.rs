//! Worm-propagation detection from the command line: `wormsign detect DIR`, the detection
//! step at the end of `wormsign analyze`, and `wormsign rules`. The work is
//! `wormsign_engine::detect_dir` and `write_detection` (`analyze_and_detect` for
//! `analyze`, which writes its outputs itself); this is options and printing.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use wormsign_detect::{parse_zone, Cidr, DetectConfig, Detection};
use wormsign_engine::{DetectSettings, Detected, Rules};

/// Detection options shared by `wormsign analyze` and `wormsign detect`.
#[derive(Args, Debug, Clone, Default)]
pub struct DetectOptions {
    /// Rules file (TOML, the format `wormsign rules` prints); settings it has replace the
    /// defaults.
    #[arg(long, value_name = "FILE.toml")]
    rules: Option<PathBuf>,
    /// Indicator file: one C&C domain suffix or IP address per line, `#` comments
    /// (repeatable; adds to the built-in DriveLife / Lemon Duck list).
    #[arg(long = "indicators", value_name = "FILE")]
    indicators: Vec<PathBuf>,
    /// Internal network (repeatable); replaces the default RFC 1918 + ULA networks.
    #[arg(long = "internal", value_name = "CIDR")]
    internal: Vec<Cidr>,
    /// Honeypot address: any connection to it is an alert (repeatable).
    #[arg(long = "honeypot", value_name = "IP")]
    honeypots: Vec<IpAddr>,
    /// Allowlisted network (authorized scanners, backup servers): still reported, marked
    /// allowlisted, never infected (repeatable).
    #[arg(long = "allowlist", value_name = "CIDR")]
    allowlist: Vec<Cidr>,
    /// Zone for the segmentation check, `NAME=CIDR` (repeatable; a zone may have several
    /// networks, and the longest matching prefix decides an address's zone).
    #[arg(long = "zone", value_name = "NAME=CIDR", value_parser = parse_zone)]
    zones: Vec<(String, Cidr)>,
    /// Zones file: one `NAME=CIDR` per line, `#` comments (repeatable).
    #[arg(long = "zones", value_name = "FILE")]
    zone_files: Vec<PathBuf>,
}

impl DetectOptions {
    /// The rule set: defaults, then the rules file, then the command-line options.
    pub fn config(&self) -> anyhow::Result<DetectConfig> {
        let settings = DetectSettings {
            rules: self.rules.clone().map(Rules::File),
            indicators: self.indicators.clone(),
            internal: self.internal.clone(),
            honeypots: self.honeypots.clone(),
            allowlist: self.allowlist.clone(),
            zones: self.zones.clone(),
            zone_files: self.zone_files.clone(),
        };
        Ok(settings.config()?)
    }
}

/// `wormsign detect`.
#[derive(Args, Debug)]
pub struct DetectArgs {
    /// Directory holding flows.parquet (and dns.parquet, arp.parquet), or their
    /// partitioned directories flows/, dns/, arp/, as written by `wormsign analyze`.
    dir: PathBuf,
    /// Output directory for the alerts, hosts, propagation tables and the report
    /// (default: DIR).
    #[arg(long, short)]
    out: Option<PathBuf>,
    #[command(flatten)]
    options: DetectOptions,
    /// No summary on stderr (warnings are still printed).
    #[arg(long, short)]
    quiet: bool,
}

/// Runs `wormsign detect`.
pub fn detect_cmd(args: &DetectArgs) -> anyhow::Result<ExitCode> {
    let config = args.options.config()?;
    let out = args.out.as_deref().unwrap_or(&args.dir);
    run(&args.dir, out, &config, args.quiet)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `wormsign rules`: the built-in rule set as TOML on stdout.
pub fn rules_cmd() -> anyhow::Result<ExitCode> {
    let text = DetectConfig::default().to_toml();
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Reads the tables in `in_dir`, detects, writes every detection output into `out_dir`
/// and (unless `quiet`) prints a short summary on stderr.
pub fn run(
    in_dir: &Path,
    out_dir: &Path,
    config: &DetectConfig,
    quiet: bool,
) -> anyhow::Result<Detection> {
    let detected = wormsign_engine::detect_dir(in_dir, config)?;
    wormsign_engine::write_detection(out_dir, &detected.detection, &detected.metadata)?;
    Ok(report(out_dir, detected, quiet))
}

/// Prints the warnings of `detected`, whose outputs are in `out_dir`, and (unless
/// `quiet`) a short summary on stderr.
pub fn report(out_dir: &Path, detected: Detected, quiet: bool) -> Detection {
    for w in &detected.warnings {
        eprintln!("wormsign: warning: {w}");
    }
    let d = detected.detection;
    if !quiet {
        eprint!("{}", wormsign_engine::detection_summary(&d, out_dir));
    }
    d
}
