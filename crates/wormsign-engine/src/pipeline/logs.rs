//! Flow logs in the pipeline: the reader thread reads a log's lines into rows itself and
//! sends them, built into the same batches as the shards' and the decoders', straight to
//! the writer. A log has no packets to decode, meter or inspect.

use std::cell::RefCell;
use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::Sender;
use wormsign_columnar::{DnsBatchBuilder, FlowBatchBuilder, RowBuilder};
use wormsign_detect::DetectConfig;
use wormsign_logs::{LogReader, LogRows, LogStats};

use super::{ToWriter, Warning};
use crate::resolved::UsablePicker;
use crate::{Control, Input};

/// Lines read between sends (and checks of the stop flag). With lines of at most 1 MiB
/// and DNS rows of at most 64 answers of 1 KiB text, the rows of one read stay within
/// about 128 MiB whatever the log holds (a few MB for real logs).
const LINES_PER_READ: usize = 1024;

/// Where the reader thread sends the rows of logs.
pub(super) struct LogOutput<'a> {
    /// Picks out what detection can use, when it is fed. First, so that it is dropped
    /// first (fields drop in order) and its notes are in before the writer sees the
    /// channel close.
    pub(super) picker: Option<RefCell<UsablePicker<'a>>>,
    pub(super) out_tx: Sender<ToWriter>,
    pub(super) cnc: Option<&'a DetectConfig>,
    pub(super) control: &'a Control,
}

impl LogOutput<'_> {
    /// Sends the rows as one flows batch and one DNS batch. False once the writer is gone.
    fn send(&self, rows: &mut LogRows) -> bool {
        if !rows.flows.is_empty() {
            let mut builder = FlowBatchBuilder::with_capacity(rows.flows.len());
            let mut usable = Vec::new();
            for flow in &rows.flows {
                builder.append(flow);
                usable.extend(self.picker.as_ref().and_then(|p| p.borrow_mut().pick(flow)));
            }
            rows.flows.clear();
            if self
                .out_tx
                .send(ToWriter::Flows(builder.finish(), usable))
                .is_err()
            {
                return false;
            }
        }
        if !rows.dns.is_empty() {
            let mut builder = DnsBatchBuilder::with_capacity(rows.dns.len());
            rows.dns.iter().for_each(|r| builder.append(r));
            rows.dns.clear();
            if self
                .out_tx
                .send(ToWriter::dns(builder.finish(), self.cnc))
                .is_err()
            {
                return false;
            }
        }
        true
    }
}

/// What reading one log came to.
pub(super) struct LogRead {
    pub(super) stats: LogStats,
    /// Unreadable lines, a read error, an interruption.
    pub(super) warnings: Vec<Warning>,
    /// False when the writer went away (the run is failing) or the stop flag was set.
    pub(super) go_on: bool,
}

/// Reads `log` to its end (or the stop flag), sending its rows. Each row takes the next
/// run-wide ordinal from `ordinal`. Unreadable lines and a read error become warnings.
pub(super) fn read_log(
    input: &Input,
    mut log: Box<LogReader<Box<dyn BufRead + Send>>>,
    raw_bytes: &Arc<AtomicU64>,
    bytes_before: u64,
    ordinal: &mut u64,
    out: &LogOutput<'_>,
) -> LogRead {
    let control = out.control;
    let mut warnings = Vec::new();
    let mut rows = LogRows::default();
    let mut go_on = true;
    loop {
        if control.stop.load(Ordering::Relaxed) {
            let message = format!("interrupted: stopped reading after {} bytes of the log; the outputs hold everything read before", log.offset());
            warnings.push(Warning::new(input, None, message));
            go_on = false;
            break;
        }
        let more = log.read(LINES_PER_READ, ordinal, &mut rows);
        control.bytes.store(
            bytes_before + raw_bytes.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        control.packets.store(*ordinal, Ordering::Relaxed);
        if !out.send(&mut rows) {
            go_on = false;
            break;
        }
        match more {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let message = format!(
                    "{} log: read error at byte {} of its text: {e}; the outputs hold every line before",
                    log.format().as_str(),
                    log.offset()
                );
                warnings.push(Warning::new(input, Some(log.offset()), message));
                break;
            }
        }
    }
    let stats = log.stats().clone();
    if let Some(first) = log.first_malformed() {
        let message = format!(
            "{} log: {} line(s) could not be read and were skipped; the first is line {} at byte {}: {}",
            log.format().as_str(),
            stats.malformed,
            first.line,
            first.offset,
            first.why
        );
        warnings.push(Warning::new(input, Some(first.offset), message));
    }
    LogRead {
        stats,
        warnings,
        go_on,
    }
}
