//! Atomic Parquet files: written under a temporary name, renamed into place on success.

use std::fs::File;
use std::path::Path;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_writer::{compute_leaves, ArrowLeafColumn, ArrowRowGroupWriterFactory};
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Compression, Encoding, Type as PhysicalType, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;

use crate::row_group::RowGroup;
use crate::{ColumnarError, PartitionedSink, Partitioning, RowBuilder, StagedFile};

/// Rows per Parquet row group: large enough for good compression and fast scans, small
/// enough that the writer's buffered row group stays at a few tens of MB.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Columns whose values are (nearly) unique per row: dictionary encoding only costs time
/// (interning every value), and its dictionary of unique values is larger than plain
/// values under zstd. Without it for the time columns and `first_packet`, the 4 M-packet
/// benchmark's flows.parquet shrank from 22.6 to 19.9 MB and the run took 7 % less time.
/// The same holds for the packet ordinal of the dns, arp and sessions rows, for DNS
/// transaction ids (random 16-bit numbers) and for Community IDs (hashes). The leaves of
/// [`ENCODED`] of the type their encoding takes have their dictionary turned off there;
/// here are the others.
const NO_DICTIONARY: [&str; 2] = ["duration", "trans_id"];

/// Integer columns written with DELTA_BINARY_PACKED rather than PLAIN: times and packet
/// ordinals. Neighbouring rows differ by little (rows leave a shard about in first-packet
/// order, and a flow's `last_ts` is near its `ts`), so the differences take a few bits
/// where plain values take 8 bytes, and zstd then has a fraction of the bytes to
/// compress. It cut 3-5 % of the instructions of a run on each benchmark shape
/// (callgrind, first 100 000 packets, `--no-detect`); the scan shape's flows file came
/// out 2.5 % smaller and the dns shape's DNS file 7.9 %. pyarrow, polars, DuckDB and
/// Spark read the encoding (python/tests read flows.parquet with each). The encoding
/// takes integers only: a leaf of these names of another physical type keeps the default,
/// a dictionary (none has one today: each is INT64, `ts` a timestamp in every table).
const DELTA_ENCODED: [&str; 4] = ["ts", "last_ts", "first_packet", "packet"];

/// Originators' ports (`orig_p`, and the DNS and sessions tables' `client_p`), written
/// with DELTA_BINARY_PACKED too, though they do not rise: most are ephemeral ports,
/// thousands of distinct values in a row group, so a dictionary interned every value into
/// a large hash table, wrote the table, and still wrote an index of up to 16 bits per row.
/// As deltas they need no table, and zstd compresses the result better: on the
/// benchmark shapes the columns came out 8-25 % smaller, the flows files 0.3-0.9 % and the
/// DNS files 1.8-4.0 %, and the runs took 0.4-1.1 % fewer instructions (first 100 000
/// packets, `--no-detect`). Counters and responders' ports, with few distinct
/// values, stay with the dictionary: as deltas `resp_p` grew 2.8-4.4 times and the byte
/// counters up to 2.7 times. A leaf of another physical type than INT32 keeps the default.
const DELTA_ENCODED_PORTS: [&str; 2] = ["orig_p", "client_p"];

/// Text columns written with DELTA_BYTE_ARRAY rather than PLAIN: each value as the length
/// of the prefix it shares with the one before, and the rest. A Community ID is `1:`, 27
/// base64 characters of a hash, and `=`; PLAIN writes a 4-byte length before each, so
/// zstd searched every position of the hashes for matches and found only the same 7
/// bytes (`=`, the length, `1:`) between every two. Prefix-coded, the lengths and the
/// shared `1:` go into two runs of small integers and zstd has little to search: on the
/// scan shape's first 300 000 packets (callgrind, `--no-detect`) zstd fell from 457 M to
/// 284 M instructions, the prefix coding added 33 M, and the run took 5.9 % fewer. Each
/// benchmark shape's run took 3-6 % fewer; the flows file grew by 0.5-0.8 % (the `=`
/// each value still ends with). DELTA_LENGTH_BYTE_ARRAY (lengths apart, values whole)
/// saved as much work but left `1:` and `=` to zstd's literals: 3-4 % larger files.
/// pyarrow, polars, DuckDB and Spark read the same values as from PLAIN. The sessions
/// table's `community_id` is written so too.
const PREFIX_ENCODED: [&str; 1] = ["community_id"];

/// The columns written neither PLAIN nor with a dictionary (which each of these turns
/// off: with one, the encoding would only be the fallback once it filled), with the
/// physical type the encoding takes; a leaf of another type keeps the default.
const ENCODED: [(&[&str], PhysicalType, Encoding); 3] = [
    (
        &DELTA_ENCODED,
        PhysicalType::INT64,
        Encoding::DELTA_BINARY_PACKED,
    ),
    (
        &DELTA_ENCODED_PORTS,
        PhysicalType::INT32,
        Encoding::DELTA_BINARY_PACKED,
    ),
    (
        &PREFIX_ENCODED,
        PhysicalType::BYTE_ARRAY,
        Encoding::DELTA_BYTE_ARRAY,
    ),
];

/// Columns whose min/max statistics no reader can prune with, yet cost two byte
/// comparisons per value to compute: a hash, Zeek's history letters, addresses and names
/// (as text their order is not numeric, and every row group of a capture spans nearly
/// all of it: resp_h runs from 10.164.1.10 to 93.184.2.99 in each of the outbreak
/// benchmark's), and the names of enumerations (every row group holds most of them). In
/// the NetFlow collector a quarter of the CPU time went to comparing strings for
/// statistics; without those of the addresses, names and enumerations, the benchmark
/// shapes spend 3-4 % less CPU. A list column's values count as the column (as they do
/// for [`NO_DICTIONARY`]).
const NO_STATISTICS: [&str; 15] = [
    "community_id",
    "history",
    "orig_h",
    "resp_h",
    "client_h",
    "server_h",
    "qname",
    "answers",
    "proto",
    "conn_state",
    "end_reason",
    "source",
    "rcode_name",
    "qtype_name",
    "answer_types",
];

/// One Parquet file being written. Until [`ParquetSink::finish`] renames it, the data
/// lives under a hidden temporary name in the same directory ([`StagedFile`]), so a
/// reader never sees a half-written file; dropping an unfinished sink deletes the
/// temporary file.
///
/// The columns are encoded (and their pages compressed) in parallel on rayon's pool and
/// the writing thread, each column on its own lane of the `RowGroup` (`row_group.rs`),
/// so one batch's slowest column does not hold back the next batch; only appending the
/// finished column chunks to the file is serial. Encoding is most of the writer's work,
/// and the single writer would otherwise be the pipeline's serial stage, alone on one
/// core while the end-of-input flush of every live flow is encoded. The bytes do not
/// depend on the pool's size: each column encodes its batches in order, one thread at a
/// time.
pub struct ParquetSink {
    file: Option<SerializedFileWriter<File>>,
    columns: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    row_group: Option<RowGroup>,
    staged: StagedFile,
}

impl ParquetSink {
    /// Starts `path` with the given schema and key-value metadata (zstd, large row groups).
    pub fn create(
        path: &Path,
        schema: SchemaRef,
        metadata: &[(String, String)],
    ) -> Result<ParquetSink, ColumnarError> {
        let (staged, file) = StagedFile::create(path)?;
        let kv = metadata
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
            .collect();
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(1).expect("level 1 is valid"),
            ))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_key_value_metadata(Some(kv))
            .set_created_by(format!("wormsign {}", env!("CARGO_PKG_VERSION")));
        // Per leaf column, so that a list column's values count as the column.
        let leaves = ArrowSchemaConverter::new().convert(&schema)?;
        let leaves_of = |names: &'static [&'static str]| {
            leaves.columns().iter().filter(move |leaf| {
                let path = leaf.path().parts();
                path.first().is_some_and(|c| names.contains(&c.as_str()))
            })
        };
        let props = leaves_of(&NO_DICTIONARY).fold(props, |p, leaf| {
            p.set_column_dictionary_enabled(leaf.path().clone(), false)
        });
        let props = leaves_of(&NO_STATISTICS).fold(props, |p, leaf| {
            p.set_column_statistics_enabled(leaf.path().clone(), EnabledStatistics::None)
        });
        let props = ENCODED
            .iter()
            .flat_map(|&(names, physical, encoding)| {
                let typed = leaves_of(names).filter(move |leaf| leaf.physical_type() == physical);
                typed.map(move |leaf| (leaf, encoding))
            })
            .fold(props, |p, (leaf, encoding)| {
                p.set_column_dictionary_enabled(leaf.path().clone(), false)
                    .set_column_encoding(leaf.path().clone(), encoding)
            })
            .build();
        // ArrowWriter sets the file up exactly as readers expect (the Parquet schema,
        // the embedded Arrow schema that restores dictionaries and time zones); its
        // lower-level parts then let the columns be encoded in parallel.
        let (file, columns) =
            ArrowWriter::try_new(file, schema.clone(), Some(props))?.into_serialized_writer()?;
        Ok(ParquetSink {
            file: Some(file),
            columns,
            schema,
            row_group: None,
            staged,
        })
    }

    /// Appends a batch, ending row groups at [`ROW_GROUP_ROWS`] rows.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ColumnarError> {
        let mut at = 0;
        while at < batch.num_rows() {
            let Some(file) = self.file.as_ref() else {
                return Ok(());
            };
            let group = match &mut self.row_group {
                Some(g) => g,
                None => self.row_group.insert(RowGroup::new(
                    self.columns
                        .create_column_writers(file.flushed_row_groups().len())?,
                )),
            };
            let take = (ROW_GROUP_ROWS - group.rows).min(batch.num_rows() - at);
            group.push(leaves(&self.schema, &batch.slice(at, take))?, take)?;
            at += take;
            if group.rows >= ROW_GROUP_ROWS {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Bytes encoded into the current row group and not yet written to the file.
    pub fn buffered_bytes(&self) -> usize {
        self.row_group.as_ref().map_or(0, RowGroup::estimated_bytes)
    }

    /// Ends the current row group early, writing what it holds to the file.
    pub fn flush(&mut self) -> Result<(), ColumnarError> {
        let (Some(file), Some(group)) = (self.file.as_mut(), self.row_group.take()) else {
            return Ok(());
        };
        let chunks = group.close()?;
        let mut row_group = file.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        Ok(())
    }

    /// Writes the footer, syncs and renames the file into place.
    pub fn finish(self) -> Result<(), ColumnarError> {
        self.finish_staged()?.commit()
    }

    /// Writes the footer and syncs the file, leaving it under its temporary name for the
    /// caller to put in place.
    pub fn finish_staged(mut self) -> Result<StagedFile, ColumnarError> {
        self.flush()?;
        if let Some(writer) = self.file.take() {
            self.staged.sync(&writer.into_inner()?)?;
        }
        Ok(self.staged)
    }
}

/// `batch` as the leaf columns the row group's lanes encode, in lane order.
fn leaves(schema: &SchemaRef, batch: &RecordBatch) -> Result<Vec<ArrowLeafColumn>, ColumnarError> {
    let mut leaves = Vec::new();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        leaves.extend(compute_leaves(field, column)?);
    }
    Ok(leaves)
}

/// Where a table's batches go: one file `OUT/NAME.parquet`, a Hive-partitioned
/// directory `OUT/NAME/` (see [`PartitionedSink`]), or memory.
pub enum TableSink {
    /// One atomic file.
    File(Box<ParquetSink>),
    /// A directory of atomic files, one or more per time partition.
    Partitioned(PartitionedSink),
    /// The batches themselves, for a caller that wants tables without files.
    Memory(Vec<RecordBatch>),
    /// Files, and the batches written to them kept in memory too.
    Keeping(Box<TableSink>, Vec<RecordBatch>),
}

impl TableSink {
    /// Starts table `name` in `out_dir`, partitioned or not.
    pub fn create(
        out_dir: &Path,
        name: &str,
        schema: SchemaRef,
        metadata: &[(String, String)],
        partitioning: Option<Partitioning>,
    ) -> Result<TableSink, ColumnarError> {
        Ok(match partitioning {
            None => TableSink::File(Box::new(ParquetSink::create(
                &out_dir.join(format!("{name}.parquet")),
                schema,
                metadata,
            )?)),
            Some(p) => TableSink::Partitioned(PartitionedSink::create(
                &out_dir.join(name),
                schema,
                metadata,
                p,
            )?),
        })
    }

    /// A sink that keeps the batches in memory.
    pub fn memory() -> TableSink {
        TableSink::Memory(Vec::new())
    }

    /// This sink, keeping the batches it writes in memory too.
    pub fn and_keep(self) -> TableSink {
        TableSink::Keeping(Box::new(self), Vec::new())
    }

    /// Appends a batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ColumnarError> {
        match self {
            TableSink::File(s) => s.write(batch),
            TableSink::Partitioned(s) => s.write(batch),
            // Cheap: a batch is reference-counted buffers.
            TableSink::Memory(batches) => {
                batches.push(batch.clone());
                Ok(())
            }
            TableSink::Keeping(files, batches) => {
                files.write(batch)?;
                batches.push(batch.clone());
                Ok(())
            }
        }
    }

    /// Finishes the file or files; returns the batches a memory sink kept (none for
    /// files).
    pub fn finish(self) -> Result<Vec<RecordBatch>, ColumnarError> {
        match self {
            TableSink::File(s) => s.finish().map(|()| Vec::new()),
            TableSink::Partitioned(s) => s.finish().map(|_| Vec::new()),
            TableSink::Memory(batches) => Ok(batches),
            TableSink::Keeping(files, batches) => files.finish().map(|_| batches),
        }
    }
}

/// Rows in, Parquet out: buffers rows in a [`RowBuilder`] and hands full batches to a
/// [`TableSink`].
pub struct TableWriter<B: RowBuilder> {
    builder: B,
    sink: TableSink,
    rows: u64,
    /// Batches [`TableWriter::seal`] made, for `finish` to write.
    sealed: Vec<RecordBatch>,
}

/// Rows a [`TableWriter`] gathers in its builder before encoding them: like the flow
/// shards' batches, small enough that Arrow builders (whose strings and lists take
/// several times their encoded size) add little to the row group being encoded.
const BATCH_ROWS: usize = 8 * 1024;

impl<B: RowBuilder> TableWriter<B> {
    /// Starts the table file at `path`.
    pub fn create(path: &Path, metadata: &[(String, String)]) -> Result<Self, ColumnarError> {
        let sink = ParquetSink::create(path, B::schema(), metadata)?;
        Ok(Self::with_sink(TableSink::File(Box::new(sink))))
    }

    /// Writes rows into an already started sink.
    pub fn with_sink(sink: TableSink) -> Self {
        TableWriter {
            builder: B::default(),
            sink,
            rows: 0,
            sealed: Vec::new(),
        }
    }

    /// Appends one row, writing a batch when enough have accumulated; returns that batch
    /// (shared buffers, no copy), for a caller that reads what was stored as it goes.
    pub fn push(&mut self, row: &B::Row) -> Result<Option<RecordBatch>, ColumnarError> {
        self.builder.append(row);
        self.rows += 1;
        if self.builder.len() >= BATCH_ROWS {
            let batch = self.builder.finish();
            self.sink.write(&batch)?;
            return Ok(Some(batch));
        }
        Ok(None)
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Makes the rows still buffered a batch, returned (as [`TableWriter::push`] returns
    /// the others) and written by [`TableWriter::finish`]: a caller reads the last batch
    /// before the file ends, and nothing is written here, so nothing can fail.
    pub fn seal(&mut self) -> Option<RecordBatch> {
        if self.builder.len() == 0 {
            return None;
        }
        self.sealed.push(self.builder.finish());
        self.sealed.last().cloned()
    }

    /// Writes what is buffered and renames the file into place.
    pub fn finish(mut self) -> Result<FinishedTable, ColumnarError> {
        self.write_buffered()?;
        let batches = self.sink.finish()?;
        Ok(FinishedTable {
            rows: self.rows,
            batches,
        })
    }

    /// Writes `rows` as the table file at `path`, in the batches [`TableWriter::push`]
    /// makes, and syncs it, leaving it under its temporary name for the caller to put in
    /// place with the files it belongs with.
    pub fn stage_rows(
        path: &Path,
        metadata: &[(String, String)],
        rows: &[B::Row],
    ) -> Result<StagedFile, ColumnarError> {
        let mut writer = Self::create(path, metadata)?;
        rows.iter().try_for_each(|r| writer.push(r).map(drop))?;
        writer.write_buffered()?;
        let TableSink::File(sink) = writer.sink else {
            unreachable!("TableWriter::create makes one file");
        };
        sink.finish_staged()
    }

    /// Writes the rows still buffered and the batches sealed.
    fn write_buffered(&mut self) -> Result<(), ColumnarError> {
        self.seal();
        std::mem::take(&mut self.sealed)
            .iter()
            .try_for_each(|batch| self.sink.write(batch))
    }
}

/// What a finished [`TableWriter`] wrote.
#[derive(Debug)]
pub struct FinishedTable {
    /// Rows written.
    pub rows: u64,
    /// The batches, when the sink kept them in memory ([`TableSink::Memory`]).
    pub batches: Vec<RecordBatch>,
}
