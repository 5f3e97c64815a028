//! `names.parquet`: one row per naming fact of DHCP and the NetBIOS name service (which
//! host name and MAC belong to which address), from `wormsign_decode::names`. Responders
//! find machines by these names; detection reads them back for `hosts.parquet`.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use arrow_array::builder::{
    ArrayBuilder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Schema, SchemaRef};
use wormsign_decode::names::NameFact;

use crate::builders::{append_mac, batch, micros, AsciiTextBuilder, DictBuilder, RowBuilder};
use crate::schema::{dict, field, timestamp};

/// Schema of `names.parquet`; sort key `packet`, then `name`.
pub fn names_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                field("ts", timestamp(), false, "capture time"),
                field("protocol", dict(), false, "dhcp or nbns"),
                field("message", dict(), false, "dhcp: discover, offer, request, decline, ack, nak, release, inform; nbns: registration, release, refresh, query_answer, node_status"),
                field("src_h", DataType::Utf8, false, "sender of the packet"),
                field("dst_h", DataType::Utf8, false, "receiver of the packet"),
                field("address", DataType::Utf8, true, "the address named: given, asked for or in use (dhcp), registered or answered (nbns)"),
                field("mac", DataType::Utf8, true, "dhcp client hardware address, nbns node status unit id"),
                field("name", DataType::Utf8, true, "dhcp host name (option 12) or FQDN (option 81); NetBIOS name without padding"),
                field("suffix", DataType::Int32, true, "NetBIOS name type (its 16th byte): 0 workstation, 32 server, 3 messenger/user, 28 domain controllers"),
                field("packet", DataType::Int64, false, "global ordinal of the packet; sort key"),
            ]))
        })
        .clone()
}

/// One naming fact of one packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameRow {
    /// Capture time, ns since the Unix epoch.
    pub ts_ns: i64,
    /// Global ordinal of the packet.
    pub packet: u64,
    /// The packet's sender.
    pub src: IpAddr,
    /// The packet's receiver.
    pub dst: IpAddr,
    /// What it says.
    pub fact: NameFact,
}

/// Builds `names.parquet` batches from [`NameRow`]s.
#[derive(Default)]
pub struct NameBatchBuilder {
    ts: TimestampMicrosecondBuilder,
    protocol: DictBuilder,
    message: DictBuilder,
    hosts: [AsciiTextBuilder; 3],
    mac: StringBuilder,
    name: StringBuilder,
    suffix: Int32Builder,
    packet: Int64Builder,
}

impl RowBuilder for NameBatchBuilder {
    type Row = NameRow;

    fn schema() -> SchemaRef {
        names_schema()
    }

    fn append(&mut self, r: &NameRow) {
        let f = &r.fact;
        self.ts.append_value(micros(r.ts_ns));
        self.protocol.append_value(f.protocol);
        self.message.append_value(f.message);
        self.hosts[0].append_ip(r.src);
        self.hosts[1].append_ip(r.dst);
        self.hosts[2].append_ip_option(f.address.map(IpAddr::V4));
        match f.mac {
            Some(m) => append_mac(&mut self.mac, m),
            None => self.mac.append_null(),
        }
        self.name.append_option(f.name.as_deref());
        self.suffix.append_option(f.suffix.map(i32::from));
        self.packet
            .append_value(i64::try_from(r.packet).unwrap_or(i64::MAX));
    }

    fn len(&self) -> usize {
        self.packet.len()
    }

    fn finish(&mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish().with_timezone("UTC")),
            Arc::new(self.protocol.finish()),
            Arc::new(self.message.finish()),
        ];
        columns.extend(
            self.hosts
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.push(Arc::new(self.mac.finish()));
        columns.push(Arc::new(self.name.finish()));
        columns.push(Arc::new(self.suffix.finish()));
        columns.push(Arc::new(self.packet.finish()));
        batch(names_schema(), columns)
    }
}
