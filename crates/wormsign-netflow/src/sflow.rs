//! sFlow version 5 datagrams (sflow.org, "sFlow Version 5", 2004): the header, then
//! samples. Flow samples (formats 1 and 3, expanded) carry flow records, of which the
//! sampled packet header (record format 1) is read; counter samples (formats 2 and 4) and
//! every other record are counted and skipped. Everything is XDR: big-endian 32-bit
//! words, opaque data padded to a multiple of four bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::be32;

/// A flow sample's sampled packet header (flow record format 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampledHeader<'a> {
    /// What the header starts with: 1 Ethernet, 11 IPv4, 12 IPv6 (others exist).
    pub protocol: u32,
    /// Length of the packet on the wire.
    pub frame_length: u32,
    /// The header's bytes (the first bytes of the packet, typically 128).
    pub bytes: &'a [u8],
}

/// One flow sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowSample<'a> {
    /// The data source: `type << 24 | index` (format 1), or `type << 32 | index` (the
    /// expanded format 3, whose index has 32 bits).
    pub source_id: u64,
    /// 1 in N packets sampled.
    pub sampling_rate: u32,
    /// Input interface (ifIndex).
    pub input_if: u32,
    /// Output interface (ifIndex).
    pub output_if: u32,
    /// The sampled packet header, when the sample has one.
    pub header: Option<SampledHeader<'a>>,
}

/// What a sample in a datagram was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sample<'a> {
    /// A flow sample (format 1 or 3).
    Flow(FlowSample<'a>),
    /// A counter sample (format 2 or 4): interface counters, not flows.
    Counters,
    /// Any other format (another enterprise's).
    Other,
}

/// A datagram's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Agent {
    /// The agent's address (the switch or router that sampled).
    pub address: IpAddr,
    /// Sub-agent id (several sampling engines in one device).
    pub sub_agent_id: u32,
}

/// A datagram's structure was cut short or inconsistent; the samples before the damage
/// were handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// Whether `payload` starts like an sFlow v5 datagram: version 5 as a 32-bit word. Its
/// first two bytes are zero, where a NetFlow or IPFIX header has its version (5, 9, 10).
pub fn is_sflow(payload: &[u8]) -> bool {
    payload.get(..4) == Some(&[0, 0, 0, 5])
}

/// A cursor over XDR words.
struct Xdr<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Xdr<'a> {
    fn u32(&mut self) -> Result<u32, Malformed> {
        if self.data.len().saturating_sub(self.at) < 4 {
            return Err(Malformed);
        }
        let v = be32(self.data, self.at);
        self.at += 4;
        Ok(v)
    }

    /// `n` bytes, then the padding to a four-byte boundary.
    fn bytes(&mut self, n: u32) -> Result<&'a [u8], Malformed> {
        let n = usize::try_from(n).map_err(|_| Malformed)?;
        let padded = n.checked_add(3).ok_or(Malformed)? & !3;
        if self.data.len().saturating_sub(self.at) < padded {
            return Err(Malformed);
        }
        let out = &self.data[self.at..self.at + n];
        self.at += padded;
        Ok(out)
    }

    /// A length-prefixed opaque.
    fn opaque(&mut self) -> Result<&'a [u8], Malformed> {
        let n = self.u32()?;
        self.bytes(n)
    }

    fn address(&mut self) -> Result<IpAddr, Malformed> {
        match self.u32()? {
            // UNKNOWN: no address follows.
            0 => Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            1 => {
                let b = self.bytes(4)?;
                Ok(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])))
            }
            2 => {
                let b: [u8; 16] = self.bytes(16)?.try_into().map_err(|_| Malformed)?;
                Ok(IpAddr::V6(Ipv6Addr::from(b)))
            }
            _ => Err(Malformed),
        }
    }
}

/// Reads a datagram, handing each sample to `visit` in order. Returns the agent, or
/// `Malformed` at the first structural error (the samples before it were visited).
/// Bounded by the payload: every length is checked before it is used.
pub fn parse<'a>(
    payload: &'a [u8],
    mut visit: impl FnMut(&Agent, Sample<'a>),
) -> Result<Agent, Malformed> {
    let mut x = Xdr {
        data: payload,
        at: 0,
    };
    if x.u32()? != 5 {
        return Err(Malformed);
    }
    let agent = Agent {
        address: x.address()?,
        sub_agent_id: x.u32()?,
    };
    let _sequence = x.u32()?;
    let _uptime_ms = x.u32()?;
    let n_samples = x.u32()?;
    for _ in 0..n_samples {
        let format = x.u32()?;
        let body = x.opaque()?;
        // Enterprise 0 (sFlow's standard formats) in the top 20 bits.
        let sample = match format {
            1 => Sample::Flow(flow_sample(body, false)?),
            3 => Sample::Flow(flow_sample(body, true)?),
            2 | 4 => Sample::Counters,
            _ => Sample::Other,
        };
        visit(&agent, sample);
    }
    Ok(agent)
}

/// A flow sample's body (`expanded`: format 3, with 32-bit source and interface types).
fn flow_sample(body: &[u8], expanded: bool) -> Result<FlowSample<'_>, Malformed> {
    let mut x = Xdr { data: body, at: 0 };
    let _sequence = x.u32()?;
    let source_id = if expanded {
        let (kind, index) = (x.u32()?, x.u32()?);
        (u64::from(kind) << 32) | u64::from(index)
    } else {
        u64::from(x.u32()?)
    };
    let sampling_rate = x.u32()?;
    let _sample_pool = x.u32()?;
    let _drops = x.u32()?;
    // An interface is one word (format in the top two bits), or two when expanded.
    let interface = |x: &mut Xdr<'_>| -> Result<u32, Malformed> {
        if expanded {
            let _format = x.u32()?;
            x.u32()
        } else {
            Ok(x.u32()? & 0x3fff_ffff)
        }
    };
    let input_if = interface(&mut x)?;
    let output_if = interface(&mut x)?;
    let mut header = None;
    for _ in 0..x.u32()? {
        let format = x.u32()?;
        let record = x.opaque()?;
        if format == 1 && header.is_none() {
            header = Some(sampled_header(record)?);
        }
    }
    Ok(FlowSample {
        source_id,
        sampling_rate,
        input_if,
        output_if,
        header,
    })
}

fn sampled_header(record: &[u8]) -> Result<SampledHeader<'_>, Malformed> {
    let mut x = Xdr {
        data: record,
        at: 0,
    };
    let protocol = x.u32()?;
    let frame_length = x.u32()?;
    let _stripped = x.u32()?;
    let bytes = x.opaque()?;
    Ok(SampledHeader {
        protocol,
        frame_length,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    /// A datagram from 192.0.2.1 with one flow sample (rate 512) holding a 5-byte
    /// header, and one counter sample.
    fn datagram() -> Vec<u8> {
        let mut header = words(&[1, 1514, 4, 5]);
        header.extend([1, 2, 3, 4, 5, 0, 0, 0]);
        let mut flow = words(&[7, 3, 512, 9000, 0, 11, 12, 1, 1]);
        flow.extend(words(&[header.len() as u32]));
        flow.extend(&header);
        let mut d = words(&[5, 1, 0xc000_0201, 0, 42, 1000, 2, 1]);
        d.extend(words(&[flow.len() as u32]));
        d.extend(&flow);
        d.extend(words(&[2, 4, 0xdead_beef]));
        d
    }

    #[test]
    fn reads_flow_and_counter_samples() {
        let d = datagram();
        assert!(is_sflow(&d));
        let mut seen = Vec::new();
        let agent = parse(&d, |_, s| seen.push(s)).unwrap();
        assert_eq!(agent.address, IpAddr::from([192, 0, 2, 1]));
        let Sample::Flow(flow) = seen[0] else {
            panic!("{seen:?}")
        };
        assert_eq!((flow.source_id, flow.sampling_rate), (3, 512));
        assert_eq!((flow.input_if, flow.output_if), (11, 12));
        let header = flow.header.unwrap();
        assert_eq!((header.protocol, header.frame_length), (1, 1514));
        assert_eq!(header.bytes, &[1, 2, 3, 4, 5]);
        assert_eq!(seen[1], Sample::Counters);
    }

    #[test]
    fn every_cut_is_malformed_after_the_samples_before_it() {
        let d = datagram();
        for cut in 0..d.len() {
            let mut n = 0;
            let result = parse(&d[..cut], |_, _| n += 1);
            assert!(result.is_err() || n == 2, "cut at {cut}");
        }
        assert!(!is_sflow(&[0, 9, 0, 5]));
    }
}
