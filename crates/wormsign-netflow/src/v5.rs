//! NetFlow v5: a fixed header and fixed 48-byte records, no templates.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::wire::{be16, be32};
use crate::{NetflowDecoder, NetflowRecord};

impl NetflowDecoder {
    pub(crate) fn decode_v5(
        &mut self,
        exporter: SocketAddr,
        ts_ns: i64,
        p: &[u8],
        out: &mut Vec<NetflowRecord>,
    ) {
        const HDR: usize = 24;
        const REC: usize = 48;
        if p.len() < HDR {
            self.stats.malformed += 1;
            return;
        }
        self.stats.packets += 1;
        let count = usize::from(be16(p, 2));
        let uptime = be32(p, 4);
        let secs = be32(p, 8);
        let nsecs = be32(p, 12);
        let seq = be32(p, 16);
        let domain = u32::from(p[20]) << 8 | u32::from(p[21]);
        let sampling = match be16(p, 22) & 0x3fff {
            0 => 1,
            n => u32::from(n),
        };
        let avail = (p.len() - HDR) / REC;
        if count > avail {
            self.stats.malformed += 1;
        }
        let n = count.min(avail);
        let key = self.key(exporter, 5, domain);
        let addr = key.addr;
        if self.stream(key).is_some() {
            let next = seq.wrapping_add(count as u32);
            self.check_sequence(key, exporter.port(), seq, Some(next));
        }
        let export_ns = i64::from(secs) * 1_000_000_000 + i64::from(nsecs.min(999_999_999));
        let base = if secs == 0 { ts_ns } else { export_ns };
        let up_time = |t: u32| base - i64::from(uptime.wrapping_sub(t) as i32) * 1_000_000;
        out.reserve(n);
        for r in p[HDR..HDR + n * REC].chunks_exact(REC) {
            let proto = r[38];
            let (mut sp, mut dp) = (be16(r, 32), be16(r, 34));
            if (proto == 1 || proto == 58) && sp == 0 {
                (sp, dp) = (dp >> 8, dp & 0xff);
            }
            out.push(NetflowRecord {
                exporter: addr,
                version: 5,
                observation_domain: domain,
                received_ns: ts_ns,
                src: IpAddr::V4(Ipv4Addr::new(r[0], r[1], r[2], r[3])),
                dst: IpAddr::V4(Ipv4Addr::new(r[4], r[5], r[6], r[7])),
                src_port: sp,
                dst_port: dp,
                proto,
                packets: u64::from(be32(r, 16)),
                bytes: u64::from(be32(r, 20)),
                sampling_interval: sampling,
                first_ns: up_time(be32(r, 24)),
                last_ns: up_time(be32(r, 28)),
                tcp_flags: r[37],
                input_if: u32::from(be16(r, 12)),
                output_if: u32::from(be16(r, 14)),
                src_as: u32::from(be16(r, 40)),
                dst_as: u32::from(be16(r, 42)),
                vlan: None,
                direction: None,
            });
        }
        self.stats.records += n as u64;
    }
}
