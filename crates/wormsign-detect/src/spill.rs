//! Sorted runs of usable flows kept in temporary files, so that the rules can read more
//! flows than `max_pending_flows` in one order while memory holds one batch of that
//! many (and, while merging, a 64 KiB buffer per file and at most 65 536 flows handed
//! over; up to [`CAPS_HELD_WITHOUT_FILES`] batches when no file can be written): an external
//! merge sort. Each run is written sorted; [`merge`] reads runs back
//! as one stream in detection order.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rayon::slice::ParallelSliceMut;

use crate::model::DetectStats;
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

/// Once no temporary file can be written, how many times the cap of flows are held in
/// memory before pushing fails: 1 048 576 at the default cap of 65 536. That was itself
/// the default cap before it came down, so a machine without a writable `TMPDIR` keeps
/// results exact up to there. The docs (README, schema, the setting's) say 16.
const CAPS_HELD_WITHOUT_FILES: usize = 16;

/// Runs merged into one at a time, and the most runs of one level held: files stay
/// open (they have no name) and each needs a buffer while merging, so a low cap over
/// many flows must not mean one open file per batch (the usual limit is 1 024).
const FAN_IN: usize = 64;

/// Usable flows waiting for the rules: up to a cap in memory, in the vectors they came
/// in (not gathered into one), and beyond it each full batch sorted into a temporary
/// file. When a file cannot be written, no file is tried again until they are drained,
/// and up to [`CAPS_HELD_WITHOUT_FILES`] times the cap are held in memory before pushing
/// fails. [`PendingFlows::drain`] hands them all over as one stream in
/// [`UsableFlow::detection_cmp`] order, ties in the order they came, so what the rules
/// see depends only on the set of flows. The detector keeps its flows in one; a pipeline
/// can gather flows in one before the rules can start, then drain it into
/// [`crate::Detector::push_in_order`].
pub struct PendingFlows {
    cap: usize,
    /// The flows in memory.
    chunks: Vec<Vec<UsableFlow>>,
    in_memory: usize,
    runs: Runs,
    /// Flows lost to files that failed to read back when they were rewritten, or when
    /// [`PendingFlows::drain_before`] read them.
    unread: u64,
    /// Flows [`PendingFlows::drain_before`] handed over from files.
    drained_from_files: u64,
    /// Why a batch's file could not be written, once one could not. While it is set no
    /// file is tried: `make_room` runs on every push once memory is full, and each
    /// would otherwise try, and fail, to make a file.
    write_error: Option<String>,
}

/// What [`PendingFlows::drain`] counted of the flows it handed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drained {
    /// Flows that were in files ([`DetectStats::flows_in_files`]).
    pub in_files: u64,
    /// Flows lost to files that failed to read back ([`DetectStats::flows_unread`]).
    pub unread: u64,
    /// Flows held in memory beyond the cap because no file could be written
    /// ([`DetectStats::flows_held_without_files`]).
    pub held: u64,
}

impl Drained {
    /// Adds what was counted to the detection's counters.
    pub fn count_in(self, stats: &mut DetectStats) {
        stats.flows_in_files += self.in_files;
        stats.flows_unread += self.unread;
        stats.flows_held_without_files += self.held;
    }
}

impl PendingFlows {
    /// Pending flows holding at most `cap` (at least one) in memory.
    pub fn new(cap: usize) -> Self {
        PendingFlows {
            cap: cap.max(1),
            chunks: Vec::new(),
            in_memory: 0,
            runs: Runs::default(),
            unread: 0,
            drained_from_files: 0,
            write_error: None,
        }
    }

    /// No pending flows, with the cap of `other`, writing to the same kind of files.
    pub(crate) fn like(other: &PendingFlows) -> Self {
        PendingFlows {
            runs: other.runs.emptied(),
            ..PendingFlows::new(other.cap)
        }
    }

    /// How many flows are pending, in memory and in files.
    #[cfg(test)]
    fn len(&self) -> u64 {
        self.flows_in_files() + self.in_memory as u64
    }

    /// How many pending flows are in files (as last written: a file that fails to read
    /// back loses some of them, which [`PendingFlows::drain`] counts).
    fn flows_in_files(&self) -> u64 {
        self.runs
            .stack
            .iter()
            .map(|(_, run)| run.flows - run.taken)
            .sum()
    }

    /// Whether some flows were written to files.
    fn in_files(&self) -> bool {
        !self.runs.is_empty()
    }

    /// Takes one flow; see [`PendingFlows::push_all`].
    pub fn push(&mut self, flow: UsableFlow) -> io::Result<()> {
        let written = self.make_room();
        match self.chunks.last_mut() {
            Some(last) => last.push(flow),
            None => self.chunks.push(vec![flow]),
        }
        self.in_memory += 1;
        written
    }

    /// Takes `flows`. A full batch is written to a file only when a flow comes beyond it
    /// (exactly `cap` flows write nothing), and batches end at the same flows as pushing
    /// them one by one would. If a file cannot be written, the flows stay in memory,
    /// beyond the cap; once [`CAPS_HELD_WITHOUT_FILES`] times the cap are, the flows after
    /// stay too and the error says so: the caller then drains them or lets them go.
    pub fn push_all(&mut self, mut flows: Vec<UsableFlow>) -> io::Result<()> {
        while !flows.is_empty() {
            if let Err(e) = self.make_room() {
                self.in_memory += flows.len();
                self.chunks.push(flows);
                return Err(e);
            }
            let rest = flows.split_off(flows.len().min(self.memory_limit() - self.in_memory));
            self.in_memory += flows.len();
            self.chunks.push(flows);
            flows = rest;
        }
        Ok(())
    }

    /// Whether taking `more` flows would write a batch to a file (or hold one without).
    pub fn is_full_for(&self, more: usize) -> bool {
        self.in_memory + more > self.memory_limit()
    }

    /// Takes `flows` into memory even beyond the cap, so that
    /// [`PendingFlows::drain_before`] sees them with the others; [`PendingFlows::settle`]
    /// then writes those beyond the cap to files.
    pub fn hold(&mut self, flows: Vec<UsableFlow>) {
        self.in_memory += flows.len();
        self.chunks.push(flows);
    }

    /// The flows in memory taken again as [`PendingFlows::push_all`] takes them, so that
    /// files hold the same batches as if they had come that way.
    pub fn settle(&mut self) -> io::Result<()> {
        if self.in_memory <= self.cap {
            return Ok(());
        }
        let mut held = Vec::with_capacity(self.in_memory);
        std::mem::take(&mut self.chunks)
            .into_iter()
            .for_each(|c| held.extend(c));
        self.in_memory = 0;
        self.push_all(held)
    }

    /// Hands `sink` the flows that start before `before`, in
    /// [`UsableFlow::detection_cmp`] order (in batches, as [`PendingFlows::drain`] does),
    /// when at least `least` (and one) may go; else nothing. The others stay: those in
    /// memory, and those in files, each run read from where this left it. The flows
    /// handed over then precede, in that order, every flow kept and every flow taken
    /// later that starts at `before` or after, as if all had been drained at once.
    /// Returns how many went.
    pub fn drain_before(
        &mut self,
        before: i64,
        least: usize,
        mut sink: impl FnMut(&[&UsableFlow]),
    ) -> usize {
        let chunks = std::mem::take(&mut self.chunks);
        let order = sorted(&chunks, self.in_memory);
        let below = order.partition_point(|f| f.ts_first < before);
        let may_go = below as u64 + self.runs.flows_before(before);
        if self.write_error.is_some() || may_go == 0 || may_go < least as u64 {
            drop(order);
            self.chunks = chunks;
            return 0;
        }
        let mut went = 0;
        let batch = MERGE_BATCH.min(self.cap);
        let (from_memory, lost) = self.runs.take_before(&order[..below], batch, before, |b| {
            went += b.len();
            sink(b);
        });
        // The flows of a run that failed to read back were in a file too.
        self.drained_from_files += (went - from_memory) as u64 + lost;
        self.unread += lost;
        // In order, so ties with later flows keep the order they came in.
        let kept: Vec<UsableFlow> = order[from_memory..].iter().map(|&f| f.clone()).collect();
        drop(order);
        self.in_memory = kept.len();
        self.chunks = vec![kept];
        went
    }

    /// Keeps only the flows `keep` accepts. Flows in files are read back and those kept
    /// written again, so that costs one pass over them, and for that while up to three
    /// times the cap in memory (the flows held, the merge's batch, the kept batch) and
    /// the files twice on disk. If a file cannot be written, the flows are held in memory
    /// as [`PendingFlows::push_all`] holds them; beyond that, the error says so and the
    /// flows not yet rewritten are dropped: the caller must then let all of them go.
    pub fn retain(&mut self, mut keep: impl FnMut(&UsableFlow) -> bool) -> io::Result<()> {
        if !self.in_files() {
            self.chunks.iter_mut().for_each(|c| c.retain(&mut keep));
            self.in_memory = self.chunks.iter().map(Vec::len).sum();
            return Ok(());
        }
        let mut kept = PendingFlows::like(self);
        let mut written = Ok(());
        let Drained { unread, .. } = self.drain(|flows| {
            if written.is_ok() {
                let flows = flows.iter().filter(|f| keep(f)).map(|&f| f.clone());
                written = kept.push_all(flows.collect());
            }
        });
        kept.unread += unread;
        *self = kept;
        written
    }

    /// Every pending flow, in files and in memory, handed to `sink` as one stream in
    /// detection order: all at once when none is in files, else in batches of at most
    /// 65 536 (the rules read them one by one; batches only spread the cost); none is
    /// pending after. Returns how many were in files, how many of those were lost to
    /// files that failed to read back, and how many were held in memory beyond the cap
    /// because no file could be written. Files are tried again after.
    pub fn drain(&mut self, mut sink: impl FnMut(&[&UsableFlow])) -> Drained {
        let in_files = self.flows_in_files() + std::mem::take(&mut self.drained_from_files);
        let held = match self.write_error.take() {
            Some(_) => self.in_memory.saturating_sub(self.cap) as u64,
            None => 0,
        };
        let chunks = std::mem::take(&mut self.chunks);
        let order = sorted(&chunks, std::mem::take(&mut self.in_memory));
        let unread = std::mem::take(&mut self.unread);
        let emptied = self.runs.emptied();
        let runs = std::mem::replace(&mut self.runs, emptied);
        let unread = unread
            + if runs.is_empty() {
                sink(&order);
                0
            } else {
                runs.merge_with(&order, MERGE_BATCH.min(self.cap), sink)
            };
        drop(order);
        // Freed on rayon's pool: glibc hands the pages back to the kernel as it frees
        // them (madvise, munmap), which the caller need not wait for (the scan
        // benchmark's 425 k usable flows take 34 MB).
        if !chunks.is_empty() {
            rayon::spawn(move || drop(chunks));
        }
        Drained {
            in_files,
            unread,
            held,
        }
    }

    /// How many flows memory holds before a batch must go to a file, or once no file can
    /// be written, before pushing fails.
    fn memory_limit(&self) -> usize {
        match self.write_error {
            Some(_) => self.cap.saturating_mul(CAPS_HELD_WITHOUT_FILES),
            None => self.cap,
        }
    }

    /// When the flows in memory fill a batch, sorts them and writes them to a file; when
    /// that fails, holds them (and fails only at the held limit).
    fn make_room(&mut self) -> io::Result<()> {
        if self.in_memory < self.memory_limit() {
            return Ok(());
        }
        if let Some(why) = &self.write_error {
            let limit = self.memory_limit();
            return Err(io::Error::other(format!(
                "{why}; at most {limit} usable flows are held in memory without files"
            )));
        }
        let order = sorted(&self.chunks, self.in_memory);
        let written = self.runs.write(&order);
        drop(order);
        match written {
            Ok(()) => {
                self.chunks.clear();
                self.in_memory = 0;
            }
            Err(e) => self.write_error = Some(e.to_string()),
        }
        Ok(())
    }

    /// Writes batches to files from `new_file`, so that tests can make writes fail.
    #[cfg(test)]
    pub(crate) fn set_files(&mut self, new_file: fn() -> io::Result<File>) {
        self.runs.set_files(new_file);
    }
}

/// References to `n` gathered flows, sorted by [`UsableFlow::detection_cmp`].
fn sorted(chunks: &[Vec<UsableFlow>], n: usize) -> Vec<&UsableFlow> {
    // Sort references to the flows, not the 80-byte flows themselves, with a stable
    // merge sort: the flows arrive as runs already in order (a shard's end-of-input
    // flush, the row groups of a stored table), which it finds and merges, reading
    // each run front to back. Ties keep the order the flows came in. On the scan
    // benchmark's 425 k usable flows this takes 6-8 ms, where sorting 32-byte
    // (key, chunk, position) entries (13.6 MB) took 20-25 ms, half of it building
    // them.
    // Allocated once: collecting a flattening iterator grew the vector by doubling.
    let mut order: Vec<&UsableFlow> = Vec::with_capacity(n);
    order.extend(chunks.iter().flatten());
    order.par_sort_by(|a, b| a.detection_cmp(b));
    order
}

/// The sorted runs written so far, in the order their batches came. Whenever the last
/// [`FAN_IN`] runs are of one level (level 0: one batch), they are merged into one run
/// of the next level, so at most `FAN_IN - 1` runs of each level are open (more only
/// while no file can be had for the merge), and each flow is rewritten once per level
/// (`log64` of the number of batches).
struct Runs {
    stack: Vec<(u32, SpilledRun)>,
    /// Flows lost when a file failed to read back.
    unread: u64,
    /// Where runs are written: anonymous temporary files (tests make some fail).
    new_file: fn() -> io::Result<File>,
}

impl Default for Runs {
    fn default() -> Self {
        Runs {
            stack: Vec::new(),
            unread: 0,
            new_file: tempfile::tempfile,
        }
    }
}

impl Runs {
    fn is_empty(&self) -> bool {
        self.stack.is_empty()
    }

    /// No runs, writing to the same kind of files.
    fn emptied(&self) -> Runs {
        Runs {
            new_file: self.new_file,
            ..Runs::default()
        }
    }

    /// Writes `sorted` (in detection order) as the next run. On an error nothing is
    /// kept of it.
    fn write(&mut self, sorted: &[&UsableFlow]) -> io::Result<()> {
        let mut out = RunWriter::new((self.new_file)()?);
        sorted.iter().try_for_each(|f| out.write(f))?;
        self.stack.push((0, out.finish()?));
        while let Some(level) = self.full_level() {
            let at = self.stack.len() - FAN_IN;
            let runs = self.stack[at..].iter().map(|(_, run)| run);
            match merged((self.new_file)(), runs) {
                Ok((run, unread)) => {
                    self.stack.truncate(at);
                    self.stack.push((level + 1, run));
                    self.unread += unread;
                }
                // The runs stay as they are (a merge reads them from the start); the next
                // batch tries again.
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Writes runs to files from `new_file`, so that tests can make writes fail.
    #[cfg(test)]
    pub(crate) fn set_files(&mut self, new_file: fn() -> io::Result<File>) {
        self.new_file = new_file;
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

    /// Flows in runs that start before `before`, at most (of the runs that hold some).
    fn flows_before(&self, before: i64) -> u64 {
        let holding = self.stack.iter().filter(|(_, r)| r.first_start < before);
        holding.map(|(_, r)| r.flows - r.taken).sum()
    }

    /// The flows of the runs and of `last` (in detection order) that start before
    /// `before`, as one stream in that order, handed to `sink` in batches of at most
    /// `batch`; each run keeps the rest, to be read from there, and one that failed to read
    /// back is dropped. Returns how many of `last` went, and how many flows were lost to
    /// runs that failed.
    fn take_before(
        &mut self,
        last: &[&UsableFlow],
        batch: usize,
        before: i64,
        mut sink: impl FnMut(&[&UsableFlow]),
    ) -> (usize, u64) {
        let runs = self.stack.iter().map(|(_, run)| run);
        let Ok(sources) = merge_before(runs, last, batch, Some(before), |b| {
            sink(b);
            Ok::<_, std::convert::Infallible>(())
        });
        let mut each = sources.iter();
        self.stack.retain_mut(|(_, run)| {
            let &(taken, lost) = each.next().expect("one source per run");
            run.taken += taken;
            // The merge stopped at the first flow at `before` or after, over all runs.
            run.first_start = run.first_start.max(before);
            lost == 0 && run.taken < run.flows
        });
        let lost = sources.iter().map(|&(_, lost)| lost).sum();
        let from_last = each.next().map_or(0, |&(taken, _)| taken as usize);
        (from_last, lost)
    }

    /// Every run and `last` (in detection order) as one stream in that order, handed to
    /// `sink` in batches of at most `batch`, as [`merge`] does. Returns how many flows
    /// were lost to files that failed to read back.
    fn merge_with(
        self,
        last: &[&UsableFlow],
        batch: usize,
        mut sink: impl FnMut(&[&UsableFlow]),
    ) -> u64 {
        let runs = self.stack.iter().map(|(_, run)| run);
        let handed = merge(runs, last, batch, |b| {
            sink(b);
            Ok::<_, std::convert::Infallible>(())
        });
        let Ok(unread) = handed;
        self.unread + unread
    }
}

/// `runs` merged into one run written to `file`, and how many of their flows could not
/// be read.
fn merged<'r>(
    file: io::Result<File>,
    runs: impl Iterator<Item = &'r SpilledRun>,
) -> io::Result<(SpilledRun, u64)> {
    let mut out = RunWriter::new(file?);
    let unread = merge(runs, &[], MERGE_BATCH, |b| {
        b.iter().try_for_each(|f| out.write(f))
    })?;
    Ok((out.finish()?, unread))
}

/// Flows handed over at a time while merging.
const MERGE_BATCH: usize = 64 * 1024;

/// One sorted run in an anonymous temporary file (gone when dropped, or if the process
/// dies), and how many flows it holds.
struct SpilledRun {
    file: File,
    flows: u64,
    /// The earliest start among the flows not yet taken, or a bound below it.
    first_start: i64,
    /// Flows handed over from its front already ([`PendingFlows::drain_before`]).
    taken: u64,
}

/// A run being written.
struct RunWriter {
    out: BufWriter<File>,
    flows: u64,
    first_start: i64,
}

impl RunWriter {
    fn new(file: File) -> RunWriter {
        RunWriter {
            out: BufWriter::with_capacity(BUFFER_BYTES, file),
            flows: 0,
            first_start: i64::MAX,
        }
    }

    fn write(&mut self, f: &UsableFlow) -> io::Result<()> {
        self.out.write_all(&encode(f))?;
        self.flows += 1;
        self.first_start = self.first_start.min(f.ts_first);
        Ok(())
    }

    fn finish(self) -> io::Result<SpilledRun> {
        let file = self
            .out
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        Ok(SpilledRun {
            file,
            flows: self.flows,
            first_start: self.first_start,
            taken: 0,
        })
    }
}

/// The flows of `runs` and of `last` (each in detection order) as one stream in that
/// order, handed to `sink` in batches of at most `batch`. Ties keep the order of their
/// runs, `last` after every file, so the stream is what one stable sort of all the
/// flows, in the order they came, gives. Each run is read from where it was left (see
/// [`SpilledRun::taken`]), so a merge that stops leaves the runs as they were. Returns
/// how many flows could not be read back (a run's file failing to read ends that run),
/// or the sink's first error.
fn merge<'r, E>(
    runs: impl Iterator<Item = &'r SpilledRun>,
    last: &[&UsableFlow],
    batch: usize,
    sink: impl FnMut(&[&UsableFlow]) -> Result<(), E>,
) -> Result<u64, E> {
    let sources = merge_before(runs, last, batch, None, sink)?;
    Ok(sources.iter().map(|&(_, lost)| lost).sum())
}

/// [`merge`], up to the first flow that starts at `before` or after (with `None`, all).
/// Returns, for each source (the runs in order, then `last`), how many flows it handed
/// over and how many it lost to a file that failed to read back.
fn merge_before<'r, E>(
    runs: impl Iterator<Item = &'r SpilledRun>,
    last: &[&UsableFlow],
    batch: usize,
    before: Option<i64>,
    mut sink: impl FnMut(&[&UsableFlow]) -> Result<(), E>,
) -> Result<Vec<(u64, u64)>, E> {
    let mut readers: Vec<RunReader> = runs.map(RunReader::new).collect();
    let mut last = last.iter();
    // Sources are the runs in order, then `last`: ties go to the lower source.
    let firsts = (0..=readers.len()).map(|s| next_of(&mut readers, &mut last, s));
    let mut heads = Heads::new(firsts.collect());
    let batch = batch.max(1);
    let mut taken = vec![0; readers.len() + 1];
    let mut out: Vec<UsableFlow> = Vec::with_capacity(batch);
    while let Some(source) = heads.first(|f| before.is_none_or(|b| f.ts_first < b)) {
        let flow = heads.take_first(|s| next_of(&mut readers, &mut last, s));
        out.extend(flow);
        taken[source] += 1;
        if out.len() == batch {
            sink(&out.iter().collect::<Vec<_>>())?;
            out.clear();
        }
    }
    if !out.is_empty() {
        sink(&out.iter().collect::<Vec<_>>())?;
    }
    let lost = readers.iter().map(RunReader::lost).chain([0]);
    Ok(taken.into_iter().zip(lost).collect())
}

/// The next flow of a merge's source `source`: a run's, or past the runs, `last`'s.
fn next_of(
    readers: &mut [RunReader<'_>],
    last: &mut std::slice::Iter<'_, &UsableFlow>,
    source: usize,
) -> Option<UsableFlow> {
    match readers.get_mut(source) {
        Some(reader) => reader.next(),
        None => last.next().map(|&f| f.clone()),
    }
}

/// A run read back from the first flow not yet taken.
struct RunReader<'r> {
    input: BufReader<&'r File>,
    /// Flows not yet read.
    left: u64,
    /// Whether the file could be read (if not, all of it is lost).
    readable: bool,
}

impl<'r> RunReader<'r> {
    fn new(run: &'r SpilledRun) -> RunReader<'r> {
        let mut file = &run.file;
        let from = run.taken * RECORD_BYTES as u64;
        RunReader {
            readable: file.seek(SeekFrom::Start(from)).is_ok(),
            input: BufReader::with_capacity(BUFFER_BYTES, file),
            left: run.flows - run.taken,
        }
    }

    fn next(&mut self) -> Option<UsableFlow> {
        if self.left == 0 || !self.readable {
            return None;
        }
        let mut record = [0; RECORD_BYTES];
        match self.input.read_exact(&mut record) {
            Ok(()) => {
                self.left -= 1;
                Some(decode(&record))
            }
            // The rest of this run is lost; `lost` counts it.
            Err(_) => {
                self.readable = false;
                None
            }
        }
    }

    /// Flows lost to the file failing to read back: all it had left then.
    fn lost(&self) -> u64 {
        if self.readable {
            0
        } else {
            self.left
        }
    }
}

/// The next flow of each source of a merge, and the sources that have one in a binary
/// min-heap of their indices, by detection order, then by source. Taking a flow sifts
/// the heap once and moves 8-byte indices; a `BinaryHeap` of the flows themselves
/// (with their source) popped each, moving 88-byte entries, then pushed the source's
/// next: on the scan benchmark shape with a cap of 65 536 (425 k usable flows, six
/// runs and the last batch), the merge took 28 ms of CPU, two fifths of it in
/// `BinaryHeap::pop`, and takes 18 ms this way (perf, 3 runs each).
struct Heads {
    flows: Vec<Option<UsableFlow>>,
    heap: Vec<usize>,
}

impl Heads {
    fn new(flows: Vec<Option<UsableFlow>>) -> Heads {
        let mut heads = Heads {
            heap: (0..flows.len()).filter(|&s| flows[s].is_some()).collect(),
            flows,
        };
        for at in (0..heads.heap.len() / 2).rev() {
            heads.sift_down(at);
        }
        heads
    }

    /// The source whose flow comes first, if that flow is one `wanted` accepts.
    fn first(&self, wanted: impl FnOnce(&UsableFlow) -> bool) -> Option<usize> {
        let &source = self.heap.first()?;
        self.flows[source].as_ref().filter(|f| wanted(f))?;
        Some(source)
    }

    /// Takes the flow that comes first, putting in its place the next flow of its
    /// source, from `next_of` (a source's flows come in detection order).
    fn take_first(
        &mut self,
        next_of: impl FnOnce(usize) -> Option<UsableFlow>,
    ) -> Option<UsableFlow> {
        let &source = self.heap.first()?;
        let flow = std::mem::replace(&mut self.flows[source], next_of(source));
        if self.flows[source].is_none() {
            self.heap.swap_remove(0);
        }
        self.sift_down(0);
        flow
    }

    /// Whether source `a`'s flow comes before source `b`'s (both in the heap).
    fn before(&self, a: usize, b: usize) -> bool {
        match (&self.flows[a], &self.flows[b]) {
            (Some(fa), Some(fb)) => fa.detection_cmp(fb).then(a.cmp(&b)).is_lt(),
            // Not reached: the heap holds only sources with a flow.
            _ => a < b,
        }
    }

    fn sift_down(&mut self, mut at: usize) {
        loop {
            let (left, right) = (2 * at + 1, 2 * at + 2);
            let mut first = at;
            for child in [left, right] {
                if child < self.heap.len() && self.before(self.heap[child], self.heap[first]) {
                    first = child;
                }
            }
            if first == at {
                return;
            }
            self.heap.swap(at, first);
            at = first;
        }
    }
}

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
    let ts_first = i64::from_le_bytes(exactly(take(8)));
    let ts_last = i64::from_le_bytes(exactly(take(8)));
    let first_packet = u64::from_le_bytes(exactly(take(8)));
    let payload_bytes = u64::from_le_bytes(exactly(take(8)));
    let record_index = u32::from_le_bytes(exactly(take(4)));
    let orig_port = u16::from_le_bytes(exactly(take(2)));
    let resp_port = u16::from_le_bytes(exactly(take(2)));
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

/// A field of a record as an array: `take` cut it to that length.
fn exactly<const N: usize>(field: &[u8]) -> [u8; N] {
    field.try_into().expect("a field taken at its own length")
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
    let b: [u8; 16] = exactly(b);
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
        let flows = scrambled_with_ties();
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
        let run = short_run((0..4).map(|i| flow(i, i as u64, addr4())), 3);
        let mut got = 0;
        let unread = merge(std::iter::once(&run), &[], 10, |b| {
            got += b.len();
            Ok::<_, std::convert::Infallible>(())
        });
        assert_eq!((got, unread), (4, Ok(3)));
    }

    /// A run that ends early between two healthy runs and before the last batch: the
    /// merge still hands over every flow it can read, in one order (a full tie between
    /// two runs in the order of the runs), and counts only the short run's rest.
    #[test]
    fn a_short_run_beside_others_loses_only_its_rest() {
        // Flows at `times`, each marked with its run in `ts_last`.
        let run_of = |times: &[i64], marker: i64, missing: u64| {
            let marked = times.iter().map(|&t| UsableFlow {
                ts_last: marker,
                ..flow(t, t as u64, addr4())
            });
            short_run(marked, missing)
        };
        let runs = [
            run_of(&[1, 4, 6, 10], 100, 0),
            run_of(&[2, 5], 200, 3),
            run_of(&[3, 6, 9], 300, 0),
        ];
        let last: Vec<UsableFlow> = [0, 8, 11].map(|t| flow(t, t as u64, addr4())).into();
        let mut got = Vec::new();
        let unread = merge(runs.iter(), &sorted_refs(&last), 2, |b| {
            got.extend(b.iter().map(|f| (f.ts_first, f.ts_last)));
            Ok::<_, std::convert::Infallible>(())
        });
        assert_eq!(unread, Ok(3));
        let times: Vec<i64> = got.iter().map(|&(t, _)| t).collect();
        assert_eq!(times, [0, 1, 2, 3, 4, 5, 6, 6, 8, 9, 10, 11]);
        let tie: Vec<i64> = got
            .iter()
            .filter(|&&(t, _)| t == 6)
            .map(|&(_, m)| m)
            .collect();
        assert_eq!(tie, [100, 300], "the tie keeps the order of the runs");
    }

    /// When the file for merging 64 runs cannot be written, the runs stay (and the next
    /// batch's merge takes the newest 64); a batch whose own file fails is not kept; the
    /// end merges every flow kept, in order, none lost.
    #[test]
    fn runs_stay_when_their_merge_cannot_be_written() {
        let flows: Vec<UsableFlow> = (0..70).map(|i| flow(i, i as u64, addr4())).collect();
        let mut runs = Runs::default();
        runs.set_files(test_files::limited);
        test_files::allow(FAN_IN);
        for f in &flows[..FAN_IN] {
            runs.write(&[f]).unwrap();
        }
        assert_eq!(runs.stack.len(), FAN_IN, "the merge had no file");
        assert!(runs.write(&[&flows[FAN_IN]]).is_err(), "nor the next batch");
        assert_eq!(runs.stack.len(), FAN_IN);
        test_files::allow(usize::MAX);
        for f in &flows[FAN_IN + 1..69] {
            runs.write(&[f]).unwrap();
        }
        let levels: Vec<u32> = runs.stack.iter().map(|(level, _)| *level).collect();
        assert_eq!(levels, [0, 1, 0, 0, 0]);
        let mut got = Vec::new();
        let unread = runs.merge_with(&[&flows[69]], 8, |b| {
            got.extend(b.iter().map(|&f| f.clone()));
        });
        let mut want = flows.clone();
        want.remove(FAN_IN);
        assert_eq!((unread, got), (0, want));
    }

    /// 351 flows in a scrambled order with repeated times. 51 of them equal earlier ones
    /// on the whole order, told apart by a field outside it, at the end and in the
    /// middle: ties must keep the order they came in.
    fn scrambled_with_ties() -> Vec<UsableFlow> {
        let addr = |i: u64| IpAddr::from([10, 0, 0, (i % 3) as u8]);
        let mut flows: Vec<UsableFlow> = (0..300u64)
            .map(|i| flow((i * 7919 % 61) as i64, i * 104_729 % 97, addr(i)))
            .collect();
        let told_apart = |f: &UsableFlow, by| UsableFlow {
            payload_bytes: f.payload_bytes + by,
            ..f.clone()
        };
        let again: Vec<UsableFlow> = flows[..50].iter().map(|f| told_apart(f, 1)).collect();
        flows.extend(again);
        flows.insert(200, told_apart(&flows[10], 2));
        flows
    }

    /// [`scrambled_with_ties`] as vectors of 1 to 12 flows.
    fn scrambled() -> Vec<Vec<UsableFlow>> {
        let flows = scrambled_with_ties();
        let mut left = &flows[..];
        let mut vectors = Vec::new();
        for size in (1..=12).cycle() {
            if left.is_empty() {
                break;
            }
            let (v, rest) = left.split_at(size.min(left.len()));
            vectors.push(v.to_vec());
            left = rest;
        }
        vectors
    }

    fn drained(pending: &mut PendingFlows) -> (Drained, Vec<UsableFlow>) {
        let mut got = Vec::new();
        let drained = pending.drain(|b| got.extend(b.iter().map(|&f| f.clone())));
        (drained, got)
    }

    /// `in_files` flows were in files and none was lost.
    fn read_back(in_files: u64) -> Drained {
        Drained {
            in_files,
            unread: 0,
            held: 0,
        }
    }

    /// Flows drained before a bound as they come (each bound below every flow pushed
    /// after it, with flows at and after it pending too), then the rest, make one stable
    /// sort of all of them in the order they came, whatever the cap (the flows in files
    /// merged in, those kept written again); a drain that would hand over fewer than it
    /// must hands over nothing.
    #[test]
    fn draining_before_bounds_then_the_rest_is_one_stable_sort() {
        let flows = scrambled_with_ties();
        for cap in [7, 40, 1000] {
            let mut pending = PendingFlows::new(cap);
            let (mut pushed, mut got) = (Vec::new(), Vec::new());
            let mut taken = vec![false; flows.len()];
            for before in [10, 25, 26, 45, i64::MAX] {
                // Every flow before the bound, and some beyond it, not taken yet.
                let now: Vec<UsableFlow> = (flows.iter().zip(&mut taken))
                    .filter(|(f, taken)| !**taken && f.ts_first < before.saturating_add(6))
                    .map(|(f, taken)| {
                        *taken = true;
                        f.clone()
                    })
                    .collect();
                for chunk in now.chunks(9) {
                    pending.push_all(chunk.to_vec()).unwrap();
                }
                pushed.extend(now);
                let sink = |b: &[&UsableFlow]| got.extend(b.iter().map(|&f| f.clone()));
                assert_eq!(pending.drain_before(before, usize::MAX, sink), 0);
                let went = got.len();
                let sink = |b: &[&UsableFlow]| got.extend(b.iter().map(|&f| f.clone()));
                let n = pending.drain_before(before, 1, sink);
                assert_eq!(n, got.len() - went, "cap {cap}, before {before}");
                assert!(n > 0 && got[went..].iter().all(|f| f.ts_first < before));
            }
            let (drained, tail) = drained(&mut pending);
            assert_eq!((drained.unread, tail.len()), (0, 0), "cap {cap}");
            let mut want = pushed;
            want.sort_by(|a, b| a.detection_cmp(b));
            assert_eq!(got, want, "cap {cap}");
        }
    }

    /// Pending flows come out as one stable sort of everything pushed, whatever the cap:
    /// in memory, in files, or both. Every full batch but the last was in files, however
    /// the flows came (one by one or in vectors of any length).
    #[test]
    fn pending_flows_drain_as_one_stable_sort() {
        let vectors = scrambled();
        let mut want: Vec<UsableFlow> = vectors.iter().flatten().cloned().collect();
        want.sort_by(|a, b| a.detection_cmp(b));
        for cap in [1, 7, 64, 351, 1000] {
            let mut pending = PendingFlows::new(cap);
            for (i, v) in vectors.iter().enumerate() {
                if i % 5 == 0 {
                    v.iter().try_for_each(|f| pending.push(f.clone())).unwrap();
                } else {
                    pending.push_all(v.clone()).unwrap();
                }
                assert!(pending.in_memory <= cap, "cap {cap}");
            }
            assert_eq!(pending.len(), 351);
            assert_eq!(pending.in_files(), cap < 351, "cap {cap}");
            let in_files = wormsign_testutil::held_in_files(351, cap as u64);
            let want = (read_back(in_files), want.clone());
            assert_eq!(drained(&mut pending), want, "cap {cap}");
            assert!(pending.len() == 0 && !pending.in_files());
        }
    }

    /// Retaining drops the flows refused, in memory and in files, and keeps the order.
    #[test]
    fn retained_flows_keep_their_order() {
        let vectors = scrambled();
        let keep = |f: &UsableFlow| f.first_packet % 3 != 0;
        let mut want: Vec<UsableFlow> = vectors
            .iter()
            .flatten()
            .filter(|f| keep(f))
            .cloned()
            .collect();
        want.sort_by(|a, b| a.detection_cmp(b));
        for cap in [7, 1000] {
            let mut pending = PendingFlows::new(cap);
            vectors
                .iter()
                .try_for_each(|v| pending.push_all(v.clone()))
                .unwrap();
            pending.retain(keep).unwrap();
            assert_eq!(pending.len(), want.len() as u64, "cap {cap}");
            let in_files = wormsign_testutil::held_in_files(want.len() as u64, cap as u64);
            let want = (read_back(in_files), want.clone());
            assert_eq!(drained(&mut pending), want, "cap {cap}");
        }
    }

    /// A full batch whose file cannot be written stays in memory with the flows after it,
    /// up to [`CAPS_HELD_WITHOUT_FILES`] times the cap, no file tried again, and draining
    /// gives every flow in order and counts those held beyond the cap. Beyond that
    /// limit the error says so, and every flow still stays. A retain whose third file
    /// fails holds the rest the same way; one beyond the limit says so (and drops what
    /// it had not rewritten).
    #[test]
    fn a_batch_without_a_file_stays_in_memory() {
        const CAP: usize = 10;
        const HELD: usize = CAP * CAPS_HELD_WITHOUT_FILES;
        let flows: Vec<UsableFlow> = (0..HELD as i64 + 20)
            .rev()
            .map(|i| flow(i, i as u64, addr4()))
            .collect();
        let mut want = flows.clone();
        want.reverse();
        let mut pending = PendingFlows::new(CAP);
        pending.set_files(test_files::limited);
        test_files::allow(1);
        pending.push_all(flows[..30].to_vec()).unwrap();
        assert!(
            pending.write_error.is_some(),
            "the second batch's file failed"
        );
        test_files::allow(usize::MAX);
        pending.push_all(flows[30..HELD].to_vec()).unwrap();
        assert_eq!(
            (pending.len(), pending.in_memory),
            (HELD as u64, HELD - CAP)
        );
        assert_eq!(test_files::left(), usize::MAX, "no file tried again");
        let mut sorted_head = flows[..HELD].to_vec();
        sorted_head.reverse();
        let held = Drained {
            held: (HELD - 2 * CAP) as u64,
            ..read_back(CAP as u64)
        };
        assert_eq!(drained(&mut pending), (held, sorted_head));

        test_files::allow(0);
        let err = pending.push_all(flows.clone()).unwrap_err();
        assert!(
            err.to_string().ends_with(&format!(
                "; at most {HELD} usable flows are held in memory without files"
            )),
            "{err}"
        );
        assert_eq!(pending.in_memory, flows.len(), "every flow stays");
        let held = Drained {
            held: (flows.len() - CAP) as u64,
            ..read_back(0)
        };
        assert_eq!(drained(&mut pending), (held, want.clone()));

        test_files::allow(2);
        pending.push_all(flows[..25].to_vec()).unwrap();
        pending.retain(|_| true).unwrap();
        test_files::allow(usize::MAX);
        // Rewritten 10 at a time: the first 10 fill memory, the next 15 are held.
        let held = Drained {
            held: 15,
            ..read_back(0)
        };
        assert_eq!(drained(&mut pending), (held, want[HELD - 5..].to_vec()));

        test_files::allow(2);
        pending.push_all(flows.clone()).unwrap();
        assert_eq!(pending.flows_in_files(), 2 * CAP as u64);
        test_files::allow(0);
        assert!(pending.retain(|_| true).is_err(), "beyond the held limit");
        test_files::allow(usize::MAX);
        // Rewritten 10 at a time: the 17th batch fails and stays, the 18th is dropped.
        assert_eq!(pending.len(), (HELD + CAP) as u64);
    }

    /// Flows pushed one by one without files, drained whenever a push fails (as the
    /// detector does), are held as `wormsign_testutil::held_without_files` says, which
    /// other crates' tests use.
    #[test]
    fn the_test_helper_knows_what_is_held_without_files() {
        for (cap, n) in [(3, 200), (10, 10), (10, 161), (10, 162), (1, 40)] {
            let mut pending = PendingFlows::new(cap);
            pending.set_files(test_files::limited);
            test_files::allow(0);
            let mut held = 0;
            for i in 0..n {
                if pending.push(flow(i, i as u64, addr4())).is_err() {
                    held += drained(&mut pending).0.held;
                }
            }
            held += drained(&mut pending).0.held;
            test_files::allow(usize::MAX);
            let want = wormsign_testutil::held_without_files(n as u64, cap as u64);
            assert_eq!(held, want, "{n} flows, cap {cap}");
        }
    }

    /// A run of `flows` whose file ends `missing` flows before its count says, as a
    /// failed read would.
    fn short_run(flows: impl IntoIterator<Item = UsableFlow>, missing: u64) -> SpilledRun {
        let mut out = RunWriter::new(tempfile::tempfile().unwrap());
        for f in flows {
            out.write(&f).unwrap();
        }
        let mut run = out.finish().unwrap();
        run.flows += missing;
        run
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

/// Files that can be made to fail, for tests of what a full disk does.
#[cfg(test)]
pub(crate) mod test_files {
    use std::cell::Cell;
    use std::fs::File;
    use std::io;

    thread_local! {
        static LEFT: Cell<usize> = const { Cell::new(usize::MAX) };
    }

    /// The next `n` files of this thread can be written; later ones cannot (`usize::MAX`:
    /// as good as all).
    pub(crate) fn allow(n: usize) {
        LEFT.with(|left| left.set(n));
    }

    /// How many more files this thread may write.
    pub(crate) fn left() -> usize {
        LEFT.with(Cell::get)
    }

    /// A temporary file while any are allowed, else one opened read-only, so that
    /// writing to it fails.
    pub(crate) fn limited() -> io::Result<File> {
        LEFT.with(|left| match left.get() {
            0 => File::open("/dev/null"),
            n => {
                left.set(n - 1);
                tempfile::tempfile()
            }
        })
    }
}
