//! The responder's tables (`timeline`, `segmentation`, `remediation`): schemas and row
//! builders over `wormsign-detect`'s [`TimelineEvent`], [`ZoneCheck`] and
//! [`Remediation`], beside the other detection tables of `detect_tables.rs`; and the
//! remediation list as CSV, for mail.

use std::sync::{Arc, OnceLock};

use arrow_array::builder::{
    ArrayBuilder, Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Schema, SchemaRef};

use wormsign_columnar::parts::{
    batch, dict, field, micros, timestamp, AsciiTextBuilder, DictBuilder,
};
use wormsign_columnar::RowBuilder;
use wormsign_detect::{Remediation, TimelineEvent, ZoneCheck};

use crate::detect_tables::{append_strings, i64_of, list_of, ts_array};

/// Schema of `timeline.parquet`, one row per event, by `(ts, kind, host, peer, what)`.
pub fn timeline_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                field("ts", timestamp(), false, "when it happened; sort key"),
                field(
                    "kind",
                    dict(),
                    false,
                    "exposure, cnc_lookup, cnc_contact, first_scan, login_success, infection, honeypot",
                ),
                field("host", DataType::Utf8, false, "the host it is about"),
                field(
                    "peer",
                    DataType::Utf8,
                    true,
                    "the other side: C&C address, parent, server logged into, honeypot",
                ),
                field(
                    "what",
                    DataType::Utf8,
                    false,
                    "C&C name, service scanned, vector, account, what was tried",
                ),
                field("alert_id", DataType::Utf8, true, "the alert it rests on"),
            ]))
        })
        .clone()
}

/// Builds `timeline.parquet` batches from [`TimelineEvent`]s.
#[derive(Default)]
pub struct TimelineBatchBuilder {
    ts: TimestampMicrosecondBuilder,
    kind: DictBuilder,
    host: AsciiTextBuilder,
    peer: AsciiTextBuilder,
    what: StringBuilder,
    alert_id: StringBuilder,
}

impl RowBuilder for TimelineBatchBuilder {
    type Row = TimelineEvent;

    fn schema() -> SchemaRef {
        timeline_schema()
    }

    fn append(&mut self, r: &TimelineEvent) {
        self.ts.append_value(micros(r.ts_ns));
        self.kind.append_value(r.kind.as_str());
        self.host.append_ip(r.host);
        self.peer.append_ip_option(r.peer);
        self.what.append_value(&r.what);
        self.alert_id.append_option(r.alert_id.as_deref());
    }

    fn len(&self) -> usize {
        self.what.len()
    }

    fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            ts_array(&mut self.ts),
            Arc::new(self.kind.finish()),
            Arc::new(self.host.finish()),
            Arc::new(self.peer.finish()),
            Arc::new(self.what.finish()),
            Arc::new(self.alert_id.finish()),
        ];
        batch(timeline_schema(), columns)
    }
}

/// Schema of `segmentation.parquet`, one row per ordered pair of zones, by zone names.
pub fn segmentation_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let count = |name, doc| field(name, DataType::Int64, false, doc);
            Arc::new(Schema::new(vec![
                field(
                    "from_zone",
                    DataType::Utf8,
                    false,
                    "where the attempts came from",
                ),
                field("to_zone", DataType::Utf8, false, "where they went"),
                count(
                    "attempts",
                    "worm-service flows from infected or scanning hosts",
                ),
                count("answered", "those that completed a session"),
                count("blocked", "those that failed: S0, REJ, no reply"),
                count("other", "those that reached the port without a session"),
                count("sources", "distinct infected or scanning hosts that tried"),
                field("verdict", dict(), false, "held, breached or untested"),
                field(
                    "completed_flows",
                    list_of(DataType::Int64),
                    false,
                    "first_packet of the first completed sessions (flows.parquet)",
                ),
                field(
                    "alert_ids",
                    list_of(DataType::Utf8),
                    false,
                    "the first alert of each source",
                ),
            ]))
        })
        .clone()
}

/// Builds `segmentation.parquet` batches from [`ZoneCheck`]s.
#[derive(Default)]
pub struct SegmentationBatchBuilder {
    zones: [StringBuilder; 2],
    counts: [Int64Builder; 5],
    verdict: DictBuilder,
    completed_flows: ListBuilder<Int64Builder>,
    alert_ids: ListBuilder<StringBuilder>,
}

impl RowBuilder for SegmentationBatchBuilder {
    type Row = ZoneCheck;

    fn schema() -> SchemaRef {
        segmentation_schema()
    }

    fn append(&mut self, r: &ZoneCheck) {
        self.zones[0].append_value(&r.from_zone);
        self.zones[1].append_value(&r.to_zone);
        let counts = [r.attempts, r.answered, r.blocked, r.other, r.sources];
        for (b, n) in self.counts.iter_mut().zip(counts) {
            b.append_value(i64_of(n));
        }
        self.verdict.append_value(r.verdict.as_str());
        for s in &r.completed {
            self.completed_flows
                .values()
                .append_value(i64_of(s.first_packet));
        }
        self.completed_flows.append(true);
        append_strings(&mut self.alert_ids, &r.alert_ids);
    }

    fn len(&self) -> usize {
        self.zones[0].len()
    }

    fn finish(&mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = self
            .zones
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        columns.extend(
            self.counts
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.push(Arc::new(self.verdict.finish()));
        columns.push(Arc::new(self.completed_flows.finish()));
        columns.push(Arc::new(self.alert_ids.finish()));
        batch(segmentation_schema(), columns)
    }
}

/// Schema of `remediation.parquet`, one row per host and action, by
/// `(tier, action, host)`.
pub fn remediation_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                field("host", DataType::Utf8, false, "the host to act on"),
                field("action", dict(), false, "what to do"),
                field("tier", dict(), false, "when: hour, day, week or month"),
                field(
                    "detail",
                    DataType::Utf8,
                    false,
                    "what for: account, service, exploit, attacker",
                ),
                field(
                    "alert_ids",
                    list_of(DataType::Utf8),
                    false,
                    "the alerts it rests on",
                ),
                field(
                    "host_name",
                    DataType::Utf8,
                    true,
                    "the host's name, where seen",
                ),
                field("mac", DataType::Utf8, true, "the host's MAC address (ARP)"),
            ]))
        })
        .clone()
}

/// Builds `remediation.parquet` batches from [`Remediation`] rows.
#[derive(Default)]
pub struct RemediationBatchBuilder {
    host: AsciiTextBuilder,
    action: DictBuilder,
    tier: DictBuilder,
    detail: StringBuilder,
    alert_ids: ListBuilder<StringBuilder>,
    host_name: StringBuilder,
    mac: StringBuilder,
}

impl RowBuilder for RemediationBatchBuilder {
    type Row = Remediation;

    fn schema() -> SchemaRef {
        remediation_schema()
    }

    fn append(&mut self, r: &Remediation) {
        self.host.append_ip(r.host);
        self.action.append_value(r.action.as_str());
        self.tier.append_value(r.tier.as_str());
        self.detail.append_value(&r.detail);
        append_strings(&mut self.alert_ids, &r.alert_ids);
        self.host_name.append_option(r.host_name.as_deref());
        self.mac.append_option(r.mac.as_deref());
    }

    fn len(&self) -> usize {
        self.detail.len()
    }

    fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.host.finish()),
            Arc::new(self.action.finish()),
            Arc::new(self.tier.finish()),
            Arc::new(self.detail.finish()),
            Arc::new(self.alert_ids.finish()),
            Arc::new(self.host_name.finish()),
            Arc::new(self.mac.finish()),
        ];
        batch(remediation_schema(), columns)
    }
}

/// The remediation list as CSV (RFC 4180: fields with commas, quotes or line breaks
/// quoted), the columns of `remediation.parquet`, alert ids separated by spaces.
pub fn remediation_csv(rows: &[Remediation]) -> String {
    let quote = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut o = String::from("host,action,tier,detail,alert_ids,host_name,mac\r\n");
    for r in rows {
        o.push_str(&format!(
            "{},{},{},{},{},{},{}\r\n",
            r.host,
            r.action.as_str(),
            r.tier.as_str(),
            quote(&r.detail),
            quote(&r.alert_ids.join(" ")),
            quote(r.host_name.as_deref().unwrap_or("")),
            r.mac.as_deref().unwrap_or("")
        ));
    }
    o
}
