//! Detection fed from the pipeline: what `wormsign detect DIR` would read back from the
//! stored tables, gathered from the batches as the pipeline stores them.
//!
//! Flow shards pick out the flows a rule can use as they build their batches, each as
//! reading it back will give it (`as_stored`, which a test holds to the read-back, in a
//! [`UsablePicker`]), and
//! decode workers the DNS messages detection reads from each DNS batch they build (C&C
//! names, reverse lookups naming hosts: the same `kept_dns_events` that reading the files
//! back uses, on the same batches, then [`KeptDns::picked`]); the writer hands them, and
//! every ARP and session batch it stores, to [`Feed`]. Once the
//! last batch is stored, the detector runs over what was gathered while the files end
//! ([`Feed::detect_early`]), and writes its outputs under temporary names, put in place
//! after the tables: no table is decoded again.
//!
//! Two things can make detection wait for the files:
//! - **C&C addresses resolved from the run's DNS answers.** The shards filter with what is
//!   known before the run (service and exposed ports, honeypots, listed addresses), and
//!   keep the flows to the C&C addresses the decode workers published by then (see
//!   [`crate::resolved`]). If a shard turned down a flow to an address the DNS resolved,
//!   the flows kept for published addresses are dropped and one more pass over the
//!   stored flows table reads its responder column (tables in memory: the four columns
//!   the filter reads) and decodes only the flows to those addresses.
//! - **Whether the usable flows could be kept.** The feed holds at most
//!   [`DetectConfig::max_pending_flows`] usable flows in memory; beyond, each batch of
//!   that many is sorted into a temporary file ([`PendingFlows`]) and all are merged
//!   when the rules run, so the result still depends only on the set of flows, for any
//!   thread count, and memory stays bounded without reading the tables back. (The pass
//!   above reads the flows in files back once, to drop those it reads again, and adds
//!   the flows it finds the same way.) If a temporary file cannot be written, up to 16
//!   times the cap are held in memory instead; only beyond that does the feed let go of
//!   what it gathered ([`FeedOutcome::ReadBack`], with the error for
//!   a warning), and detection reads the stored tables back, exactly as `wormsign
//!   detect DIR` does.
//!
//! On a long capture the rules need not wait for the end: when the held flows fill the
//! cap, those that start before every flow shard's bound go through a detector at once
//! (`streamed.rs`), which reads the rest at the end, or, if the input broke the bounds,
//! is let go for the read-back.
//!
//! Either way the detection equals `wormsign detect DIR` over the tables this run wrote.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::detection::{stage_detection, StagedDetection};
use crate::resolved::ResolvedCnc;
use crate::streamed::{Streaming, UNSETTLED};
use crate::Error;
use arrow_array::RecordBatch;
use wormsign_columnar::{
    arp_events, for_each_flow, for_each_flow_to, kept_dns_events, kept_flow_batch, name_events,
    session_events, ResponderAddr,
};
use wormsign_detect::{
    ArpEvent, DetectConfig, Detection, Detector, DnsEvent, FlowFilter, KeptDns, NameEvent,
    PendingFlows, SessionEvent, UsableFlow,
};
use wormsign_flow::FlowRecord;

/// What any rule can use, knowing only the configuration (not yet the run's DNS).
pub(crate) fn configured_filter(config: &DetectConfig) -> FlowFilter<'_> {
    Detector::new(config, &[], &[]).flow_filter()
}

/// The messages of a DNS batch detection reads (C&C names, reverse lookups naming
/// hosts), as reading them back keeps them.
pub(crate) fn wanted_dns_events(
    batch: &RecordBatch,
    config: &DetectConfig,
) -> Result<KeptDns, Error> {
    let mut events = Vec::new();
    kept_dns_events(batch, |q, r| config.wants_dns(q, r), &mut events)?;
    Ok(KeptDns::picked(config, events))
}

/// Where the flows of this run are, for the pass that only the end of the run can ask for.
pub(crate) enum StoredFlows<'a> {
    /// The run's flow files.
    Files(Vec<PathBuf>),
    /// The run's flow batches.
    Memory(&'a [RecordBatch]),
}

/// Detection's inputs gathered during the run.
pub(crate) struct Feed<'a> {
    config: &'a DetectConfig,
    /// Usable flows as the shards sent them, beyond `max_pending_flows` in sorted
    /// temporary files; `None` once the detector took them, or once the flows held
    /// without files outgrew their limit (`unwritten` says why).
    flows: Option<PendingFlows>,
    unwritten: Option<String>,
    flows_seen: u64,
    /// The DNS messages detection reads, as they come ([`KeptDns`]), then as the
    /// detector takes them (`dns_settled`).
    dns: KeptDns,
    dns_settled: Vec<DnsEvent>,
    dns_seen: u64,
    arp: Vec<ArpEvent>,
    sessions: Vec<SessionEvent>,
    names: Vec<NameEvent>,
    /// Where the detection outputs go (a directory, and the metadata of their tables),
    /// when they are files.
    outputs: Option<(&'a Path, &'a [(String, String)])>,
    /// The detection, when [`Feed::detect_early`] could run it.
    early: Option<EarlyDetection>,
    /// C&C addresses the decode workers saw resolved, and what the pickers turned down.
    resolved: Arc<ResolvedCnc>,
    /// The flow shards' bounds, and the flows the rules read before the input ended.
    streaming: Streaming<'a>,
}

/// What [`Feed::detect_early`] found, and its outputs when they are files (written while
/// the tables end).
struct EarlyDetection {
    detection: Box<Detection>,
    staged: Result<Option<StagedDetection>, Error>,
}

/// How the feed ended.
pub(crate) enum FeedOutcome {
    /// The detection, from the gathered inputs (and, with `cnc_pass`, the flows to
    /// C&C addresses resolved by the run's DNS, read from the flows table).
    Detected {
        // Boxed: a detection is large, and the other variant holds at most a message.
        detection: Box<Detection>,
        cnc_pass: bool,
        /// Its outputs, written and synced, when they are files and the detection ran
        /// early: they are put in place once the tables are.
        staged: Option<StagedDetection>,
    },
    /// No temporary file for the usable flows beyond `max_pending_flows` could be
    /// written, and more than those held without files came (`cause`, the error): read
    /// the stored tables back.
    ReadBack { cause: Option<String> },
}

impl FeedOutcome {
    fn read_back(cause: std::io::Error) -> Self {
        FeedOutcome::ReadBack {
            cause: Some(unwritten(cause)),
        }
    }
}

/// Why the gathered flows were let go, when no temporary file could hold them.
fn unwritten(e: std::io::Error) -> String {
    format!("no temporary file for the usable flows beyond max_pending_flows ({e})")
}

impl<'a> Feed<'a> {
    /// A feed for `config`; with `outputs` (a directory and the metadata of the tables
    /// there), the early detection's outputs are written there under temporary names.
    pub(crate) fn new(
        config: &'a DetectConfig,
        outputs: Option<(&'a Path, &'a [(String, String)])>,
    ) -> Self {
        Feed {
            config,
            flows: Some(PendingFlows::new(config.max_pending_flows)),
            unwritten: None,
            flows_seen: 0,
            dns: KeptDns::default(),
            dns_settled: Vec::new(),
            dns_seen: 0,
            arp: Vec::new(),
            sessions: Vec::new(),
            names: Vec::new(),
            outputs,
            early: None,
            resolved: Arc::default(),
            streaming: Streaming::new(config),
        }
    }

    /// Where the decode workers publish the C&C addresses they see resolved, for the
    /// run's [`UsablePicker`](crate::resolved::UsablePicker)s to read.
    pub(crate) fn resolved(&self) -> Arc<ResolvedCnc> {
        self.resolved.clone()
    }

    /// A flow batch of `rows` rows was stored; `usable` are the flows the shard kept.
    /// When they would fill the flows held, those that start before every shard's bound
    /// go through the rules first (see `streamed.rs`).
    pub(crate) fn flows(&mut self, rows: usize, usable: Vec<UsableFlow>) {
        self.flows_seen += rows as u64;
        self.streaming.came(&usable);
        let Some(flows) = &mut self.flows else {
            return;
        };
        let taken = if flows.is_full_for(usable.len()) {
            // Released with the flows already held, the others go to a file.
            flows.hold(usable);
            self.streaming.release(self.config, &self.resolved, flows);
            flows.settle()
        } else {
            flows.push_all(usable)
        };
        if let Err(e) = taken {
            (self.flows, self.unwritten) = (None, Some(unwritten(e)));
        }
    }

    /// Flow shard `shard` of `of` will send no usable flow that starts before `before`.
    pub(crate) fn bound(&mut self, shard: usize, of: usize, before: i64) {
        self.streaming.bound(shard, of, before);
    }

    /// The rules, for the decode workers' [`wanted_dns_events`].
    pub(crate) fn config(&self) -> &'a DetectConfig {
        self.config
    }

    /// A DNS batch of `rows` messages was stored; `kept` are those detection reads.
    pub(crate) fn dns(&mut self, rows: usize, kept: KeptDns) {
        self.dns_seen += rows as u64;
        self.dns.merge(kept);
    }

    /// An ARP batch was stored.
    pub(crate) fn arp(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        Ok(arp_events(batch, &mut self.arp)?)
    }

    /// A names batch was stored.
    pub(crate) fn names(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        Ok(name_events(batch, &mut self.names)?)
    }

    /// A sessions batch was stored.
    pub(crate) fn sessions(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        Ok(session_events(batch, &mut self.sessions)?)
    }

    /// Runs the detector over what was gathered, unless the flows held without temporary
    /// files outgrew their limit, or the run's DNS named C&C addresses beyond the configured
    /// ones and a picker turned down a flow to one of them (then their flows are read
    /// from the finished flows table, in [`Feed::finish`]). Called once every batch was
    /// stored and before the files end, so that the two overlap, writing its outputs too.
    pub(crate) fn detect_early(&mut self) {
        self.settle_dns();
        let Some(gathered) = self.flows.take() else {
            return;
        };
        if let Some(streamed) = self.streaming.take_detector() {
            return self.detect_streamed(streamed, gathered);
        }
        let c = self.config;
        let detector = detector(c, &self.dns_settled, &self.arp, &self.sessions, &self.names);
        let (full, shards) = (detector.flow_filter(), configured_filter(c));
        let gathered_all = !full.watches_addresses_beyond(&shards)
            || full
                .addresses_beyond(&shards)
                .is_some_and(|beyond| self.resolved.missed_none_of(&beyond));
        if !gathered_all {
            self.flows = Some(gathered);
            return;
        }
        let detection = self.detected(detector, gathered, Detector::finish);
        self.stage_early(detection);
    }

    /// [`Feed::detect_early`] after some flows went through `streamed` during the run:
    /// the rest follow them, unless the result could then differ from the detection over
    /// the stored tables (see `streamed.rs`), which are then read back.
    fn detect_streamed(&mut self, mut streamed: Detector<'a>, gathered: PendingFlows) {
        let settled = streamed.settle_dns(&self.dns_settled);
        let (full, shards) = (streamed.flow_filter(), configured_filter(self.config));
        let beyond = full.addresses_beyond(&shards);
        let checked = match settled {
            true => self.streaming.check_end(&self.resolved, beyond.as_ref()),
            false => Err(UNSETTLED),
        };
        if let Err(why) = checked {
            self.unwritten = Some(why.to_string());
            return;
        }
        let detection = self.detected(streamed, gathered, |d| {
            d.finish_given(&self.dns_settled, &self.arp, &self.sessions, &self.names)
        });
        self.stage_early(detection);
    }

    /// Keeps `detection` for [`Feed::finish`], its outputs written under temporary names.
    fn stage_early(&mut self, detection: Detection) {
        let staged =
            (self.outputs).map(|(dir, metadata)| stage_detection(dir, &detection, metadata));
        self.early = Some(EarlyDetection {
            detection: Box::new(detection),
            staged: staged.transpose(),
        });
    }

    /// The detection: [`Feed::detect_early`]'s, or else run now over what was gathered,
    /// after the flows to C&C addresses the run's DNS resolved (read from `stored`).
    pub(crate) fn finish(mut self, stored: StoredFlows<'_>) -> Result<FeedOutcome, Error> {
        if self.early.is_none() && self.streaming.released > 0 {
            // The released flows are in the detector only: no pass can add to them.
            self.detect_early();
        }
        if let Some(EarlyDetection { detection, staged }) = self.early.take() {
            return Ok(FeedOutcome::Detected {
                detection,
                cnc_pass: false,
                staged: staged?,
            });
        }
        let Some(mut gathered) = self.flows.take() else {
            return Ok(FeedOutcome::ReadBack {
                cause: self.unwritten,
            });
        };
        let c = self.config;
        self.settle_dns();
        let detector = detector(c, &self.dns_settled, &self.arp, &self.sessions, &self.names);
        let (full, shards) = (detector.flow_filter(), configured_filter(c));
        let cnc_pass = full.watches_addresses_beyond(&shards);
        if cnc_pass {
            // The flows kept for published C&C addresses are read again below.
            if let Err(e) = gathered.retain(|f| shards.wants_usable(f)) {
                return Ok(FeedOutcome::read_back(e));
            }
            let missed = |proto, has_ports, port, addr: ResponderAddr<'_>| {
                full.wants(proto, has_ports, port, addr)
                    && !shards.wants(proto, has_ports, port, addr)
            };
            // Pushed as they are found, so that they too wait in files beyond the cap.
            let mut written = Ok(());
            let mut push = |f: &FlowRecord| {
                if written.is_ok() {
                    written = gathered.push(UsableFlow::from(f));
                }
            };
            match (stored, full.addresses_beyond(&shards)) {
                (StoredFlows::Files(files), Some(beyond)) => {
                    // The missed flows are those to the resolved addresses that the
                    // shards did not keep: only the responder column is read to find them.
                    let to = |addr| beyond.contains(&addr);
                    for_each_flow_to(&files, to, |f| {
                        if !shards.wants_flow(&f) {
                            push(&f);
                        }
                    })?;
                }
                (StoredFlows::Files(files), None) => {
                    for_each_flow(&files, missed, |f| push(&f))?;
                }
                (StoredFlows::Memory(stored), _) => {
                    let mut records = Vec::new();
                    for b in stored {
                        records.clear();
                        kept_flow_batch(b, missed, &mut records)?;
                        records.iter().for_each(&mut push);
                    }
                }
            }
            if let Err(e) = written {
                return Ok(FeedOutcome::read_back(e));
            }
        }
        Ok(FeedOutcome::Detected {
            detection: Box::new(self.detected(detector, gathered, Detector::finish)),
            cnc_pass,
            staged: None,
        })
    }

    /// Moves the kept DNS messages where the detector reads them (every batch is in).
    fn settle_dns(&mut self) {
        self.dns_settled
            .extend(std::mem::take(&mut self.dns).into_vec());
    }

    /// The detection of the `gathered` flows, counting the flows and DNS messages the
    /// run stored (as reading the tables back counts them), not only those the shards
    /// and decoders handed over.
    fn detected<'d>(
        &self,
        mut detector: Detector<'d>,
        mut gathered: PendingFlows,
        finish: impl FnOnce(Detector<'d>) -> Detection,
    ) -> Detection {
        let drained = gathered.drain(|flows| detector.push_in_order(flows));
        let mut detection = finish(detector);
        (detection.stats.flows, detection.stats.dns_events) = (self.flows_seen, self.dns_seen);
        detection.stats.flows_streamed = self.streaming.released;
        drained.count_in(&mut detection.stats);
        detection
    }
}

/// A detector over the run's events.
fn detector<'e>(
    config: &'e DetectConfig,
    dns: &'e [DnsEvent],
    arp: &'e [ArpEvent],
    sessions: &'e [SessionEvent],
    names: &'e [NameEvent],
) -> Detector<'e> {
    Detector::new(config, dns, arp)
        .with_sessions(sessions)
        .with_names(names)
}
