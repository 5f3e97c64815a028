//! The detection tables (`alerts`, `hosts`, `propagation`): schemas and row builders
//! over `wormsign-detect`'s own result types, as the capture tables' builders in
//! `wormsign-columnar` take `wormsign-flow`'s records. Here, downstream of detect, so
//! that no crate looks further down the data path than itself.

use std::sync::{Arc, OnceLock};

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int32Builder, Int64Builder,
    ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use wormsign_detect::{Alert, Edge, HostRow};

use wormsign_columnar::parts::{
    batch, dict, field, micros, timestamp, AsciiTextBuilder, DictBuilder,
};
use wormsign_columnar::RowBuilder;

/// Schema of `alerts.parquet`, one row per alert, in alert id order.
pub fn alert_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                field(
                    "alert_id",
                    DataType::Utf8,
                    false,
                    "A0001, A0002, ...; sort key",
                ),
                field("rule", dict(), false, "the rule that raised the alert"),
                field("tier", dict(), false, "urgency: hour, day, week or month"),
                field(
                    "src_ip",
                    DataType::Utf8,
                    false,
                    "the host the alert is about",
                ),
                field(
                    "dst_ip",
                    DataType::Utf8,
                    true,
                    "the other side, when there is one",
                ),
                field("service", dict(), false, "service name, arp, dns or any"),
                field("first_seen", timestamp(), false, "first evidence"),
                field("last_seen", timestamp(), false, "last evidence"),
                field(
                    "detected_at",
                    timestamp(),
                    false,
                    "when the threshold was crossed",
                ),
                field(
                    "attempts",
                    DataType::Int64,
                    false,
                    "flows, queries or requests counted",
                ),
                field(
                    "distinct_targets",
                    DataType::Int64,
                    false,
                    "distinct targets (lower bound when saturated)",
                ),
                field(
                    "failed_ratio",
                    DataType::Float64,
                    false,
                    "failed share, 0..1",
                ),
                field(
                    "allowlisted",
                    DataType::Boolean,
                    false,
                    "the source is allowlisted",
                ),
                field(
                    "infection_sign",
                    DataType::Boolean,
                    false,
                    "the alert marks src_ip as infected",
                ),
                field("evidence", DataType::Utf8, false, "short evidence text"),
                field(
                    "basis",
                    dict(),
                    false,
                    "protocol (what the sessions said) or flow (flow shapes only)",
                ),
            ]))
        })
        .clone()
}

/// Schema of `hosts.parquet`, one row per host of interest.
pub fn host_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                field("ip", DataType::Utf8, false, "host address"),
                field("role", dict(), false, "what the host was in the outbreak"),
                field(
                    "first_malicious_at",
                    timestamp(),
                    true,
                    "infection time (first worm behaviour)",
                ),
                field("first_cnc_at", timestamp(), true, "first C&C alert"),
                field("first_scan_at", timestamp(), true, "first scan alert"),
                field("parent", DataType::Utf8, true, "the host that infected it"),
                field(
                    "generation",
                    DataType::Int32,
                    true,
                    "propagation generation, 0 for patient zero",
                ),
                field(
                    "mac",
                    DataType::Utf8,
                    true,
                    "the MAC that held the address (ARP)",
                ),
                field(
                    "other_macs",
                    list_of(DataType::Utf8),
                    false,
                    "other MACs that claimed the address",
                ),
                field(
                    "owner_changed_at",
                    timestamp(),
                    true,
                    "when another MAC first claimed the address",
                ),
                field(
                    "host_name",
                    DataType::Utf8,
                    true,
                    "best name: NTLMSSP workstation, else reverse DNS",
                ),
                field(
                    "names",
                    list_of(DataType::Utf8),
                    false,
                    "every name seen, with its source",
                ),
                field(
                    "users",
                    list_of(DataType::Utf8),
                    false,
                    "accounts of successful logins from the host",
                ),
            ]))
        })
        .clone()
}

/// Schema of `propagation.parquet`, one row per infection edge, by infection time.
pub fn propagation_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                field("parent_ip", DataType::Utf8, false, "the infecting host"),
                field("child_ip", DataType::Utf8, false, "the infected host"),
                field(
                    "infected_at",
                    timestamp(),
                    false,
                    "the child's infection time",
                ),
                field("vector", dict(), false, "how the child was infected"),
                field(
                    "seen",
                    DataType::Utf8,
                    false,
                    "what was seen, e.g. EternalBlue exploit, then the DoublePulsar implant answered",
                ),
                field(
                    "basis",
                    dict(),
                    false,
                    "protocol (the delivering session) or flow (flow timing)",
                ),
                field("confidence", DataType::Float32, false, "0..1"),
                field(
                    "evidence_flows",
                    list_of(DataType::Int64),
                    false,
                    "first_packet of the supporting flows, chosen one first",
                ),
            ]))
        })
        .clone()
}

pub(crate) fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A list column's type.
pub(crate) fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, true)))
}

/// Appends `values` as one list row.
pub(crate) fn append_strings(b: &mut ListBuilder<StringBuilder>, values: &[String]) {
    for v in values {
        b.values().append_value(v);
    }
    b.append(true);
}

pub(crate) fn ts_array(b: &mut TimestampMicrosecondBuilder) -> ArrayRef {
    Arc::new(b.finish().with_timezone("UTC"))
}

/// Builds `alerts.parquet` batches from [`Alert`]s.
#[derive(Default)]
pub struct AlertBatchBuilder {
    id: StringBuilder,
    rule: DictBuilder,
    tier: DictBuilder,
    src: AsciiTextBuilder,
    dst: AsciiTextBuilder,
    service: DictBuilder,
    times: [TimestampMicrosecondBuilder; 3],
    counts: [Int64Builder; 2],
    failed_ratio: Float64Builder,
    flags: [BooleanBuilder; 2],
    evidence: StringBuilder,
    basis: DictBuilder,
}

impl RowBuilder for AlertBatchBuilder {
    type Row = Alert;

    fn schema() -> SchemaRef {
        alert_schema()
    }

    fn append(&mut self, r: &Alert) {
        self.id.append_value(&r.id);
        self.rule.append_value(r.rule.as_str());
        self.tier.append_value(r.tier.as_str());
        self.src.append_ip(r.src);
        self.dst.append_ip_option(r.dst);
        self.service.append_value(&r.service);
        for (b, ns) in self
            .times
            .iter_mut()
            .zip([r.first_seen_ns, r.last_seen_ns, r.detected_ns])
        {
            b.append_value(micros(ns));
        }
        self.counts[0].append_value(i64_of(r.attempts));
        self.counts[1].append_value(i64_of(r.distinct_targets));
        self.failed_ratio.append_value(r.failed_ratio);
        self.flags[0].append_value(r.allowlisted);
        self.flags[1].append_value(r.infection_sign);
        self.evidence.append_value(&r.evidence);
        self.basis.append_value(r.basis.as_str());
    }

    fn len(&self) -> usize {
        self.evidence.len()
    }

    fn finish(&mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.rule.finish()),
            Arc::new(self.tier.finish()),
            Arc::new(self.src.finish()),
            Arc::new(self.dst.finish()),
            Arc::new(self.service.finish()),
        ];
        columns.extend(self.times.iter_mut().map(ts_array));
        columns.extend(
            self.counts
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.push(Arc::new(self.failed_ratio.finish()));
        columns.extend(
            self.flags
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.push(Arc::new(self.evidence.finish()));
        columns.push(Arc::new(self.basis.finish()));
        batch(alert_schema(), columns)
    }
}

/// Builds `hosts.parquet` batches from [`HostRow`]s.
#[derive(Default)]
pub struct HostBatchBuilder {
    ip: AsciiTextBuilder,
    role: DictBuilder,
    times: [TimestampMicrosecondBuilder; 3],
    parent: AsciiTextBuilder,
    generation: Int32Builder,
    mac: StringBuilder,
    other_macs: ListBuilder<StringBuilder>,
    owner_changed_at: TimestampMicrosecondBuilder,
    host_name: StringBuilder,
    names: ListBuilder<StringBuilder>,
    users: ListBuilder<StringBuilder>,
}

impl RowBuilder for HostBatchBuilder {
    type Row = HostRow;

    fn schema() -> SchemaRef {
        host_schema()
    }

    fn append(&mut self, r: &HostRow) {
        self.ip.append_ip(r.ip);
        self.role.append_value(r.role.as_str());
        for (b, ns) in
            self.times
                .iter_mut()
                .zip([r.first_malicious_at, r.first_cnc_at, r.first_scan_at])
        {
            b.append_option(ns.map(micros));
        }
        self.parent.append_ip_option(r.parent);
        self.generation
            .append_option(r.generation.map(|g| i32::try_from(g).unwrap_or(i32::MAX)));
        let id = &r.identity;
        self.mac.append_option(id.mac.as_deref());
        append_strings(&mut self.other_macs, &id.other_macs);
        self.owner_changed_at
            .append_option(id.owner_changed_at.map(micros));
        self.host_name.append_option(id.host_name.as_deref());
        append_strings(&mut self.names, &id.names);
        append_strings(&mut self.users, &id.users);
    }

    fn len(&self) -> usize {
        self.generation.len()
    }

    fn finish(&mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> =
            vec![Arc::new(self.ip.finish()), Arc::new(self.role.finish())];
        columns.extend(self.times.iter_mut().map(ts_array));
        columns.push(Arc::new(self.parent.finish()));
        columns.push(Arc::new(self.generation.finish()));
        columns.push(Arc::new(self.mac.finish()));
        columns.push(Arc::new(self.other_macs.finish()));
        columns.push(ts_array(&mut self.owner_changed_at));
        columns.push(Arc::new(self.host_name.finish()));
        columns.push(Arc::new(self.names.finish()));
        columns.push(Arc::new(self.users.finish()));
        batch(host_schema(), columns)
    }
}

/// Builds `propagation.parquet` batches from propagation [`Edge`]s.
#[derive(Default)]
pub struct PropagationBatchBuilder {
    parent: AsciiTextBuilder,
    child: AsciiTextBuilder,
    infected_at: TimestampMicrosecondBuilder,
    vector: DictBuilder,
    seen: StringBuilder,
    basis: DictBuilder,
    confidence: Float32Builder,
    evidence_flows: ListBuilder<Int64Builder>,
}

impl RowBuilder for PropagationBatchBuilder {
    type Row = Edge;

    fn schema() -> SchemaRef {
        propagation_schema()
    }

    fn append(&mut self, r: &Edge) {
        self.parent.append_ip(r.parent);
        self.child.append_ip(r.child);
        self.infected_at.append_value(micros(r.infected_at_ns));
        self.vector.append_value(&r.vector);
        self.seen.append_value(&r.seen);
        self.basis.append_value(r.basis.as_str());
        self.confidence.append_value(r.confidence);
        for &f in &r.evidence_flows {
            self.evidence_flows.values().append_value(i64_of(f));
        }
        self.evidence_flows.append(true);
    }

    fn len(&self) -> usize {
        self.confidence.len()
    }

    fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.parent.finish()),
            Arc::new(self.child.finish()),
            ts_array(&mut self.infected_at),
            Arc::new(self.vector.finish()),
            Arc::new(self.seen.finish()),
            Arc::new(self.basis.finish()),
            Arc::new(self.confidence.finish()),
            Arc::new(self.evidence_flows.finish()),
        ];
        batch(propagation_schema(), columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int16Type, Int64Type};
    use arrow_array::Array;
    use std::net::IpAddr;
    use wormsign_detect::{Basis, Role, Rule, Tier};

    /// Row 0 of `column` of `b` as text: strings and dictionary labels as they are,
    /// integers, timestamps (µs), floats and booleans as Rust prints them, lists of
    /// integers as `[a, b]`, nulls as `null`.
    fn cell(b: &RecordBatch, column: &str) -> String {
        let a = b.column_by_name(column).expect(column);
        if a.is_null(0) {
            return "null".into();
        }
        match a.data_type() {
            DataType::Utf8 => a.as_string::<i32>().value(0).into(),
            DataType::Dictionary(..) => {
                let d = a.as_dictionary::<Int16Type>();
                let key = d.keys().value(0) as usize;
                d.values().as_string::<i32>().value(key).into()
            }
            DataType::Int64 => a.as_primitive::<Int64Type>().value(0).to_string(),
            DataType::Int32 => a
                .as_primitive::<arrow_array::types::Int32Type>()
                .value(0)
                .to_string(),
            DataType::Timestamp(..) => a
                .as_primitive::<arrow_array::types::TimestampMicrosecondType>()
                .value(0)
                .to_string(),
            DataType::Float64 => a
                .as_primitive::<arrow_array::types::Float64Type>()
                .value(0)
                .to_string(),
            DataType::Float32 => a
                .as_primitive::<arrow_array::types::Float32Type>()
                .value(0)
                .to_string(),
            DataType::Boolean => a.as_boolean().value(0).to_string(),
            DataType::List(_) => {
                let items = a.as_list::<i32>().value(0);
                match items.data_type() {
                    DataType::Int64 => {
                        format!("{:?}", items.as_primitive::<Int64Type>().values().to_vec())
                    }
                    _ => format!(
                        "{:?}",
                        items
                            .as_string::<i32>()
                            .iter()
                            .flatten()
                            .collect::<Vec<_>>()
                    ),
                }
            }
            other => panic!("{column}: no test reading for {other}"),
        }
    }

    /// Each column of each detection table holds what its field of the row said, in the
    /// table's units (µs, floored; text addresses; labels), nulls where the row has none.
    #[test]
    fn each_column_holds_its_field() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let child: IpAddr = "2001:db8::2".parse().unwrap();
        let mut a = AlertBatchBuilder::default();
        a.append(&Alert {
            id: "A0001".into(),
            rule: Rule::Trw,
            tier: Tier::Day,
            src: ip,
            dst: Some(child),
            service: "smb".into(),
            first_seen_ns: 1_999,
            last_seen_ns: -1,
            detected_ns: 5_000_000,
            attempts: 4,
            distinct_targets: u64::MAX,
            failed_ratio: 0.75,
            allowlisted: true,
            infection_sign: false,
            evidence: "4 failed".into(),
            basis: Basis::Protocol,
        });
        let alerts = [
            ("alert_id", "A0001"),
            ("rule", "trw"),
            ("tier", "day"),
            ("src_ip", "10.0.0.1"),
            ("dst_ip", "2001:db8::2"),
            ("service", "smb"),
            ("first_seen", "1"),
            ("last_seen", "-1"),
            ("detected_at", "5000"),
            ("attempts", "4"),
            ("distinct_targets", "9223372036854775807"),
            ("failed_ratio", "0.75"),
            ("allowlisted", "true"),
            ("infection_sign", "false"),
            ("evidence", "4 failed"),
            ("basis", "protocol"),
        ];
        let mut h = HostBatchBuilder::default();
        h.append(&HostRow {
            ip: child,
            role: Role::PatientZero,
            first_malicious_at: Some(3_000),
            first_cnc_at: None,
            first_scan_at: Some(-1_500),
            parent: Some(ip),
            generation: Some(2),
            identity: wormsign_detect::Identity {
                mac: Some("00:11:22:33:44:55".into()),
                names: vec!["pc1 (dhcp)".into(), "PC1 (ntlmssp)".into()],
                ..Default::default()
            },
        });
        let hosts = [
            ("ip", "2001:db8::2"),
            ("role", "patient_zero"),
            ("first_malicious_at", "3"),
            ("first_cnc_at", "null"),
            ("first_scan_at", "-2"),
            ("parent", "10.0.0.1"),
            ("generation", "2"),
            ("mac", "00:11:22:33:44:55"),
            ("other_macs", "[]"),
            ("owner_changed_at", "null"),
            ("host_name", "null"),
            ("names", r#"["pc1 (dhcp)", "PC1 (ntlmssp)"]"#),
            ("users", "[]"),
        ];
        let mut p = PropagationBatchBuilder::default();
        p.append(&Edge {
            parent: ip,
            child,
            infected_at_ns: 7_000_001,
            vector: "eternalblue_smb".into(),
            seen: "EternalBlue exploit".into(),
            basis: Basis::Flow,
            confidence: 0.5,
            evidence_flows: vec![3, 1],
        });
        let edges = [
            ("parent_ip", "10.0.0.1"),
            ("child_ip", "2001:db8::2"),
            ("infected_at", "7000"),
            ("vector", "eternalblue_smb"),
            ("seen", "EternalBlue exploit"),
            ("basis", "flow"),
            ("confidence", "0.5"),
            ("evidence_flows", "[3, 1]"),
        ];
        for (batch, want) in [
            (a.finish(), &alerts[..]),
            (h.finish(), &hosts[..]),
            (p.finish(), &edges[..]),
        ] {
            assert_eq!(batch.num_rows(), 1);
            let names: Vec<&str> = batch
                .schema_ref()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            let wanted: Vec<&str> = want.iter().map(|(c, _)| *c).collect();
            assert_eq!(names, wanted, "every column is checked");
            for (column, value) in want {
                assert_eq!(cell(&batch, column), *value, "{column}");
            }
        }
    }
}
