//! C&C addresses resolved while the run goes on, so that the flow shards keep the flows
//! to them and detection need not read the finished flows table again.
//!
//! The decode workers publish the addresses each DNS answer to a C&C name gives as they
//! parse it ([`ResolvedCnc::publish`]); every place that picks usable flows out (flow
//! shards, the flow-log reader) keeps, besides what the configured filter wants, the
//! flows to an address published by then, and notes the responder of every flow it
//! turns down ([`UsablePicker`]).
//!
//! Whether a flow is checked before or after an answer is published depends on thread
//! timing, so the flows kept can too; detection's inputs cannot. A flow to an address
//! the run's DNS resolved is missing from the gathered flows only if some picker turned
//! it down, and then that picker noted its responder (or noted nothing: see below). So
//! when no resolved address is among the noted responders
//! ([`ResolvedCnc::missed_none_of`]), the gathered flows hold every flow detection's full
//! filter wants (the detector drops the flows kept for an address it does not watch), and
//! detection runs without the pass; otherwise it drops the flows kept for published
//! addresses and the pass reads the flows table as before. Either way it sees the same
//! flows.
//!
//! A picker that turned down flows to more distinct responders than [`MAX_NOTED`] stops
//! noting them, and one made for a configuration without C&C domains (whose DNS can
//! resolve none) notes nothing; then the pass always runs when the DNS resolved a C&C
//! address. A flow log's DNS rows are not published: the log reader turns down its flows
//! to C&C addresses, and the pass finds them.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use wormsign_columnar::{stored_count, stored_has_ports, stored_record_index, stored_time};
use wormsign_decode::dns::DnsMessage;
use wormsign_detect::{DetectConfig, FlowFilter, StoredFields, UsableFlow};
use wormsign_flow::FlowRecord;

use crate::feed::configured_filter;

/// Distinct responders of turned-down flows one picker notes, and all of them together
/// note: 32 Ki addresses, about 1.2 MB in a full set. Beyond, noting stops and the run's
/// C&C pass runs whenever the DNS resolved a C&C name.
pub(crate) const MAX_NOTED: usize = 1 << 15;

/// C&C addresses published during a run. Every publication copies the set (pickers hold
/// the previous one), so a run whose DNS gives C&C names more addresses than this (fast
/// flux, or a capture made to stall the run) publishes no more, and the pass finds the
/// flows to the others.
pub(crate) const MAX_PUBLISHED: usize = 1024;

/// Record types whose answers are addresses: A and AAAA.
const ADDRESS_RECORDS: [u16; 2] = [1, 28];

/// The C&C addresses published so far, and what the pickers turned down.
#[derive(Default)]
pub(crate) struct ResolvedCnc {
    /// Bumped on every publication, so pickers see a change with one atomic load.
    version: AtomicU64,
    published: Mutex<Arc<Addresses>>,
    turned_down: Mutex<TurnedDown>,
}

/// The responders of the flows every finished picker turned down.
#[derive(Default)]
struct TurnedDown {
    responders: Addresses,
    /// Pickers started and not yet finished.
    open: usize,
    /// A picker noted nothing (it was made not to), or a picker or all of them together
    /// noted more than [`MAX_NOTED`] responders.
    incomplete: bool,
}

impl ResolvedCnc {
    /// Publishes the addresses `message` resolves for a C&C name of `config`, if it is
    /// such an answer: its A and AAAA answers, which `cnc_ip` takes from the stored DNS
    /// rows too (it also reads PTR answers, whose data is a name).
    pub(crate) fn publish(&self, config: &DetectConfig, message: &DnsMessage) {
        let mut answers = message
            .answers
            .iter()
            .filter(|a| ADDRESS_RECORDS.contains(&a.rtype))
            .peekable();
        // The name is matched last: publish runs for nearly every DNS message of the run,
        // and an answer without an address needs no match.
        let is_cnc = |name: &str| config.cnc_domain_match(name).is_some();
        if !message.is_response
            || answers.peek().is_none()
            || !message.qname.as_deref().is_some_and(is_cnc)
        {
            return;
        }
        let addresses = answers.filter_map(|a| a.data.parse().ok());
        let mut published = lock(&self.published);
        let room = MAX_PUBLISHED.saturating_sub(published.len());
        let new: Vec<IpAddr> = addresses
            .filter(|a| !published.contains(a))
            .take(room)
            .collect();
        if !new.is_empty() {
            Arc::make_mut(&mut published).extend(new);
            self.version.fetch_add(1, Ordering::Release);
        }
    }

    /// Whether every flow to `addresses` was kept: there are none, or every picker
    /// finished, none stopped noting, and none turned down a flow to one of them.
    pub(crate) fn missed_none_of(&self, addresses: &HashSet<IpAddr>) -> bool {
        let t = lock(&self.turned_down);
        let noted = |a| t.responders.contains(a);
        addresses.is_empty() || t.open == 0 && !t.incomplete && !addresses.iter().any(noted)
    }

    /// The addresses published so far.
    pub(crate) fn published(&self) -> Arc<Addresses> {
        self.snapshot().1
    }

    /// The published addresses and their version.
    fn snapshot(&self) -> (u64, Arc<Addresses>) {
        let published = lock(&self.published);
        (self.version.load(Ordering::Acquire), published.clone())
    }
}

/// A lock whose holder cannot leave its data half-changed: a poisoned one is still good.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Picks out the usable flows of one thread's batches: those `filter` keeps, and those
/// to C&C addresses published by then; notes the responders of the others. Its notes
/// join the [`ResolvedCnc`]'s when it is dropped.
pub(crate) struct UsablePicker<'a> {
    filter: FlowFilter<'a>,
    resolved: &'a ResolvedCnc,
    version: u64,
    published: Arc<Addresses>,
    /// `None` when made not to note, or once more than [`MAX_NOTED`] responders were
    /// turned down.
    turned_down: Option<Addresses>,
}

/// Addresses looked up or noted for every flow no rule wants: a set with a fast hasher
/// (std's SipHash would cost more than the rest of the check).
type Addresses = hashbrown::HashSet<IpAddr>;

impl<'a> UsablePicker<'a> {
    /// A picker for one thread, with the filter `config` makes before the run's DNS is
    /// known. It notes turned-down responders only when the configuration names C&C
    /// domains (otherwise the run's DNS can resolve no C&C address).
    pub(crate) fn new(config: &'a DetectConfig, resolved: &'a ResolvedCnc) -> Self {
        lock(&resolved.turned_down).open += 1;
        let (version, published) = resolved.snapshot();
        let note = !config.cnc.domains.is_empty();
        UsablePicker {
            filter: configured_filter(config),
            resolved,
            version,
            published,
            turned_down: note.then(Addresses::default),
        }
    }

    /// `flow` as detection keeps it after reading it back from the flows table, if it is
    /// usable. The filter reads the fields as stored (of those, only `has_ports` can
    /// differ), and the record is converted only when kept: this runs for every flow.
    pub(crate) fn pick(&mut self, flow: &FlowRecord) -> Option<UsableFlow> {
        let has_ports = stored_has_ports(flow.proto, flow.orig_port, flow.resp_port);
        let wanted = self
            .filter
            .wants(flow.proto, has_ports, flow.resp_port, || {
                Some(flow.resp_addr)
            });
        if wanted || self.published_has(flow.resp_addr) {
            return Some(usable_as_stored(flow));
        }
        if let Some(noted) = &mut self.turned_down {
            noted.insert(flow.resp_addr);
            if noted.len() > MAX_NOTED {
                self.turned_down = None;
            }
        }
        None
    }

    /// Whether `addr` is among the C&C addresses published so far.
    fn published_has(&mut self, addr: IpAddr) -> bool {
        if self.resolved.version.load(Ordering::Acquire) != self.version {
            (self.version, self.published) = self.resolved.snapshot();
        }
        self.published.contains(&addr)
    }
}

/// `UsableFlow::from(&as_stored(flow))` (see `wormsign_columnar::as_stored`) without
/// first building the whole stored record: that took a third of the picker's
/// instructions on the scan benchmark shape, where all but a third of 616 567 flows are
/// kept.
fn usable_as_stored(flow: &FlowRecord) -> UsableFlow {
    let payload = [flow.orig.payload_bytes, flow.resp.payload_bytes];
    let stored = StoredFields {
        ts_first: stored_time(flow.ts_first),
        ts_last: stored_time(flow.ts_last),
        first_packet: stored_count(flow.first_packet),
        payload_bytes: payload.map(stored_count),
        record_index: stored_record_index(flow.source.record_index()),
        has_ports: stored_has_ports(flow.proto, flow.orig_port, flow.resp_port),
    };
    UsableFlow::with_stored(flow, stored)
}

impl Drop for UsablePicker<'_> {
    fn drop(&mut self) {
        let mut t = lock(&self.resolved.turned_down);
        t.open -= 1;
        match self.turned_down.take() {
            Some(noted) if !t.incomplete => t.responders.extend(noted),
            _ => t.incomplete = true,
        }
        if t.responders.len() > MAX_NOTED {
            t.incomplete = true;
        }
        if t.incomplete {
            t.responders = Addresses::default();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::Ipv4Addr;

    use wormsign_columnar::{DnsBatchBuilder, DnsRow, FlowBatchBuilder, RowBuilder, TableWriter};
    use wormsign_decode::dns::DnsAnswer;
    use wormsign_detect::{CncConfig, Detection, Rule};
    use wormsign_flow::{ConnState, DirCounters, EndReason, FlowSource, History};

    use super::*;
    use crate::feed::{wanted_dns_events, Feed, FeedOutcome, StoredFlows};
    use crate::{detect_tables, Tables};

    const HOST: [u8; 4] = [10, 0, 0, 5];
    pub(crate) const CNC: [u8; 4] = [203, 0, 113, 9];

    pub(crate) fn rules() -> DetectConfig {
        DetectConfig {
            cnc: CncConfig {
                domains: vec!["c2.example".to_string()].into(),
                ..CncConfig::default()
            },
            ..DetectConfig::default()
        }
    }

    /// A SYN nobody answered, at second `n` (and packet `n`).
    pub(crate) fn flow(n: u8, to: [u8; 4], port: u16) -> FlowRecord {
        FlowRecord {
            first_packet: u64::from(n),
            ts_first: i64::from(n) * 1_000_000_000,
            ts_last: i64::from(n) * 1_000_000_000,
            orig_addr: IpAddr::from(HOST),
            orig_port: 40_000 + u16::from(n),
            resp_addr: IpAddr::from(to),
            resp_port: port,
            has_ports: true,
            proto: 6,
            vlan: None,
            tunnel: None,
            orig: DirCounters {
                packets: 1,
                ip_bytes: 40,
                payload_bytes: 0,
                tcp_flags: 2,
            },
            resp: DirCounters::default(),
            conn_state: ConnState::S0,
            history: History::default(),
            end_reason: EndReason::Idle,
            source: FlowSource::Packets,
        }
    }

    /// The answer naming the C&C address, at second 2.
    pub(crate) fn answer() -> DnsRow {
        DnsRow {
            ts_ns: 2_000_000_000,
            packet: 2,
            client: IpAddr::from(HOST),
            client_port: 5353,
            server: IpAddr::from([10, 0, 0, 1]),
            server_port: 53,
            tcp: false,
            message: DnsMessage {
                is_response: true,
                qname: Some("c2.example".into()),
                qtype: 1,
                qclass: 1,
                answers: vec![DnsAnswer {
                    rtype: 1,
                    ttl: 60,
                    data: Ipv4Addr::from(CNC).to_string(),
                }],
                ..DnsMessage::default()
            },
        }
    }

    /// A run over `before` (flows picked before the answer is seen), the answer, and
    /// `after`, as the pipeline feeds it (one picker; the workers published the answer
    /// in between); then the feed's detection from `stored` (its stored flows, or, with
    /// `None`, those in memory), and the tables.
    fn feed_run(
        rules: &DetectConfig,
        before: &[FlowRecord],
        after: &[FlowRecord],
        stored: Option<&std::path::Path>,
    ) -> (bool, Detection, Tables) {
        let mut feed = Feed::new(rules, None);
        let resolved = feed.resolved();
        let mut picker = UsablePicker::new(rules, &resolved);
        let mut builder = FlowBatchBuilder::default();
        let mut usable = Vec::new();
        let mut pick = |flows: &[FlowRecord]| {
            for f in flows {
                builder.append(f);
                usable.extend(picker.pick(f));
            }
        };
        pick(before);
        resolved.publish(rules, &answer().message);
        pick(after);
        drop(picker);
        let flows = builder.finish();
        feed.flows(flows.num_rows(), usable);
        let mut dns = DnsBatchBuilder::default();
        dns.append(&answer());
        let dns = dns.finish();
        feed.dns(dns.num_rows(), wanted_dns_events(&dns, rules).unwrap());
        feed.detect_early();
        let tables = Tables {
            flows: vec![flows],
            dns: vec![dns],
            arp: Vec::new(),
            names: Vec::new(),
            sessions: Vec::new(),
        };
        let outcome = match stored {
            Some(dir) => {
                let path = dir.join("flows.parquet");
                let mut w = TableWriter::<FlowBatchBuilder>::create(&path, &[]).unwrap();
                before.iter().chain(after).for_each(|f| {
                    w.push(f).unwrap();
                });
                w.finish().unwrap();
                feed.finish(StoredFlows::Files(vec![path]))
            }
            None => feed.finish(StoredFlows::Memory(&tables.flows)),
        };
        let Ok(FeedOutcome::Detected {
            detection,
            cnc_pass,
            ..
        }) = outcome
        else {
            panic!("the feed detects");
        };
        (cnc_pass, *detection, tables)
    }

    /// How many flows the C&C-by-IP alert counts from the host to the C&C address.
    fn cnc_contacts(d: &Detection) -> Option<u64> {
        let cnc = IpAddr::from(CNC);
        let mut alerts = d.alerts.iter().filter(|a| a.rule == Rule::CncIp);
        alerts.find(|a| a.dst == Some(cnc)).map(|a| a.attempts)
    }

    /// A flow to a C&C address picked after the answer was published is kept, and then
    /// detection needs no pass; one picked before it is turned down and noted, and the
    /// pass reads it from the stored flows (files or batches) without counting twice the
    /// flows kept for the published address or for a worm port (SMB to the same
    /// address). Either way the detection is `detect_tables` over the run's tables.
    #[test]
    fn the_pass_runs_only_for_flows_turned_down_and_counts_each_once() {
        let rules = rules();
        let worm = flow(4, [10, 0, 0, 6], 445);
        let (early, late) = (flow(1, CNC, 80), flow(3, CNC, 80));
        let dir = tempfile::tempdir().unwrap();
        let smb_to_cnc = flow(5, CNC, 445);
        let runs = [
            (&[][..], false, None, 2),
            (&[early.clone()][..], true, None, 3),
            (&[early][..], true, Some(dir.path()), 3),
        ];
        for (before, want_pass, stored, want_contacts) in runs {
            let after = [late.clone(), worm.clone(), smb_to_cnc.clone()];
            let (cnc_pass, fed, tables) = feed_run(&rules, before, &after, stored);
            assert_eq!(cnc_pass, want_pass, "{before:?} {stored:?}");
            assert_eq!(fed, detect_tables(&tables, &rules).unwrap());
            assert_eq!(cnc_contacts(&fed), Some(want_contacts), "{before:?}");
        }
    }

    /// Only A and AAAA answers to a C&C name are published (a TXT record's text may
    /// read as an address), and no more than [`MAX_PUBLISHED`] addresses in all.
    #[test]
    fn publish_takes_address_answers_up_to_the_cap() {
        let (rules, resolved) = (rules(), ResolvedCnc::default());
        let mut message = answer().message;
        message.answers[0].rtype = 16;
        resolved.publish(&rules, &message);
        assert!(resolved.snapshot().1.is_empty(), "a TXT answer");
        let mut other = answer().message;
        other.qname = Some("example.org".into());
        resolved.publish(&rules, &other);
        assert!(resolved.snapshot().1.is_empty(), "not a C&C name");
        message.answers = (0..MAX_PUBLISHED as u32 + 10)
            .map(|i| DnsAnswer {
                rtype: 1,
                ttl: 60,
                data: Ipv4Addr::from(0x0a00_0000 + i).to_string(),
            })
            .collect();
        resolved.publish(&rules, &message);
        let (version, published) = resolved.snapshot();
        assert_eq!((version, published.len()), (1, MAX_PUBLISHED));
    }

    /// Addresses nobody turned down a flow to need no pass; one turned down does; a
    /// picker still open, or one that stopped noting, leaves it unknown.
    #[test]
    fn missed_none_of_needs_every_picker_done_and_noting() {
        let (rules, resolved) = (rules(), ResolvedCnc::default());
        let cnc: HashSet<IpAddr> = HashSet::from([IpAddr::from(CNC)]);
        let mut picker = UsablePicker::new(&rules, &resolved);
        assert_eq!(picker.pick(&flow(1, [198, 51, 100, 1], 80)), None);
        assert!(!resolved.missed_none_of(&cnc), "a picker is open");
        assert!(resolved.missed_none_of(&HashSet::new()), "nothing to miss");
        drop(picker);
        assert!(resolved.missed_none_of(&cnc));
        let mut picker = UsablePicker::new(&rules, &resolved);
        assert_eq!(picker.pick(&flow(2, CNC, 80)), None);
        drop(picker);
        assert!(
            !resolved.missed_none_of(&cnc),
            "a flow to it was turned down"
        );

        let resolved = ResolvedCnc::default();
        let no_domains = DetectConfig {
            cnc: CncConfig {
                domains: Default::default(),
                ..CncConfig::default()
            },
            ..DetectConfig::default()
        };
        drop(UsablePicker::new(&no_domains, &resolved));
        assert!(
            !resolved.missed_none_of(&cnc),
            "a picker that does not note"
        );
    }

    /// The picker's usable flow is the one detection reads back from the flows table:
    /// `UsableFlow::from(&as_stored(f))`, over records that differ in every field the
    /// conversion or the outcome reads, with times, counters and record indexes at the
    /// values storing cuts or caps, and ports that disagree with `has_ports` (a fragment
    /// whose first fragment was missing).
    #[test]
    fn usable_flows_are_as_detection_reads_them_back() {
        use wormsign_columnar::as_stored;
        use wormsign_flow::{LogKind, NetflowOrigin, SflowOrigin};
        let agent = IpAddr::from([192, 0, 2, 1]);
        let mut sources = vec![
            FlowSource::Packets,
            FlowSource::Log(LogKind::Suricata),
            FlowSource::Log(LogKind::Zeek),
        ];
        for record_index in [7, 1 << 31, u32::MAX] {
            let (sampling_rate, sampling_interval) = (100, 1);
            let (input_if, output_if, version) = (1, 2, 9);
            sources.push(FlowSource::Sflow(SflowOrigin {
                agent,
                sampling_rate,
                record_index,
            }));
            sources.push(FlowSource::Netflow(NetflowOrigin {
                exporter: agent,
                version,
                sampling_interval,
                record_index,
                input_if,
                output_if,
            }));
        }
        use ConnState::*;
        let states = [
            S0, S1, SF, REJ, S2, S3, RSTO, RSTR, RSTOS0, RSTRH, SH, SHR, OTH,
        ];
        let times = [
            0,
            1_999,
            -1,
            -1_001,
            i64::MIN,
            i64::MAX,
            1_700_000_000_123_456_789,
        ];
        let counts = [0, 1, 3, i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX];
        let ports = [(0, 0), (0, 445), (40_000, 0), (40_000, 445)];
        let (mut checked, mut differ) = (0, 0);
        // Every source, state and protocol, with the other fields drawn in turn from
        // their lists by a fixed pseudo-random walk.
        let mut draw = 0x9e37_79b9_7f4a_7c15_u64;
        let mut pick = |n: usize| {
            draw = draw.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (draw >> 33) as usize % n
        };
        for &source in &sources {
            for state in states {
                for proto in [1u8, 6, 17, 47, 58] {
                    for _ in 0..8 {
                        let (orig_port, resp_port) = ports[pick(ports.len())];
                        let side = |packets, payload_bytes, tcp_flags| DirCounters {
                            packets,
                            ip_bytes: payload_bytes,
                            payload_bytes,
                            tcp_flags,
                        };
                        let [packets, payload, replies, reply_payload] =
                            [(); 4].map(|_| counts[pick(counts.len())]);
                        let f = FlowRecord {
                            first_packet: counts[pick(counts.len())],
                            ts_first: times[pick(times.len())],
                            ts_last: times[pick(times.len())],
                            orig_port,
                            resp_port,
                            has_ports: pick(2) == 0,
                            proto,
                            orig: side(packets, payload, [0, 0x08, 0x1b][pick(3)]),
                            resp: side(replies, reply_payload, [0, 0x08, 0x14][pick(3)]),
                            conn_state: state,
                            source,
                            ..flow(1, CNC, 445)
                        };
                        let expected = UsableFlow::from(&as_stored(&f));
                        assert_eq!(usable_as_stored(&f), expected, "{f:?}");
                        checked += 1;
                        differ += usize::from(UsableFlow::from(&f) != expected);
                    }
                }
            }
        }
        // Most records change in storing, so the comparison is not of equal records.
        assert!(
            differ * 2 > checked,
            "{differ} of {checked} records change when stored"
        );
    }
}
