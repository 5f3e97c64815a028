//! `wormsign bench-rules`: detection rule sets (and parameter sweeps over them) scored
//! against a labelled capture.
//!
//! The tables are built once: captures go through the `analyze` pipeline (without
//! detection) into memory, or a directory already written by `wormsign analyze` is read
//! as is. Then, for every rule set and every sweep point, `wormsign_engine::BenchPlan`
//! detects over the same tables and scores the result against `labels.json`. One row per
//! (rule set, sweep point): a table on stdout, and the same as JSON (`--json`) and
//! Parquet (`--out DIR/bench_rules.parquet`).
//! Every figure but the detection wall time is a function of the inputs alone.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use clap::Args;
use wormsign_columnar::ParquetSink;
use wormsign_detect::Labels;
use wormsign_engine::{
    bench_table, read_labels, BenchPlan, BenchRow, Control, DetectInputs, PipelineConfig, RuleSet,
    Sweep,
};

/// `wormsign bench-rules`.
#[derive(Args, Debug)]
pub struct BenchRulesArgs {
    /// Captures (analysed once, without detection), or one directory written by
    /// `wormsign analyze` (holding flows.parquet).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Ground truth: the labels.json `wormsign synth` writes. Its honeypots and
    /// authorized scanners are applied as `--honeypot` and `--allowlist` would be.
    #[arg(long, value_name = "FILE")]
    labels: PathBuf,
    /// Rules files to compare (TOML, the format `wormsign rules` prints); default: the
    /// built-in rules. Several may follow one `--rules`; put the inputs first.
    #[arg(long, value_name = "FILE.toml", num_args = 1..)]
    rules: Vec<PathBuf>,
    /// Sweep one rules-file setting over a range, `SECTION.KEY=FROM..TO:STEP` (e.g.
    /// `trw.pd=0.9..0.99:0.03`, `scan.fanout_threshold=5..20:5`) or a list
    /// `SECTION.KEY=A,B,C`; applied over each rule set. Repeated: every combination.
    #[arg(long, value_name = "KEY=FROM..TO:STEP")]
    sweep: Vec<String>,
    /// Also write the rows as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also write the rows as DIR/bench_rules.parquet.
    #[arg(long, short, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Decode workers and flow shards when analysing captures; default: all cores.
    #[arg(long)]
    threads: Option<usize>,
    /// No analysis summary or progress on stderr.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs `wormsign bench-rules`.
pub fn bench_rules(args: &BenchRulesArgs) -> anyhow::Result<ExitCode> {
    let labels = read_labels(&args.labels)?;
    let sweeps = args
        .sweep
        .iter()
        .map(|s| Sweep::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let rule_sets = RuleSet::read_files(&args.rules)?;
    // Every configuration is built (and so checked) before the long part starts.
    let plan = BenchPlan::new(&labels, &rule_sets, &sweeps)?;

    // The tables, built once (in memory) or read from a directory `analyze` wrote.
    let defaults = PipelineConfig::default();
    let config = PipelineConfig {
        threads: args.threads.unwrap_or(defaults.threads).max(1),
        ..defaults
    };
    let control = Control::default();
    let total_bytes = args
        .inputs
        .iter()
        .filter(|p| p.is_file())
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let loaded = crate::watched(&control, total_bytes, args.quiet, || {
        DetectInputs::load(&args.inputs, &config, &control)
    })??;
    for w in &loaded.warnings {
        eprintln!("wormsign: warning: {w}");
    }
    if let Some(summary) = &loaded.summary {
        let usable = summary.inputs_usable > 0;
        for w in &summary.warnings {
            eprintln!(
                "wormsign: {}: {w}",
                if usable { "warning" } else { "error" }
            );
        }
        if !usable {
            return Ok(ExitCode::from(1));
        }
        if !args.quiet {
            eprint!("{}", summary.render());
        }
        if control.stop.load(Ordering::Relaxed) {
            // Interrupted: scores over part of the traffic would mislead.
            return Ok(ExitCode::from(130));
        }
    }
    let tables = loaded.inputs;
    let rows = plan.run(&tables, &labels);

    if let Some(path) = &args.json {
        crate::write_json_file(path, &to_json(&rows, &labels, args)?)?;
    }
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write_parquet(&dir.join("bench_rules.parquet"), &rows, &sweeps)?;
    }
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(table(&rows).as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn opt_secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"))
}

/// The rows as an aligned text table.
fn table(rows: &[BenchRow]) -> String {
    let header = [
        "rules",
        "sweep",
        "labelled",
        "detected",
        "precision",
        "recall",
        "f1",
        "patient_zero",
        "edge_precision",
        "edge_recall",
        "ttd_median_s",
        "ttd_p90_s",
        "ttd_median_fc",
        "ttd_p90_fc",
        "false_alarms",
        "detect_ms",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in rows {
        let s = &r.score;
        let sweep = r.sweep_text();
        cells.push(vec![
            r.rules.clone(),
            if sweep.is_empty() { "-".into() } else { sweep },
            s.labelled.to_string(),
            s.detected.to_string(),
            format!("{:.3}", s.precision),
            format!("{:.3}", s.recall),
            format!("{:.3}", s.f1),
            if s.patient_zero_ok { "yes" } else { "no" }.into(),
            format!("{:.3}", s.edge_precision),
            format!("{:.3}", s.edge_recall),
            opt_secs(s.ttd_secs_median),
            opt_secs(s.ttd_secs_p90),
            opt(s.ttd_failed_median),
            opt(s.ttd_failed_p90),
            s.false_alarms.to_string(),
            format!("{:.1}", r.detect_secs * 1e3),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| cells.iter().map(|row| row[c].len()).max().unwrap_or(0))
        .collect();
    let mut o = String::new();
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (v, w))| {
                if c < 2 {
                    format!("{v:<w$}")
                } else {
                    format!("{v:>w$}")
                }
            })
            .collect();
        let _ = writeln!(o, "{}", line.join("  ").trim_end());
    }
    o
}

fn to_json(
    rows: &[BenchRow],
    labels: &Labels,
    args: &BenchRulesArgs,
) -> anyhow::Result<serde_json::Value> {
    let mut out = Vec::new();
    for r in rows {
        let mut v = serde_json::to_value(&r.score)?;
        let obj = v.as_object_mut().expect("a struct is an object");
        let sweep: serde_json::Map<String, serde_json::Value> = r
            .params
            .iter()
            .map(|(k, t)| {
                let value = serde_json::from_str(t).unwrap_or_else(|_| t.clone().into());
                (k.clone(), value)
            })
            .collect();
        let mut row = serde_json::Map::new();
        row.insert("rules".into(), r.rules.clone().into());
        row.insert("sweep".into(), sweep.into());
        row.insert("detect_ms".into(), (r.detect_secs * 1e3).into());
        row.append(obj);
        out.push(serde_json::Value::Object(row));
    }
    Ok(serde_json::json!({
        "labels": args.labels.display().to_string(),
        "scenario": labels.scenario,
        "inputs": args.inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "rows": out,
    }))
}

fn write_parquet(path: &Path, rows: &[BenchRow], sweeps: &[Sweep]) -> anyhow::Result<()> {
    let batch = bench_table(rows, sweeps)?;
    let metadata = vec![(
        "wormsign.version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    )];
    let mut sink = ParquetSink::create(path, batch.schema(), &metadata)?;
    sink.write(&batch)?;
    sink.finish()?;
    Ok(())
}
