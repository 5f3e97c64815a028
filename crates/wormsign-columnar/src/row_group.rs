//! The row group a [`ParquetSink`](crate::ParquetSink) is encoding: one lane per leaf
//! column, each a queue of that column's pieces of the batches written so far and the
//! column's encoder.
//!
//! Encoding one batch's columns in parallel and waiting for the slowest before starting
//! the next left a core idle behind every batch's longest column (at the end of input,
//! where every live flow is encoded at once, both cores were busy only 72 % of the
//! time). Lanes let each column run ahead on its own: a batch is queued on every lane
//! and a lane is drained by one thread at a time, so each column still encodes its
//! batches in order (the bytes do not depend on the threads), while other columns, and
//! the next batches, go on in parallel. The thread that writes, instead of waiting,
//! drains lanes nobody else is draining, so waiting never depends on a free rayon
//! worker (the sinks finish inside `rayon::join`, on the pool itself).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowColumnWriter, ArrowLeafColumn};
use parquet::errors::ParquetError;
use rayon::prelude::*;

/// Batches a row group may have queued on its lanes before [`RowGroup::push`] waits:
/// enough for the columns to run apart, few enough that queued batches (held as Arrow
/// arrays) stay a few MB.
const MAX_QUEUED_BATCHES: usize = 4;

/// The row group being encoded.
pub(crate) struct RowGroup {
    lanes: Vec<Arc<Lane>>,
    progress: Arc<Progress>,
    /// Rows pushed so far.
    pub(crate) rows: usize,
}

/// One leaf column: its queue and its encoder.
struct Lane {
    queue: Mutex<LaneQueue>,
    /// `None` once the row group is closed.
    writer: Mutex<Option<ArrowColumnWriter>>,
}

struct LaneQueue {
    leaves: VecDeque<ArrowLeafColumn>,
    /// A thread is draining this lane; nobody else may, so the column's batches stay in
    /// order.
    draining: bool,
}

/// Leaves queued or being encoded over all lanes, and the first encoding error.
#[derive(Default)]
struct Progress {
    state: Mutex<ProgressState>,
    changed: Condvar,
}

#[derive(Default)]
struct ProgressState {
    queued: usize,
    error: Option<ParquetError>,
}

/// The locks here guard plain data that no panic can leave half-updated (a panic in a
/// spawned rayon task aborts the process), so a poisoned lock is taken as it is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RowGroup {
    pub(crate) fn new(writers: Vec<ArrowColumnWriter>) -> RowGroup {
        let lanes = writers
            .into_iter()
            .map(|w| {
                Arc::new(Lane {
                    queue: Mutex::new(LaneQueue {
                        leaves: VecDeque::new(),
                        draining: false,
                    }),
                    writer: Mutex::new(Some(w)),
                })
            })
            .collect();
        RowGroup {
            lanes,
            progress: Arc::default(),
            rows: 0,
        }
    }

    /// Queues one batch of `rows` rows, given as its leaf columns in lane order, and
    /// waits (draining lanes itself) while more than [`MAX_QUEUED_BATCHES`] are queued.
    /// An error is the first one any lane met since the last call.
    pub(crate) fn push(
        &mut self,
        leaves: Vec<ArrowLeafColumn>,
        rows: usize,
    ) -> Result<(), ParquetError> {
        lock(&self.progress.state).queued += leaves.len();
        for (lane, leaf) in self.lanes.iter().zip(leaves) {
            let idle = {
                let mut queue = lock(&lane.queue);
                queue.leaves.push_back(leaf);
                !queue.draining
            };
            if idle {
                // May find the lane already drained by another thread: it then returns.
                let (lane, progress) = (lane.clone(), self.progress.clone());
                rayon::spawn(move || {
                    lane.drain(&progress);
                });
            }
        }
        self.rows += rows;
        self.settle(MAX_QUEUED_BATCHES * self.lanes.len())
    }

    /// Encoded bytes held by the column writers, once everything queued is encoded.
    pub(crate) fn estimated_bytes(&self) -> usize {
        // An error is kept for the next push or close to report.
        self.wait_until(0);
        self.lanes
            .iter()
            .filter_map(|lane| {
                lock(&lane.writer)
                    .as_ref()
                    .map(|w| w.get_estimated_total_bytes())
            })
            .sum()
    }

    /// Encodes what is queued, then closes every column (in parallel: closing compresses
    /// each column's last page) into chunks in lane order.
    pub(crate) fn close(self) -> Result<Vec<ArrowColumnChunk>, ParquetError> {
        self.settle(0)?;
        let writers: Vec<ArrowColumnWriter> = self
            .lanes
            .iter()
            .filter_map(|lane| lock(&lane.writer).take())
            .collect();
        writers
            .into_par_iter()
            .map(ArrowColumnWriter::close)
            .collect()
    }

    /// Waits until at most `limit` leaves are queued, and reports the first error.
    fn settle(&self, limit: usize) -> Result<(), ParquetError> {
        self.wait_until(limit);
        lock(&self.progress.state).error.take().map_or(Ok(()), Err)
    }

    /// Drains lanes that no other thread is draining, and sleeps only when every lane
    /// with queued leaves is being drained by a running thread (which wakes it).
    fn wait_until(&self, limit: usize) {
        loop {
            {
                let state = lock(&self.progress.state);
                if state.queued <= limit || state.error.is_some() {
                    return;
                }
            }
            let mut helped = false;
            for lane in &self.lanes {
                helped |= lane.drain(&self.progress);
            }
            if !helped {
                let state = lock(&self.progress.state);
                if state.queued > limit && state.error.is_none() {
                    drop(self.progress.changed.wait(state));
                }
            }
        }
    }
}

impl Lane {
    /// Encodes the lane's queued leaves in order unless another thread is already doing
    /// so; returns whether it encoded any.
    fn drain(&self, progress: &Progress) -> bool {
        {
            let mut queue = lock(&self.queue);
            if queue.draining || queue.leaves.is_empty() {
                return false;
            }
            queue.draining = true;
        }
        loop {
            let leaf = {
                let mut queue = lock(&self.queue);
                match queue.leaves.pop_front() {
                    Some(leaf) => leaf,
                    None => {
                        queue.draining = false;
                        return true;
                    }
                }
            };
            let result = match lock(&self.writer).as_mut() {
                Some(writer) => writer.write(&leaf),
                None => Ok(()),
            };
            let mut state = lock(&progress.state);
            state.queued -= 1;
            if let Err(e) = result {
                state.error.get_or_insert(e);
            }
            drop(state);
            progress.changed.notify_all();
        }
    }
}
