//! `wormsign synth`: a labelled synthetic outbreak capture (see `wormsign-synth`).

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use wormsign_synth::{generate, Scenario, SynthConfig};

/// `wormsign synth`.
#[derive(Args, Debug)]
pub struct SynthArgs {
    /// drivelife, wannacry, stealthy or benign.
    #[arg(long, value_parser = |s: &str| s.parse::<Scenario>())]
    scenario: Scenario,
    /// Seed; the same seed and scale give byte-identical files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory for capture.pcap and labels.json.
    #[arg(long, short)]
    out: PathBuf,
    /// Multiplies the benign background traffic (clients and sessions); the worm part
    /// stays the same.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// No summary on stderr.
    #[arg(long, short)]
    quiet: bool,
}

/// Writes `path` through a temporary name renamed into place.
fn atomic(path: &Path, write: impl FnOnce(File) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let result = File::create(&tmp)
        .map_err(anyhow::Error::from)
        .and_then(write)
        .and_then(|()| std::fs::rename(&tmp, path).map_err(Into::into));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// Runs `wormsign synth`.
pub fn synth(args: &SynthArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.scale.is_finite() && args.scale > 0.0,
        "--scale must be a positive number"
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let cfg = SynthConfig {
        scenario: args.scenario,
        seed: args.seed,
        scale: args.scale,
    };
    let mut result = None;
    atomic(&args.out.join("capture.pcap"), |f| {
        let out = generate(&cfg, f)?;
        result = Some(out);
        Ok(())
    })?;
    let out = result.context("generator produced nothing")?;
    atomic(&args.out.join("labels.json"), |mut f| {
        f.write_all(out.labels.to_json().as_bytes())?;
        Ok(())
    })?;
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
    }
    Ok(ExitCode::SUCCESS)
}
