//! Data sets that came before their template: buffered (bounded in count, bytes and
//! age), decoded when the template arrives, counted when they never get one.

use crate::record::Ctx;
use crate::stream::StreamKey;
use crate::NetflowDecoder;

/// A data set waiting for its template.
pub(crate) struct Pending {
    pub(crate) key: StreamKey,
    pub(crate) template_id: u16,
    pub(crate) data: Vec<u8>,
    pub(crate) ctx: Ctx,
}

impl NetflowDecoder {
    pub(crate) fn buffer(&mut self, p: Pending) {
        if p.data.len() > self.config.max_pending_bytes || self.config.max_pending_sets == 0 {
            self.stats.data_sets_without_template += 1;
            return;
        }
        while self.pending.len() >= self.config.max_pending_sets
            || self.pending_bytes + p.data.len() > self.config.max_pending_bytes
        {
            match self.pending.pop_front() {
                Some(old) => {
                    self.pending_bytes -= old.data.len();
                    self.stats.data_sets_without_template += 1;
                }
                None => break,
            }
        }
        self.pending_bytes += p.data.len();
        self.pending.push_back(p);
    }

    pub(crate) fn expire_pending(&mut self, ts_ns: i64) {
        while let Some(front) = self.pending.front() {
            if ts_ns.saturating_sub(front.ctx.ts_ns) <= self.config.pending_timeout_ns {
                break;
            }
            self.pending_bytes -= front.data.len();
            self.pending.pop_front();
            self.stats.data_sets_without_template += 1;
        }
    }
}
