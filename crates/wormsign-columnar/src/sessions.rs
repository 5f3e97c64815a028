//! `sessions.parquet`: one row per protocol fact of a worm-service session (a login
//! attempt, a tree connect, an exploit marker, an RDP negotiation), from
//! `wormsign-inspect`. A separate table rather than columns on `flows.parquet`, because
//! one SMB session can carry many login attempts and brute force counts attempts, not
//! flows. Rows join to their flow on `community_id` (and time).

use std::sync::{Arc, OnceLock};

use arrow_array::builder::{
    ArrayBuilder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Schema, SchemaRef};
use wormsign_flow::community_id;
use wormsign_inspect::{status_name, SessionEvent};

use crate::builders::{batch, micros, AsciiTextBuilder, DictBuilder, RowBuilder};
use crate::schema::{dict, field, timestamp};

/// Schema of `sessions.parquet`; sort key `packet`, then `fact`.
pub fn session_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let text = |name, doc| field(name, DataType::Utf8, true, doc);
            Arc::new(Schema::new(vec![
                field("ts", timestamp(), false, "time of the packet that completed the fact (usually the reply)"),
                field("client_h", DataType::Utf8, false, "address of the side talking to the service port"),
                field("client_p", DataType::Int32, false, "the client's port"),
                field("server_h", DataType::Utf8, false, "address of the side on the service port"),
                field("server_p", DataType::Int32, false, "the service port"),
                field("community_id", DataType::Utf8, false, "Community ID v1 of the TCP session, as in flows.parquet"),
                field("protocol", dict(), false, "smb, tds or rdp"),
                field("fact", dict(), false, "dialect, login, tree_connect, ms17_010_probe, eternalblue, nt_rename, doublepulsar, rdp_negotiation, opaque"),
                field("outcome", dict(), false, "success, failure, present, absent, vulnerable, not_vulnerable, unknown"),
                field("status", DataType::Int64, true, "NT status (SMB), error number (TDS), selected protocol or failure code (RDP)"),
                field("status_name", dict(), true, "name of a well-known status, e.g. STATUS_LOGON_FAILURE"),
                text("user", "NTLMSSP user, TDS login name or RDP mstshash cookie"),
                text("domain", "NTLMSSP domain"),
                text("workstation", "NTLMSSP workstation, TDS client host name"),
                text("detail", "dialect, share path, DoublePulsar command (ping/exec), RDP requested/selected protocols"),
                field("packet", DataType::Int64, false, "global ordinal of the packet; sort key"),
            ]))
        })
        .clone()
}

/// Builds `sessions.parquet` batches from [`SessionEvent`]s.
#[derive(Default)]
pub struct SessionBatchBuilder {
    ts: TimestampMicrosecondBuilder,
    client_h: AsciiTextBuilder,
    client_p: Int32Builder,
    server_h: AsciiTextBuilder,
    server_p: Int32Builder,
    community_id: AsciiTextBuilder,
    protocol: DictBuilder,
    fact: DictBuilder,
    outcome: DictBuilder,
    status: Int64Builder,
    status_name: DictBuilder,
    text: [StringBuilder; 4],
    packet: Int64Builder,
}

impl RowBuilder for SessionBatchBuilder {
    type Row = SessionEvent;

    fn schema() -> SchemaRef {
        session_schema()
    }

    fn append(&mut self, e: &SessionEvent) {
        const TCP: u8 = 6;
        self.ts.append_value(micros(e.ts_ns));
        self.client_h.append_ip(e.client);
        self.client_p.append_value(i32::from(e.client_port));
        self.server_h.append_ip(e.server);
        self.server_p.append_value(i32::from(e.server_port));
        let id = community_id(e.client, e.client_port, e.server, e.server_port, TCP, true);
        self.community_id.append_ascii(id.as_bytes());
        self.protocol.append_value(e.protocol.as_str());
        self.fact.append_value(e.fact.as_str());
        self.outcome.append_value(e.outcome.as_str());
        self.status.append_option(e.status.map(i64::from));
        match e.status.and_then(|s| status_name(e.protocol, e.fact, s)) {
            Some(name) => self.status_name.append_value(name),
            None => self.status_name.append_null(),
        }
        let texts = [&e.user, &e.domain, &e.workstation, &e.detail];
        for (b, v) in self.text.iter_mut().zip(texts) {
            b.append_option(v.as_deref());
        }
        self.packet
            .append_value(i64::try_from(e.packet).unwrap_or(i64::MAX));
    }

    fn len(&self) -> usize {
        self.packet.len()
    }

    fn finish(&mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish().with_timezone("UTC")),
            Arc::new(self.client_h.finish()),
            Arc::new(self.client_p.finish()),
            Arc::new(self.server_h.finish()),
            Arc::new(self.server_p.finish()),
            Arc::new(self.community_id.finish()),
            Arc::new(self.protocol.finish()),
            Arc::new(self.fact.finish()),
            Arc::new(self.outcome.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.status_name.finish()),
        ];
        columns.extend(
            self.text
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.push(Arc::new(self.packet.finish()));
        batch(session_schema(), columns)
    }
}
