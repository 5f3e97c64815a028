//! Windows of usable flows in detection order, for flows that can be read more than once
//! (stored tables): each pass over all of them keeps the first `cap` after the previous
//! window's last, so the rules read every flow in [`UsableFlow::detection_cmp`] order
//! while at most `cap` are held, however many there are and whatever order a pass reads
//! them in.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::usable::UsableFlow;

/// One pass's window: the first flows in detection order after `after` (all of them up
/// to `cap`; beyond it, those that sort before every flow left out).
pub(crate) struct Window {
    cap: usize,
    /// The previous window's last flow: this one keeps only flows after it.
    after: Option<UsableFlow>,
    /// More than `cap` flows tie with this one on the whole order: this window keeps
    /// exactly them, however many (no bound can split a tie).
    ties_of: Option<UsableFlow>,
    /// The flows kept, as they came, while they fit in `cap`.
    gathered: Vec<InOrder>,
    /// The flows kept once `cap` was reached: a max-heap, so the last of them is the
    /// one a flow sorting earlier replaces.
    full: Option<BinaryHeap<InOrder>>,
    /// The first flow in detection order this window left out.
    first_left_out: Option<UsableFlow>,
}

impl Window {
    /// The first window of a run of passes.
    pub(crate) fn first(cap: usize) -> Window {
        Window::after(cap, None, None)
    }

    fn after(cap: usize, after: Option<UsableFlow>, ties_of: Option<UsableFlow>) -> Window {
        Window {
            cap: cap.max(1),
            after,
            ties_of,
            gathered: Vec::new(),
            full: None,
            first_left_out: None,
        }
    }

    /// Offers one flow of the pass.
    pub(crate) fn offer(&mut self, f: UsableFlow) {
        let beyond_ties = |t: &UsableFlow| f.detection_cmp(t).is_gt();
        let before_window = |a: &UsableFlow| f.detection_cmp(a).is_le();
        if self.after.as_ref().is_some_and(before_window)
            || self.ties_of.as_ref().is_some_and(beyond_ties)
        {
            return;
        }
        if self.full.is_none() && (self.gathered.len() < self.cap || self.ties_of.is_some()) {
            self.gathered.push(InOrder(f));
            return;
        }
        let full = self
            .full
            .get_or_insert_with(|| BinaryHeap::from(std::mem::take(&mut self.gathered)));
        let mut last = full.peek_mut().expect("a full window holds cap >= 1 flows");
        let left_out = if f.detection_cmp(&last.0).is_lt() {
            std::mem::replace(&mut last.0, f)
        } else {
            f
        };
        drop(last);
        if self
            .first_left_out
            .as_ref()
            .is_none_or(|first| left_out.detection_cmp(first).is_lt())
        {
            self.first_left_out = Some(left_out);
        }
    }

    /// The flows this window keeps (in no particular order), and the window of the next
    /// pass when some flows are still to come.
    pub(crate) fn finish(self) -> (Vec<UsableFlow>, Option<Window>) {
        let cap = self.cap;
        let Some(full) = self.full else {
            let next = self.ties_of.map(|t| Window::after(cap, Some(t), None));
            return (self.gathered.into_iter().map(|f| f.0).collect(), next);
        };
        let left_out = (self.first_left_out).expect("a full window has left a flow out");
        let mut kept = full.into_sorted_vec();
        // Flows tying with one left out wait for a window that keeps all of the tie.
        kept.truncate(kept.partition_point(|f| f.0.detection_cmp(&left_out).is_lt()));
        match kept.last() {
            Some(last) => {
                let next = Window::after(cap, Some(last.0.clone()), None);
                (kept.into_iter().map(|f| f.0).collect(), Some(next))
            }
            None => (
                Vec::new(),
                Some(Window::after(cap, self.after, Some(left_out))),
            ),
        }
    }
}

/// A flow ordered by [`UsableFlow::detection_cmp`], for the heap.
struct InOrder(UsableFlow);

impl Ord for InOrder {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.detection_cmp(&other.0)
    }
}

impl PartialOrd for InOrder {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for InOrder {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for InOrder {}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn flow(ts: i64, first_packet: u64, orig: u8) -> UsableFlow {
        UsableFlow {
            ts_first: ts,
            ts_last: ts,
            first_packet,
            payload_bytes: 0,
            record_index: 0,
            orig_addr: IpAddr::from([10, 0, 0, orig]),
            resp_addr: IpAddr::from([10, 0, 1, 1]),
            orig_port: 1024,
            resp_port: 445,
            proto: 6,
            has_ports: true,
            failed: false,
            completed: true,
            shows_outcome: true,
        }
    }

    /// Every window of passes over `flows` (each pass reading them in the order given),
    /// as the passes return them.
    fn windows(flows: &[UsableFlow], cap: usize) -> Vec<Vec<UsableFlow>> {
        let mut out = Vec::new();
        let mut next = Some(Window::first(cap));
        while let Some(mut window) = next {
            flows.iter().for_each(|f| window.offer(f.clone()));
            let kept;
            (kept, next) = window.finish();
            out.push(kept);
            assert!(out.len() <= flows.len() + 2, "passes never end");
        }
        out
    }

    fn sorted(mut flows: Vec<UsableFlow>) -> Vec<UsableFlow> {
        flows.sort_by(|a, b| a.detection_cmp(b));
        flows
    }

    /// Scrambled flows, with times repeating and some flows twice (a capture stored
    /// twice): the windows, each sorted, are all the flows in detection order, each once,
    /// and none holds more than the cap but a tie too large for it.
    #[test]
    fn windows_are_the_flows_in_detection_order_within_the_cap() {
        let mut flows: Vec<UsableFlow> = (0..200u64)
            .map(|i| flow((i * 7919 % 61) as i64, i * 104_729 % 200, (i % 3) as u8))
            .collect();
        flows.extend(flows[..40].to_vec());
        // Five copies of one flow: a tie larger than caps below 5.
        flows.extend(std::iter::repeat_n(flow(30, 1_000, 9), 5));
        let all = sorted(flows.clone());
        for cap in [1, 2, 3, 7, 64, 239, 245, 1000] {
            let windows = windows(&flows, cap);
            for w in &windows {
                let tie = w.iter().all(|f| f == &w[0]);
                assert!(w.len() <= cap || tie, "cap {cap}: {} flows", w.len());
            }
            let read: Vec<UsableFlow> = windows.into_iter().flat_map(sorted).collect();
            assert_eq!(read, all, "cap {cap}");
        }
    }

    /// While the flows fit, one pass keeps them all.
    #[test]
    fn flows_within_the_cap_take_one_pass() {
        let flows: Vec<UsableFlow> = (0..10).rev().map(|i| flow(i, 0, 1)).collect();
        let windows = windows(&flows, 10);
        assert_eq!(windows.len(), 1);
        assert_eq!(sorted(windows[0].clone()), sorted(flows));
    }
}
