//! wormsign's engine as a library: what `wormsign analyze` and `wormsign detect` do,
//! callable from any program (the CLI, the Python package, a notebook kernel).
//!
//! - [`analyze`] runs the multi-threaded pipeline (capture → decode → inspect → flow →
//!   columnar) over captures and writes the `flows`, `dns`, `arp` and `sessions` tables
//!   as Parquet files or keeps them in memory ([`Output`]).
//! - [`carve`] writes the packets behind an alert, host, edge or flow to a pcap.
//! - [`Collector`] receives NetFlow/IPFIX exports on a UDP socket into rolling flow files.
//! - [`detect_dir`] and [`detect_tables`] run worm-propagation detection over those
//!   tables, stored or in memory; [`write_detection`] and [`DetectionTables`] give its
//!   outputs as files or Arrow batches.
//!
//! Nothing here prints, exits or reads argv: warnings come back as data in the
//! [`RunSummary`] and [`Detected`], progress through [`Control`]'s counters, and the
//! pipeline encodes Parquet on a rayon pool of its own.
//!
//! ```no_run
//! use wormsign_engine::{analyze, detect_tables, expand_inputs, Control, Output, PipelineConfig};
//! let inputs = expand_inputs(&["capture.pcap"])?;
//! let run = analyze(&inputs, &PipelineConfig::default(), &Control::default(), &Output::Memory)?;
//! let detection = detect_tables(&run.tables, &Default::default())?;
//! println!("{} flows, {} alerts", run.summary.flows, detection.alerts.len());
//! # Ok::<(), wormsign_engine::Error>(())
//! ```
#![deny(missing_docs)]

mod bench;
mod carve;
mod collect;
mod config;
mod detect_tables;
mod detection;
mod distributed;
mod error;
mod feed;
mod html;
mod input;
mod memory;
mod pipeline;
mod resolved;
mod responder_tables;
mod streamed;
mod summary;

use std::path::Path;

use arrow_array::RecordBatch;
use wormsign_columnar::{read_batches, table_files};

pub use bench::{bench_table, read_labels, BenchPlan, BenchRow, RuleSet, Sweep};
pub use carve::{carve, CarveTarget, Carved, LATE_RECORDS};
pub use collect::{CollectConfig, CollectSummary, Collector, DEFAULT_RECV_BUFFER};
pub use config::{
    parse_inspect_port, parse_tunnel_port, Control, DetectSettings, Output, PipelineConfig,
    PipelineOptions, Rules,
};
pub use detect_tables::{alert_schema, host_schema, propagation_schema};
pub use detection::{
    analyze_and_detect, detect_dir, detect_tables, detection_summary, output_metadata,
    spill_warnings, stats_json, write_detection, DetectInputs, Detected, DetectionInput,
    DetectionTables,
};
pub use distributed::{flow_files, merge_parts, PartRunner, RunEvents, PART_COLUMN};
pub use error::Error;
pub use input::{expand_inputs, Input};
pub use pipeline::{analyze, Analysis};
pub use responder_tables::{remediation_schema, segmentation_schema, timeline_schema};
pub use summary::{netflow_json, sflow_json, DecodeStats, RunSummary, Warning};

/// The five tables of a run as Arrow batches: what [`Output::Memory`] keeps, or what
/// [`Tables::read`] loads from a directory `analyze` wrote. Rows are in the order they
/// were produced; sort by the key `docs/schema.md` gives before comparing runs.
#[derive(Clone, Debug, Default)]
pub struct Tables {
    /// `flows`: one row per flow record.
    pub flows: Vec<RecordBatch>,
    /// `dns`: one row per DNS message.
    pub dns: Vec<RecordBatch>,
    /// `arp`: one row per ARP packet.
    pub arp: Vec<RecordBatch>,
    /// `names`: one row per DHCP or NetBIOS name service naming fact.
    pub names: Vec<RecordBatch>,
    /// `sessions`: one row per protocol fact of an SMB, TDS or RDP session.
    pub sessions: Vec<RecordBatch>,
}

impl Tables {
    /// Reads the tables `analyze` stored in `dir` (single files or partitioned
    /// directories; a missing table is empty).
    pub fn read(dir: &Path) -> Result<Tables, Error> {
        let table = |name| read_batches(&table_files(dir, name)).map_err(Error::from);
        Ok(Tables {
            flows: table("flows")?,
            dns: table("dns")?,
            arp: table("arp")?,
            names: table("names")?,
            sessions: table("sessions")?,
        })
    }
}
