//! IPv4, IPv6 (with extension headers) and transport header decoding.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{be16, be32, sat32, Decoded, Fragment, PacketSummary, SkipReason, Vlans};

/// Maximum number of IPv6 extension headers walked before declaring the packet
/// malformed.
pub(crate) const MAX_IPV6_EXT_HEADERS: usize = 32;

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;
const PROTO_SCTP: u8 = 132;

#[inline(always)]
fn skip(r: SkipReason) -> Decoded {
    Decoded::Skipped(r)
}

#[inline(always)]
fn summary(src: IpAddr, dst: IpAddr, proto: u8, vlans: Vlans) -> PacketSummary {
    PacketSummary {
        src,
        dst,
        proto,
        vlan: vlans.outer,
        inner_vlan: vlans.inner,
        ..PacketSummary::default()
    }
}

/// Decodes an IPv4 packet starting at `off`; captured bytes of the packet end at
/// `end` (`end <= data.len()`).
#[inline]
pub(crate) fn decode_ipv4(data: &[u8], off: usize, end: usize, vlans: Vlans) -> Decoded {
    let end = end.min(data.len());
    let Some(h) = data.get(off..end).and_then(|d| d.get(..20)) else {
        return match data.get(off..end) {
            Some([v, ..]) if v >> 4 != 4 => skip(SkipReason::Malformed),
            _ => skip(SkipReason::TruncatedHeader),
        };
    };
    let h: &[u8; 20] = match h.try_into() {
        Ok(h) => h,
        Err(_) => return skip(SkipReason::TruncatedHeader),
    };
    if h[0] >> 4 != 4 {
        return skip(SkipReason::Malformed);
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if ihl < 20 {
        return skip(SkipReason::Malformed);
    }
    let avail = end - off;
    let mut total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if total == 0 {
        // TCP segmentation offload: the stack left the length for the NIC to fill.
        total = avail.max(ihl);
    }
    if total < ihl {
        return skip(SkipReason::Malformed);
    }
    let src = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
    let dst = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
    let mut s = summary(IpAddr::V4(src), IpAddr::V4(dst), h[9], vlans);
    s.ip_len = sat32(total);
    s.truncated = total > avail;
    let frag = u16::from_be_bytes([h[6], h[7]]);
    let more = frag & 0x2000 != 0;
    let frag_off = (frag & 0x1fff) << 3;
    if more || frag_off != 0 {
        s.fragment = Some(Fragment {
            id: u32::from(u16::from_be_bytes([h[4], h[5]])),
            offset: frag_off,
            more,
        });
    }
    let cap_end = off + total.min(avail);
    let l4 = off + ihl;
    let announced = total - ihl;
    if l4 > cap_end || frag_off != 0 {
        // Options not fully captured, or a later fragment: no L4 header here.
        s.payload_len = sat32(announced);
        s.payload_offset = sat32(l4.min(cap_end));
        s.payload_captured = sat32(cap_end.saturating_sub(l4));
        return Decoded::Ip(s);
    }
    let first_frag = s.fragment.is_some_and(|f| f.more);
    match transport(&mut s, data, l4, cap_end, announced, first_frag) {
        Ok(()) => Decoded::Ip(s),
        Err(r) => skip(r),
    }
}

/// Decodes an IPv6 packet starting at `off`; captured bytes of the packet end at
/// `end` (`end <= data.len()`).
pub(crate) fn decode_ipv6(data: &[u8], off: usize, end: usize, vlans: Vlans) -> Decoded {
    let end = end.min(data.len());
    let Some(h) = data.get(off..end).and_then(|d| d.get(..40)) else {
        return match data.get(off..end) {
            Some([v, ..]) if v >> 4 != 6 => skip(SkipReason::Malformed),
            _ => skip(SkipReason::TruncatedHeader),
        };
    };
    let h: &[u8; 40] = match h.try_into() {
        Ok(h) => h,
        Err(_) => return skip(SkipReason::TruncatedHeader),
    };
    if h[0] >> 4 != 6 {
        return skip(SkipReason::Malformed);
    }
    let avail = end - off;
    let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let mut nh = h[6];
    let mut total = 40 + plen;
    if plen == 0 && nh != 59 && avail > 40 {
        // Jumbogram or segmentation offload: use what was captured.
        total = avail;
    }
    let mut src = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&h[24..40]);
    let mut s = summary(
        IpAddr::V6(Ipv6Addr::from(src)),
        IpAddr::V6(Ipv6Addr::from(dst)),
        nh,
        vlans,
    );
    s.ip_len = sat32(total);
    s.truncated = total > avail;
    let cap_end = off + total.min(avail);
    let ann_end = off + total;
    let mut pos = off + 40;
    let mut count = 0usize;
    loop {
        let hdr_len = match nh {
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6.
            0 | 43 | 60 | 135 | 139 | 140 => 0usize,
            // Authentication header: length in 4-byte units minus 2.
            51 => 1,
            // Fragment.
            44 => 2,
            // Upper layer, ESP (50), no next header (59), unknown: end of the walk.
            _ => break,
        };
        count += 1;
        if count > MAX_IPV6_EXT_HEADERS {
            return skip(SkipReason::Malformed);
        }
        let need = if hdr_len == 2 { 8 } else { 2 };
        if pos + need > ann_end {
            return skip(SkipReason::Malformed);
        }
        if pos + need > cap_end {
            return Decoded::Ip(cut_chain(s, nh, pos, cap_end, ann_end));
        }
        // In bounds: pos + need <= cap_end <= data.len().
        let next = data.get(pos).copied().unwrap_or(59);
        let len_byte = usize::from(data.get(pos + 1).copied().unwrap_or(0));
        match hdr_len {
            0 => pos += (len_byte + 1) * 8,
            1 => pos += (len_byte + 2) * 4,
            _ => {
                let fo = be16(data, pos + 2).unwrap_or(0);
                let id = be32(data, pos + 4).unwrap_or(0);
                let frag = Fragment {
                    id,
                    offset: fo & 0xfff8,
                    more: fo & 1 != 0,
                };
                s.fragment = Some(frag);
                pos += 8;
                if frag.offset != 0 {
                    // Later fragment: the rest is fragment data.
                    s.proto = next;
                    s.payload_len = sat32(ann_end - pos);
                    s.payload_offset = sat32(pos.min(cap_end));
                    s.payload_captured = sat32(cap_end.saturating_sub(pos));
                    return Decoded::Ip(s);
                }
            }
        }
        if pos > ann_end {
            return skip(SkipReason::Malformed);
        }
        nh = next;
    }
    s.proto = nh;
    if pos > cap_end {
        return Decoded::Ip(cut_chain(s, nh, pos, cap_end, ann_end));
    }
    let first_frag = s.fragment.is_some_and(|f| f.more);
    match transport(&mut s, data, pos, cap_end, ann_end - pos, first_frag) {
        Ok(()) => Decoded::Ip(s),
        Err(r) => skip(r),
    }
}

/// Summary for an IPv6 packet whose header chain was cut by the snaplen at `pos`.
fn cut_chain(
    mut s: PacketSummary,
    nh: u8,
    pos: usize,
    cap_end: usize,
    ann_end: usize,
) -> PacketSummary {
    s.proto = nh;
    s.truncated = true;
    s.payload_len = sat32(ann_end.saturating_sub(pos));
    s.payload_offset = sat32(pos.min(cap_end));
    s.payload_captured = 0;
    s
}

/// Decodes the transport header at `off`. `cap_end` is where the captured bytes of
/// the IP packet end, `announced` the L4 length according to the IP header.
/// `fragment` is true for a first fragment (the L4 header may be incomplete).
#[inline(always)]
fn transport(
    s: &mut PacketSummary,
    data: &[u8],
    off: usize,
    cap_end: usize,
    mut announced: usize,
    fragment: bool,
) -> Result<(), SkipReason> {
    let seg = data.get(off..cap_end).unwrap_or(&[]);
    let captured = seg.len();
    let hdr_len = match s.proto {
        PROTO_TCP => {
            if announced < 20 && !fragment {
                return Err(SkipReason::Malformed);
            }
            let mut hdr_len = 20;
            if let Some(&b12) = seg.get(12) {
                let doff = usize::from(b12 >> 4);
                if doff < 5 {
                    if !fragment {
                        return Err(SkipReason::Malformed);
                    }
                    // A first fragment is judged after reassembly; keep the
                    // fragment (and its ports) for the flow table.
                } else {
                    hdr_len = doff * 4;
                }
                if hdr_len > announced && !fragment {
                    return Err(SkipReason::Malformed);
                }
            }
            if let (Some(sp), Some(dp)) = (be16(seg, 0), be16(seg, 2)) {
                s.src_port = sp;
                s.dst_port = dp;
                s.has_ports = true;
            }
            s.tcp_seq = be32(seg, 4).unwrap_or(0);
            s.tcp_ack = be32(seg, 8).unwrap_or(0);
            s.tcp_flags = seg.get(13).copied().unwrap_or(0);
            s.tcp_window = be16(seg, 14).unwrap_or(0);
            hdr_len
        }
        PROTO_UDP => {
            if announced < 8 && !fragment {
                return Err(SkipReason::Malformed);
            }
            if let (Some(sp), Some(dp)) = (be16(seg, 0), be16(seg, 2)) {
                s.src_port = sp;
                s.dst_port = dp;
                s.has_ports = true;
            }
            if !fragment {
                if let Some(ulen) = be16(seg, 4) {
                    let ulen = usize::from(ulen);
                    if (8..=announced).contains(&ulen) {
                        announced = ulen;
                    }
                }
            }
            8
        }
        PROTO_ICMP | PROTO_ICMPV6 => {
            if announced < 8 && !fragment {
                return Err(SkipReason::Malformed);
            }
            if let [t, c, ..] = seg {
                s.src_port = u16::from(*t);
                s.dst_port = u16::from(*c);
                s.has_ports = true;
            }
            8
        }
        PROTO_SCTP => {
            if announced < 12 && !fragment {
                return Err(SkipReason::Malformed);
            }
            if let (Some(sp), Some(dp)) = (be16(seg, 0), be16(seg, 2)) {
                s.src_port = sp;
                s.dst_port = dp;
                s.has_ports = true;
            }
            12
        }
        _ => 0,
    };
    s.payload_len = sat32(announced.saturating_sub(hdr_len));
    s.payload_offset = sat32((off + hdr_len).min(cap_end));
    s.payload_captured = sat32(captured.min(announced).saturating_sub(hdr_len));
    Ok(())
}
