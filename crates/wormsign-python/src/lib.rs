//! `wormsign._native`: the engine behind the `wormsign` Python package (`python/`).
//!
//! Every function releases the GIL while the engine runs, and hands tables over as
//! `pyarrow.Table`s through the Arrow C data interface, so no byte is copied or
//! converted. The Python layer (`python/wormsign/__init__.py`) gives them their
//! documented signatures, progress bars and result objects; this module takes the
//! options as a dict whose keys it names.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_pyarrow::{PyArrowType, Table};
use arrow_schema::SchemaRef;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyFileNotFoundError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use wormsign_columnar::{
    arp_schema, dns_schema, flow_schema, names_schema, session_schema, ColumnarError, Partitioning,
};
use wormsign_detect::{parse_zone, render_report, Cidr, DetectConfig, Detection};
use wormsign_engine::{
    alert_schema, analyze, analyze_and_detect, bench_table, detect_dir, detect_tables,
    expand_inputs, host_schema, parse_inspect_port, parse_tunnel_port, propagation_schema,
    read_labels, remediation_schema, segmentation_schema, spill_warnings, stats_json,
    timeline_schema, write_detection, BenchPlan, Control, DetectInputs, DetectSettings,
    DetectionTables, Error, Output, PipelineConfig, PipelineOptions, RuleSet, Rules, RunSummary,
    Sweep, Tables,
};
use wormsign_synth::export::NetflowVersion;
use wormsign_synth::{write_dataset, Scenario, SynthConfig};

mod parts;

create_exception!(
    _native,
    WormsignError,
    PyException,
    "An error of the wormsign engine."
);
create_exception!(
    _native,
    InputError,
    WormsignError,
    "No input could be read: the message names each file, with the byte offset of the damage."
);

/// How often the calling thread wakes to check for Ctrl-C and report progress.
const POLL: Duration = Duration::from_millis(100);

/// The Python exception for an engine error: files that are not there are
/// `FileNotFoundError`, other I/O `OSError`, bad settings `ValueError`, the rest
/// `WormsignError`.
fn py_err(e: Error) -> PyErr {
    let message = e.to_string();
    match e {
        Error::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(message)
        }
        Error::Io { .. } | Error::Table(ColumnarError::Io { .. }) => PyOSError::new_err(message),
        Error::Config(_) => PyValueError::new_err(message),
        _ => WormsignError::new_err(message),
    }
}

/// `analyze`'s settings, by the Python keyword that sets them (None: the default).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct AnalyzeOptions {
    threads: Option<usize>,
    max_flows: Option<usize>,
    tcp_timeout: Option<f64>,
    udp_timeout: Option<f64>,
    icmp_timeout: Option<f64>,
    active_timeout: Option<f64>,
    tunnel_ports: Vec<String>,
    tunnel_depth: Option<u8>,
    netflow_ports: Vec<u16>,
    inspect_ports: Vec<String>,
    inspect_bytes: Option<u32>,
    partition_by: Option<String>,
}

impl AnalyzeOptions {
    fn config(&self) -> Result<PipelineConfig, Error> {
        let partition_by = self
            .partition_by
            .as_deref()
            .map(|p| {
                Partitioning::from_name(p).ok_or_else(|| {
                    Error::Config(format!("partition_by {p:?}: \"hour\" or \"day\""))
                })
            })
            .transpose()?;
        PipelineOptions {
            threads: self.threads,
            max_flows: self.max_flows,
            tcp_timeout: self.tcp_timeout,
            udp_timeout: self.udp_timeout,
            icmp_timeout: self.icmp_timeout,
            active_timeout: self.active_timeout,
            tunnel_ports: parse_each(&self.tunnel_ports, parse_tunnel_port)?,
            tunnel_depth: self.tunnel_depth,
            netflow_ports: self.netflow_ports.clone(),
            inspect_ports: parse_each(&self.inspect_ports, parse_inspect_port)?,
            inspect_bytes: self.inspect_bytes,
            partition_by,
        }
        .config()
    }
}

/// Every `NAME=PORT` string parsed, or the first error.
fn parse_each<T>(items: &[String], parse: fn(&str) -> Result<T, Error>) -> Result<Vec<T>, Error> {
    items.iter().map(|s| parse(s)).collect()
}

/// Detection's settings, by the Python keyword that sets them.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct DetectOptions {
    rules_file: Option<PathBuf>,
    rules_json: Option<String>,
    indicators: Vec<PathBuf>,
    internal: Vec<String>,
    honeypot: Vec<String>,
    allowlist: Vec<String>,
    zone: Vec<String>,
}

impl DetectOptions {
    fn config(&self) -> Result<DetectConfig, Error> {
        let rules = match (&self.rules_file, &self.rules_json) {
            (Some(path), _) => Some(Rules::File(path.clone())),
            (None, Some(json)) => Some(Rules::Toml(json_to_toml(json)?)),
            (None, None) => None,
        };
        let cidrs = |v: &[String], what: &str| -> Result<Vec<Cidr>, Error> {
            v.iter()
                .map(|s| {
                    s.parse()
                        .map_err(|e| Error::Config(format!("{what} {s:?}: {e}")))
                })
                .collect()
        };
        let honeypots = self
            .honeypot
            .iter()
            .map(|s| {
                s.parse::<IpAddr>()
                    .map_err(|e| Error::Config(format!("honeypot {s:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        DetectSettings {
            rules,
            indicators: self.indicators.clone(),
            internal: cidrs(&self.internal, "internal")?,
            honeypots,
            allowlist: cidrs(&self.allowlist, "allowlist")?,
            zones: self
                .zone
                .iter()
                .map(|s| parse_zone(s).map_err(|e| Error::Config(format!("zone {e}"))))
                .collect::<Result<_, _>>()?,
            zone_files: Vec::new(),
        }
        .config()
    }
}

/// A rule set given as a dict (sent as JSON) in the rules-file format.
fn json_to_toml(json: &str) -> Result<String, Error> {
    let table: toml::Table =
        serde_json::from_str(json).map_err(|e| Error::Config(format!("rules: {e}")))?;
    toml::to_string(&table).map_err(|e| Error::Config(format!("rules: {e}")))
}

/// `batches` as a `pyarrow.Table` (their own schema, or `schema` when there are none).
fn table(py: Python<'_>, batches: Vec<RecordBatch>, schema: SchemaRef) -> PyResult<Py<PyAny>> {
    let schema = batches.first().map_or(schema, RecordBatch::schema);
    let t = Table::try_new(batches, schema).map_err(|e| WormsignError::new_err(e.to_string()))?;
    Ok(PyArrowType(t).into_pyobject(py)?.unbind())
}

/// Puts the capture tables into `out` by name.
fn put_tables(py: Python<'_>, out: &Bound<'_, PyDict>, t: Tables) -> PyResult<()> {
    out.set_item("flows", table(py, t.flows, flow_schema())?)?;
    out.set_item("dns", table(py, t.dns, dns_schema())?)?;
    out.set_item("arp", table(py, t.arp, arp_schema())?)?;
    out.set_item("sessions", table(py, t.sessions, session_schema())?)?;
    out.set_item("names", table(py, t.names, names_schema())?)?;
    Ok(())
}

/// Puts the detection tables, the report and the detection counters into `out`.
fn put_detection(py: Python<'_>, out: &Bound<'_, PyDict>, d: &Detection) -> PyResult<()> {
    let t = DetectionTables::new(d);
    out.set_item("alerts", table(py, vec![t.alerts], alert_schema())?)?;
    out.set_item("hosts", table(py, vec![t.hosts], host_schema())?)?;
    out.set_item(
        "propagation",
        table(py, vec![t.propagation], propagation_schema())?,
    )?;
    out.set_item("timeline", table(py, vec![t.timeline], timeline_schema())?)?;
    out.set_item(
        "segmentation",
        table(py, vec![t.segmentation], segmentation_schema())?,
    )?;
    out.set_item(
        "remediation",
        table(py, vec![t.remediation], remediation_schema())?,
    )?;
    out.set_item("report_md", render_report(d))?;
    out.set_item("detection_json", stats_json(d).to_string())?;
    Ok(())
}

/// Runs `work` without the GIL on a thread of its own, while the calling thread checks
/// for Ctrl-C (then sets `control.stop`, so the run ends with complete outputs of what
/// it read) and calls `progress(bytes, total_bytes, packets)`. Returns the work's result
/// and the interrupt or callback error, if any, to raise after it.
///
/// Known limit: after the first Ctrl-C it waits for the work to end. A reader blocked on
/// a pipe that never delivers more data cannot be cut short; the CLI's second Ctrl-C
/// ends the process, which a library must not do.
fn run_watched<T: Send>(
    py: Python<'_>,
    control: &Control,
    total_bytes: u64,
    progress: Option<&Py<PyAny>>,
    work: impl FnOnce() -> T + Send,
) -> PyResult<(T, Option<PyErr>)> {
    let report = |py: Python<'_>| -> PyResult<()> {
        match progress {
            Some(cb) => {
                let done = control.bytes.load(Ordering::Relaxed);
                let packets = control.packets.load(Ordering::Relaxed);
                cb.call1(py, (done, total_bytes, packets)).map(drop)
            }
            None => Ok(()),
        }
    };
    py.detach(|| {
        std::thread::scope(|s| {
            let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
            let worker = s.spawn(move || {
                let result = work();
                let _ = done_tx.send(());
                result
            });
            let mut raised: Option<PyErr> = None;
            // Wakes every POLL, or at once when the work is done (or its thread died).
            while let Err(RecvTimeoutError::Timeout) = done_rx.recv_timeout(POLL) {
                if raised.is_none() {
                    let polled = Python::attach(|py| py.check_signals().and_then(|()| report(py)));
                    if let Err(e) = polled {
                        control.stop.store(true, Ordering::Relaxed);
                        raised = Some(e);
                    }
                }
            }
            let result = worker.join().map_err(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                WormsignError::new_err(format!("internal error: the engine panicked: {what}"))
            })?;
            if raised.is_none() {
                // The bar's last step; the run is complete whatever the callback says.
                let _ = Python::attach(report);
            }
            Ok((result, raised))
        })
    })
}

/// `InputError` for a run that could read no input: each input's problem, one a line.
fn no_usable_input(summary: &RunSummary) -> PyErr {
    let lines: Vec<String> = summary.warnings.iter().map(ToString::to_string).collect();
    InputError::new_err(format!("no input could be read:\n  {}", lines.join("\n  ")))
}

/// Each message as a `wormsign.WormsignWarning`.
fn warn_all(py: Python<'_>, messages: &[String]) -> PyResult<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let category = py.import("wormsign")?.getattr("WormsignWarning")?;
    for m in messages {
        let text = std::ffi::CString::new(m.replace('\0', " ")).expect("no NUL left");
        PyErr::warn(py, &category, &text, 1)?;
    }
    Ok(())
}

/// The warnings of a run as `(input, offset, message)` tuples.
fn warnings(summary: &RunSummary) -> Vec<(String, Option<u64>, String)> {
    summary
        .warnings
        .iter()
        .map(|w| (w.input.clone(), w.offset, w.message.clone()))
        .collect()
}

/// Analyses `paths` into tables (in memory, or with `out` as Parquet files read back),
/// then detects unless `detect` is None. Returns a dict of tables, `summary_json`,
/// `warnings`, and with detection `alerts`, `hosts`, `propagation`, `report_md`.
#[pyfunction]
#[pyo3(signature = (paths, out, options, detect, progress=None))]
fn analyze_paths(
    py: Python<'_>,
    paths: Vec<PathBuf>,
    out: Option<PathBuf>,
    options: AnalyzeOptions,
    detect: Option<DetectOptions>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Py<PyDict>> {
    // Settings first, so a bad rules file fails before a long run.
    let pipeline = options.config().map_err(py_err)?;
    if out.is_none() && pipeline.partitioning.is_some() {
        return Err(PyValueError::new_err(
            "partition_by needs out=: partitions are directories of files",
        ));
    }
    let detect_config = detect.map(|d| d.config()).transpose().map_err(py_err)?;
    let inputs = expand_inputs(&paths).map_err(py_err)?;
    let total_bytes = inputs.iter().filter_map(|i| i.size()).sum();
    let control = Control::default();
    // With out=, this run's tables are kept as written: the directory may hold earlier
    // runs' partitions too (detection, as the CLI's, reads them all).
    let output = out.clone().map_or(Output::Memory, Output::ParquetAndMemory);
    // Detection is fed from the pipeline as it stores the tables (the same results as
    // reading them back, as `wormsign detect` does).
    let (result, raised) =
        run_watched(
            py,
            &control,
            total_bytes,
            progress.as_ref(),
            || match &detect_config {
                Some(config) => analyze_and_detect(&inputs, &pipeline, config, &control, &output),
                None => analyze(&inputs, &pipeline, &control, &output).map(|a| (a, None)),
            },
        )?;
    let (analysis, detected) = result.map_err(py_err)?;
    if let Some(e) = raised {
        // Interrupted (or the callback failed): the tables hold what was read, as the
        // CLI leaves them; no detection.
        return Err(e);
    }
    let summary = analysis.summary;
    if summary.inputs_usable == 0 {
        return Err(no_usable_input(&summary));
    }
    let dict = PyDict::new(py);
    let mut summary_json = summary.to_json();
    dict.set_item("warnings", warnings(&summary))?;
    let tables = analysis.tables;
    // With out=, analyze_and_detect wrote the detection outputs there too.
    if let Some(detected) = detected {
        summary_json["detection"] = stats_json(&detected.detection);
        summary_json["detection"]["input"] = detected.input.name().into();
        summary_json["detection"]["warnings"] = detected.warnings.clone().into();
        put_detection(py, &dict, &detected.detection)?;
        dict.set_item("detect_warnings", detected.warnings)?;
    }
    put_tables(py, &dict, tables)?;
    dict.set_item("summary_json", summary_json.to_string())?;
    Ok(dict.unbind())
}

/// Detects over the tables stored in `dir` (writing the outputs into `out` if given).
#[pyfunction]
#[pyo3(signature = (dir, out, options))]
fn detect_stored(
    py: Python<'_>,
    dir: PathBuf,
    out: Option<PathBuf>,
    options: DetectOptions,
) -> PyResult<Py<PyDict>> {
    let config = options.config().map_err(py_err)?;
    let detected = py
        .detach(|| -> Result<_, Error> {
            let detected = detect_dir(&dir, &config)?;
            if let Some(out) = &out {
                write_detection(out, &detected.detection, &detected.metadata)?;
            }
            Ok(detected)
        })
        .map_err(py_err)?;
    let dict = PyDict::new(py);
    put_detection(py, &dict, &detected.detection)?;
    dict.set_item("detect_warnings", detected.warnings)?;
    Ok(dict.unbind())
}

/// Detects over tables given as Arrow tables (anything with `__arrow_c_stream__`:
/// pyarrow, polars, DuckDB relations), by name; `flows` is required.
#[pyfunction]
#[pyo3(signature = (tables, out, options))]
fn detect_in_memory(
    py: Python<'_>,
    tables: &Bound<'_, PyDict>,
    out: Option<PathBuf>,
    options: DetectOptions,
) -> PyResult<Py<PyDict>> {
    let config = options.config().map_err(py_err)?;
    let get = |name: &str| -> PyResult<Vec<RecordBatch>> {
        match tables.get_item(name)? {
            None => Ok(Vec::new()),
            Some(t) => {
                let PyArrowType(t) = t.extract::<PyArrowType<Table>>()?;
                Ok(t.into_inner().0)
            }
        }
    };
    if tables.get_item("flows")?.is_none() {
        return Err(PyValueError::new_err("detect: a `flows` table is required"));
    }
    let tables = Tables {
        flows: get("flows")?,
        dns: get("dns")?,
        arp: get("arp")?,
        names: get("names")?,
        sessions: get("sessions")?,
    };
    let d = py
        .detach(|| -> Result<_, Error> {
            let d = detect_tables(&tables, &config)?;
            if let Some(out) = &out {
                let metadata = wormsign_engine::output_metadata(None, &config);
                write_detection(out, &d, &metadata)?;
            }
            Ok(d)
        })
        .map_err(py_err)?;
    let dict = PyDict::new(py);
    put_detection(py, &dict, &d)?;
    dict.set_item("detect_warnings", spill_warnings(&d))?;
    Ok(dict.unbind())
}

/// Writes a labelled synthetic scenario into `out`; returns its counts.
#[pyfunction]
#[pyo3(signature = (scenario, seed, out, scale, capture_start, netflow=None))]
fn synth(
    py: Python<'_>,
    scenario: &str,
    seed: u64,
    out: PathBuf,
    scale: f64,
    capture_start: u64,
    netflow: Option<&str>,
) -> PyResult<Py<PyDict>> {
    let scenario: Scenario = scenario.parse().map_err(PyValueError::new_err)?;
    let netflow: Option<NetflowVersion> = netflow
        .map(str::parse)
        .transpose()
        .map_err(PyValueError::new_err)?;
    let cfg = SynthConfig {
        scenario,
        seed,
        scale,
        capture_start,
    };
    cfg.check().map_err(PyValueError::new_err)?;
    let dataset = py
        .detach(|| write_dataset(&out, &cfg, netflow))
        .map_err(|e| PyOSError::new_err(e.to_string()))?;
    let dict = PyDict::new(py);
    dict.set_item("packets", dataset.output.packets)?;
    dict.set_item("bytes", dataset.output.bytes)?;
    dict.set_item("infected", dataset.output.labels.infected.len())?;
    dict.set_item("netflow_records", dataset.exported.map(|e| e.records))?;
    Ok(dict.unbind())
}

/// Scores rule sets (rules files; none: the built-in rules) at every sweep point against
/// `labels` over `paths` (captures, analysed once in memory, or one directory `analyze`
/// wrote); returns the rows `bench_rules.parquet` holds.
#[pyfunction]
#[pyo3(signature = (paths, labels, rules, sweeps, threads=None))]
fn bench_rules(
    py: Python<'_>,
    paths: Vec<PathBuf>,
    labels: PathBuf,
    rules: Vec<PathBuf>,
    sweeps: Vec<String>,
    threads: Option<usize>,
) -> PyResult<Py<PyAny>> {
    let labels = read_labels(&labels).map_err(py_err)?;
    let sweeps = sweeps
        .iter()
        .map(|s| Sweep::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(py_err)?;
    let rule_sets = RuleSet::read_files(&rules).map_err(py_err)?;
    let plan = BenchPlan::new(&labels, &rule_sets, &sweeps).map_err(py_err)?;
    let mut config = PipelineConfig::default();
    if let Some(threads) = threads {
        config.threads = threads.max(1);
    }
    let control = Control::default();
    let (result, raised) = run_watched(py, &control, 0, None, || {
        DetectInputs::load(&paths, &config, &control)
    })?;
    let loaded = result.map_err(py_err)?;
    if let Some(e) = raised {
        return Err(e);
    }
    if let Some(summary) = loaded.summary.filter(|s| s.inputs_usable == 0) {
        return Err(no_usable_input(&summary));
    }
    warn_all(py, &loaded.warnings)?;
    let batch = py
        .detach(|| bench_table(&plan.run(&loaded.inputs, &labels), &sweeps))
        .map_err(py_err)?;
    table(py, vec![batch.clone()], batch.schema())
}

/// The built-in rule set as rules-file TOML (what `wormsign rules` prints).
#[pyfunction]
fn rules_toml() -> String {
    DetectConfig::default().to_toml()
}

#[pymodule(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("WormsignError", m.py().get_type::<WormsignError>())?;
    m.add("InputError", m.py().get_type::<InputError>())?;
    m.add_function(wrap_pyfunction!(analyze_paths, m)?)?;
    m.add_function(wrap_pyfunction!(detect_stored, m)?)?;
    m.add_function(wrap_pyfunction!(detect_in_memory, m)?)?;
    m.add_function(wrap_pyfunction!(synth, m)?)?;
    m.add_function(wrap_pyfunction!(bench_rules, m)?)?;
    m.add_function(wrap_pyfunction!(rules_toml, m)?)?;
    parts::register(m)?;
    Ok(())
}
