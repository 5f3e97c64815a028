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
/// Flows a data source's table starts with room for (it grows up to its cap): most
/// sources are quiet, and every source has a table.
const SOURCE_START_FLOWS: usize = 1024;
/// A data source's share of the meter's `max_flows`: this fraction, and at least
/// [`SOURCE_START_FLOWS`]. A busy source evicts its least recently active flows
/// (counted in `flows_evicted`) before it takes memory from the others.
const SOURCE_SHARE: usize = 16;

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
    /// Sampled flows evicted because their data source's table was full.
    pub flows_evicted: u64,
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
        self.flows_evicted += o.flows_evicted;
    }
}

/// An agent's data source: the flows of its samples are metered apart from any other
/// source's (two switches sampling the same traffic must not add up).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct SourceKey {
    agent: IpAddr,
    sub_agent_id: u32,
    source_id: u64,
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
    pub fn new(mut config: FlowConfig, max_sources: usize) -> SflowMeter {
        config.max_flows = (config.max_flows / SOURCE_SHARE).max(SOURCE_START_FLOWS);
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
        let mut stats = self.stats;
        let live: u64 = self.sources.values().map(|s| s.table.stats().evicted).sum();
        stats.flows_evicted += live;
        stats
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
                table: FlowTable::starting_at(*config, SOURCE_START_FLOWS),
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

    /// Ends the flows idle at `now_ns` (see [`FlowTable::expire`]), and forgets the
    /// sources left without a live flow (their room goes to the next new source).
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
        let stats = &mut self.stats;
        self.sources.retain(|_, source| {
            let live = !source.table.is_empty();
            if !live {
                stats.flows_evicted += source.table.stats().evicted;
            }
            live
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A datagram from `agent` with one flow sample of an Ethernet/IPv4/UDP header.
    fn datagram(agent: [u8; 4]) -> Vec<u8> {
        let words = |ws: &[u32]| ws.iter().flat_map(|w| w.to_be_bytes()).collect::<Vec<u8>>();
        let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0];
        frame.extend([
            0x45, 0, 0, 28, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        frame.extend([0x9c, 0x40, 0, 53, 0, 8, 0, 0]);
        frame.extend([0, 0]); // to a multiple of four
        let mut record = words(&[1, 46, 4, 42]);
        record.extend(&frame);
        let mut sample = words(&[1, 3, 64, 64, 0, 3, 4, 1, 1, record.len() as u32]);
        sample.extend(&record);
        let agent = u32::from_be_bytes(agent);
        let mut d = words(&[5, 1, agent, 0, 1, 1000, 1, 1, sample.len() as u32]);
        d.extend(&sample);
        d
    }

    #[test]
    fn a_source_is_forgotten_once_its_flows_end_and_its_room_goes_to_another() {
        let mut meter = SflowMeter::new(FlowConfig::default(), 1);
        let mut out = Vec::new();
        meter.observe(0, &datagram([192, 0, 2, 1]), 0, &mut out);
        meter.observe(1_000, &datagram([192, 0, 2, 2]), 1, &mut out);
        assert_eq!(meter.stats().sources_refused, 1);
        assert_eq!(meter.stats().sampled_packets, 1);
        // The UDP idle timeout passes: the first agent's flow ends, the agent is forgotten.
        meter.expire(600_000_000_000, &mut out);
        assert_eq!(out.len(), 1);
        assert!(
            matches!(out[0].source, FlowSource::Sflow(s) if s.agent == IpAddr::from([192, 0, 2, 1]) && s.sampling_rate == 64)
        );
        meter.observe(600_000_000_001, &datagram([192, 0, 2, 2]), 2, &mut out);
        assert_eq!(meter.stats().sampled_packets, 2);
        meter.flush(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!((out[1].first_packet, out[1].orig.packets), (2, 1));
    }
}
