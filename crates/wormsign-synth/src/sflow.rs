//! A capture as an sFlow v5 agent would sample it: 1 in `rate` frames at random (as
//! agents do, by a random skip count), each sample's first 128 bytes sent as a sampled
//! packet header (flow record format 1) in a flow sample, several samples to a datagram
//! (UDP from [`AGENT`] to [`COLLECTOR`] port 6343, over Ethernet/IPv4), written to a
//! second pcap. A datagram leaves with [`MAX_SAMPLES`] samples or when its first sample
//! has waited one second; its timestamp is the capture time of its newest sample.

use std::io::{self, Write};
use std::path::Path;

use wormsign_capture::{CaptureReader, Chunk};

use crate::wire::{begin_frame, PcapWriter, Rng};

/// The sampling switch.
pub const AGENT: [u8; 4] = [10, 164, 1, 253];
/// The collector.
pub const COLLECTOR: [u8; 4] = [10, 164, 1, 250];
/// Samples per datagram at most.
pub const MAX_SAMPLES: usize = 8;
/// Bytes of each frame sent as its header (sFlow agents' usual 128).
pub const HEADER_BYTES: usize = 128;
/// How long a sample waits for its datagram at most.
const FLUSH_NS: i64 = 1_000_000_000;

/// What sampling a capture gave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sampled {
    /// Frames read.
    pub frames: u64,
    /// Frames sampled.
    pub samples: u64,
    /// Datagrams written.
    pub datagrams: u64,
}

struct Agent<W: Write> {
    out: PcapWriter<W>,
    rate: u32,
    sequence: u32,
    sample_sequence: u32,
    /// Samples waiting: (capture time, frame length, header bytes).
    waiting: Vec<(i64, u32, Vec<u8>)>,
    frame: Vec<u8>,
    stats: Sampled,
}

impl<W: Write> Agent<W> {
    fn put(b: &mut Vec<u8>, words: &[u32]) {
        words
            .iter()
            .for_each(|w| b.extend_from_slice(&w.to_be_bytes()));
    }

    /// Sends the waiting samples as one datagram.
    fn send(&mut self) -> io::Result<()> {
        let Some(&(ts_ns, _, _)) = self.waiting.last() else {
            return Ok(());
        };
        let mut d = Vec::new();
        self.sequence += 1;
        let uptime_ms = 0;
        let agent = u32::from_be_bytes(AGENT);
        Self::put(
            &mut d,
            &[
                5,
                1,
                agent,
                0,
                self.sequence,
                uptime_ms,
                self.waiting.len() as u32,
            ],
        );
        for (_, frame_length, header) in self.waiting.drain(..) {
            self.sample_sequence += 1;
            let padded = header.len().div_ceil(4) * 4;
            let record_len = 16 + padded as u32;
            let sample_len = 32 + 8 + record_len;
            // Flow sample (format 1): source ifIndex 3, input 3, output 4, one record.
            let pool = self.sample_sequence.wrapping_mul(self.rate);
            Self::put(
                &mut d,
                &[
                    1,
                    sample_len,
                    self.sample_sequence,
                    3,
                    self.rate,
                    pool,
                    0,
                    3,
                    4,
                    1,
                ],
            );
            // Sampled header (format 1): Ethernet, the frame's length, 4 bytes of FCS stripped.
            Self::put(
                &mut d,
                &[1, record_len, 1, frame_length + 4, 4, header.len() as u32],
            );
            d.extend_from_slice(&header);
            d.resize(d.len() + padded - header.len(), 0);
        }
        let mut f = begin_frame(
            &mut self.frame,
            &[0x02, 0x00, 0x0a, 0xa4, 0x01, 0xfa],
            &[0x02, 0x00, 0x0a, 0xa4, 0x01, 0xfd],
            None,
            0x0800,
        );
        f.ipv4(AGENT, COLLECTOR, 17, 8 + d.len(), self.sequence as u16, 64);
        for half in [6343u16, 6343, (8 + d.len()) as u16, 0] {
            f.buf.extend_from_slice(&half.to_be_bytes());
        }
        f.buf.extend_from_slice(&d);
        f.finish();
        self.stats.datagrams += 1;
        let ts_us = u64::try_from(ts_ns / 1_000).unwrap_or(0);
        self.out.write(ts_us, &self.frame)
    }
}

/// Samples the Ethernet capture `input` 1 in `rate` (seeded by `seed`) and writes the
/// sFlow datagrams to `output` (under a temporary name, renamed when complete).
pub fn sample_capture(input: &Path, rate: u32, seed: u64, output: &Path) -> io::Result<Sampled> {
    let mut reader = CaptureReader::open(input).map_err(io::Error::other)?;
    let mut stats = Sampled::default();
    crate::dataset::atomic(output, |file| {
        let mut agent = Agent {
            out: PcapWriter::new(io::BufWriter::with_capacity(1 << 20, file))?,
            rate: rate.max(1),
            sequence: 0,
            sample_sequence: 0,
            waiting: Vec::new(),
            frame: Vec::new(),
            stats: Sampled::default(),
        };
        let mut rng = Rng::new(seed);
        let mut chunk = Chunk::default();
        loop {
            let more = reader
                .read_chunk(&mut chunk, 4 << 20)
                .map_err(io::Error::other)?;
            for (meta, data) in chunk.iter() {
                agent.stats.frames += 1;
                if meta.link_type != 1 || rng.below(u64::from(agent.rate)) != 0 {
                    continue;
                }
                if agent
                    .waiting
                    .first()
                    .is_some_and(|w| meta.ts_ns - w.0 >= FLUSH_NS)
                {
                    agent.send()?;
                }
                let header = data[..data.len().min(HEADER_BYTES)].to_vec();
                agent.waiting.push((meta.ts_ns, meta.orig_len, header));
                agent.stats.samples += 1;
                if agent.waiting.len() == MAX_SAMPLES {
                    agent.send()?;
                }
            }
            if !more {
                break;
            }
        }
        agent.send()?;
        stats = agent.stats;
        agent.out.finish()?.flush()
    })?;
    Ok(stats)
}
