//! Arrow schemas, batch builders and atomic Parquet files for wormsign's tables.
//!
//! Each table of the data path (`flows`, `dns`, `arp`, `sessions`) has its schema
//! declared once ([`flow_schema`], [`dns_schema`], [`arp_schema`], [`session_schema`])
//! and a [`RowBuilder`] that appends rows into one Arrow builder per column and finishes into a
//! `RecordBatch` (arrow-rs's builder/array split).
//! A [`TableWriter`] feeds batches to a [`ParquetSink`], which writes zstd-compressed
//! Parquet under a temporary name and renames it into place only when complete.
//!
//! Design decision: notebook-friendly types over compact ones. Timestamps are
//! `timestamp[us, UTC]`, durations float seconds (Parquet has no duration type), IP addresses strings, counters signed
//! 64-bit integers and enumerations dictionary-encoded strings, so pandas, polars,
//! DuckDB and Spark read every file without conversion.
//!
//! ```
//! use wormsign_columnar::{flow_schema, FlowBatchBuilder, RowBuilder};
//! let mut builder = FlowBatchBuilder::default();
//! let batch = builder.finish();
//! assert_eq!(batch.schema(), flow_schema());
//! assert_eq!(batch.num_rows(), 0);
//! ```
#![deny(missing_docs)]

mod builders;
mod names;
mod partition;
mod read;
mod row_group;
mod schema;
mod sessions;
mod sink;
mod staged;

use std::path::PathBuf;

pub use builders::{
    proto_name, rcode_name, ArpBatchBuilder, ArpRow, DnsBatchBuilder, DnsRow, FlowBatchBuilder,
    RowBuilder,
};
pub use names::{names_schema, NameBatchBuilder, NameRow};
pub use partition::{table_files, PartitionedSink, Partitioning};
pub use read::{
    arp_events, as_stored, detection_flow_columns, dns_events, flow_batch, flow_endpoints,
    for_each_flow, for_each_flow_to, kept_dns_events, kept_flow_batch, kept_flow_rows, name_events,
    read_arp, read_batches, read_dns, read_flows, read_names, read_sessions, session_events,
    stored_count, stored_has_ports, stored_record_index, stored_time, ResponderAddr,
};
pub use schema::{arp_schema, dns_schema, flow_schema};
pub use sessions::{session_schema, SessionBatchBuilder};
/// Building blocks for tables declared downstream (the detection tables): a column with
/// its description, dictionary strings, addresses as text, timestamps.
pub mod parts {
    pub use crate::builders::{batch, micros, AsciiTextBuilder, DictBuilder};
    pub use crate::schema::{dict, field, timestamp};
}
pub use sink::{FinishedTable, ParquetSink, TableSink, TableWriter, ROW_GROUP_ROWS};
pub use staged::StagedFile;

/// Errors writing tables.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ColumnarError {
    /// A file could not be created, synced or renamed.
    // Not named `source`: thiserror would also return it as the error's source, and
    // error reports that print the chain (anyhow's `{:#}`) would say it twice.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// Splitting a batch failed.
    #[error("arrow: {0}")]
    Arrow(arrow_schema::ArrowError),
    /// The Parquet writer failed.
    #[error("parquet: {0}")]
    Parquet(parquet::errors::ParquetError),
    /// A stored table could not be read back, or is not what wormsign writes (a missing
    /// or mistyped column, a null where none may be); the message names the file, column
    /// and row.
    #[error("{0}")]
    Read(String),
}

// By hand rather than `#[from]`, which would also make the wrapped error the source: the
// message already says it, and reports that print the chain (anyhow's `{:#}`) would say
// it twice, as for `Io`.
impl From<arrow_schema::ArrowError> for ColumnarError {
    fn from(error: arrow_schema::ArrowError) -> Self {
        ColumnarError::Arrow(error)
    }
}

impl From<parquet::errors::ParquetError> for ColumnarError {
    fn from(error: parquet::errors::ParquetError) -> Self {
        ColumnarError::Parquet(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error and its sources, joined as anyhow's `{:#}` joins them.
    fn report(error: &dyn std::error::Error) -> String {
        let mut text = error.to_string();
        let mut cause = error.source();
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        text
    }

    /// Each wrapped cause is said once in a report of the whole chain.
    #[test]
    fn a_report_of_the_chain_says_each_cause_once() {
        let disk_full = || std::io::Error::other("no space left");
        let errors = [
            ColumnarError::Io {
                path: "out/flows.parquet".into(),
                error: disk_full(),
            },
            arrow_schema::ArrowError::ComputeError("no space left".into()).into(),
            parquet::errors::ParquetError::General("no space left".into()).into(),
        ];
        for error in errors {
            let text = report(&error);
            assert_eq!(text.matches("no space left").count(), 1, "{text}");
        }
    }
}
