//! Row-to-column builders, one per table (arrow-rs's "custom builder" pattern).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use arrow_array::builder::ArrayBuilder;
use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Float64Builder, Int16Builder, Int32Builder, Int64Builder,
    ListBuilder, StringBuilder, StringDictionaryBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::types::Int16Type;
use arrow_array::{ArrayRef, DictionaryArray, RecordBatch, StringArray};
use arrow_schema::SchemaRef;
use wormsign_decode::dns::{qtype_name, rcode_index, RCODE_NAMES};
pub use wormsign_decode::dns::{rcode_name, DnsRow};
use wormsign_decode::{ArpPacket, IpText, Tunnel, TunnelKind};
use wormsign_flow::{ConnState, EndReason, FlowRecord, FlowSource};

use crate::schema::{arp_schema, dns_schema, flow_schema};

/// Turns rows of one table into Arrow record batches.
pub trait RowBuilder: Default + Send {
    /// The row type.
    type Row;
    /// The table's schema.
    fn schema() -> SchemaRef;
    /// Appends one row.
    fn append(&mut self, row: &Self::Row);
    /// Rows appended since the last `finish`.
    fn len(&self) -> usize;
    /// Whether no row is pending.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Takes the pending rows as a batch and resets the builder.
    fn finish(&mut self) -> RecordBatch;
}

/// Builds a dictionary-encoded string column ([`crate::parts::dict`]).
pub type DictBuilder = StringDictionaryBuilder<Int16Type>;

/// Builds a dictionary column whose values are known up front (an enum's names): a row
/// appends its label's index, and `finish` attaches the whole label list. Arrow's
/// `StringDictionaryBuilder` hashes every value to find its key, which showed in
/// profiles at four such columns per flow.
#[derive(Default)]
pub(crate) struct LabelBuilder {
    keys: Int16Builder,
}

impl LabelBuilder {
    pub(crate) fn with_capacity(rows: usize) -> Self {
        LabelBuilder {
            keys: Int16Builder::with_capacity(rows),
        }
    }

    pub(crate) fn append(&mut self, index: usize) {
        self.keys
            .append_value(i16::try_from(index).expect("fewer than 32 768 labels"));
    }

    pub(crate) fn append_nulls(&mut self, n: usize) {
        self.keys.append_nulls(n);
    }

    /// The pending rows over `labels`, every label in key order.
    pub(crate) fn finish(&mut self, labels: &[&str]) -> ArrayRef {
        let values = Arc::new(StringArray::from_iter_values(labels));
        let array = DictionaryArray::<Int16Type>::try_new(self.keys.finish(), values);
        Arc::new(array.expect("every key indexes a label"))
    }
}

/// Names of the IP protocols the `proto` column spells out, as Zeek writes them; every
/// other protocol is `other`.
const PROTO_NAMES: [&str; 14] = [
    "icmp", "igmp", "tcp", "udp", "ipv6", "gre", "esp", "ah", "icmp6", "ospf", "pim", "vrrp",
    "sctp", "other",
];

fn proto_index(proto: u8) -> usize {
    match proto {
        1 => 0,
        2 => 1,
        6 => 2,
        17 => 3,
        41 => 4,
        47 => 5,
        50 => 6,
        51 => 7,
        58 => 8,
        89 => 9,
        103 => 10,
        112 => 11,
        132 => 12,
        _ => 13,
    }
}

/// `flows.source`'s labels: packets 0, netflow 1, the flow logs' tools, sflow 4.
const SOURCE_NAMES: [&str; 5] = ["packets", "netflow", "zeek", "suricata", "sflow"];

/// ns since the epoch → the µs the tables store (floored, also before 1970).
pub fn micros(ts_ns: i64) -> i64 {
    ts_ns.div_euclid(1000)
}

/// A text column whose values are ASCII made here: addresses (the tables' address
/// format, as `IpAddr`'s `Display` writes them) and Community IDs.
///
/// The values are gathered as bytes and checked as UTF-8 once, over the whole batch, when
/// the column is finished. A `StringBuilder` takes a `&str`, so each value was checked as
/// it was appended, which cost as much as writing the address: 2.3 % of the instructions
/// of a DNS-heavy run.
#[derive(Debug, Default)]
pub struct AsciiTextBuilder(BinaryBuilder);

impl AsciiTextBuilder {
    /// A builder for `items` values of `bytes` bytes in all without growing.
    pub fn with_capacity(items: usize, bytes: usize) -> Self {
        AsciiTextBuilder(BinaryBuilder::with_capacity(items, bytes))
    }

    /// Appends an address as text.
    pub fn append_ip(&mut self, ip: IpAddr) {
        self.0.append_value(IpText::new(ip).as_bytes());
    }

    /// Appends an address as text, or null.
    pub fn append_ip_option(&mut self, ip: Option<IpAddr>) {
        match ip {
            Some(ip) => self.append_ip(ip),
            None => self.0.append_null(),
        }
    }

    /// Appends text the caller knows to be ASCII (checked in debug builds; text that is
    /// not UTF-8 would make [`Self::finish`] panic).
    pub fn append_ascii(&mut self, text: &[u8]) {
        debug_assert!(text.is_ascii());
        self.0.append_value(text);
    }

    /// Appends a null.
    pub fn append_null(&mut self) {
        self.0.append_null();
    }

    /// Appends `n` nulls.
    pub fn append_nulls(&mut self, n: usize) {
        self.0.append_nulls(n);
    }

    /// The values as a string column; the builder starts over.
    pub fn finish(&mut self) -> StringArray {
        StringArray::try_from_binary(self.0.finish())
            .expect("only addresses written by IpText and ASCII text are appended")
    }
}

/// A `RecordBatch` of columns built to match `schema` (a mismatch is a bug).
pub fn batch(schema: SchemaRef, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(schema, columns).expect("builders match the declared schema")
}

/// Name of an IP protocol as Zeek's `proto` column writes it.
pub fn proto_name(proto: u8) -> &'static str {
    PROTO_NAMES[proto_index(proto)]
}

/// The `tunnel_*` columns of `flows.parquet`: all null for a flow that came bare. Runs
/// of bare flows are appended at once, when a tunnelled flow or the end of the batch
/// comes: most captures have no tunnel, and six nulls a row were 1 % of the run.
#[derive(Default)]
struct TunnelColumns {
    bare_rows: usize,
    kind: LabelBuilder,
    src: AsciiTextBuilder,
    dst: AsciiTextBuilder,
    id: Int64Builder,
    depth: Int16Builder,
    chain: Int64Builder,
}

impl TunnelColumns {
    fn append(&mut self, tunnel: Option<&Tunnel>) {
        let Some(t) = tunnel else {
            self.bare_rows += 1;
            return;
        };
        self.append_bare_rows();
        self.kind.append(t.kind as usize);
        self.src.append_ip(t.src);
        self.dst.append_ip(t.dst);
        self.id.append_option(t.id.map(i64::from));
        self.depth.append_value(i16::from(t.depth));
        self.chain.append_value(i64::from(t.chain));
    }

    fn append_bare_rows(&mut self) {
        let n = std::mem::take(&mut self.bare_rows);
        self.kind.append_nulls(n);
        self.src.append_nulls(n);
        self.dst.append_nulls(n);
        self.id.append_nulls(n);
        self.depth.append_nulls(n);
        self.chain.append_nulls(n);
    }

    /// The columns in schema order. `TunnelKind as usize` is the key: `ALL` lists the
    /// kinds in declaration order.
    fn finish(&mut self) -> [ArrayRef; 6] {
        self.append_bare_rows();
        [
            self.kind.finish(&TunnelKind::ALL.map(TunnelKind::as_str)),
            Arc::new(self.src.finish()),
            Arc::new(self.dst.finish()),
            Arc::new(self.id.finish()),
            Arc::new(self.depth.finish()),
            Arc::new(self.chain.finish()),
        ]
    }
}

/// Builds `flows.parquet` batches from [`FlowRecord`]s.
pub struct FlowBatchBuilder {
    /// The rows each column holds before it grows, again after every `finish`: Arrow's
    /// builders hand their buffers to the batch and start over empty, and growing 40
    /// columns from nothing for every batch took 4 % of building it (the `flow_output`
    /// bench).
    rows: usize,
    ts: TimestampMicrosecondBuilder,
    last_ts: TimestampMicrosecondBuilder,
    duration: Float64Builder,
    orig_h: AsciiTextBuilder,
    orig_p: Int32Builder,
    resp_h: AsciiTextBuilder,
    resp_p: Int32Builder,
    proto: LabelBuilder,
    ip_proto: Int16Builder,
    conn_state: LabelBuilder,
    history: StringBuilder,
    counters: [Int64Builder; 6],
    tcp_flags: [Int16Builder; 2],
    vlan: Int32Builder,
    tunnel: TunnelColumns,
    community_id: AsciiTextBuilder,
    end_reason: LabelBuilder,
    source: LabelBuilder,
    exporter: AsciiTextBuilder,
    sampling: [Int64Builder; 3],
    interfaces: [Int64Builder; 2],
    first_packet: Int64Builder,
    record: Int32Builder,
}

impl FlowBatchBuilder {
    /// A builder whose columns take `rows` rows (addresses of IPv4 length) without
    /// growing, and are sized so again by every `finish`.
    pub fn with_capacity(rows: usize) -> Self {
        let ints = || Int64Builder::with_capacity(rows);
        let shorts = || Int16Builder::with_capacity(rows);
        let ascii = |bytes_per_row| AsciiTextBuilder::with_capacity(rows, rows * bytes_per_row);
        let times = || TimestampMicrosecondBuilder::with_capacity(rows);
        FlowBatchBuilder {
            rows,
            ts: times(),
            last_ts: times(),
            duration: Float64Builder::with_capacity(rows),
            orig_h: ascii(IPV4_TEXT_BYTES),
            orig_p: Int32Builder::with_capacity(rows),
            resp_h: ascii(IPV4_TEXT_BYTES),
            resp_p: Int32Builder::with_capacity(rows),
            proto: LabelBuilder::with_capacity(rows),
            ip_proto: shorts(),
            conn_state: LabelBuilder::with_capacity(rows),
            history: StringBuilder::with_capacity(rows, rows * 4),
            counters: std::array::from_fn(|_| ints()),
            tcp_flags: std::array::from_fn(|_| shorts()),
            vlan: Int32Builder::with_capacity(rows),
            tunnel: TunnelColumns::default(),
            community_id: ascii(COMMUNITY_ID_BYTES),
            end_reason: LabelBuilder::with_capacity(rows),
            source: LabelBuilder::with_capacity(rows),
            exporter: ascii(0),
            sampling: std::array::from_fn(|_| ints()),
            interfaces: std::array::from_fn(|_| ints()),
            first_packet: ints(),
            record: Int32Builder::with_capacity(rows),
        }
    }
}

/// The longest IPv4 address as text (`255.255.255.255`).
const IPV4_TEXT_BYTES: usize = 15;

/// A Community ID as text: `1:` and the base64 of a SHA-1 digest.
const COMMUNITY_ID_BYTES: usize = 30;

impl Default for FlowBatchBuilder {
    /// Sized for as many rows as Arrow's builders are by default.
    fn default() -> Self {
        FlowBatchBuilder::with_capacity(1024)
    }
}

impl RowBuilder for FlowBatchBuilder {
    type Row = FlowRecord;

    fn schema() -> SchemaRef {
        flow_schema()
    }

    fn append(&mut self, r: &FlowRecord) {
        self.ts.append_value(micros(r.ts_first));
        self.last_ts.append_value(micros(r.ts_last));
        // Seconds as a float, not Arrow's duration type: Parquet has no duration type,
        // so DuckDB and Spark would read a bare integer of microseconds.
        let micros_long = micros(r.ts_last) - micros(r.ts_first);
        self.duration.append_value(micros_long as f64 / 1e6);
        self.orig_h.append_ip(r.orig_addr);
        self.orig_p.append_value(i32::from(r.orig_port));
        self.resp_h.append_ip(r.resp_addr);
        self.resp_p.append_value(i32::from(r.resp_port));
        self.proto.append(proto_index(r.proto));
        self.ip_proto.append_value(i16::from(r.proto));
        self.conn_state.append(r.conn_state as usize);
        self.history.append_value(r.history.as_str());
        let values = [
            r.orig.packets,
            r.orig.ip_bytes,
            r.orig.payload_bytes,
            r.resp.packets,
            r.resp.ip_bytes,
            r.resp.payload_bytes,
        ];
        for (b, v) in self.counters.iter_mut().zip(values) {
            b.append_value(i64::try_from(v).unwrap_or(i64::MAX));
        }
        self.tcp_flags[0].append_value(i16::from(r.orig.tcp_flags));
        self.tcp_flags[1].append_value(i16::from(r.resp.tcp_flags));
        self.vlan.append_option(r.vlan.map(i32::from));
        self.tunnel.append(r.tunnel.as_ref());
        self.community_id.append_ascii(r.community_id().as_bytes());
        self.end_reason.append(r.end_reason as usize);
        let interval = match &r.source {
            FlowSource::Packets => {
                self.source.append(0);
                self.exporter.append_null();
                self.interfaces.iter_mut().for_each(|b| b.append_null());
                1
            }
            FlowSource::Log(kind) => {
                self.source.append(2 + *kind as usize);
                self.exporter.append_null();
                self.interfaces.iter_mut().for_each(|b| b.append_null());
                1
            }
            FlowSource::Sflow(origin) => {
                self.source.append(4);
                self.exporter.append_ip(origin.agent);
                self.interfaces.iter_mut().for_each(|b| b.append_null());
                u64::from(origin.sampling_rate)
            }
            FlowSource::Netflow(n) => {
                self.source.append(1);
                self.exporter.append_ip(n.exporter);
                self.interfaces[0].append_value(i64::from(n.input_if));
                self.interfaces[1].append_value(i64::from(n.output_if));
                u64::from(n.sampling_interval)
            }
        };
        let scale = |v: u64| i64::try_from(v.saturating_mul(interval)).unwrap_or(i64::MAX);
        self.sampling[0].append_value(i64::try_from(interval).unwrap_or(i64::MAX));
        self.sampling[1].append_value(scale(r.orig.packets + r.resp.packets));
        self.sampling[2].append_value(scale(r.orig.ip_bytes + r.resp.ip_bytes));
        self.first_packet
            .append_value(i64::try_from(r.first_packet).unwrap_or(i64::MAX));
        self.record
            .append_value(i32::try_from(r.source.record_index()).unwrap_or(i32::MAX));
    }

    fn len(&self) -> usize {
        self.first_packet.len()
    }

    fn finish(&mut self) -> RecordBatch {
        let fresh = FlowBatchBuilder::with_capacity(self.rows);
        std::mem::replace(self, fresh).finish_columns()
    }
}

impl FlowBatchBuilder {
    /// The pending rows as a batch.
    fn finish_columns(mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish().with_timezone("UTC")),
            Arc::new(self.last_ts.finish().with_timezone("UTC")),
            Arc::new(self.duration.finish()),
            Arc::new(self.orig_h.finish()),
            Arc::new(self.orig_p.finish()),
            Arc::new(self.resp_h.finish()),
            Arc::new(self.resp_p.finish()),
            self.proto.finish(&PROTO_NAMES),
            Arc::new(self.ip_proto.finish()),
            // `ConnState as usize` and `EndReason as usize` are the keys: `ALL` lists
            // them in declaration order.
            self.conn_state
                .finish(&ConnState::ALL.map(ConnState::as_str)),
            Arc::new(self.history.finish()),
        ];
        columns.extend(
            self.counters
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.extend(
            self.tcp_flags
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.push(Arc::new(self.vlan.finish()));
        columns.extend(self.tunnel.finish());
        columns.extend([
            Arc::new(self.community_id.finish()) as ArrayRef,
            self.end_reason
                .finish(&EndReason::ALL.map(EndReason::as_str)),
            self.source.finish(&SOURCE_NAMES),
            Arc::new(self.exporter.finish()),
        ]);
        columns.extend(
            self.sampling
                .iter_mut()
                .chain(&mut self.interfaces)
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.extend([
            Arc::new(self.first_packet.finish()) as ArrayRef,
            Arc::new(self.record.finish()),
        ]);
        batch(flow_schema(), columns)
    }
}

/// `dns.proto`'s labels, indexed by "carried over TCP".
const DNS_TRANSPORTS: [&str; 2] = ["udp", "tcp"];

/// Builds `dns.parquet` batches from [`DnsRow`]s.
pub struct DnsBatchBuilder {
    /// The rows each column holds before its row-indexed buffers grow (text and answers
    /// longer or more than `with_capacity` allows for still grow theirs), again after
    /// every `finish` (as for [`FlowBatchBuilder`]).
    rows: usize,
    ts: TimestampMicrosecondBuilder,
    client_h: AsciiTextBuilder,
    client_p: Int32Builder,
    server_h: AsciiTextBuilder,
    server_p: Int32Builder,
    proto: LabelBuilder,
    trans_id: Int32Builder,
    is_response: BooleanBuilder,
    opcode: Int16Builder,
    rcode: Int16Builder,
    rcode_name: LabelBuilder,
    qname: StringBuilder,
    qtype: Int32Builder,
    qtype_name: DictBuilder,
    qclass: Int32Builder,
    flags: [BooleanBuilder; 4],
    answers: ListBuilder<StringBuilder>,
    answer_types: ListBuilder<StringBuilder>,
    ttls: ListBuilder<Int64Builder>,
    packet: Int64Builder,
}

impl DnsBatchBuilder {
    /// A builder whose columns take `rows` rows (addresses of IPv4 length, and about one
    /// answer a row) without growing, and are sized so again by every `finish`.
    pub fn with_capacity(rows: usize) -> Self {
        let ints = || Int32Builder::with_capacity(rows);
        let shorts = || Int16Builder::with_capacity(rows);
        let flags = || BooleanBuilder::with_capacity(rows);
        let ascii = || AsciiTextBuilder::with_capacity(rows, rows * IPV4_TEXT_BYTES);
        let names = || StringBuilder::with_capacity(rows, rows * DNS_NAME_BYTES);
        let list = |values| ListBuilder::with_capacity(values, rows);
        DnsBatchBuilder {
            rows,
            ts: TimestampMicrosecondBuilder::with_capacity(rows),
            client_h: ascii(),
            client_p: ints(),
            server_h: ascii(),
            server_p: ints(),
            proto: LabelBuilder::with_capacity(rows),
            trans_id: ints(),
            is_response: flags(),
            opcode: shorts(),
            rcode: shorts(),
            rcode_name: LabelBuilder::with_capacity(rows),
            qname: names(),
            qtype: ints(),
            qtype_name: DictBuilder::with_capacity(rows, 16, 16 * 8),
            qclass: ints(),
            flags: std::array::from_fn(|_| flags()),
            answers: list(names()),
            answer_types: list(StringBuilder::with_capacity(rows, rows * 4)),
            ttls: ListBuilder::with_capacity(Int64Builder::with_capacity(rows), rows),
            packet: Int64Builder::with_capacity(rows),
        }
    }
}

/// Bytes a DNS name or answer takes on average, to size the text columns.
const DNS_NAME_BYTES: usize = 24;

impl Default for DnsBatchBuilder {
    /// Sized for as many rows as Arrow's builders are by default.
    fn default() -> Self {
        DnsBatchBuilder::with_capacity(1024)
    }
}

impl RowBuilder for DnsBatchBuilder {
    type Row = DnsRow;

    fn schema() -> SchemaRef {
        dns_schema()
    }

    fn append(&mut self, r: &DnsRow) {
        let m = &r.message;
        self.ts.append_value(micros(r.ts_ns));
        self.client_h.append_ip(r.client);
        self.client_p.append_value(i32::from(r.client_port));
        self.server_h.append_ip(r.server);
        self.server_p.append_value(i32::from(r.server_port));
        self.proto.append(usize::from(r.tcp));
        self.trans_id.append_value(i32::from(m.id));
        self.is_response.append_value(m.is_response);
        self.opcode.append_value(i16::from(m.opcode));
        self.rcode.append_value(i16::from(m.rcode));
        self.rcode_name.append(rcode_index(m.rcode));
        self.qname.append_option(m.qname.as_deref());
        let has_question = m.qname.is_some();
        self.qtype
            .append_option(has_question.then_some(i32::from(m.qtype)));
        match qtype_name(m.qtype).filter(|_| has_question) {
            Some(name) => self.qtype_name.append_value(name),
            None => self.qtype_name.append_null(),
        }
        self.qclass
            .append_option(has_question.then_some(i32::from(m.qclass)));
        let flags = [
            m.authoritative,
            m.truncated,
            m.recursion_desired,
            m.recursion_available,
        ];
        for (b, v) in self.flags.iter_mut().zip(flags) {
            b.append_value(v);
        }
        for a in &m.answers {
            self.answers.values().append_value(&a.data);
            match qtype_name(a.rtype) {
                Some(name) => self.answer_types.values().append_value(name),
                None => {
                    let _ = write!(self.answer_types.values(), "TYPE{}", a.rtype);
                    self.answer_types.values().append_value("");
                }
            }
            self.ttls.values().append_value(i64::from(a.ttl));
        }
        self.answers.append(true);
        self.answer_types.append(true);
        self.ttls.append(true);
        self.packet
            .append_value(i64::try_from(r.packet).unwrap_or(i64::MAX));
    }

    fn len(&self) -> usize {
        self.packet.len()
    }

    fn finish(&mut self) -> RecordBatch {
        let fresh = DnsBatchBuilder::with_capacity(self.rows);
        std::mem::replace(self, fresh).finish_columns()
    }
}

impl DnsBatchBuilder {
    /// The pending rows as a batch.
    fn finish_columns(mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish().with_timezone("UTC")),
            Arc::new(self.client_h.finish()),
            Arc::new(self.client_p.finish()),
            Arc::new(self.server_h.finish()),
            Arc::new(self.server_p.finish()),
            self.proto.finish(&DNS_TRANSPORTS),
            Arc::new(self.trans_id.finish()),
            Arc::new(self.is_response.finish()),
            Arc::new(self.opcode.finish()),
            Arc::new(self.rcode.finish()),
            self.rcode_name.finish(&RCODE_NAMES),
            Arc::new(self.qname.finish()),
            Arc::new(self.qtype.finish()),
            Arc::new(self.qtype_name.finish()),
            Arc::new(self.qclass.finish()),
        ];
        columns.extend(
            self.flags
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.extend([
            Arc::new(self.answers.finish()) as ArrayRef,
            Arc::new(self.answer_types.finish()),
            Arc::new(self.ttls.finish()),
            Arc::new(self.packet.finish()),
        ]);
        batch(dns_schema(), columns)
    }
}

/// One ARP packet as an `arp.parquet` row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpRow {
    /// Capture time, ns since the Unix epoch.
    pub ts_ns: i64,
    /// Global ordinal of the packet.
    pub packet: u64,
    /// The decoded ARP packet.
    pub arp: ArpPacket,
}

pub(crate) fn append_mac(b: &mut StringBuilder, mac: [u8; 6]) {
    let [a, c, d, e, f, g] = mac;
    let _ = write!(b, "{a:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}:{g:02x}");
    b.append_value("");
}

/// Builds `arp.parquet` batches from [`ArpRow`]s.
#[derive(Default)]
pub struct ArpBatchBuilder {
    ts: TimestampMicrosecondBuilder,
    op: DictBuilder,
    sender_mac: StringBuilder,
    sender_ip: AsciiTextBuilder,
    target_mac: StringBuilder,
    target_ip: AsciiTextBuilder,
    vlan: Int32Builder,
    packet: Int64Builder,
}

impl RowBuilder for ArpBatchBuilder {
    type Row = ArpRow;

    fn schema() -> SchemaRef {
        arp_schema()
    }

    fn append(&mut self, r: &ArpRow) {
        let a = &r.arp;
        self.ts.append_value(micros(r.ts_ns));
        match a.op {
            1 => self.op.append_value("request"),
            2 => self.op.append_value("reply"),
            n => self.op.append_value(n.to_string()),
        }
        append_mac(&mut self.sender_mac, a.sender_mac);
        self.sender_ip.append_ip(IpAddr::V4(a.sender_ip));
        append_mac(&mut self.target_mac, a.target_mac);
        self.target_ip.append_ip(IpAddr::V4(a.target_ip));
        self.vlan.append_option(a.vlan.map(i32::from));
        self.packet
            .append_value(i64::try_from(r.packet).unwrap_or(i64::MAX));
    }

    fn len(&self) -> usize {
        self.packet.len()
    }

    fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish().with_timezone("UTC")),
            Arc::new(self.op.finish()),
            Arc::new(self.sender_mac.finish()),
            Arc::new(self.sender_ip.finish()),
            Arc::new(self.target_mac.finish()),
            Arc::new(self.target_ip.finish()),
            Arc::new(self.vlan.finish()),
            Arc::new(self.packet.finish()),
        ];
        batch(arp_schema(), columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Addresses in the builder read as `Display` writes them (`IpText`'s own tests
    /// cover every octet and every IPv6 zero pattern).
    #[test]
    fn addresses_are_written_as_display_does() {
        let mut addresses: Vec<IpAddr> = (0..=255u8)
            .map(|n| IpAddr::from([n, 255 - n, n / 10, n.wrapping_mul(7)]))
            .collect();
        addresses.push("2001:db8::1".parse().unwrap());
        addresses.push("::ffff:10.164.1.8".parse().unwrap());
        let mut b = AsciiTextBuilder::default();
        addresses.iter().for_each(|&ip| b.append_ip(ip));
        let written = b.finish();
        for (i, ip) in addresses.iter().enumerate() {
            assert_eq!(written.value(i), ip.to_string());
        }
    }

    /// Nulls land where they were appended, between text, across two batches.
    #[test]
    fn ascii_text_keeps_nulls_in_place() {
        use arrow_array::Array;
        let ip: IpAddr = "10.164.1.8".parse().unwrap();
        let mut b = AsciiTextBuilder::with_capacity(2, 8);
        for round in 0..2 {
            b.append_ip_option(None);
            b.append_ascii(b"1:abc=");
            b.append_nulls(2);
            b.append_ip_option(Some(ip));
            b.append_null();
            let column = b.finish();
            let cells: Vec<Option<&str>> = column.iter().collect();
            let expected = [None, Some("1:abc="), None, None, Some("10.164.1.8"), None];
            assert_eq!(cells, expected, "batch {round}");
            assert_eq!(column.null_count(), 4);
        }
    }

    #[test]
    fn protocols_are_named_as_zeek_names_them() {
        for (proto, name) in [(1, "icmp"), (6, "tcp"), (17, "udp"), (58, "icmp6")] {
            assert_eq!(proto_name(proto), name);
        }
        assert_eq!(proto_name(132), "sctp");
        assert_eq!(proto_name(0), "other");
        assert_eq!(proto_name(255), "other");
    }
}
