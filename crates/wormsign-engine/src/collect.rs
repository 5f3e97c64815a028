//! `wormsign collect`: a NetFlow v5/v9/IPFIX collector on a UDP socket that writes
//! rolling Parquet files of flow rows (the flows table's schema), each renamed into place
//! when complete.
//!
//! Three threads, so no stage's pauses make the socket overflow: one receives datagrams
//! into a bounded queue, one decodes them (the same NetFlow-to-rows step as `analyze`)
//! and builds Arrow batches, and one encodes the batches into the current Parquet file
//! and rotates files.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow_array::RecordBatch;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use wormsign_capture::time::UtcTime;
use wormsign_columnar::{FlowBatchBuilder, ParquetSink, RowBuilder};
use wormsign_flow::FlowConfig;
use wormsign_netflow::{ExportDecoder, NetflowStats, SflowStats};

use crate::Error;

/// Where and how to collect.
#[derive(Clone, Debug)]
pub struct CollectConfig {
    /// Address and UDP port to listen on.
    pub listen: SocketAddr,
    /// Directory for the rolling `flows-YYYYMMDDTHHMMSSZ.parquet` files.
    pub out: PathBuf,
    /// How often a new file starts.
    pub rotate: Duration,
    /// The socket receive buffer to ask the kernel for (`SO_RCVBUF`), in bytes: what
    /// absorbs an exporter's bursts while the receive thread is descheduled. Linux caps
    /// it at `net.core.rmem_max` and reports double what was granted (its bookkeeping
    /// overhead); [`Collector::recv_buffer`] says what the socket got.
    pub recv_buffer: usize,
}

/// How often, in receive time, metered sFlow flows are checked for their idle timeout.
const SWEEP_NS: i64 = 10_000_000_000;

/// The receive buffer asked for by default: 8 MiB, what nfcapd is usually given with `-B`.
pub const DEFAULT_RECV_BUFFER: usize = 8 << 20;

/// What a collector did.
#[derive(Clone, Debug, Default)]
pub struct CollectSummary {
    /// Datagrams received.
    pub datagrams: u64,
    /// Files written.
    pub files: u64,
    /// The socket's receive buffer as the kernel reports it, in bytes.
    pub recv_buffer: usize,
    /// The NetFlow/IPFIX decoder's counters (records, templates, losses by sequence
    /// number, ...).
    pub netflow: NetflowStats,
    /// The sFlow counters (samples read and metered).
    pub sflow: SflowStats,
}

/// A bound collector socket.
#[derive(Debug)]
pub struct Collector {
    socket: UdpSocket,
    config: CollectConfig,
}

impl Collector {
    /// Binds the socket and creates the output directory.
    pub fn bind(config: &CollectConfig) -> Result<Collector, Error> {
        std::fs::create_dir_all(&config.out).map_err(Error::io(&config.out))?;
        let name = format!("udp://{}", config.listen);
        let socket = bind_udp(config.listen, config.recv_buffer).map_err(Error::io(&name))?;
        Ok(Collector {
            socket,
            config: config.clone(),
        })
    }

    /// The address the socket is bound to (the port chosen, for port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.socket
            .local_addr()
            .map_err(Error::io(socket_name(&self.socket)))
    }

    /// The socket's receive buffer as the kernel reports it, in bytes.
    pub fn recv_buffer(&self) -> Result<usize, Error> {
        socket2::SockRef::from(&self.socket)
            .recv_buffer_size()
            .map_err(Error::io(socket_name(&self.socket)))
    }

    /// Receives export datagrams until `stop` is set, then completes the current file.
    pub fn run(&self, stop: &AtomicBool) -> Result<CollectSummary, Error> {
        let metadata = vec![
            (
                "wormsign.version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
            (
                "wormsign.inputs".to_string(),
                format!("[\"udp://{}\"]", self.config.listen),
            ),
        ];
        let (datagram_tx, datagram_rx) = bounded::<Datagram>(QUEUE_DATAGRAMS);
        let (writer_tx, writer_rx) = bounded::<ToWriter>(8);
        let rotate_ns = i64::try_from(self.config.rotate.as_nanos()).unwrap_or(i64::MAX);
        std::thread::scope(|s| {
            let receiver = s.spawn(|| receive(&self.socket, stop, datagram_tx));
            let writer = s.spawn(|| write_segments(&self.config.out, &metadata, writer_rx));
            let decoded = decode_datagrams(datagram_rx, writer_tx, rotate_ns);
            let datagrams = receiver.join().expect("receiver thread panicked")?;
            let files = writer.join().expect("writer thread panicked")?;
            let decoder = decoded?;
            Ok(CollectSummary {
                datagrams,
                files,
                recv_buffer: self.recv_buffer()?,
                netflow: decoder.netflow_stats(),
                sflow: decoder.sflow_stats(),
            })
        })
    }
}

/// A UDP socket bound to `addr` with a receive buffer of `recv_buffer` bytes asked for
/// before binding, so no datagram arrives into a smaller one.
fn bind_udp(addr: SocketAddr, recv_buffer: usize) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_recv_buffer_size(recv_buffer)?;
    socket.bind(&addr.into())?;
    // Wake up regularly to notice `stop` even without traffic.
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(socket.into())
}

fn socket_name(socket: &UdpSocket) -> String {
    socket
        .local_addr()
        .map_or_else(|_| "udp socket".into(), |a| format!("udp://{a}"))
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

fn open_segment(dir: &Path, metadata: &[(String, String)]) -> Result<ParquetSink, Error> {
    let path = dir.join(format!("flows-{}.parquet", utc_stamp(now_ns())));
    Ok(ParquetSink::create(
        &path,
        FlowBatchBuilder::schema(),
        metadata,
    )?)
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

/// Receives until `stop` is set; returns the number of datagrams received.
fn receive(socket: &UdpSocket, stop: &AtomicBool, tx: Sender<Datagram>) -> Result<u64, Error> {
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
            Err(e) => return Err(Error::io(socket_name(socket))(e)),
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
/// rotate when the interval has passed. Returns the decoder, for its counters.
fn decode_datagrams(
    rx: Receiver<Datagram>,
    writer: Sender<ToWriter>,
    rotate_ns: i64,
) -> Result<ExportDecoder, Error> {
    let mut decoder = ExportDecoder::new(FlowConfig::default());
    let mut builder = FlowBatchBuilder::default();
    let mut flows = Vec::new();
    // sFlow samples are metered into flows: those idle are ended every few seconds.
    let mut next_sweep = i64::MIN;
    let mut segment_end = now_ns().saturating_add(rotate_ns);
    let mut n_datagrams = 0u64;
    let send = |msg| {
        writer
            .send(msg)
            .map_err(|_| Error::Internal("the collector's file writer stopped".into()))
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
        let (from, ts) = (datagram.from, datagram.ts_ns);
        decoder.decode(from, ts, &datagram.payload, n_datagrams, &mut flows);
        if ts >= next_sweep {
            decoder.expire(ts, &mut flows);
            next_sweep = ts.saturating_add(SWEEP_NS);
        }
        flows.drain(..).for_each(|f| builder.append(&f));
        n_datagrams += 1;
        if builder.len() >= BATCH_ROWS {
            send(ToWriter::Batch(builder.finish()))?;
        }
    }
    decoder.finish(&mut flows);
    flows.drain(..).for_each(|f| builder.append(&f));
    if !builder.is_empty() {
        send(ToWriter::Batch(builder.finish()))?;
    }
    Ok(decoder)
}

/// Writes batches into the current segment file; returns the number of files written.
fn write_segments(
    dir: &Path,
    metadata: &[(String, String)],
    rx: Receiver<ToWriter>,
) -> Result<u64, Error> {
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
    fn stamps() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(1_546_318_800_000_000_000), "20190101T050000Z");
    }

    /// The receive buffer asked for is the one the socket gets. Both sizes are below
    /// Linux's smallest default `rmem_max` (208 KiB), so no sysctl caps them.
    #[test]
    fn receive_buffer_is_set() {
        let out = tempfile::tempdir().unwrap();
        let granted = |recv_buffer| {
            let config = CollectConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                out: out.path().to_path_buf(),
                rotate: Duration::from_secs(60),
                recv_buffer,
            };
            Collector::bind(&config).unwrap().recv_buffer().unwrap()
        };
        let (small, large) = (granted(32 << 10), granted(96 << 10));
        assert!(small >= 32 << 10, "asked for 32 KiB, got {small} bytes");
        assert!(large >= 96 << 10, "asked for 96 KiB, got {large} bytes");
        assert!(
            small < large,
            "{small} bytes for 32 KiB, {large} for 96 KiB"
        );
    }
}
