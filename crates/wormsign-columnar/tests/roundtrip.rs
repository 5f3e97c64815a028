//! Tables written through `TableWriter` read back with their declared types and values.

use std::fs::File;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use wormsign_columnar::{
    flow_schema, DnsBatchBuilder, DnsRow, FlowBatchBuilder, RowBuilder, TableWriter,
};
use wormsign_decode::dns::{DnsAnswer, DnsMessage};
use wormsign_flow::{ConnState, DirCounters, EndReason, FlowRecord, FlowSource, History};

fn flow(first_packet: u64) -> FlowRecord {
    FlowRecord {
        first_packet,
        ts_first: 1_546_318_800_123_456_789,
        ts_last: 1_546_318_801_123_456_789,
        orig_addr: "10.164.1.8".parse().unwrap(),
        orig_port: 3389,
        resp_addr: "2001:db8::1".parse().unwrap(),
        resp_port: 445,
        has_ports: true,
        proto: 6,
        vlan: Some(12),
        orig: DirCounters {
            packets: 3,
            ip_bytes: 180,
            payload_bytes: 60,
            tcp_flags: 0x1b,
        },
        resp: DirCounters::default(),
        conn_state: ConnState::S0,
        history: History::default(),
        end_reason: EndReason::Idle,
        source: FlowSource::Packets,
    }
}

fn read(path: &std::path::Path) -> (Vec<RecordBatch>, Vec<(String, String)>) {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|kv| (kv.key, kv.value.unwrap_or_default()))
        .collect();
    let batches = builder.build().unwrap().map(Result::unwrap).collect();
    (batches, kv)
}

#[test]
fn flows_round_trip_with_types_values_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.parquet");
    let meta = [("wormsign.version".to_string(), "test".to_string())];
    let mut w = TableWriter::<FlowBatchBuilder>::create(&path, &meta).unwrap();
    for i in 0..100_000 {
        w.push(&flow(i)).unwrap();
    }
    assert_eq!(w.finish().unwrap(), 100_000);
    let (batches, kv) = read(&path);
    assert!(kv.contains(&meta[0]));
    assert_eq!(
        batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
        100_000
    );
    let b = &batches[0];
    assert_eq!(b.schema().fields(), flow_schema().fields());
    let col = |name: &str| b.column(b.schema().index_of(name).unwrap()).clone();
    let ts = col("ts");
    assert_eq!(
        ts.as_primitive::<TimestampMicrosecondType>().value(0),
        1_546_318_800_123_456
    );
    assert_eq!(col("duration").as_primitive::<Float64Type>().value(0), 1.0);
    assert_eq!(col("orig_h").as_string::<i32>().value(0), "10.164.1.8");
    assert_eq!(col("resp_h").as_string::<i32>().value(0), "2001:db8::1");
    assert_eq!(
        col("orig_ip_bytes").as_primitive::<Int64Type>().value(0),
        180
    );
    let states = col("conn_state");
    let dict = states.as_dictionary::<arrow_array::types::Int16Type>();
    assert_eq!(
        dict.values()
            .as_string::<i32>()
            .value(dict.keys().value(0) as usize),
        "S0"
    );
    assert_eq!(
        col("community_id").as_string::<i32>().value(0),
        flow(0).community_id().as_str()
    );
}

/// `conn_state` and `end_reason` store `ConnState as usize` / `EndReason as usize` as
/// keys into name lists, so every value must read back as its own name.
#[test]
fn enum_columns_read_back_as_their_names() {
    let n = ConnState::ALL.len().max(EndReason::ALL.len());
    let records: Vec<FlowRecord> = (0..n)
        .map(|i| FlowRecord {
            conn_state: ConnState::ALL[i % ConnState::ALL.len()],
            end_reason: EndReason::ALL[i % EndReason::ALL.len()],
            ..flow(i as u64)
        })
        .collect();
    let mut builder = FlowBatchBuilder::default();
    records.iter().for_each(|r| builder.append(r));
    let b = builder.finish();
    let names = |name: &str| -> Vec<String> {
        let column = b.column(b.schema().index_of(name).unwrap());
        let dict = column.as_dictionary::<arrow_array::types::Int16Type>();
        let values = dict.values().as_string::<i32>();
        let keys = dict.keys().values().iter();
        keys.map(|&k| values.value(k as usize).to_string())
            .collect()
    };
    let (conn_states, end_reasons) = (names("conn_state"), names("end_reason"));
    for (i, r) in records.iter().enumerate() {
        assert_eq!(conn_states[i], r.conn_state.as_str());
        assert_eq!(end_reasons[i], r.end_reason.as_str());
    }
}

#[test]
fn dns_answers_are_lists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dns.parquet");
    let mut w = TableWriter::<DnsBatchBuilder>::create(&path, &[]).unwrap();
    let message = DnsMessage {
        id: 7,
        is_response: true,
        opcode: 0,
        rcode: 0,
        authoritative: false,
        truncated: false,
        recursion_desired: true,
        recursion_available: true,
        qname: Some("t.awcna.com".into()),
        qtype: 1,
        qclass: 1,
        answers: vec![DnsAnswer {
            name: "t.awcna.com".into(),
            rtype: 1,
            ttl: 60,
            data: "1.2.3.4".into(),
        }],
    };
    let row = DnsRow {
        ts_ns: 0,
        packet: 5,
        client: "10.164.1.8".parse().unwrap(),
        client_port: 5353,
        server: "10.164.1.1".parse().unwrap(),
        server_port: 53,
        tcp: false,
        message,
    };
    w.push(&row).unwrap();
    w.finish().unwrap();
    let (batches, _) = read(&path);
    let b = &batches[0];
    let answers = b
        .column(b.schema().index_of("answers").unwrap())
        .as_list::<i32>()
        .value(0);
    assert_eq!(answers.as_string::<i32>().value(0), "1.2.3.4");
    let qname = b.column(b.schema().index_of("qname").unwrap());
    assert_eq!(qname.as_string::<i32>().value(0), "t.awcna.com");
}

#[test]
fn unfinished_table_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.parquet");
    let mut w = TableWriter::<FlowBatchBuilder>::create(&path, &[]).unwrap();
    w.push(&flow(1)).unwrap();
    drop(w);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "an aborted write must not leave files: {left:?}"
    );
}
