//! Helpers shared by the CLI integration tests: running the binary and the independent
//! tools, locating the shared captures, and reading the Parquet outputs into rows.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    DurationMicrosecondType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef, BooleanArray, ListArray, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

/// The corpus directory (`../shared/captures`, or `$WORMSIGN_SHARED/captures`), or `None`
/// after a `skipping:` line when it is absent; under CI (`CI` set) a missing corpus fails.
pub use wormsign_testutil::shared_captures as captures;

/// A capture in the corpus by its manifest path (not checked: call [`captures`] first).
pub fn capture(rel: &str) -> PathBuf {
    wormsign_testutil::capture_path(rel)
}

/// Whether an external tool can be run. When it cannot: fails under CI (which installs
/// the tools, see tests/install-tools.sh), otherwise prints a skip message.
#[track_caller]
pub fn have_tool(name: &str) -> bool {
    let version_flag = if name == "gzip" || name == "zstd" {
        "--version"
    } else {
        "-v"
    };
    wormsign_testutil::require_tool(name, version_flag)
}

/// The capture corpus, when it and `tool` are both there (see [`captures`] and
/// [`have_tool`] for what their absence does).
pub fn captures_and(tool: &str) -> Option<PathBuf> {
    captures().filter(|_| have_tool(tool))
}

/// Runs a tool and returns its stdout; panics on failure.
pub fn tool<S: AsRef<OsStr>>(name: &str, args: &[S]) -> String {
    let out = Command::new(name)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {name}: {e}"));
    assert!(
        out.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 tool output")
}

/// `tshark -r FILE EXTRA... -E occurrence=f -T fields -e F...`: one line per packet,
/// the fields tab-separated, the first occurrence of each (the outer header).
pub fn tshark_fields(path: &Path, extra: &[&str], fields: &[&str]) -> String {
    tshark(path, extra, &["-E", "occurrence=f"], fields)
}

/// Like [`tshark_fields`], with every occurrence of each field, comma-separated.
pub fn tshark_all_fields(path: &Path, extra: &[&str], fields: &[&str]) -> String {
    tshark(
        path,
        extra,
        &["-E", "occurrence=a", "-E", "aggregator=,"],
        fields,
    )
}

fn tshark(path: &Path, extra: &[&str], occurrence: &[&str], fields: &[&str]) -> String {
    let mut args: Vec<String> = vec!["-r".into(), path.display().to_string()];
    args.extend(extra.iter().chain(occurrence).map(|a| a.to_string()));
    args.extend(["-T", "fields"].map(String::from));
    for f in fields {
        args.push("-e".into());
        args.push(f.to_string());
    }
    tool("tshark", &args)
}

/// The outcome of one `wormsign analyze` run.
pub struct Run {
    pub status: ExitStatus,
    pub stderr: String,
    /// The `--summary-json` contents, when the file was written.
    pub summary: Option<Value>,
    /// Holds the output directory alive.
    pub dir: tempfile::TempDir,
}

impl Run {
    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    pub fn summary(&self) -> &Value {
        self.summary
            .as_ref()
            .unwrap_or_else(|| panic!("no summary written; stderr: {}", self.stderr))
    }

    /// A numeric summary field.
    pub fn n(&self, field: &str) -> u64 {
        self.summary()[field]
            .as_u64()
            .unwrap_or_else(|| panic!("summary field {field} missing"))
    }

    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn assert_ok(&self, what: &str) {
        assert_eq!(
            self.code(),
            Some(0),
            "{what}: wormsign failed: {}",
            self.stderr
        );
    }

    pub fn flows(&self) -> Vec<Row> {
        read_table(&self.out().join("flows.parquet"), "first_packet")
    }

    pub fn dns(&self) -> Vec<Row> {
        read_table(&self.out().join("dns.parquet"), "packet")
    }

    pub fn arp(&self) -> Vec<Row> {
        read_table(&self.out().join("arp.parquet"), "packet")
    }

    /// The warnings array of the summary.
    pub fn warnings(&self) -> Vec<Value> {
        self.summary()["warnings"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// Runs the binary with `args`, returning its output; panics unless it succeeds.
pub fn wormsign_ok(args: &[&std::ffi::OsStr]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_wormsign"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running wormsign");
    assert!(
        out.status.success(),
        "wormsign {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `wormsign analyze INPUTS... --out DIR --summary-json FILE -q EXTRA...`.
pub fn wormsign<S: AsRef<OsStr>>(inputs: &[S], extra: &[&str]) -> Run {
    wormsign_with_stdin(inputs, extra, None)
}

/// Like [`wormsign`], feeding `stdin` to the process.
pub fn wormsign_with_stdin<S: AsRef<OsStr>>(
    inputs: &[S],
    extra: &[&str],
    stdin: Option<&[u8]>,
) -> Run {
    analyze(inputs, extra, stdin, &[])
}

/// Like [`wormsign`], with environment variables `env` set for the process.
pub fn wormsign_with_env<S: AsRef<OsStr>>(
    inputs: &[S],
    extra: &[&str],
    env: &[(&str, &OsStr)],
) -> Run {
    analyze(inputs, extra, None, env)
}

fn analyze<S: AsRef<OsStr>>(
    inputs: &[S],
    extra: &[&str],
    stdin: Option<&[u8]>,
    env: &[(&str, &OsStr)],
) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary_path = dir.path().join("summary.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wormsign"));
    cmd.arg("analyze")
        .args(inputs)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--summary-json")
        .arg(&summary_path)
        .arg("-q")
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().expect("spawning wormsign");
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let data = data.to_vec();
        // A writer thread so a full stderr pipe cannot deadlock us.
        let writer = std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
        let out = child.wait_with_output().expect("waiting for wormsign");
        writer.join().expect("stdin writer");
        return finish(out.status, out.stderr, &summary_path, dir);
    }
    let out = child.wait_with_output().expect("waiting for wormsign");
    finish(out.status, out.stderr, &summary_path, dir)
}

fn finish(status: ExitStatus, stderr: Vec<u8>, summary: &Path, dir: tempfile::TempDir) -> Run {
    let summary = std::fs::read(summary)
        .ok()
        .map(|b| serde_json::from_slice(&b).expect("summary JSON parses"));
    Run {
        status,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        summary,
        dir,
    }
}

/// One Parquet value, enough for the three wormsign tables.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<Cell>),
    /// A float, as the bits of its `f64` value (so rows stay `Eq` and `Ord`).
    Float(u64),
}

impl Cell {
    pub fn int(&self) -> i64 {
        match self {
            Cell::Int(v) => *v,
            other => panic!("not an integer: {other:?}"),
        }
    }

    pub fn str(&self) -> &str {
        match self {
            Cell::Str(v) => v,
            other => panic!("not a string: {other:?}"),
        }
    }

    pub fn bool(&self) -> bool {
        match self {
            Cell::Bool(v) => *v,
            other => panic!("not a boolean: {other:?}"),
        }
    }

    pub fn float(&self) -> f64 {
        match self {
            Cell::Float(v) => f64::from_bits(*v),
            other => panic!("not a float: {other:?}"),
        }
    }
}

/// A row: column name to value.
pub type Row = BTreeMap<String, Cell>;

/// Reads every row of a Parquet file, sorted by the integer column `key` (and by
/// `record`, the second sort key of NetFlow rows, where the table has it).
pub fn read_table(path: &Path, key: &str) -> Vec<Row> {
    let mut rows = read_rows(path);
    rows.sort_by_key(|r| (r[key].int(), r.get("record").map_or(0, Cell::int)));
    rows
}

/// Reads every row of a Parquet file, in file order.
pub fn read_rows(path: &Path) -> Vec<Row> {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .build()
        .expect("parquet reader");
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let schema = batch.schema();
        let columns: Vec<(String, Vec<Cell>)> = schema
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(f, c)| (f.name().clone(), cells(c)))
            .collect();
        for i in 0..batch.num_rows() {
            rows.push(
                columns
                    .iter()
                    .map(|(name, col)| (name.clone(), col[i].clone()))
                    .collect::<Row>(),
            );
        }
    }
    rows
}

/// The key-value metadata of a Parquet file.
pub fn parquet_metadata(path: &Path) -> HashMap<String, String> {
    let file = File::open(path).expect("parquet file");
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet");
    builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kvs| {
            kvs.iter()
                .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

fn cells(a: &ArrayRef) -> Vec<Cell> {
    let any = a.as_any();
    let n = a.len();
    let at = |i: usize, f: &dyn Fn(usize) -> Cell| {
        if a.is_null(i) {
            Cell::Null
        } else {
            f(i)
        }
    };
    let out: Vec<Cell> = if let Some(x) = a.as_primitive_opt::<Int64Type>() {
        (0..n).map(|i| at(i, &|i| Cell::Int(x.value(i)))).collect()
    } else if let Some(x) = a.as_primitive_opt::<Int32Type>() {
        (0..n)
            .map(|i| at(i, &|i| Cell::Int(i64::from(x.value(i)))))
            .collect()
    } else if let Some(x) = a.as_primitive_opt::<Int16Type>() {
        (0..n)
            .map(|i| at(i, &|i| Cell::Int(i64::from(x.value(i)))))
            .collect()
    } else if let Some(x) = a.as_primitive_opt::<TimestampMicrosecondType>() {
        (0..n).map(|i| at(i, &|i| Cell::Int(x.value(i)))).collect()
    } else if let Some(x) = a.as_primitive_opt::<DurationMicrosecondType>() {
        (0..n).map(|i| at(i, &|i| Cell::Int(x.value(i)))).collect()
    } else if let Some(x) = a.as_primitive_opt::<Float64Type>() {
        (0..n)
            .map(|i| at(i, &|i| Cell::Float(x.value(i).to_bits())))
            .collect()
    } else if let Some(x) = a.as_primitive_opt::<Float32Type>() {
        (0..n)
            .map(|i| at(i, &|i| Cell::Float(f64::from(x.value(i)).to_bits())))
            .collect()
    } else if let Some(x) = any.downcast_ref::<StringArray>() {
        (0..n)
            .map(|i| at(i, &|i| Cell::Str(x.value(i).to_string())))
            .collect()
    } else if let Some(x) = any.downcast_ref::<BooleanArray>() {
        (0..n).map(|i| at(i, &|i| Cell::Bool(x.value(i)))).collect()
    } else if let Some(x) = a.as_dictionary_opt::<Int16Type>() {
        let values = cells(x.values());
        let keys = x.keys();
        (0..n)
            .map(|i| at(i, &|i| values[keys.value(i) as usize].clone()))
            .collect()
    } else if let Some(x) = any.downcast_ref::<ListArray>() {
        (0..n)
            .map(|i| at(i, &|i| Cell::List(cells(&x.value(i)))))
            .collect()
    } else {
        panic!("unexpected column type {:?}", a.data_type());
    };
    out
}

/// A flow's endpoints as `(address, port)`.
pub type Endpoint = (IpAddr, u16);

/// A direction-free conversation key: protocol and the two endpoints in ascending order.
pub type ConvKey = (u8, Endpoint, Endpoint);

/// Orders two endpoints; returns the key and whether `a` is the lower endpoint.
pub fn conv_key(proto: u8, a: Endpoint, b: Endpoint) -> (ConvKey, bool) {
    if a <= b {
        ((proto, a, b), true)
    } else {
        ((proto, b, a), false)
    }
}

/// Parses an address printed by tshark or wormsign.
pub fn ip(s: &str) -> IpAddr {
    s.parse()
        .unwrap_or_else(|e| panic!("bad address {s:?}: {e}"))
}

/// The originator/responder endpoints and protocol of a flow row.
pub fn flow_ends(r: &Row) -> (u8, Endpoint, Endpoint) {
    (
        r["ip_proto"].int() as u8,
        (ip(r["orig_h"].str()), r["orig_p"].int() as u16),
        (ip(r["resp_h"].str()), r["resp_p"].int() as u16),
    )
}

/// Rows of a tab-separated file with a header line, as maps from column name.
pub fn read_tsv(path: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            header
                .iter()
                .zip(l.split('\t'))
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// `EXPECTED.tsv` as `(path, metric) -> value`, keeping the first line of each metric.
pub fn expected() -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for row in read_tsv(&wormsign_testutil::captures_dir().join("EXPECTED.tsv")) {
        out.entry((row["path"].clone(), row["metric"].clone()))
            .or_insert_with(|| row["value"].clone());
    }
    out
}

/// Files of `EXPECTED.tsv` that have `metric`, in order.
pub fn expected_files(metric: &str) -> Vec<String> {
    expected()
        .keys()
        .filter(|(_, m)| m == metric)
        .map(|(p, _)| p.clone())
        .collect()
}

/// Record boundaries of a classic pcap file: `(offset of the record header, offset of
/// the next record)` for every whole record, read from the headers themselves.
pub fn pcap_records(data: &[u8]) -> Vec<(usize, usize)> {
    let magic = u32::from_le_bytes(data[0..4].try_into().unwrap());
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        m => panic!("not a pcap file (magic {m:#x})"),
    };
    let u32_at = |o: usize| {
        let b: [u8; 4] = data[o..o + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= data.len() {
        let caplen = u32_at(off + 8) as usize;
        let end = off + 16 + caplen;
        if end > data.len() {
            break;
        }
        out.push((off, end));
        off = end;
    }
    out
}

/// The directory of a bundled `datasets/` scenario (capture.pcap.gz, labels.json, …).
pub fn dataset(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("datasets")
        .join(name)
}

/// Runs `wormsign carve RUN_OUT ARGS... -o NAME` (NAME in the run's temporary directory)
/// and returns the carved frames as tshark lists them (time and length).
pub fn carve(run: &Run, args: &[&str], name: &str) -> Vec<String> {
    let out = run.dir.path().join(name);
    let dir = run.out();
    let mut argv: Vec<&OsStr> = vec!["carve".as_ref(), dir.as_os_str()];
    argv.extend(args.iter().map(OsStr::new));
    argv.extend(["-o".as_ref(), out.as_os_str()]);
    wormsign_ok(&argv);
    frames(&out, &[])
}

/// The frames of `capture` tshark shows through `filter`: time and length, one a line.
pub fn frames(capture: &Path, filter: &[&str]) -> Vec<String> {
    let lines = tshark_fields(capture, filter, &["frame.time_epoch", "frame.len"]);
    lines.lines().map(String::from).collect()
}
