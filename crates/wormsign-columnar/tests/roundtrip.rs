//! Tables written through `TableWriter` read back with their declared types and values.

use std::fs::File;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Encoding;
use parquet::file::metadata::ColumnChunkMetaData;
use wormsign_columnar::{
    flow_schema, DnsBatchBuilder, DnsRow, FlowBatchBuilder, RowBuilder, SessionBatchBuilder,
    TableWriter,
};
use wormsign_decode::dns::{DnsAnswer, DnsMessage};
use wormsign_flow::{
    ConnState, DirCounters, EndReason, FlowRecord, FlowSource, History, LogKind, SflowOrigin,
};
use wormsign_inspect::{Fact, Outcome, Protocol, SessionEvent};

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
        tunnel: None,
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

/// Writes `rows` to a table at `path` through a `TableWriter`, and finishes it.
fn write_table<B: RowBuilder>(path: &std::path::Path, rows: &[B::Row]) {
    let mut w = TableWriter::<B>::create(path, &[]).unwrap();
    for row in rows {
        w.push(row).unwrap();
    }
    w.finish().unwrap();
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
    assert_eq!(w.finish().unwrap().rows, 100_000);
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

/// `rows` appended to `builder` and finished in batches of 1, 17, 0 and the rest.
fn batches_of<B: RowBuilder>(mut builder: B, rows: &[B::Row]) -> Vec<RecordBatch> {
    let mut start = 0;
    [1, 17, 0, rows.len() - 18]
        .iter()
        .map(|n| {
            rows[start..start + n]
                .iter()
                .for_each(|r| builder.append(r));
            start += n;
            builder.finish()
        })
        .collect()
}

/// A builder sized for few rows grows, one sized for many does not, and each starts the
/// next batch sized as the first: the batches must be the same whatever the size.
#[test]
fn flow_batches_do_not_depend_on_the_builders_size() {
    let rows: Vec<FlowRecord> = (0..40).map(distinct_flow).collect();
    let expected = batches_of(FlowBatchBuilder::default(), &rows);
    assert_eq!(expected.iter().map(|b| b.num_rows()).sum::<usize>(), 40);
    for capacity in [0, 1, 3, 20, 8192] {
        let builder = FlowBatchBuilder::with_capacity(capacity);
        assert_eq!(batches_of(builder, &rows), expected, "{capacity}");
    }
}

/// As for flows: DNS rows with no question, or none to many answers of long names, in
/// builders of any size.
#[test]
fn dns_batches_do_not_depend_on_the_builders_size() {
    let rows: Vec<DnsRow> = (0..40u16)
        .map(|i| {
            let mut row = dns_row();
            let m = &mut row.message;
            m.id = i;
            m.qname =
                (i % 7 != 3).then(|| format!("host-{i}.{}.example", "a".repeat(usize::from(i))));
            m.answers = (0..i % 4)
                .map(|n| DnsAnswer {
                    rtype: [1, 5, 28, 99][usize::from(n)],
                    ttl: u32::from(i * n),
                    data: format!("{n}.{}", "b".repeat(usize::from(i))),
                })
                .collect();
            row.packet = u64::from(i);
            row
        })
        .collect();
    let expected = batches_of(DnsBatchBuilder::default(), &rows);
    let answers: usize = rows.iter().map(|r| r.message.answers.len()).sum();
    let list_values = |b: &RecordBatch| {
        b.column_by_name("answers")
            .unwrap()
            .as_list::<i32>()
            .values()
            .len()
    };
    assert_eq!(expected.iter().map(list_values).sum::<usize>(), answers);
    for capacity in [0, 1, 3, 20, 8192] {
        let builder = DnsBatchBuilder::with_capacity(capacity);
        assert_eq!(batches_of(builder, &rows), expected, "{capacity}");
    }
}

/// A DNS response with one answer.
fn dns_row() -> DnsRow {
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
            rtype: 1,
            ttl: 60,
            data: "1.2.3.4".into(),
        }],
    };
    DnsRow {
        ts_ns: 0,
        packet: 5,
        client: "10.164.1.8".parse().unwrap(),
        client_port: 5353,
        server: "10.164.1.1".parse().unwrap(),
        server_port: 53,
        tcp: false,
        message,
    }
}

/// An SMB dialect fact of one session.
fn session_row() -> SessionEvent {
    SessionEvent {
        ts_ns: 0,
        packet: 9,
        client: "10.164.1.8".parse().unwrap(),
        client_port: 49_152,
        server: "10.164.1.9".parse().unwrap(),
        server_port: 445,
        protocol: Protocol::Smb,
        fact: Fact::Dialect,
        outcome: Outcome::Present,
        status: None,
        user: None,
        domain: None,
        workstation: None,
        detail: None,
    }
}

#[test]
fn dns_answers_are_lists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dns.parquet");
    write_table::<DnsBatchBuilder>(&path, &[dns_row()]);
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

/// The leaf columns of `path` whose first row group's chunk passes `test`.
fn columns_where(
    path: &std::path::Path,
    test: impl Fn(&ColumnChunkMetaData) -> bool,
) -> Vec<String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    let row_group = builder.metadata().row_group(0);
    row_group
        .columns()
        .iter()
        .filter(|&c| test(c))
        .map(|c| c.column_path().string())
        .collect()
}

/// The leaf columns of `path` whose row groups carry no min/max statistics.
fn columns_without_statistics(path: &std::path::Path) -> Vec<String> {
    columns_where(path, |c| c.statistics().is_none())
}

/// The tables `small_tables` writes.
struct SmallTables {
    flows: std::path::PathBuf,
    dns: std::path::PathBuf,
    sessions: std::path::PathBuf,
}

/// A flows table of a thousand distinct flows, a DNS table of one message and a sessions
/// table of one fact, written in `dir`.
fn small_tables(dir: &std::path::Path) -> SmallTables {
    let t = SmallTables {
        flows: dir.join("flows.parquet"),
        dns: dir.join("dns.parquet"),
        sessions: dir.join("sessions.parquet"),
    };
    let flows: Vec<FlowRecord> = (0..1000).map(distinct_flow).collect();
    write_table::<FlowBatchBuilder>(&t.flows, &flows);
    write_table::<DnsBatchBuilder>(&t.dns, &[dns_row()]);
    write_table::<SessionBatchBuilder>(&t.sessions, &[session_row()]);
    t
}

/// Statistics are kept where a reader can prune row groups with them (times, packet
/// ordinals, numbers) and left out for addresses, names and enumerations, whose text
/// order says nothing (the sink's `NO_STATISTICS`), list values included.
#[test]
fn statistics_are_written_where_readers_can_prune() {
    let dir = tempfile::tempdir().unwrap();
    let SmallTables { flows, dns, .. } = small_tables(dir.path());
    let unpruned = [
        "orig_h",
        "resp_h",
        "proto",
        "conn_state",
        "history",
        "community_id",
        "end_reason",
        "source",
    ];
    assert_eq!(columns_without_statistics(&flows), unpruned);
    let unpruned = [
        "client_h",
        "server_h",
        "proto",
        "rcode_name",
        "qname",
        "qtype_name",
        "answers.list.item",
        "answer_types.list.item",
    ];
    assert_eq!(columns_without_statistics(&dns), unpruned);
}

/// The leaf columns of `path` whose first row group has values in `encoding`.
fn columns_encoded(path: &std::path::Path, encoding: Encoding) -> Vec<String> {
    columns_where(path, |c| c.encodings().any(|e| e == encoding))
}

/// Times and packet ordinals, integers that rise nearly row by row, and originators'
/// ports, too many distinct values for a dictionary, are written as deltas (the sink's
/// `DELTA_ENCODED` and `DELTA_ENCODED_PORTS`) in the flows, DNS and sessions tables;
/// `duration` is a float and keeps plain values, and responders' ports keep their
/// dictionary. `columns_encoded_apart_keep_their_rows_together_on_any_pool` reads times,
/// ordinals and `orig_p` (an INT32 column, as `client_p` is) back.
#[test]
fn times_ordinals_and_originator_ports_are_delta_encoded() {
    let dir = tempfile::tempdir().unwrap();
    let SmallTables {
        flows,
        dns,
        sessions,
    } = small_tables(dir.path());
    let delta = Encoding::DELTA_BINARY_PACKED;
    assert_eq!(
        columns_encoded(&flows, delta),
        ["ts", "last_ts", "orig_p", "first_packet"]
    );
    assert_eq!(columns_encoded(&dns, delta), ["ts", "client_p", "packet"]);
    let dictionary = columns_encoded(&flows, Encoding::RLE_DICTIONARY);
    assert!(dictionary.contains(&"resp_p".to_string()), "{dictionary:?}");
    assert_eq!(
        columns_encoded(&sessions, delta),
        ["ts", "client_p", "packet"]
    );
}

/// Community IDs are written prefix-coded (the sink's `PREFIX_ENCODED`), without a
/// dictionary, and no other column of the flows and DNS tables is;
/// `columns_encoded_apart_keep_their_rows_together_on_any_pool` reads them back.
#[test]
fn community_ids_are_prefix_coded() {
    let dir = tempfile::tempdir().unwrap();
    let SmallTables { flows, dns, .. } = small_tables(dir.path());
    let prefix = Encoding::DELTA_BYTE_ARRAY;
    assert_eq!(columns_encoded(&flows, prefix), ["community_id"]);
    assert!(columns_encoded(&dns, prefix).is_empty());
    let dictionary = columns_encoded(&flows, Encoding::RLE_DICTIONARY);
    assert!(dictionary.contains(&"resp_h".to_string()), "{dictionary:?}");
    assert!(!dictionary.contains(&"community_id".to_string()));
}

/// Deltas of any size and sign read back as the values written: times out of order,
/// a flow ending before the previous one, the extremes of the types, across more than
/// one delta block (128 values).
#[test]
fn delta_encoded_times_read_back_out_of_order_and_at_extremes() {
    let times = [
        0,
        i64::MIN,
        i64::MAX,
        -1,
        1,
        -999,
        1_000_000_007,
        i64::MIN + 1,
    ];
    let flows: Vec<FlowRecord> = (0..300u64)
        .map(|i| {
            let pick = |k: u64| times[((i * k) % times.len() as u64) as usize];
            FlowRecord {
                ts_first: pick(3).wrapping_add(i as i64),
                ts_last: pick(5),
                first_packet: [u64::MAX, 0, i * 7919, 1 << 63][(i % 4) as usize],
                ..flow(i)
            }
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.parquet");
    write_table::<FlowBatchBuilder>(&path, &flows);
    let mut expected = flows.iter();
    for b in read(&path).0 {
        let col = |name: &str| b.column(b.schema().index_of(name).unwrap()).clone();
        let (ts, last, first) = (col("ts"), col("last_ts"), col("first_packet"));
        let micros = |c: &arrow_array::ArrayRef, row| {
            c.as_primitive::<TimestampMicrosecondType>().value(row)
        };
        for row in 0..b.num_rows() {
            let f = expected.next().unwrap();
            assert_eq!(micros(&ts, row), f.ts_first.div_euclid(1000));
            assert_eq!(micros(&last, row), f.ts_last.div_euclid(1000));
            let packet = i64::try_from(f.first_packet).unwrap_or(i64::MAX);
            assert_eq!(first.as_primitive::<Int64Type>().value(row), packet);
        }
    }
    assert!(expected.next().is_none(), "every row read back");
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

/// Writes `n` flows that differ in every row through a `TableWriter` running on a rayon
/// pool of `threads`, finished inside `rayon::join` as the pipeline's writer does, and
/// returns the file's bytes. Fails instead of hanging if the writer waits for a pool
/// worker that is itself waiting.
fn write_on_pool(n: u64, threads: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.parquet");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let target = path.clone();
    std::thread::spawn(move || {
        pool.install(|| {
            let mut w = TableWriter::<FlowBatchBuilder>::create(&target, &[]).unwrap();
            for i in 0..n {
                w.push(&distinct_flow(i)).unwrap();
            }
            let (rows, ()) = rayon::join(|| w.finish().unwrap().rows, || ());
            done_tx.send(rows).unwrap();
        })
    });
    let rows = done_rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the writer did not finish: it waits for work nobody runs");
    assert_eq!(rows, n);
    std::fs::read(&path).unwrap()
}

fn distinct_flow(i: u64) -> FlowRecord {
    FlowRecord {
        ts_first: flow(0).ts_first + i as i64 * 1_000,
        orig_port: i as u16,
        orig: DirCounters {
            packets: i,
            ..flow(0).orig
        },
        ..flow(i)
    }
}

/// Each column is encoded on its own lane, by whichever thread is free: every column
/// must still hold its rows in order (a column that ran another column's batches in a
/// different order would pair one row's `first_packet` with another row's time), and
/// the file must not depend on the pool's size, a single worker included.
#[test]
fn columns_encoded_apart_keep_their_rows_together_on_any_pool() {
    let n = 300_000; // several row groups, dozens of batches each
    let one = write_on_pool(n, 1);
    assert!(
        one == write_on_pool(n, 4),
        "the file depends on the pool's size"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.parquet");
    std::fs::write(&path, one).unwrap();
    let mut next = 0u64;
    for b in read(&path).0 {
        let col = |name: &str| b.column(b.schema().index_of(name).unwrap()).clone();
        let (first, ts, packets) = (col("first_packet"), col("ts"), col("orig_pkts"));
        let (community, port) = (col("community_id"), col("orig_p"));
        for row in 0..b.num_rows() {
            let expected = distinct_flow(next);
            assert_eq!(first.as_primitive::<Int64Type>().value(row) as u64, next);
            assert_eq!(
                ts.as_primitive::<TimestampMicrosecondType>().value(row),
                expected.ts_first / 1_000
            );
            assert_eq!(packets.as_primitive::<Int64Type>().value(row) as u64, next);
            // Rising by one, then falling from 65 535 to 0: deltas of both signs.
            let orig_p = port.as_primitive::<Int32Type>().value(row);
            assert_eq!(orig_p, i32::from(expected.orig_port));
            assert_eq!(
                community.as_string::<i32>().value(row),
                expected.community_id().as_str()
            );
            next += 1;
        }
    }
    assert_eq!(next, n);
}

/// An Ethernet/IPv4/TCP frame (checksums are not checked by the decoder).
fn tcp_frame(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    flags: u8,
    payload: usize,
) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 20 + payload) as u16;
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        6,
        0,
        0,
    ]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x50, flags, 0x20, 0, 0, 0, 0, 0]);
    f.resize(f.len() + payload, b'x');
    f
}

/// `as_stored` is exactly what storing a flow and reading it back gives: records metered
/// by a flow table (with TCP histories) and hand-made ones (NetFlow provenance with an
/// export version, port 0, nanosecond and pre-1970 times, counters past `i64::MAX`),
/// written to a Parquet file and read with `read_flows`.
#[test]
fn as_stored_is_the_read_back() {
    use wormsign_columnar::{as_stored, read_flows};
    use wormsign_decode::{decode, Decoded};
    use wormsign_flow::{FlowConfig, FlowTable, NetflowOrigin, TimedPacket};

    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const PSH: u8 = 0x08;
    const RST: u8 = 0x04;
    let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let script = [
        (a, b, 40000, 445, SYN, 0),
        (b, a, 445, 40000, SYN | ACK, 0),
        (a, b, 40000, 445, ACK, 0),
        (a, b, 40000, 445, PSH | ACK, 100),
        (b, a, 445, 40000, RST, 0),
        (a, b, 40001, 3389, SYN, 0),
    ];
    let packets: Vec<TimedPacket> = script
        .iter()
        .enumerate()
        .map(|(i, &(src, dst, sp, dp, flags, len))| {
            let Decoded::Ip(packet) = decode(1, &tcp_frame(src, dst, sp, dp, flags, len)) else {
                panic!("frame {i} does not decode");
            };
            TimedPacket {
                ts_ns: 1_546_318_800_000_000_123 + 1_234_567 * i as i64,
                idx: i as u64,
                packet,
            }
        })
        .collect();
    let mut table = FlowTable::new(FlowConfig::default());
    let mut records = Vec::new();
    table.observe_all(&packets, &mut records);
    records.extend(table.flush());
    assert!(
        records.iter().any(|r| !r.history.as_str().is_empty()),
        "no TCP history to lose"
    );
    let netflow = FlowSource::Netflow(NetflowOrigin {
        exporter: "192.0.2.1".parse().unwrap(),
        version: 9,
        sampling_interval: 100,
        record_index: 7,
        input_if: 3,
        output_if: 4,
    });
    records.push(FlowRecord {
        source: netflow,
        ts_first: -1_500,
        ts_last: 999,
        ..flow(100)
    });
    records.push(FlowRecord {
        orig_port: 0,
        resp_port: 0,
        orig: DirCounters {
            packets: u64::MAX,
            ..DirCounters::default()
        },
        ..flow(101)
    });
    // Tunnelled flows, one without an identifier, between bare ones.
    for (first_packet, id, chain) in [(102, Some(u32::MAX), u32::MAX), (103, None, 1)] {
        records.push(FlowRecord {
            tunnel: Some(wormsign_decode::Tunnel {
                kind: wormsign_decode::TunnelKind::Erspan3,
                src: "2001:db8::7".parse().unwrap(),
                dst: "192.0.2.9".parse().unwrap(),
                id,
                depth: 3,
                chain,
            }),
            ..flow(first_packet)
        });
    }
    records.push(flow(104));
    // sFlow rows keep their agent, rate and sample index.
    records.push(FlowRecord {
        source: FlowSource::Sflow(SflowOrigin {
            agent: "2001:db8::5".parse().unwrap(),
            sampling_rate: 2048,
            record_index: 3,
        }),
        ..flow(107)
    });
    // Rows from Zeek and Suricata logs keep their tool.
    for (first_packet, kind) in [(105, LogKind::Zeek), (106, LogKind::Suricata)] {
        records.push(FlowRecord {
            source: FlowSource::Log(kind),
            end_reason: EndReason::Exported,
            ..flow(first_packet)
        });
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.parquet");
    write_table::<FlowBatchBuilder>(&path, &records);
    let read = read_flows(&[path]).unwrap();
    let stored: Vec<FlowRecord> = records.iter().map(as_stored).collect();
    assert_eq!(read, stored);
    assert_ne!(records, stored, "nothing was lost: the test checks nothing");
}

/// `for_each_flow_to`, which finds the flows to some addresses from the responder column
/// alone (read as the file's dictionary), hands over exactly the flows a full read finds
/// to those addresses, in file order, over several row groups: repeated and unique
/// addresses, IPv4 and IPv6, and a wanted address no flow goes to.
#[test]
fn flows_to_addresses_are_those_a_full_read_finds() {
    use std::collections::HashSet;
    use std::net::IpAddr;

    use wormsign_columnar::{for_each_flow_to, read_flows, ROW_GROUP_ROWS};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.parquet");
    let n = ROW_GROUP_ROWS as u64 + 5_000;
    let responder = |i: u64| -> IpAddr {
        match i % 5 {
            0 => format!("10.0.{}.{}", i % 50, i % 7).parse().unwrap(),
            1 => format!("2001:db8::{:x}", i % 300).parse().unwrap(),
            _ => IpAddr::from((i as u32 + 0x0a00_0000).to_be_bytes()),
        }
    };
    let mut w = TableWriter::<FlowBatchBuilder>::create(&path, &[]).unwrap();
    for i in 0..n {
        let f = FlowRecord {
            resp_addr: responder(i),
            ..distinct_flow(i)
        };
        w.push(&f).unwrap();
    }
    w.finish().unwrap();
    let wanted: HashSet<IpAddr> = [responder(5), responder(6), responder(12), responder(n - 3)]
        .into_iter()
        .chain(["192.0.2.1".parse().unwrap()])
        .collect();
    let all = read_flows(std::slice::from_ref(&path)).unwrap();
    let expected: Vec<FlowRecord> = all
        .into_iter()
        .filter(|f| wanted.contains(&f.resp_addr))
        .collect();
    let mut found = Vec::new();
    let read = for_each_flow_to(&[path], |a| wanted.contains(&a), |f| found.push(f)).unwrap();
    assert_eq!(read, n);
    assert_eq!(found, expected);
    assert!(
        expected.len() > 500,
        "only {} flows compared",
        expected.len()
    );
}
