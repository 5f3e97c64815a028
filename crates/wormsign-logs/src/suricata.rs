//! Suricata's `eve.json` `flow` and `dns` events as flow records and DNS messages.
//!
//! Field meanings follow Suricata's EVE JSON format documentation (`output/eve/
//! eve-json-format.rst`) for the flow event and the DNS event's versions 1 (one event
//! per answer record), 2 (`answers` list or `grouped`) and 3 (`queries` list, types
//! `request`/`response`).

use std::net::IpAddr;

use wormsign_decode::dns::{DnsAnswer, DnsMessage, DnsRow};
use wormsign_flow::{
    tcp_flags, ConnState, DirCounters, EndReason, FlowRecord, FlowSource, History, LogKind,
};

use crate::fields::Fields;
use crate::time::parse_time;
use crate::zeek::{dns_name, MAX_DNS_TEXT};
use crate::{DnsEnds, LogRows, Malformed};

/// What an event was.
pub(crate) enum Event {
    Flow,
    Dns,
    Other,
}

/// One event's rows. Each row takes the next ordinal.
pub(crate) fn event_rows(
    f: &impl Fields,
    ordinal: &mut u64,
    out: &mut LogRows,
) -> Result<Event, Malformed> {
    match f.text("event_type").as_deref() {
        Some("flow") => {
            out.flows.push(flow_record(f, *ordinal)?);
            *ordinal += 1;
            Ok(Event::Flow)
        }
        Some("dns") => {
            dns_rows(f, ordinal, &mut out.dns)?;
            Ok(Event::Dns)
        }
        Some(_) => Ok(Event::Other),
        None => Err(Malformed::Missing("event_type")),
    }
}

fn required_ip(f: &impl Fields, name: &'static str) -> Result<IpAddr, Malformed> {
    f.text(name)
        .ok_or(Malformed::Missing(name))?
        .parse()
        .map_err(|_| Malformed::Invalid(name))
}

/// The IP protocol number of Suricata's `proto` (a name, or a number for the rest).
fn ip_proto(f: &impl Fields) -> Result<u8, Malformed> {
    let proto = f.text("proto").ok_or(Malformed::Missing("proto"))?;
    match proto.as_ref() {
        "TCP" => Ok(6),
        "UDP" => Ok(17),
        "ICMP" => Ok(1),
        "IPv6-ICMP" | "ICMPv6" => Ok(58),
        "SCTP" => Ok(132),
        // The other IANA keywords Suricata writes for flows it tracks.
        "IGMP" => Ok(2),
        "IPIP" | "IPv4" => Ok(4),
        "IPv6" => Ok(41),
        "GRE" => Ok(47),
        "ESP" => Ok(50),
        "AH" => Ok(51),
        "OSPF" | "OSPFIGP" => Ok(89),
        "PIM" => Ok(103),
        "VRRP" => Ok(112),
        other => other.parse().map_err(|_| Malformed::Invalid("proto")),
    }
}

/// A direction's TCP flags, from Suricata's two hex digits.
fn hex_flags(f: &impl Fields, name: &str) -> u8 {
    f.text(name)
        .and_then(|t| u8::from_str_radix(&t, 16).ok())
        .unwrap_or(0)
}

/// Zeek's `conn_state` from the flags each side sent, which Suricata logs for both:
/// the same reading Zeek makes of the endpoints' states at the end. With no flags
/// logged (stream tracking off, or a flow that timed out before any), TCP is `OTH`.
fn conn_state(proto: u8, to_server: u8, to_client: u8, replied: bool) -> ConnState {
    use tcp_flags::{ACK, FIN, RST, SYN};
    match proto {
        6 if to_server & SYN == 0 => ConnState::OTH,
        6 if to_client & SYN == 0 || to_client & ACK == 0 => match () {
            _ if to_client & RST != 0 => ConnState::REJ,
            _ if to_server & RST != 0 => ConnState::RSTOS0,
            _ if to_server & FIN != 0 => ConnState::SH,
            _ if !replied => ConnState::S0,
            _ => ConnState::OTH,
        },
        6 => match () {
            _ if to_server & RST != 0 => ConnState::RSTO,
            _ if to_client & RST != 0 => ConnState::RSTR,
            _ if to_server & FIN != 0 && to_client & FIN != 0 => ConnState::SF,
            _ if to_server & FIN != 0 => ConnState::S2,
            _ if to_client & FIN != 0 => ConnState::S3,
            _ => ConnState::S1,
        },
        17 if replied => ConnState::SF,
        17 => ConnState::S0,
        _ => ConnState::OTH,
    }
}

/// A `flow` event as a flow record. Suricata's `bytes_*` count whole packets as
/// captured (link header included): they become `*_ip_bytes`; payload bytes are not
/// logged and stay 0.
fn flow_record(f: &impl Fields, ordinal: u64) -> Result<FlowRecord, Malformed> {
    let proto = ip_proto(f)?;
    let orig_addr = required_ip(f, "src_ip")?;
    let resp_addr = required_ip(f, "dest_ip")?;
    let (orig_port, resp_port) = if matches!(proto, 1 | 58) {
        (f.number("icmp_type"), f.number("icmp_code"))
    } else {
        (f.number("src_port"), f.number("dest_port"))
    };
    let (orig_port, resp_port) = (orig_port.unwrap_or(0), resp_port.unwrap_or(0));
    let when = |name: &'static str| {
        f.text(name)
            .or_else(|| f.text("timestamp"))
            .ok_or(Malformed::Missing(name))
            .and_then(|t| parse_time(&t).ok_or(Malformed::Invalid(name)))
    };
    let ts_first = when("flow.start")?;
    let ts_last = when("flow.end")?.max(ts_first);
    let (to_server, to_client) = (
        hex_flags(f, "tcp.tcp_flags_ts"),
        hex_flags(f, "tcp.tcp_flags_tc"),
    );
    let direction = |[packets, bytes]: [&str; 2], flags: u8| DirCounters {
        packets: f.number(packets).unwrap_or(0),
        ip_bytes: f.number(bytes).unwrap_or(0),
        payload_bytes: 0,
        tcp_flags: flags,
    };
    let (orig, resp) = (
        direction(["flow.pkts_toserver", "flow.bytes_toserver"], to_server),
        direction(["flow.pkts_toclient", "flow.bytes_toclient"], to_client),
    );
    Ok(FlowRecord {
        first_packet: ordinal,
        ts_first,
        ts_last,
        orig_addr,
        orig_port,
        resp_addr,
        resp_port,
        has_ports: matches!(proto, 1 | 6 | 17 | 58 | 132),
        proto,
        vlan: f.items("vlan").first().and_then(|v| v.parse().ok()),
        tunnel: None,
        conn_state: conn_state(proto, to_server, to_client, resp.packets > 0),
        orig,
        resp,
        history: History::default(),
        end_reason: EndReason::Exported,
        source: FlowSource::Log(LogKind::Suricata),
    })
}

/// A record type's number from its name (Suricata writes names; a name it has none for
/// is written as the number).
fn rr_type(name: &str) -> u16 {
    const TYPES: [(&str, u16); 16] = [
        ("A", 1),
        ("NS", 2),
        ("CNAME", 5),
        ("SOA", 6),
        ("NULL", 10),
        ("PTR", 12),
        ("HINFO", 13),
        ("MX", 15),
        ("TXT", 16),
        ("AAAA", 28),
        ("SRV", 33),
        ("NAPTR", 35),
        ("DS", 43),
        ("DNSKEY", 48),
        ("HTTPS", 65),
        ("ANY", 255),
    ];
    TYPES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or_else(|| name.parse().unwrap_or(0), |(_, t)| *t)
}

/// A response code's number from Suricata's name; a name without a number here (the
/// extended codes, BADVERS and on) is stored as 255, which the table names `other`.
fn rcode(name: &str) -> u8 {
    (0..=10u8)
        .find(|&c| wormsign_decode::dns::rcode_name(c) == name)
        .unwrap_or_else(|| name.parse().unwrap_or(u8::MAX))
}

/// A `dns` event as DNS messages: a query (`query`, `request`) or a response
/// (`answer`, `response`). The client is the side not on port 53 when one is.
fn dns_rows(f: &impl Fields, ordinal: &mut u64, out: &mut Vec<DnsRow>) -> Result<(), Malformed> {
    let kind = f.text("dns.type").ok_or(Malformed::Missing("dns.type"))?;
    let is_response = match kind.as_ref() {
        "query" | "request" => false,
        "answer" | "response" => true,
        _ => return Err(Malformed::Invalid("dns.type")),
    };
    let ts_ns = parse_time(&f.text("timestamp").ok_or(Malformed::Missing("timestamp"))?)
        .ok_or(Malformed::Invalid("timestamp"))?;
    let src = (
        required_ip(f, "src_ip")?,
        f.number("src_port").unwrap_or(0u16),
    );
    let dst = (
        required_ip(f, "dest_ip")?,
        f.number("dest_port").unwrap_or(0u16),
    );
    let ((client, client_port), (server, server_port)) = if src.1 == 53 && dst.1 != 53 {
        (dst, src)
    } else {
        (src, dst)
    };
    // v3 puts the question in `queries`; v1 and v2 at the top.
    let qname = f
        .text("dns.queries.0.rrname")
        .or_else(|| f.text("dns.rrname"))
        .map(|n| dns_name(&n))
        .transpose()?;
    let qtype = f
        .text("dns.queries.0.rrtype")
        .or_else(|| f.text("dns.rrtype"))
        .map_or(0, |t| rr_type(&t));
    let message = DnsMessage {
        id: f.number("dns.id").unwrap_or(0),
        is_response,
        opcode: f.number("dns.opcode").unwrap_or(0),
        rcode: f.text("dns.rcode").map_or(0, |r| rcode(&r)),
        authoritative: f.flag("dns.aa"),
        truncated: f.flag("dns.tc"),
        recursion_desired: f.flag("dns.rd"),
        recursion_available: f.flag("dns.ra"),
        qname,
        qtype,
        qclass: 1,
        answers: if is_response { answers(f) } else { Vec::new() },
    };
    let ends = DnsEnds {
        client,
        client_port,
        server,
        server_port,
        tcp: ip_proto(f)? == 6,
    };
    out.push(ends.row(ts_ns, ordinal, message));
    Ok(())
}

/// A response's answers: the `answers` list (v2, v3), the `grouped` map (v2 with
/// grouped formatting: no TTLs), or the event's own record (v1; for a v1 answer event,
/// `rrname` and `rrtype` are the record's, which in a CNAME chain are not the
/// question's, and [`dns_rows`] takes them as the question). Records whose data is not
/// text (SOA, SRV and others are objects) and text over [`MAX_DNS_TEXT`] are left out;
/// at most `MAX_ANSWERS`.
fn answers(f: &impl Fields) -> Vec<DnsAnswer> {
    let answer = |prefix: &str| {
        let field = |key: &str| f.text(&format!("{prefix}{key}"));
        let data = field("rdata").filter(|d| d.len() <= MAX_DNS_TEXT)?;
        Some(DnsAnswer {
            rtype: field("rrtype").map_or(0, |t| rr_type(&t)),
            ttl: field("ttl").and_then(|t| t.parse().ok()).unwrap_or(0),
            data: data.into_owned(),
        })
    };
    // Every record of the list, as far as it goes (a record has at least a type).
    let listed: Vec<DnsAnswer> = (0..wormsign_decode::dns::MAX_ANSWERS)
        .map_while(|i| {
            let prefix = format!("dns.answers.{i}.");
            f.text(&format!("{prefix}rrtype")).map(|_| prefix)
        })
        .filter_map(|prefix| answer(&prefix))
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    let grouped: Vec<DnsAnswer> = ["A", "AAAA", "CNAME", "PTR", "MX", "NS", "TXT", "SRV"]
        .iter()
        .flat_map(|t| {
            f.items(&format!("dns.grouped.{t}"))
                .into_iter()
                .filter(|data| data.len() <= MAX_DNS_TEXT)
                .map(|data| DnsAnswer {
                    rtype: rr_type(t),
                    ttl: 0,
                    data: data.into_owned(),
                })
        })
        .take(wormsign_decode::dns::MAX_ANSWERS)
        .collect();
    if !grouped.is_empty() {
        return grouped;
    }
    answer("dns.").into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tcp_flags::{ACK, FIN, PSH, RST, SYN};

    #[test]
    fn connection_states_from_both_sides_flags() {
        let state = |ts, tc, replied| conn_state(6, ts, tc, replied);
        assert_eq!(state(SYN, 0, false), ConnState::S0);
        assert_eq!(state(SYN, RST | ACK, true), ConnState::REJ);
        assert_eq!(state(SYN | RST, 0, false), ConnState::RSTOS0);
        let both = SYN | ACK | PSH | FIN;
        assert_eq!(state(both, both, true), ConnState::SF);
        assert_eq!(state(SYN | ACK | RST, SYN | ACK, true), ConnState::RSTO);
        assert_eq!(state(SYN | ACK, SYN | ACK | RST, true), ConnState::RSTR);
        assert_eq!(state(SYN | ACK, SYN | ACK, true), ConnState::S1);
        assert_eq!(state(0, 0, true), ConnState::OTH);
        assert_eq!(conn_state(17, 0, 0, false), ConnState::S0);
        assert_eq!(conn_state(17, 0, 0, true), ConnState::SF);
    }

    #[test]
    fn record_types_and_rcodes_by_name() {
        assert_eq!(rr_type("AAAA"), 28);
        assert_eq!(rr_type("99"), 99);
        assert_eq!(rcode("NXDOMAIN"), 3);
    }
}
