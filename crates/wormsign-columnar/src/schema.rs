//! The output schemas, declared once. `docs/schema.md` documents every column.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// A column with its description in the field metadata (`docs/schema.md` lists them).
pub fn field(name: &str, data_type: DataType, nullable: bool, description: &str) -> Field {
    Field::new(name, data_type, nullable).with_metadata(HashMap::from([(
        "description".to_string(),
        description.to_string(),
    )]))
}

/// `timestamp[us, UTC]`, every table's time type.
pub fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// A dictionary-encoded string: few distinct values, stored once per row group.
pub fn dict() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int16), Box::new(DataType::Utf8))
}

fn string_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

/// Schema of `flows.parquet`; sort key `first_packet`.
pub fn flow_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                field("ts", timestamp(), false, "time of the flow's first packet"),
                field(
                    "last_ts",
                    timestamp(),
                    false,
                    "time of the flow's last packet",
                ),
                field(
                    "duration",
                    DataType::Float64,
                    false,
                    "last_ts - ts in seconds (as Zeek's conn.log duration)",
                ),
                field("orig_h", DataType::Utf8, false, "originator IP address"),
                field(
                    "orig_p",
                    DataType::Int32,
                    false,
                    "originator port; ICMP type",
                ),
                field("resp_h", DataType::Utf8, false, "responder IP address"),
                field(
                    "resp_p",
                    DataType::Int32,
                    false,
                    "responder port; ICMP code",
                ),
                field("proto", dict(), false, "transport protocol name"),
                field("ip_proto", DataType::Int16, false, "IP protocol number"),
                field("conn_state", dict(), false, "Zeek conn_state"),
                field("history", DataType::Utf8, false, "Zeek history letters"),
                field(
                    "orig_pkts",
                    DataType::Int64,
                    false,
                    "packets sent by the originator",
                ),
                field(
                    "orig_ip_bytes",
                    DataType::Int64,
                    false,
                    "IP bytes sent by the originator",
                ),
                field(
                    "orig_bytes",
                    DataType::Int64,
                    false,
                    "payload bytes sent by the originator",
                ),
                field(
                    "resp_pkts",
                    DataType::Int64,
                    false,
                    "packets sent by the responder",
                ),
                field(
                    "resp_ip_bytes",
                    DataType::Int64,
                    false,
                    "IP bytes sent by the responder",
                ),
                field(
                    "resp_bytes",
                    DataType::Int64,
                    false,
                    "payload bytes sent by the responder",
                ),
                field(
                    "orig_tcp_flags",
                    DataType::Int16,
                    false,
                    "OR of TCP flags from the originator",
                ),
                field(
                    "resp_tcp_flags",
                    DataType::Int16,
                    false,
                    "OR of TCP flags from the responder",
                ),
                field("vlan", DataType::Int32, true, "outermost VLAN id"),
                field(
                    "tunnel_type",
                    dict(),
                    true,
                    "outermost tunnel the flow arrived in: vxlan, geneve, gtpu, teredo, gre, \
                     erspan1-3, ipip, 6in4, 4in6, 6in6; null when it came bare",
                ),
                field(
                    "tunnel_src",
                    DataType::Utf8,
                    true,
                    "outermost tunnel's source address (of the first packet's direction)",
                ),
                field(
                    "tunnel_dst",
                    DataType::Utf8,
                    true,
                    "outermost tunnel's destination address",
                ),
                field(
                    "tunnel_id",
                    DataType::Int64,
                    true,
                    "VNI (vxlan, geneve), GRE key, ERSPAN session or GTP-U TEID",
                ),
                field(
                    "tunnel_depth",
                    DataType::Int16,
                    true,
                    "how many tunnels were nested around the flow's packets",
                ),
                field(
                    "tunnel_chain",
                    DataType::Int64,
                    true,
                    "hash of every tunnel level, equal for both directions; part of the flow key",
                ),
                field(
                    "community_id",
                    DataType::Utf8,
                    false,
                    "Community ID v1, seed 0",
                ),
                field(
                    "end_reason",
                    dict(),
                    false,
                    "why the flow record was emitted",
                ),
                field(
                    "source",
                    dict(),
                    false,
                    "where the flow came from: packets or netflow",
                ),
                field(
                    "exporter",
                    DataType::Utf8,
                    true,
                    "NetFlow/IPFIX exporter address",
                ),
                field(
                    "sampling_interval",
                    DataType::Int64,
                    false,
                    "1-in-N packet sampling; 1 unsampled",
                ),
                field(
                    "pkts_scaled",
                    DataType::Int64,
                    false,
                    "(orig_pkts + resp_pkts) x sampling_interval",
                ),
                field(
                    "ip_bytes_scaled",
                    DataType::Int64,
                    false,
                    "(orig_ip_bytes + resp_ip_bytes) x sampling_interval",
                ),
                field(
                    "input_if",
                    DataType::Int64,
                    true,
                    "NetFlow input interface index",
                ),
                field(
                    "output_if",
                    DataType::Int64,
                    true,
                    "NetFlow output interface index",
                ),
                field(
                    "first_packet",
                    DataType::Int64,
                    false,
                    "global ordinal of the first packet; sort key",
                ),
                field(
                    "record",
                    DataType::Int32,
                    false,
                    "record index within a NetFlow datagram; second sort key",
                ),
            ]))
        })
        .clone()
}

/// Schema of `dns.parquet`, one row per DNS message; sort key `packet`.
pub fn dns_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                field(
                    "ts",
                    timestamp(),
                    false,
                    "time of the packet carrying the message",
                ),
                field(
                    "client_h",
                    DataType::Utf8,
                    false,
                    "address of the side that asks",
                ),
                field(
                    "client_p",
                    DataType::Int32,
                    false,
                    "port of the side that asks",
                ),
                field(
                    "server_h",
                    DataType::Utf8,
                    false,
                    "address of the side that answers",
                ),
                field(
                    "server_p",
                    DataType::Int32,
                    false,
                    "port of the side that answers",
                ),
                field("proto", dict(), false, "udp or tcp"),
                field("trans_id", DataType::Int32, false, "DNS transaction id"),
                field("is_response", DataType::Boolean, false, "QR bit"),
                field("opcode", DataType::Int16, false, "DNS opcode"),
                field("rcode", DataType::Int16, false, "DNS response code"),
                field("rcode_name", dict(), false, "response code name"),
                field("qname", DataType::Utf8, true, "first question name"),
                field("qtype", DataType::Int32, true, "first question type"),
                field("qtype_name", dict(), true, "first question type name"),
                field("qclass", DataType::Int32, true, "first question class"),
                field("AA", DataType::Boolean, false, "authoritative answer"),
                field("TC", DataType::Boolean, false, "truncated"),
                field("RD", DataType::Boolean, false, "recursion desired"),
                field("RA", DataType::Boolean, false, "recursion available"),
                field("answers", string_list(), false, "answer section data"),
                field("answer_types", string_list(), false, "answer record types"),
                field(
                    "ttls",
                    DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
                    false,
                    "answer TTLs in seconds",
                ),
                field(
                    "packet",
                    DataType::Int64,
                    false,
                    "global ordinal of the packet; sort key",
                ),
            ]))
        })
        .clone()
}

/// Schema of `arp.parquet`, one row per ARP packet; sort key `packet`.
pub fn arp_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                field("ts", timestamp(), false, "capture time"),
                field("op", dict(), false, "request, reply or the numeric opcode"),
                field(
                    "sender_mac",
                    DataType::Utf8,
                    false,
                    "sender hardware address",
                ),
                field(
                    "sender_ip",
                    DataType::Utf8,
                    false,
                    "sender protocol address",
                ),
                field(
                    "target_mac",
                    DataType::Utf8,
                    false,
                    "target hardware address",
                ),
                field(
                    "target_ip",
                    DataType::Utf8,
                    false,
                    "target protocol address",
                ),
                field("vlan", DataType::Int32, true, "outermost VLAN id"),
                field(
                    "packet",
                    DataType::Int64,
                    false,
                    "global ordinal of the packet; sort key",
                ),
            ]))
        })
        .clone()
}
