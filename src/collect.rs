//! `wormsign collect`: a NetFlow v5/v9/IPFIX collector on a UDP socket that writes
//! rolling Parquet files of flow rows, each renamed into place when complete.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use arrow_array::RecordBatch;
use clap::Args;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use wormsign_capture::time::UtcTime;
use wormsign_columnar::{FlowBatchBuilder, ParquetSink, RowBuilder};
use wormsign_netflow::{NetflowDecoder, NetflowStats};

use wormsign_engine::netflow_json;

#[derive(Args, Debug)]
pub struct CollectArgs {
    /// Address and UDP port to listen on. Loopback unless told otherwise.
    #[arg(long, default_value = "127.0.0.1:2055")]
    listen: SocketAddr,
    /// Directory for the rolling `flows-YYYYMMDDTHHMMSSZ.parquet` files.
    #[arg(long, short)]
    out: PathBuf,
    /// Start a new file this often: a number with s, m or h (e.g. 30s, 5m, 1h).
    #[arg(long, default_value = "5m", value_parser = parse_interval)]
    rotate: Duration,
    /// Write the final counters as JSON to this file when the collector stops.
    #[arg(long)]
    summary_json: Option<PathBuf>,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text:?} (use e.g. 30s, 5m, 1h)"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("unknown unit in {text:?} (use s, m or h)")),
    };
    if secs == 0 {
        return Err("the rotation interval must be positive".into());
    }
    Ok(Duration::from_secs(secs))
}

fn now_ns() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
}

/// `YYYYMMDDTHHMMSSZ` for a time in ns since the Unix epoch, for file names.
fn utc_stamp(ns: i64) -> String {
    let t = UtcTime::from_unix_ns(ns);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

fn open_segment(dir: &Path, metadata: &[(String, String)]) -> anyhow::Result<ParquetSink> {
    let path = dir.join(format!("flows-{}.parquet", utc_stamp(now_ns())));
    ParquetSink::create(&path, FlowBatchBuilder::schema(), metadata)
        .with_context(|| format!("creating {}", path.display()))
}

/// One received export datagram.
struct Datagram {
    ts_ns: i64,
    from: SocketAddr,
    payload: Vec<u8>,
}

/// What the decode thread tells the file writer.
enum ToWriter {
    Batch(RecordBatch),
    Rotate,
}

/// Received datagrams waiting for the decoder: absorbs bursts the kernel's socket
/// buffer would drop.
const QUEUE_DATAGRAMS: usize = 1 << 16;
/// Flow rows per Arrow batch handed to the writer.
const BATCH_ROWS: usize = 16 * 1024;

/// Receives export datagrams until SIGINT or SIGTERM, then completes the current file.
///
/// Three threads, so no stage's pauses make the socket overflow: one receives
/// datagrams into a bounded queue, this one decodes them and builds Arrow batches, and
/// one encodes the batches into the current Parquet file and rotates files.
pub fn collect(args: &CollectArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.out)?;
    let socket =
        UdpSocket::bind(args.listen).with_context(|| format!("listening on {}", args.listen))?;
    // Wake up regularly to notice a signal even without traffic.
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let metadata = vec![
        (
            "wormsign.version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        (
            "wormsign.inputs".to_string(),
            format!("[\"udp://{}\"]", args.listen),
        ),
    ];
    eprintln!("wormsign: collecting on udp://{}", socket.local_addr()?);
    let (datagram_tx, datagram_rx) = bounded::<Datagram>(QUEUE_DATAGRAMS);
    let (writer_tx, writer_rx) = bounded::<ToWriter>(8);
    let rotate_ns = i64::try_from(args.rotate.as_nanos()).unwrap_or(i64::MAX);
    std::thread::scope(|s| {
        let receiver = s.spawn(|| receive(&socket, &stop, datagram_tx));
        let writer = s.spawn(|| write_segments(&args.out, &metadata, writer_rx));
        let decoded = decode_datagrams(datagram_rx, writer_tx, rotate_ns);
        let n_datagrams = receiver.join().expect("receiver thread panicked")?;
        let n_files = writer.join().expect("writer thread panicked")?;
        let stats = decoded?;
        eprintln!(
            "wormsign: collected {n_datagrams} datagrams: {} decoded, {} records, {} lost by sequence, {} malformed, {} data sets without template; {n_files} files in {}",
            stats.packets,
            stats.records,
            stats.sequence_lost,
            stats.malformed,
            stats.data_sets_without_template,
            args.out.display()
        );
        if let Some(path) = &args.summary_json {
            let json = serde_json::json!({ "datagrams": n_datagrams, "files": n_files, "netflow": netflow_json(&stats) });
            std::fs::write(path, serde_json::to_string_pretty(&json)? + "\n")?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Receives until `stop` is set; returns the number of datagrams received.
fn receive(socket: &UdpSocket, stop: &AtomicBool, tx: Sender<Datagram>) -> anyhow::Result<u64> {
    let mut buf = vec![0u8; 65_536];
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let (len, from) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => return Err(e).context("receiving"),
        };
        let datagram = Datagram {
            ts_ns: now_ns(),
            from,
            payload: buf[..len].to_vec(),
        };
        if tx.send(datagram).is_err() {
            break;
        }
        n += 1;
    }
    Ok(n)
}

/// Decodes datagrams into flow rows, hands full batches to the writer and asks it to
/// rotate when the interval has passed. Returns the decoder's counters.
fn decode_datagrams(
    rx: Receiver<Datagram>,
    writer: Sender<ToWriter>,
    rotate_ns: i64,
) -> anyhow::Result<NetflowStats> {
    let mut decoder = NetflowDecoder::default();
    let mut builder = FlowBatchBuilder::default();
    let (mut records, mut flows) = (Vec::new(), Vec::new());
    let mut segment_end = now_ns().saturating_add(rotate_ns);
    let mut n_datagrams = 0u64;
    let send = |msg| {
        writer
            .send(msg)
            .map_err(|_| anyhow::anyhow!("the file writer stopped"))
    };
    loop {
        if now_ns() >= segment_end {
            if !builder.is_empty() {
                send(ToWriter::Batch(builder.finish()))?;
            }
            send(ToWriter::Rotate)?;
            segment_end = now_ns().saturating_add(rotate_ns);
        }
        let datagram = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(d) => d,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        decoder.decode_flows(
            datagram.from,
            datagram.ts_ns,
            &datagram.payload,
            n_datagrams,
            &mut records,
            &mut flows,
        );
        flows.drain(..).for_each(|f| builder.append(&f));
        n_datagrams += 1;
        if builder.len() >= BATCH_ROWS {
            send(ToWriter::Batch(builder.finish()))?;
        }
    }
    decoder.finish();
    if !builder.is_empty() {
        send(ToWriter::Batch(builder.finish()))?;
    }
    Ok(decoder.stats())
}

/// Writes batches into the current segment file; returns the number of files written.
fn write_segments(
    dir: &Path,
    metadata: &[(String, String)],
    rx: Receiver<ToWriter>,
) -> anyhow::Result<u64> {
    let mut sink = open_segment(dir, metadata)?;
    let mut n_files = 0;
    for msg in rx {
        match msg {
            ToWriter::Batch(batch) => sink.write(&batch)?,
            ToWriter::Rotate => {
                sink.finish()?;
                n_files += 1;
                sink = open_segment(dir, metadata)?;
            }
        }
    }
    sink.finish()?;
    Ok(n_files + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_and_intervals() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(1_546_318_800_000_000_000), "20190101T050000Z");
        assert_eq!(parse_interval("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_interval("30s"), Ok(Duration::from_secs(30)));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("5x").is_err());
    }
}
