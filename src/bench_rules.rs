//! `wormsign bench-rules`: detection rule sets (and parameter sweeps over them) scored
//! against a labelled capture.
//!
//! The flows are built once: captures go through the `analyze` pipeline (without
//! detection) into a temporary directory, or a directory already written by
//! `wormsign analyze` is read as is. Then, for every rule set and every sweep point,
//! [`wormsign_detect::detect`] runs over the same flows and [`wormsign_detect::score`]
//! compares the result with `labels.json`. One row per (rule set, sweep point): a table on
//! stdout, and the same as JSON (`--json`) and Parquet (`--out DIR/bench_rules.parquet`).
//! Every figure but the detection wall time is a function of the inputs alone.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use clap::Args;
use wormsign_columnar::ParquetSink;
use wormsign_detect::{score, Cidr, DetectConfig, Labels, Score};

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

/// One swept setting.
struct Sweep {
    /// `section.key` as given.
    name: String,
    /// Table path and key.
    path: Vec<String>,
    values: Vec<toml::Value>,
    /// The values as printed (the text they were generated as).
    texts: Vec<String>,
}

fn decimals(s: &str) -> usize {
    s.split_once('.').map_or(0, |(_, f)| f.len())
}

fn parse_sweep(spec: &str) -> anyhow::Result<Sweep> {
    let bad = || format!("--sweep {spec:?}: expected SECTION.KEY=FROM..TO:STEP or KEY=A,B,C");
    let (name, range) = spec.split_once('=').with_context(bad)?;
    let path: Vec<String> = name.trim().split('.').map(str::to_string).collect();
    anyhow::ensure!(path.iter().all(|p| !p.is_empty()), bad());
    let texts: Vec<String> = if let Some((from, rest)) = range.split_once("..") {
        let (to, step) = rest.split_once(':').with_context(bad)?;
        let (from, to, step) = (from.trim(), to.trim(), step.trim());
        if let (Ok(a), Ok(b), Ok(s)) = (from.parse::<i64>(), to.parse::<i64>(), step.parse::<i64>())
        {
            anyhow::ensure!(
                s > 0 && b >= a,
                "--sweep {spec:?}: needs FROM <= TO, STEP > 0"
            );
            anyhow::ensure!((b - a) / s < 10_000, "--sweep {spec:?}: too many points");
            (0..=(b - a) / s).map(|i| (a + i * s).to_string()).collect()
        } else {
            let num = |t: &str| t.parse::<f64>().ok().filter(|v| v.is_finite());
            let (a, b, s) = (
                num(from).with_context(bad)?,
                num(to).with_context(bad)?,
                num(step).with_context(bad)?,
            );
            anyhow::ensure!(
                s > 0.0 && b >= a,
                "--sweep {spec:?}: needs FROM <= TO, STEP > 0"
            );
            let n = ((b - a) / s + 1e-9).floor();
            anyhow::ensure!(n < 10_000.0, "--sweep {spec:?}: too many points");
            let dec = decimals(from).max(decimals(to)).max(decimals(step)).max(1);
            (0..=n as i64)
                .map(|i| format!("{:.*}", dec, a + i as f64 * s))
                .collect()
        }
    } else {
        range.split(',').map(|t| t.trim().to_string()).collect()
    };
    let values = texts
        .iter()
        .map(|t| {
            t.parse::<i64>()
                .map(toml::Value::Integer)
                .or_else(|_| t.parse::<f64>().map(toml::Value::Float))
                .or_else(|_| t.parse::<bool>().map(toml::Value::Boolean))
                .with_context(|| format!("--sweep {spec:?}: {t:?} is not a number"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!values.is_empty(), bad());
    Ok(Sweep {
        name: name.trim().to_string(),
        path,
        values,
        texts,
    })
}

/// The rule set `base` (TOML text) with `overrides` set, read over the defaults.
fn config_for(
    what: &str,
    base: &str,
    overrides: &[(&Sweep, usize)],
) -> anyhow::Result<DetectConfig> {
    let mut table: toml::Table = toml::from_str(base).with_context(|| what.to_string())?;
    for (sweep, i) in overrides {
        let (key, sections) = sweep.path.split_last().expect("non-empty path");
        let mut t = &mut table;
        for s in sections {
            t = t
                .entry(s.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .with_context(|| format!("--sweep {}: {s} is not a table", sweep.name))?;
        }
        t.insert(key.clone(), sweep.values[*i].clone());
    }
    let text = toml::to_string(&table)?;
    DetectConfig::from_toml(&text).map_err(|e| anyhow::anyhow!("{what}: {}", e.message))
}

/// One rule set at one sweep point, scored.
struct Row {
    rules: String,
    /// (setting, value as text) per sweep.
    params: Vec<(String, String)>,
    score: Score,
    detect_secs: f64,
}

impl Row {
    fn sweep_text(&self) -> String {
        self.params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `wormsign bench-rules`.
pub fn bench_rules(args: &BenchRulesArgs) -> anyhow::Result<ExitCode> {
    let labels: Labels = serde_json::from_slice(
        &std::fs::read(&args.labels)
            .with_context(|| format!("reading {}", args.labels.display()))?,
    )
    .with_context(|| format!("parsing {}", args.labels.display()))?;
    let sweeps = args
        .sweep
        .iter()
        .map(|s| parse_sweep(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rule_sets: Vec<(String, String)> = if args.rules.is_empty() {
        vec![("default".into(), String::new())]
    } else {
        args.rules
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                Ok((p.display().to_string(), text))
            })
            .collect::<anyhow::Result<_>>()?
    };
    // Every sweep point: the cartesian product of the sweeps' values.
    let mut points: Vec<Vec<usize>> = vec![Vec::new()];
    for s in &sweeps {
        points = points
            .into_iter()
            .flat_map(|p| {
                (0..s.values.len()).map(move |i| {
                    let mut p = p.clone();
                    p.push(i);
                    p
                })
            })
            .collect();
    }
    // Every configuration is built (and so checked) before the long part starts.
    let mut runs = Vec::new();
    for (name, text) in &rule_sets {
        for point in &points {
            let overrides: Vec<(&Sweep, usize)> =
                sweeps.iter().zip(point.iter().copied()).collect();
            let mut config = config_for(name, text, &overrides)?;
            config.honeypots.extend(labels.honeypots.iter().copied());
            config
                .allowlist
                .extend(labels.authorized_scanners.iter().map(|&ip| Cidr::host(ip)));
            let params: Vec<(String, String)> = overrides
                .iter()
                .map(|(s, i)| (s.name.clone(), s.texts[*i].clone()))
                .collect();
            runs.push((name.clone(), params, config));
        }
    }

    // The flows, built once.
    let existing = match args.inputs.as_slice() {
        [dir] if !wormsign_columnar::table_files(dir, "flows").is_empty() => Some(dir.clone()),
        _ => None,
    };
    let _temp;
    let tables_dir = match existing {
        Some(dir) => dir,
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let dir = std::env::temp_dir().join(format!(
                "wormsign-bench-rules-{}-{nanos}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            _temp = TempDir(dir.clone());
            let code = crate::analyze(&crate::AnalyzeArgs {
                inputs: args.inputs.clone(),
                out: dir.clone(),
                threads: args.threads,
                max_flows: 4_000_000,
                tcp_timeout: 300.0,
                udp_timeout: 60.0,
                icmp_timeout: 60.0,
                active_timeout: 1800.0,
                netflow_ports: Vec::new(),
                inspect_port: Vec::new(),
                inspect_bytes: wormsign_inspect::InspectConfig::default().max_bytes,
                partition_by: None,
                summary_json: None,
                quiet: args.quiet,
                no_detect: true,
                detect: crate::detect::DetectOptions::default(),
            })?;
            if code != ExitCode::SUCCESS {
                return Ok(code);
            }
            dir
        }
    };
    let tables = crate::detect::read_tables(&tables_dir)?;

    let mut rows = Vec::new();
    for (rules, params, config) in &runs {
        let started = Instant::now();
        let d = crate::detect::detect_tables(config, &tables);
        let detect_secs = started.elapsed().as_secs_f64();
        rows.push(Row {
            rules: rules.clone(),
            params: params.clone(),
            score: score(&d, &labels, &tables.flows),
            detect_secs,
        });
    }

    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&to_json(&rows, &labels, args)?)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
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
fn table(rows: &[Row]) -> String {
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
    rows: &[Row],
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

fn write_parquet(path: &Path, rows: &[Row], sweeps: &[Sweep]) -> anyhow::Result<()> {
    let f64s = |f: &dyn Fn(&Row) -> Option<f64>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<Float64Array>())
    };
    let i64s = |f: &dyn Fn(&Row) -> Option<i64>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<Int64Array>())
    };
    let mut columns: Vec<(String, ArrayRef, bool)> = vec![
        (
            "rules".into(),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.rules.as_str()),
            )),
            false,
        ),
        (
            "sweep".into(),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(Row::sweep_text),
            )),
            false,
        ),
    ];
    for (i, s) in sweeps.iter().enumerate() {
        columns.push((s.name.clone(), f64s(&|r| r.params[i].1.parse().ok()), true));
    }
    let n = |f: fn(&Score) -> usize| i64s(&move |r| Some(f(&r.score) as i64));
    let x = |f: fn(&Score) -> f64| f64s(&move |r| Some(f(&r.score)));
    columns.extend([
        ("labelled".into(), n(|s| s.labelled), false),
        ("detected".into(), n(|s| s.detected), false),
        ("true_positives".into(), n(|s| s.true_positives), false),
        ("precision".into(), x(|s| s.precision), false),
        ("recall".into(), x(|s| s.recall), false),
        ("f1".into(), x(|s| s.f1), false),
        (
            "patient_zero_ok".into(),
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.score.patient_zero_ok))
                    .collect::<BooleanArray>(),
            ) as ArrayRef,
            false,
        ),
        ("labelled_edges".into(), n(|s| s.labelled_edges), false),
        ("detected_edges".into(), n(|s| s.detected_edges), false),
        ("edge_precision".into(), x(|s| s.edge_precision), false),
        ("edge_recall".into(), x(|s| s.edge_recall), false),
        ("vector_agreement".into(), x(|s| s.vector_agreement), false),
        (
            "ttd_median_s".into(),
            f64s(&|r| r.score.ttd_secs_median),
            true,
        ),
        ("ttd_p90_s".into(), f64s(&|r| r.score.ttd_secs_p90), true),
        (
            "ttd_median_failed_contacts".into(),
            i64s(&|r| r.score.ttd_failed_median.map(|v| v as i64)),
            true,
        ),
        (
            "ttd_p90_failed_contacts".into(),
            i64s(&|r| r.score.ttd_failed_p90.map(|v| v as i64)),
            true,
        ),
        ("false_alarms".into(), n(|s| s.false_alarms), false),
        (
            "detect_ms".into(),
            f64s(&|r| Some(r.detect_secs * 1e3)),
            false,
        ),
    ]);
    let batch = RecordBatch::try_from_iter_with_nullable(columns)?;
    let metadata = vec![(
        "wormsign.version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    )];
    let mut sink = ParquetSink::create(path, batch.schema(), &metadata)?;
    sink.write(&batch)?;
    sink.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_parse() {
        let s = parse_sweep("trw.pd=0.9..0.99:0.03").unwrap();
        assert_eq!(s.path, ["trw", "pd"]);
        assert_eq!(s.texts, ["0.90", "0.93", "0.96", "0.99"]);
        let s = parse_sweep("scan.fanout_threshold=5..20:5").unwrap();
        assert_eq!(s.texts, ["5", "10", "15", "20"]);
        assert_eq!(s.values[1], toml::Value::Integer(10));
        let s = parse_sweep("max_tracked=100,200").unwrap();
        assert_eq!(s.path, ["max_tracked"]);
        assert_eq!(s.texts, ["100", "200"]);
        assert!(parse_sweep("trw.pd").is_err());
        assert!(parse_sweep("trw.pd=0.9..0.8:0.1").is_err());
        assert!(parse_sweep("trw.pd=a..b:c").is_err());
        assert!(parse_sweep(".pd=1").is_err());
    }

    #[test]
    fn overrides_apply_over_a_rules_file() {
        let s = parse_sweep("trw.pd=0.9,0.95").unwrap();
        let base = "[trw]\npf = 0.02\n[scan]\nfanout_threshold = 7\n";
        let c = config_for("x", base, &[(&s, 1)]).unwrap();
        assert_eq!(c.trw.pd, 0.95);
        assert_eq!(c.trw.pf, 0.02);
        assert_eq!(c.scan.fanout_threshold, 7);
        let c = config_for("x", "", &[(&s, 0)]).unwrap();
        assert_eq!(c.trw.pd, 0.9);
        let unknown = parse_sweep("trw.nope=1").unwrap();
        assert!(config_for("x", "", &[(&unknown, 0)]).is_err());
    }
}
