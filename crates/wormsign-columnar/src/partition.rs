//! Hive-partitioned tables: `TABLE/day=YYYY-MM-DD[/hour=HH]/part-<run>-<n>.parquet`.
//!
//! A long capture, or many runs written into one directory, then reads as one table in
//! DuckDB (`read_parquet('out/flows/**/*.parquet', hive_partitioning=true)`), pyarrow
//! (`dataset(..., partitioning='hive')`), polars and Spark, and queries on time prune
//! whole files. Rows are placed by their `ts` column, in UTC.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{BooleanArray, RecordBatch};
use arrow_schema::SchemaRef;
use arrow_select::filter::filter_record_batch;
use wormsign_capture::time::UtcTime;

use crate::{ColumnarError, ParquetSink};

/// Partition files open at once; beyond this the least recently written one is
/// finished, and rows arriving for it later start its next file (`-<n+1>`).
const MAX_OPEN_FILES: usize = 64;

/// Encoded-but-unwritten bytes the open files may buffer together before the largest
/// is flushed as a row group: partitioning must not multiply the writer's memory.
const MAX_BUFFERED_BYTES: usize = 128 << 20;

/// How rows are split into directories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partitioning {
    /// `day=YYYY-MM-DD`
    Day,
    /// `day=YYYY-MM-DD/hour=HH`
    Hour,
}

impl Partitioning {
    /// `hour` or `day`, as `--partition-by` takes it.
    pub fn from_name(name: &str) -> Option<Partitioning> {
        match name {
            "hour" => Some(Partitioning::Hour),
            "day" => Some(Partitioning::Day),
            _ => None,
        }
    }

    fn bucket_us(self) -> i64 {
        match self {
            Partitioning::Day => 86_400_000_000,
            Partitioning::Hour => 3_600_000_000,
        }
    }

    /// The partition directory (relative to the table directory) of bucket `bucket`.
    fn directory(self, bucket: i64) -> PathBuf {
        let t = UtcTime::from_unix_ns(bucket.saturating_mul(self.bucket_us() * 1000));
        let day = format!("day={:04}-{:02}-{:02}", t.year, t.month, t.day);
        match self {
            Partitioning::Day => PathBuf::from(day),
            Partitioning::Hour => Path::new(&day).join(format!("hour={:02}", t.hour)),
        }
    }
}

struct OpenFile {
    sink: ParquetSink,
    last_write: u64,
}

/// One table written as a Hive-partitioned directory of atomic Parquet files.
///
/// File names carry a run id (a hash of the run's inputs and options), so runs over
/// different inputs add files side by side, while re-running the same analysis replaces
/// its own files: [`PartitionedSink::finish`] removes files of this run id that the
/// new run did not write, and `NAME.parquet` beside the directory (an earlier
/// unpartitioned run's), so readers never see two layouts of one analysis.
pub struct PartitionedSink {
    dir: PathBuf,
    schema: SchemaRef,
    metadata: Vec<(String, String)>,
    partitioning: Partitioning,
    run_id: String,
    open: BTreeMap<i64, OpenFile>,
    files_started: BTreeMap<i64, u32>,
    written: Vec<PathBuf>,
    writes: u64,
}

impl PartitionedSink {
    /// Starts the table directory `dir` (created if missing). `metadata` goes into
    /// every file and identifies the run.
    pub fn create(
        dir: &Path,
        schema: SchemaRef,
        metadata: &[(String, String)],
        partitioning: Partitioning,
    ) -> Result<PartitionedSink, ColumnarError> {
        std::fs::create_dir_all(dir).map_err(|error| ColumnarError::Io {
            path: dir.to_path_buf(),
            error,
        })?;
        Ok(PartitionedSink {
            dir: dir.to_path_buf(),
            schema,
            metadata: metadata.to_vec(),
            partitioning,
            run_id: format!("{:016x}", fnv1a(metadata)),
            open: BTreeMap::new(),
            files_started: BTreeMap::new(),
            written: Vec::new(),
            writes: 0,
        })
    }

    /// Appends a batch, each row to the partition of its `ts`.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ColumnarError> {
        let buckets = self.buckets(batch);
        let Some(&first) = buckets.first() else {
            return Ok(());
        };
        if buckets.iter().all(|&b| b == first) {
            return self.write_to(first, batch);
        }
        let distinct: std::collections::BTreeSet<i64> = buckets.iter().copied().collect();
        for bucket in distinct {
            let mask: BooleanArray = buckets.iter().map(|&b| Some(b == bucket)).collect();
            self.write_to(bucket, &filter_record_batch(batch, &mask)?)?;
        }
        Ok(())
    }

    /// Finishes every open file and removes this run id's files left by an earlier run
    /// that this one did not rewrite. Returns the files written.
    pub fn finish(mut self) -> Result<Vec<PathBuf>, ColumnarError> {
        for (_, file) in std::mem::take(&mut self.open) {
            file.sink.finish()?;
        }
        self.remove_stale_files();
        self.written.sort();
        Ok(self.written)
    }

    fn buckets(&self, batch: &RecordBatch) -> Vec<i64> {
        let step = self.partitioning.bucket_us();
        match batch
            .column_by_name("ts")
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
        {
            Some(ts) => ts.values().iter().map(|t| t.div_euclid(step)).collect(),
            // Every partitionable table has a non-null `ts`; a schema without one is a
            // programming error caught by the tests, so put its rows in one place.
            None => vec![0; batch.num_rows()],
        }
    }

    fn write_to(&mut self, bucket: i64, batch: &RecordBatch) -> Result<(), ColumnarError> {
        self.writes += 1;
        if !self.open.contains_key(&bucket) {
            if self.open.len() >= MAX_OPEN_FILES {
                self.close_least_recent()?;
            }
            let sink = self.start_file(bucket)?;
            self.open.insert(
                bucket,
                OpenFile {
                    sink,
                    last_write: 0,
                },
            );
        }
        let file = self.open.get_mut(&bucket).expect("opened above");
        file.last_write = self.writes;
        file.sink.write(batch)?;
        self.bound_buffers()
    }

    fn start_file(&mut self, bucket: i64) -> Result<ParquetSink, ColumnarError> {
        let dir = self.dir.join(self.partitioning.directory(bucket));
        std::fs::create_dir_all(&dir).map_err(|error| ColumnarError::Io {
            path: dir.clone(),
            error,
        })?;
        let n = self.files_started.entry(bucket).or_insert(0);
        let path = dir.join(format!("part-{}-{}.parquet", self.run_id, n));
        *n += 1;
        self.written.push(path.clone());
        ParquetSink::create(&path, self.schema.clone(), &self.metadata)
    }

    fn close_least_recent(&mut self) -> Result<(), ColumnarError> {
        let oldest = self
            .open
            .iter()
            .min_by_key(|(_, f)| f.last_write)
            .map(|(&b, _)| b);
        if let Some(file) = oldest.and_then(|b| self.open.remove(&b)) {
            file.sink.finish()?;
        }
        Ok(())
    }

    fn bound_buffers(&mut self) -> Result<(), ColumnarError> {
        let total: usize = self.open.values().map(|f| f.sink.buffered_bytes()).sum();
        if total > MAX_BUFFERED_BYTES {
            if let Some(file) = self
                .open
                .values_mut()
                .max_by_key(|f| f.sink.buffered_bytes())
            {
                file.sink.flush()?;
            }
        }
        Ok(())
    }

    fn remove_stale_files(&self) {
        let _ = std::fs::remove_file(self.dir.with_extension("parquet"));
        let prefix = format!("part-{}-", self.run_id);
        for path in files_under(&self.dir) {
            let ours = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix));
            if ours && !self.written.contains(&path) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// The files of table `name` in `dir`: `NAME.parquet` and every `*.parquet` under the
/// partitioned directory `NAME/`, sorted. Temporary files of unfinished writes (their
/// names start with a dot) are not part of the table.
pub fn table_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let single = dir.join(format!("{name}.parquet"));
    let mut files: Vec<PathBuf> = single.is_file().then_some(single).into_iter().collect();
    files.extend(files_under(&dir.join(name)).filter(|path| {
        let visible = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| !n.starts_with('.'));
        visible && path.extension().is_some_and(|e| e == "parquet")
    }));
    files.sort();
    files
}

/// Every file below `dir`, at any depth (none if `dir` is missing).
fn files_under(dir: &Path) -> impl Iterator<Item = PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    let mut files = Vec::new();
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()) {
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.into_iter()
}

/// FNV-1a over the key-value pairs: a run id stable across platforms and releases of
/// the standard library (unlike `DefaultHasher`).
fn fnv1a(metadata: &[(String, String)]) -> u64 {
    let bytes = metadata
        .iter()
        .flat_map(|(k, v)| k.bytes().chain([0]).chain(v.bytes()).chain([0]));
    bytes.fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_utc_days_and_hours() {
        // 2019-01-01T04:46:00Z
        let us = 1_546_317_960_000_000i64;
        let hour = us.div_euclid(Partitioning::Hour.bucket_us());
        let day = us.div_euclid(Partitioning::Day.bucket_us());
        assert_eq!(
            Partitioning::Hour.directory(hour),
            Path::new("day=2019-01-01/hour=04")
        );
        assert_eq!(
            Partitioning::Day.directory(day),
            Path::new("day=2019-01-01")
        );
        // Before 1970 (damaged captures) still lands in a well-formed directory.
        assert_eq!(
            Partitioning::Hour.directory(-1),
            Path::new("day=1969-12-31/hour=23")
        );
    }

    #[test]
    fn run_id_depends_on_the_metadata() {
        let a = [("k".to_string(), "v1".to_string())];
        let b = [("k".to_string(), "v2".to_string())];
        assert_eq!(fnv1a(&a), fnv1a(&a));
        assert_ne!(fnv1a(&a), fnv1a(&b));
    }
}
