//! Sorted runs of usable flows kept in temporary files, so that the rules can read more
//! flows than `max_pending_flows` in one order while at most that many are in memory: an
//! external merge sort. Each run is written sorted; [`merge`] reads them back as one
//! stream in detection order.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::usable::UsableFlow;

/// Bytes of one flow in a run: four 8-byte fields, the record index, two ports, the
/// protocol, the flags byte and two 16-byte addresses.
const RECORD_BYTES: usize = 4 * 8 + 4 + 2 * 2 + 1 + 1 + 2 * 16;

/// Flags byte: which booleans are set, and which address is IPv6.
const HAS_PORTS: u8 = 1;
const FAILED: u8 = 1 << 1;
const COMPLETED: u8 = 1 << 2;
const SHOWS_OUTCOME: u8 = 1 << 3;
const ORIG_V6: u8 = 1 << 4;
const RESP_V6: u8 = 1 << 5;

/// Read and write buffer of each run: the merge holds one per run.
const BUFFER_BYTES: usize = 64 * 1024;

/// Runs merged into one at a time, and the most runs of one level held: files stay
/// open (they have no name) and each needs a buffer while merging, so a low cap over
/// many flows must not mean one open file per batch (the usual limit is 1 024).
const FAN_IN: usize = 64;

/// The sorted runs written so far, in the order their batches came. Whenever the last
/// [`FAN_IN`] runs are of one level (level 0: one batch), they are merged into one run
/// of the next level, so at most `FAN_IN - 1` runs of each level are open, and each flow
/// is rewritten once per level (`log64` of the number of batches).
#[derive(Default)]
pub(crate) struct Runs {
    stack: Vec<(u32, SpilledRun)>,
    /// Flows lost when a file failed to read, or a merged run to write.
    unread: u64,
}

impl Runs {
    pub(crate) fn is_empty(&self) -> bool {
        self.stack.is_empty()
    }

    /// Writes `sorted` (in detection order) as the next run.
    pub(crate) fn write(&mut self, sorted: &[&UsableFlow]) -> io::Result<()> {
        let mut out = RunWriter::new()?;
        sorted.iter().try_for_each(|f| out.write(f))?;
        self.stack.push((0, out.finish()?));
        while let Some(level) = self.full_level() {
            // Without a file the runs stay as they are; the next batch tries again.
            let Ok(mut out) = RunWriter::new() else {
                break;
            };
            let merged: Vec<SpilledRun> = (self.stack.split_off(self.stack.len() - FAN_IN))
                .into_iter()
                .map(|(_, run)| run)
                .collect();
            let total: u64 = merged.iter().map(|run| run.flows).sum();
            let mut wrote = Ok(());
            let unread = merge(merged, &[], MERGE_BATCH, |b| {
                if wrote.is_ok() {
                    wrote = b.iter().try_for_each(|f| out.write(f));
                }
            });
            match wrote.and_then(|()| out.finish()) {
                Ok(run) => {
                    self.unread += unread;
                    self.stack.push((level + 1, run));
                }
                // The merged runs are spent: their flows are lost with the file.
                Err(_) => self.unread += total,
            }
        }
        Ok(())
    }

    /// The level of the last [`FAN_IN`] runs, when they are all of one.
    fn full_level(&self) -> Option<u32> {
        let last = self
            .stack
            .len()
            .checked_sub(FAN_IN)
            .map(|at| &self.stack[at..])?;
        let level = last[0].0;
        last.iter().all(|(l, _)| *l == level).then_some(level)
    }

    /// Every run and `last` (in detection order) as one stream in that order, handed to
    /// `sink` in batches of at most `batch`, as [`merge`] does. Returns how many flows
    /// were lost to files that failed.
    pub(crate) fn merge_with(
        self,
        last: &[&UsableFlow],
        batch: usize,
        sink: impl FnMut(&[&UsableFlow]),
    ) -> u64 {
        let runs = self.stack.into_iter().map(|(_, run)| run).collect();
        self.unread + merge(runs, last, batch, sink)
    }
}

/// Flows handed over at a time while merging.
pub(crate) const MERGE_BATCH: usize = 64 * 1024;

/// One sorted run in an anonymous temporary file (gone when dropped, or if the process
/// dies), and how many flows it holds.
struct SpilledRun {
    file: File,
    flows: u64,
}

/// A run being written.
struct RunWriter {
    out: BufWriter<File>,
    flows: u64,
}

impl RunWriter {
    fn new() -> io::Result<RunWriter> {
        let file = tempfile::tempfile()?;
        Ok(RunWriter {
            out: BufWriter::with_capacity(BUFFER_BYTES, file),
            flows: 0,
        })
    }

    fn write(&mut self, f: &UsableFlow) -> io::Result<()> {
        self.out.write_all(&encode(f))?;
        self.flows += 1;
        Ok(())
    }

    fn finish(self) -> io::Result<SpilledRun> {
        let mut file = self
            .out
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        file.rewind()?;
        Ok(SpilledRun {
            file,
            flows: self.flows,
        })
    }
}

/// The flows of `runs` and of `last` (each in detection order) as one stream in that
/// order, handed to `sink` in batches of at most `batch`. Ties keep the order of their
/// runs, `last` after every file, so the stream is what one stable sort of all the
/// flows, in the order they came, gives. Returns how many flows could not be read back
/// (a run's file failing to read ends that run).
fn merge(
    runs: Vec<SpilledRun>,
    last: &[&UsableFlow],
    batch: usize,
    mut sink: impl FnMut(&[&UsableFlow]),
) -> u64 {
    let mut readers: Vec<RunReader> = runs.into_iter().map(RunReader::new).collect();
    let mut last = last.iter();
    let mut heads = BinaryHeap::new();
    for (run, reader) in readers.iter_mut().enumerate() {
        if let Some(flow) = reader.next() {
            heads.push(Head { flow, run });
        }
    }
    let from_last = readers.len();
    if let Some(&f) = last.next() {
        heads.push(Head {
            flow: f.clone(),
            run: from_last,
        });
    }
    let batch = batch.max(1);
    let mut out: Vec<UsableFlow> = Vec::with_capacity(batch);
    while let Some(Head { flow, run }) = heads.pop() {
        out.push(flow);
        let next = match readers.get_mut(run) {
            Some(reader) => reader.next(),
            None => last.next().map(|&f| f.clone()),
        };
        if let Some(flow) = next {
            heads.push(Head { flow, run });
        }
        if out.len() == batch || heads.is_empty() {
            sink(&out.iter().collect::<Vec<_>>());
            out.clear();
        }
    }
    readers.iter().map(RunReader::unread).sum()
}

/// A run read back front to back.
struct RunReader {
    input: BufReader<File>,
    left: u64,
}

impl RunReader {
    fn new(run: SpilledRun) -> RunReader {
        RunReader {
            input: BufReader::with_capacity(BUFFER_BYTES, run.file),
            left: run.flows,
        }
    }

    fn next(&mut self) -> Option<UsableFlow> {
        if self.left == 0 {
            return None;
        }
        let mut record = [0; RECORD_BYTES];
        match self.input.read_exact(&mut record) {
            Ok(()) => {
                self.left -= 1;
                Some(decode(&record))
            }
            // The rest of this run is lost; `unread` counts it.
            Err(_) => None,
        }
    }

    fn unread(&self) -> u64 {
        self.left
    }
}

/// The next flow of one run, ordered for a min-heap by detection order, then by run.
struct Head {
    flow: UsableFlow,
    run: usize,
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: `BinaryHeap` pops its greatest element.
        (other.flow.detection_cmp(&self.flow)).then(other.run.cmp(&self.run))
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Head {}

fn encode(f: &UsableFlow) -> [u8; RECORD_BYTES] {
    let mut r = [0; RECORD_BYTES];
    let (orig, orig_v6) = address_bytes(f.orig_addr);
    let (resp, resp_v6) = address_bytes(f.resp_addr);
    let flags = [
        (f.has_ports, HAS_PORTS),
        (f.failed, FAILED),
        (f.completed, COMPLETED),
        (f.shows_outcome, SHOWS_OUTCOME),
        (orig_v6, ORIG_V6),
        (resp_v6, RESP_V6),
    ]
    .iter()
    .filter(|(set, _)| *set)
    .fold(0, |all, (_, bit)| all | bit);
    let fields: [&[u8]; 11] = [
        &f.ts_first.to_le_bytes(),
        &f.ts_last.to_le_bytes(),
        &f.first_packet.to_le_bytes(),
        &f.payload_bytes.to_le_bytes(),
        &f.record_index.to_le_bytes(),
        &f.orig_port.to_le_bytes(),
        &f.resp_port.to_le_bytes(),
        &[f.proto],
        &[flags],
        &orig,
        &resp,
    ];
    let mut at = 0;
    for field in fields {
        r[at..at + field.len()].copy_from_slice(field);
        at += field.len();
    }
    r
}

fn decode(r: &[u8; RECORD_BYTES]) -> UsableFlow {
    let mut at = 0;
    let mut take = |n: usize| {
        at += n;
        &r[at - n..at]
    };
    let mut bytes = |n| -> [u8; 8] {
        let mut b = [0; 8];
        b[..n].copy_from_slice(take(n));
        b
    };
    let ts_first = i64::from_le_bytes(bytes(8));
    let ts_last = i64::from_le_bytes(bytes(8));
    let first_packet = u64::from_le_bytes(bytes(8));
    let payload_bytes = u64::from_le_bytes(bytes(8));
    let record_index = u64::from_le_bytes(bytes(4)) as u32;
    let orig_port = u64::from_le_bytes(bytes(2)) as u16;
    let resp_port = u64::from_le_bytes(bytes(2)) as u16;
    let proto = take(1)[0];
    let flags = take(1)[0];
    let orig_addr = address(take(16), flags & ORIG_V6 != 0);
    let resp_addr = address(take(16), flags & RESP_V6 != 0);
    UsableFlow {
        ts_first,
        ts_last,
        first_packet,
        payload_bytes,
        record_index,
        orig_addr,
        resp_addr,
        orig_port,
        resp_port,
        proto,
        has_ports: flags & HAS_PORTS != 0,
        failed: flags & FAILED != 0,
        completed: flags & COMPLETED != 0,
        shows_outcome: flags & SHOWS_OUTCOME != 0,
    }
}

/// An address in 16 bytes (IPv4 in the first four), and whether it is IPv6.
fn address_bytes(a: IpAddr) -> ([u8; 16], bool) {
    match a {
        IpAddr::V4(v4) => {
            let mut b = [0; 16];
            b[..4].copy_from_slice(&v4.octets());
            (b, false)
        }
        IpAddr::V6(v6) => (v6.octets(), true),
    }
}

fn address(b: &[u8], v6: bool) -> IpAddr {
    let b: [u8; 16] = b.try_into().expect("16 bytes");
    if v6 {
        IpAddr::V6(Ipv6Addr::from(b))
    } else {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(ts: i64, first_packet: u64, orig: IpAddr) -> UsableFlow {
        UsableFlow {
            ts_first: ts,
            ts_last: ts.wrapping_add(7),
            first_packet,
            payload_bytes: first_packet.wrapping_mul(31),
            record_index: (first_packet % 5) as u32,
            orig_addr: orig,
            resp_addr: IpAddr::from([10, 0, 1, (first_packet % 250) as u8]),
            orig_port: 40_000,
            resp_port: 445,
            proto: 6,
            has_ports: first_packet % 2 == 0,
            failed: first_packet % 3 == 0,
            completed: first_packet % 3 == 1,
            shows_outcome: first_packet % 7 != 0,
        }
    }

    /// Every field, both address families and the extremes come back as written.
    #[test]
    fn records_read_back_as_written() {
        let v6: IpAddr = "2001:db8::1:2".parse().unwrap();
        let mut flows = vec![
            flow(i64::MIN, u64::MAX, v6),
            flow(i64::MAX, 0, IpAddr::from([255, 255, 255, 255])),
            flow(-5, 42, IpAddr::from([0, 0, 0, 0])),
        ];
        flows[1].resp_addr = "::ffff:10.0.0.1".parse().unwrap();
        flows[2].record_index = u32::MAX;
        (flows[2].orig_port, flows[2].resp_port, flows[2].proto) = (u16::MAX, 0, 255);
        for f in &flows {
            assert_eq!(&decode(&encode(f)), f);
        }
    }

    /// Batches cut from scrambled flows with repeated times and duplicates, each sorted
    /// and written, merged with a last sorted batch, handed over in batches of any size:
    /// the stream is the stable sort of all the flows in the order they came. One batch a
    /// flow makes 350 runs, merged 64 at a time as they are written.
    #[test]
    fn merged_runs_are_one_stable_sort() {
        let addr = |i: u64| IpAddr::from([10, 0, 0, (i % 3) as u8]);
        let mut flows: Vec<UsableFlow> = (0..300u64)
            .map(|i| flow((i * 7919 % 61) as i64, i * 104_729 % 97, addr(i)))
            .collect();
        // Flows equal to earlier ones on the whole order, told apart by a field outside it,
        // at the end and in the middle: ties keep the order they came in.
        let told_apart = |f: &UsableFlow, by| UsableFlow {
            payload_bytes: f.payload_bytes + by,
            ..f.clone()
        };
        let again: Vec<UsableFlow> = flows[..50].iter().map(|f| told_apart(f, 1)).collect();
        flows.extend(again);
        flows.insert(200, told_apart(&flows[10], 2));
        let mut want = flows.clone();
        want.sort_by(|a, b| a.detection_cmp(b));
        for (size, batch) in [(1, 1), (7, 3), (64, 1000), (350, 64)] {
            let batches: Vec<&[UsableFlow]> = flows.chunks(size).collect();
            let (last, written) = batches.split_last().unwrap();
            let mut runs = Runs::default();
            for b in written {
                runs.write(&sorted_refs(b)).unwrap();
            }
            assert!(runs.stack.len() < FAN_IN, "{} runs open", runs.stack.len());
            let mut got = Vec::new();
            let unread = runs.merge_with(&sorted_refs(last), batch, |b| {
                assert!(!b.is_empty() && b.len() <= batch);
                got.extend(b.iter().map(|&f| f.clone()));
            });
            assert_eq!(unread, 0);
            assert_eq!(
                got, want,
                "batches of {size}, handed over {batch} at a time"
            );
        }
    }

    /// A run whose file ends early (as a failed read would) gives what it holds and
    /// counts the rest.
    #[test]
    fn a_run_that_cannot_be_read_counts_what_it_lost() {
        let mut out = RunWriter::new().unwrap();
        for i in 0..4 {
            out.write(&flow(i, i as u64, addr4())).unwrap();
        }
        let mut run = out.finish().unwrap();
        run.flows += 3;
        let mut got = 0;
        let unread = merge(vec![run], &[], 10, |b| got += b.len());
        assert_eq!((got, unread), (4, 3));
    }

    fn addr4() -> IpAddr {
        IpAddr::from([192, 168, 0, 1])
    }

    fn sorted_refs(flows: &[UsableFlow]) -> Vec<&UsableFlow> {
        let mut refs: Vec<&UsableFlow> = flows.iter().collect();
        refs.sort_by(|a, b| a.detection_cmp(b));
        refs
    }
}
