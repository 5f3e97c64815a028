//! sFlow samples metered into flows. Each sampled packet header is decoded as a packet
//! and accounted in a flow table of its agent's data source, so samples of one flow
//! become one row, with the sampling rate recorded and scaled counts beside the raw ones
//! (as NetFlow rows have). Samples carry no time: a sample is taken at the capture or
//! receive time of its datagram.

use std::collections::HashMap;
use std::net::IpAddr;

use wormsign_decode::{decode, Decoded};
use wormsign_flow::{FlowConfig, FlowRecord, FlowSource, FlowTable, SflowOrigin, TimedPacket};

use crate::sflow::{self, Sample};

/// Sample index bits in the ordinal a sampled packet is given: the datagram's ordinal
/// above them, so `first_packet` and `record` of a flow say which sample started it.
const SAMPLE_BITS: u32 = 12;
/// Flow samples read from one datagram; the rest are counted in `samples_beyond_limit`.
/// A 64 KiB datagram holds at most about 1 300 samples with a header.
const MAX_SAMPLES_PER_DATAGRAM: u32 = 1 << SAMPLE_BITS;

/// Counters of sFlow decoding and metering.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SflowStats {
    /// sFlow v5 datagrams read (malformed ones included).
    pub datagrams: u64,
    /// Flow samples read.
    pub flow_samples: u64,
    /// Counter samples, counted and skipped.
    pub counter_samples: u64,
    /// Samples of other formats (other enterprises'), skipped.
    pub other_samples: u64,
    /// Flow samples whose packet header was decoded as IP and metered.
    pub sampled_packets: u64,
    /// Flow samples without a sampled header, or whose header is not Ethernet, IPv4 or
    /// IPv6, or not IP inside.
    pub samples_not_metered: u64,
    /// Datagrams cut short or inconsistent (their samples before the damage are used).
    pub malformed: u64,
    /// Samples beyond [`MAX_SAMPLES_PER_DATAGRAM`] in one datagram, skipped.
    pub samples_beyond_limit: u64,
    /// Samples of a data source beyond `max_sources`, skipped.
    pub sources_refused: u64,
}

impl SflowStats {
    /// Adds another meter's counters.
    pub fn merge(&mut self, o: &SflowStats) {
        self.datagrams += o.datagrams;
        self.flow_samples += o.flow_samples;
        self.counter_samples += o.counter_samples;
        self.other_samples += o.other_samples;
        self.sampled_packets += o.sampled_packets;
        self.samples_not_metered += o.samples_not_metered;
        self.malformed += o.malformed;
        self.samples_beyond_limit += o.samples_beyond_limit;
        self.sources_refused += o.sources_refused;
    }
}

/// An agent's data source: the flows of its samples are metered apart from any other
/// source's (two switches sampling the same traffic must not add up).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct SourceKey {
    agent: IpAddr,
    sub_agent_id: u32,
    source_id: u32,
}

struct Source {
    table: FlowTable,
    sampling_rate: u32,
}

/// Meters the flow samples of sFlow datagrams. One per flow shard (or collector).
pub struct SflowMeter {
    config: FlowConfig,
    max_sources: usize,
    sources: HashMap<SourceKey, Source>,
    stats: SflowStats,
    /// Flows a source's table just finished, before their provenance is set.
    finished: Vec<FlowRecord>,
}

impl SflowMeter {
    /// A meter whose sources' flow tables use `config` (timeouts, `max_flows` each), at
    /// most `max_sources` of them.
    pub fn new(config: FlowConfig, max_sources: usize) -> SflowMeter {
        SflowMeter {
            config,
            max_sources,
            sources: HashMap::new(),
            stats: SflowStats::default(),
            finished: Vec::new(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> SflowStats {
        self.stats
    }

    /// Meters the flow samples of one datagram received at `ts_ns`, the `datagram`th
    /// record of the input; finished flows go to `out`.
    pub fn observe(
        &mut self,
        ts_ns: i64,
        payload: &[u8],
        datagram: u64,
        out: &mut Vec<FlowRecord>,
    ) {
        let SflowMeter {
            config,
            max_sources,
            sources,
            stats,
            finished,
        } = self;
        stats.datagrams += 1;
        let mut n_flow_samples = 0u32;
        let result = sflow::parse(payload, |agent, sample| {
            let flow = match sample {
                Sample::Flow(flow) => flow,
                Sample::Counters => return stats.counter_samples += 1,
                Sample::Other => return stats.other_samples += 1,
            };
            stats.flow_samples += 1;
            if n_flow_samples == MAX_SAMPLES_PER_DATAGRAM {
                return stats.samples_beyond_limit += 1;
            }
            let idx = (datagram << SAMPLE_BITS) | u64::from(n_flow_samples);
            n_flow_samples += 1;
            let Some(packet) = flow
                .header
                .and_then(|h| sampled_packet(h.protocol, h.bytes))
            else {
                return stats.samples_not_metered += 1;
            };
            let key = SourceKey {
                agent: agent.address,
                sub_agent_id: agent.sub_agent_id,
                source_id: flow.source_id,
            };
            if !sources.contains_key(&key) && sources.len() >= *max_sources {
                return stats.sources_refused += 1;
            }
            let source = sources.entry(key).or_insert_with(|| Source {
                table: FlowTable::new(*config),
                sampling_rate: 1,
            });
            source.sampling_rate = flow.sampling_rate.max(1);
            let timed = TimedPacket { ts_ns, idx, packet };
            source
                .table
                .observe_all(std::slice::from_ref(&timed), finished);
            stats.sampled_packets += 1;
            let rate = source.sampling_rate;
            out.extend(finished.drain(..).map(|r| with_origin(r, key.agent, rate)));
        });
        if result.is_err() {
            self.stats.malformed += 1;
        }
    }

    /// Ends the flows idle at `now_ns` (see [`FlowTable::expire`]).
    pub fn expire(&mut self, now_ns: i64, out: &mut Vec<FlowRecord>) {
        for (key, source) in self.sorted_sources() {
            let mut finished = Vec::new();
            source.table.expire(now_ns, &mut finished);
            let rate = source.sampling_rate;
            out.extend(
                finished
                    .into_iter()
                    .map(|r| with_origin(r, key.agent, rate)),
            );
        }
    }

    /// Ends every live flow (end of input).
    pub fn flush(&mut self, out: &mut Vec<FlowRecord>) {
        for (key, source) in self.sorted_sources() {
            let rate = source.sampling_rate;
            out.extend(
                source
                    .table
                    .flush()
                    .map(|r| with_origin(r, key.agent, rate)),
            );
        }
    }

    /// The sources in a fixed order, so the rows come out the same on every run.
    fn sorted_sources(&mut self) -> Vec<(SourceKey, &mut Source)> {
        let mut sources: Vec<_> = self.sources.iter_mut().map(|(k, s)| (*k, s)).collect();
        sources.sort_by_key(|(k, _)| (k.agent, k.sub_agent_id, k.source_id));
        sources
    }
}

/// A sampled header as a packet, if it is Ethernet, IPv4 or IPv6 (sFlow's header
/// protocols 1, 11, 12) with IP inside.
fn sampled_packet(protocol: u32, bytes: &[u8]) -> Option<wormsign_decode::PacketSummary> {
    const ETHERNET: u16 = 1;
    const IPV4: u16 = 228;
    const IPV6: u16 = 229;
    let link = match protocol {
        1 => ETHERNET,
        11 => IPV4,
        12 => IPV6,
        _ => return None,
    };
    match decode(link, bytes) {
        Decoded::Ip(p) => Some(p),
        _ => None,
    }
}

/// A flow a source's table finished, as an sFlow row: the datagram's ordinal as
/// `first_packet`, the sample's index as `record_index`.
fn with_origin(mut r: FlowRecord, agent: IpAddr, sampling_rate: u32) -> FlowRecord {
    let sample = (r.first_packet & u64::from(MAX_SAMPLES_PER_DATAGRAM - 1)) as u32;
    r.first_packet >>= SAMPLE_BITS;
    r.source = FlowSource::Sflow(SflowOrigin {
        agent,
        sampling_rate,
        record_index: sample,
    });
    r
}
