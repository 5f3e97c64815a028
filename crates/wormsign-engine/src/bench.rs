//! Detection rule sets, and parameter sweeps over them, scored against labelled ground
//! truth: what `wormsign bench-rules` and Python's `wormsign.bench_rules` run. The
//! traffic is decoded once ([`DetectInputs`]); every rule set at every sweep point is a
//! detection over it and a [`score`] against `labels.json`. Every figure but the
//! detection time is a function of the inputs alone.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use wormsign_detect::{score, Cidr, DetectConfig, Labels, Score};

use crate::{DetectInputs, Error};

/// One swept setting.
#[derive(Clone, Debug)]
pub struct Sweep {
    /// `section.key` as given.
    pub name: String,
    /// Table path and key.
    path: Vec<String>,
    values: Vec<toml::Value>,
    /// The values as printed (the text they were generated as).
    texts: Vec<String>,
}

fn check(ok: bool, spec: &str, what: &str) -> Result<(), Error> {
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!("sweep {spec:?}: {what}")))
    }
}

fn decimals(s: &str) -> usize {
    s.split_once('.').map_or(0, |(_, f)| f.len())
}

impl Sweep {
    /// Parses `SECTION.KEY=FROM..TO:STEP` (integers or decimals; the values are printed
    /// with the decimals the spec uses) or `SECTION.KEY=A,B,C`.
    pub fn parse(spec: &str) -> Result<Sweep, Error> {
        let bad = || {
            Error::Config(format!(
                "sweep {spec:?}: expected SECTION.KEY=FROM..TO:STEP or KEY=A,B,C"
            ))
        };
        let (name, range) = spec.split_once('=').ok_or_else(bad)?;
        let path: Vec<String> = name.trim().split('.').map(str::to_string).collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        let texts: Vec<String> = if let Some((from, rest)) = range.split_once("..") {
            let (to, step) = rest.split_once(':').ok_or_else(bad)?;
            let (from, to, step) = (from.trim(), to.trim(), step.trim());
            if let (Ok(a), Ok(b), Ok(s)) =
                (from.parse::<i64>(), to.parse::<i64>(), step.parse::<i64>())
            {
                check(s > 0 && b >= a, spec, "needs FROM <= TO, STEP > 0")?;
                check((b - a) / s < 10_000, spec, "too many points")?;
                (0..=(b - a) / s).map(|i| (a + i * s).to_string()).collect()
            } else {
                let num = |t: &str| t.parse::<f64>().ok().filter(|v| v.is_finite());
                let (a, b, s) = (
                    num(from).ok_or_else(bad)?,
                    num(to).ok_or_else(bad)?,
                    num(step).ok_or_else(bad)?,
                );
                check(s > 0.0 && b >= a, spec, "needs FROM <= TO, STEP > 0")?;
                let n = ((b - a) / s + 1e-9).floor();
                check(n < 10_000.0, spec, "too many points")?;
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
                    .map_err(|_| Error::Config(format!("sweep {spec:?}: {t:?} is not a number")))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        if values.is_empty() {
            return Err(bad());
        }
        Ok(Sweep {
            name: name.trim().to_string(),
            path,
            values,
            texts,
        })
    }
}

/// The rule set `base` (TOML text) with `overrides` set, read over the defaults.
fn config_for(
    what: &str,
    base: &str,
    overrides: &[(&Sweep, usize)],
) -> Result<DetectConfig, Error> {
    let mut table: toml::Table =
        toml::from_str(base).map_err(|e| Error::Config(format!("{what}: {e}")))?;
    for (sweep, i) in overrides {
        let (key, sections) = sweep.path.split_last().expect("non-empty path");
        let mut t = &mut table;
        for s in sections {
            t = t
                .entry(s.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| {
                    Error::Config(format!("sweep {}: {s} is not a table", sweep.name))
                })?;
        }
        t.insert(key.clone(), sweep.values[*i].clone());
    }
    let text = toml::to_string(&table).map_err(|e| Error::Config(format!("{what}: {e}")))?;
    DetectConfig::from_toml(&text).map_err(|e| Error::Config(format!("{what}: {}", e.message)))
}

/// A rule set to score: its name and its rules-file text (empty: the built-in rules).
#[derive(Clone, Debug)]
pub struct RuleSet {
    /// How rows name it (the file name, or `default`).
    pub name: String,
    /// Rules-file TOML, read over the defaults.
    pub text: String,
}

impl RuleSet {
    /// The rule sets of these rules files, by file name; with none, the built-in rules
    /// (named `default`).
    pub fn read_files<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<RuleSet>, Error> {
        if paths.is_empty() {
            return Ok(vec![RuleSet {
                name: "default".into(),
                text: String::new(),
            }]);
        }
        paths
            .iter()
            .map(|p| {
                let p = p.as_ref();
                Ok(RuleSet {
                    name: p.display().to_string(),
                    text: std::fs::read_to_string(p).map_err(Error::io(p))?,
                })
            })
            .collect()
    }
}

/// The ground truth `wormsign synth` writes (`labels.json`).
pub fn read_labels(path: &Path) -> Result<Labels, Error> {
    let text = std::fs::read(path).map_err(Error::io(path))?;
    serde_json::from_slice(&text)
        .map_err(|e| Error::Config(format!("{}: not a labels.json: {e}", path.display())))
}

/// One rule set at one sweep point, scored.
#[derive(Clone, Debug)]
pub struct BenchRow {
    /// The rule set's name.
    pub rules: String,
    /// (setting, value as text) per sweep.
    pub params: Vec<(String, String)>,
    /// How detection did against the labels.
    pub score: Score,
    /// Detection wall time.
    pub detect_secs: f64,
}

impl BenchRow {
    /// The sweep point as `key=value` pairs, space-separated.
    pub fn sweep_text(&self) -> String {
        self.params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Every rule set at every point of the sweeps (their cartesian product), each as the
/// detection configuration it makes: built, and so checked, before the long part starts.
#[derive(Debug)]
pub struct BenchPlan {
    runs: Vec<PlannedRun>,
}

/// One row to come: a rule set at a sweep point, as its configuration.
#[derive(Debug)]
struct PlannedRun {
    rules: String,
    params: Vec<(String, String)>,
    config: DetectConfig,
}

impl BenchPlan {
    /// The plan for `rule_sets` × the sweeps' points. The labels' honeypots and
    /// authorized scanners are applied as `--honeypot` and `--allowlist` would be.
    pub fn new(labels: &Labels, rule_sets: &[RuleSet], sweeps: &[Sweep]) -> Result<Self, Error> {
        let mut points: Vec<Vec<usize>> = vec![Vec::new()];
        for s in sweeps {
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
        let mut runs = Vec::new();
        for set in rule_sets {
            for point in &points {
                let overrides: Vec<(&Sweep, usize)> =
                    sweeps.iter().zip(point.iter().copied()).collect();
                let mut config = config_for(&set.name, &set.text, &overrides)?;
                config.honeypots.extend(labels.honeypots.iter().copied());
                config
                    .allowlist
                    .extend(labels.authorized_scanners.iter().map(|&ip| Cidr::host(ip)));
                let params = overrides
                    .iter()
                    .map(|(s, i)| (s.name.clone(), s.texts[*i].clone()))
                    .collect();
                runs.push(PlannedRun {
                    rules: set.name.clone(),
                    params,
                    config,
                });
            }
        }
        Ok(BenchPlan { runs })
    }

    /// Detects with every configuration over `inputs` and scores it against `labels`.
    pub fn run(&self, inputs: &DetectInputs, labels: &Labels) -> Vec<BenchRow> {
        self.runs
            .iter()
            .map(|run| {
                let started = Instant::now();
                let d = inputs.detect(&run.config);
                let detect_secs = started.elapsed().as_secs_f64();
                BenchRow {
                    rules: run.rules.clone(),
                    params: run.params.clone(),
                    score: score(&d, labels, &inputs.flows),
                    detect_secs,
                }
            })
            .collect()
    }
}

/// The scored rows as one batch (`bench_rules.parquet`): the rule set, the sweep point
/// (as text and one column per swept setting), then the score's fields.
pub fn bench_table(rows: &[BenchRow], sweeps: &[Sweep]) -> Result<RecordBatch, Error> {
    let f64s = |f: &dyn Fn(&BenchRow) -> Option<f64>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<Float64Array>())
    };
    let i64s = |f: &dyn Fn(&BenchRow) -> Option<i64>| -> ArrayRef {
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
                rows.iter().map(BenchRow::sweep_text),
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
    RecordBatch::try_from_iter_with_nullable(columns)
        .map_err(|e| Error::Internal(format!("bench table: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_parse() {
        let s = Sweep::parse("trw.pd=0.9..0.99:0.03").unwrap();
        assert_eq!(s.path, ["trw", "pd"]);
        assert_eq!(s.texts, ["0.90", "0.93", "0.96", "0.99"]);
        let s = Sweep::parse("scan.fanout_threshold=5..20:5").unwrap();
        assert_eq!(s.texts, ["5", "10", "15", "20"]);
        assert_eq!(s.values[1], toml::Value::Integer(10));
        let s = Sweep::parse("max_tracked=100,200").unwrap();
        assert_eq!(s.path, ["max_tracked"]);
        assert_eq!(s.texts, ["100", "200"]);
        assert!(Sweep::parse("trw.pd").is_err());
        assert!(Sweep::parse("trw.pd=0.9..0.8:0.1").is_err());
        assert!(Sweep::parse("trw.pd=a..b:c").is_err());
        assert!(Sweep::parse(".pd=1").is_err());
    }

    #[test]
    fn overrides_apply_over_a_rules_file() {
        let s = Sweep::parse("trw.pd=0.9,0.95").unwrap();
        let base = "[trw]\npf = 0.02\n[scan]\nfanout_threshold = 7\n";
        let c = config_for("x", base, &[(&s, 1)]).unwrap();
        assert_eq!(c.trw.pd, 0.95);
        assert_eq!(c.trw.pf, 0.02);
        assert_eq!(c.scan.fanout_threshold, 7);
        let c = config_for("x", "", &[(&s, 0)]).unwrap();
        assert_eq!(c.trw.pd, 0.9);
        let unknown = Sweep::parse("trw.nope=1").unwrap();
        assert!(config_for("x", "", &[(&unknown, 0)]).is_err());
    }
}
