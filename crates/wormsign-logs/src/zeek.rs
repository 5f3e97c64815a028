//! Zeek's `conn.log` and `dns.log` as flow records and DNS messages.
//!
//! Field meanings follow Zeek's `Conn::Info` and `DNS::Info` records
//! (`base/protocols/conn/main.zeek`, `base/protocols/dns/main.zeek`).

use std::borrow::Cow;
use std::net::IpAddr;

use wormsign_decode::dns::{DnsAnswer, DnsMessage, DnsRow};
use wormsign_flow::{
    tcp_flags, ConnState, DirCounters, EndReason, FlowRecord, FlowSource, History, LogKind,
};

use crate::fields::{unescape, Fields, TsvHeader};
use crate::time::{parse_decimal_seconds, parse_time};
use crate::{DnsEnds, Malformed};

/// Which Zeek log a line belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ZeekLog {
    Conn,
    Dns,
    /// Any other log (`http`, `files`, …): counted and skipped.
    Other,
}

impl ZeekLog {
    /// From `#path` (TSV) or `_path` (JSON streaming).
    pub(crate) fn from_path(path: &str) -> ZeekLog {
        match path {
            "conn" => ZeekLog::Conn,
            "dns" => ZeekLog::Dns,
            _ => ZeekLog::Other,
        }
    }

    /// From the field names, when no path says it: the fields only each log has.
    pub(crate) fn from_names(has: impl Fn(&str) -> bool) -> ZeekLog {
        if has("conn_state") || has("history") && has("orig_ip_bytes") {
            ZeekLog::Conn
        } else if has("query") && has("trans_id") || has("qtype_name") {
            ZeekLog::Dns
        } else {
            ZeekLog::Other
        }
    }
}

/// What the TSV header lines so far declared.
#[derive(Debug, Default)]
pub(crate) struct TsvState {
    pub(crate) header: TsvHeader,
    path: Option<String>,
    pub(crate) log: Option<ZeekLog>,
}

impl TsvState {
    /// Takes a `#` line. Returns false if it is not a header line Zeek writes.
    pub(crate) fn directive(&mut self, line: &str) -> bool {
        if let Some(sep) = line.strip_prefix("#separator ") {
            let sep = unescape(sep.trim());
            if sep.is_empty() {
                return false;
            }
            self.header.separator = sep.into_owned();
            return true;
        }
        let sep = self.header.separator.clone();
        let (key, value) = line.split_once(sep.as_str()).unwrap_or((line, ""));
        match key {
            "#set_separator" => self.header.set_separator = unescape(value).into_owned(),
            "#empty_field" => self.header.empty_field = value.to_string(),
            "#unset_field" => self.header.unset_field = value.to_string(),
            "#path" => {
                self.path = Some(value.to_string());
                self.log = Some(ZeekLog::from_path(value));
            }
            "#fields" => self.fields(value.split(sep.as_str())),
            "#types" | "#open" | "#close" => {}
            _ => return false,
        }
        true
    }

    /// Takes the column names (a `#fields` line, or the first line of `zeek-cut -c`).
    pub(crate) fn fields<'a>(&mut self, names: impl Iterator<Item = &'a str>) {
        self.header.columns = names.enumerate().map(|(i, n)| (n.to_string(), i)).collect();
        if self.path.is_none() {
            let columns = &self.header.columns;
            self.log = Some(ZeekLog::from_names(|n| columns.contains_key(n)));
        }
    }
}

fn required<'a>(f: &'a impl Fields, name: &'static str) -> Result<Cow<'a, str>, Malformed> {
    f.text(name).ok_or(Malformed::Missing(name))
}

fn parsed<T: std::str::FromStr>(f: &impl Fields, name: &'static str) -> Result<T, Malformed> {
    required(f, name)?
        .parse()
        .map_err(|_| Malformed::Invalid(name))
}

fn time(f: &impl Fields, name: &'static str) -> Result<i64, Malformed> {
    parse_time(&required(f, name)?).ok_or(Malformed::Invalid(name))
}

/// An `interval` field (seconds) as ns; 0 when unset.
fn interval(f: &impl Fields, name: &'static str) -> Result<i64, Malformed> {
    f.text(name).map_or(Ok(0), |t| {
        parse_decimal_seconds(&t).ok_or(Malformed::Invalid(name))
    })
}

/// The connection's IP protocol, from Zeek's transport name.
fn ip_proto(proto: &str, orig: IpAddr) -> Result<u8, Malformed> {
    match proto {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "icmp" if orig.is_ipv6() => Ok(58),
        "icmp" => Ok(1),
        _ => Err(Malformed::Invalid("proto")),
    }
}

/// The TCP flags a direction's history letters show it sent (upper case: the
/// originator, lower case: the responder). Zeek's history is all a conn.log says of
/// flags, so only these are known: S (SYN), H (SYN-ACK), A (ACK), F (FIN), R (RST),
/// I (SYN+RST), Q (SYN+FIN).
fn flags_from_history(history: &str, originator: bool) -> u8 {
    history
        .bytes()
        .filter(|b| b.is_ascii_uppercase() == originator)
        .map(|b| match b.to_ascii_uppercase() {
            b'S' => tcp_flags::SYN,
            b'H' => tcp_flags::SYN | tcp_flags::ACK,
            b'A' => tcp_flags::ACK,
            b'F' => tcp_flags::FIN,
            b'R' => tcp_flags::RST,
            b'I' => tcp_flags::SYN | tcp_flags::RST,
            b'Q' => tcp_flags::SYN | tcp_flags::FIN,
            _ => 0,
        })
        .fold(0, |a, b| a | b)
}

/// One `conn.log` line as a flow record; `ordinal` becomes its `first_packet`.
pub(crate) fn conn_record(f: &impl Fields, ordinal: u64) -> Result<FlowRecord, Malformed> {
    let ts_first = time(f, "ts")?;
    let orig_addr: IpAddr = parsed(f, "id.orig_h")?;
    let resp_addr: IpAddr = parsed(f, "id.resp_h")?;
    let proto = ip_proto(&required(f, "proto")?, orig_addr)?;
    let history = f.text("history").unwrap_or_default();
    // The counter fields of each side: packets, IP bytes, payload bytes.
    let direction = |[packets, ip_bytes, payload_bytes]: [&str; 3], originator: bool| DirCounters {
        packets: f.number(packets).unwrap_or(0),
        ip_bytes: f.number(ip_bytes).unwrap_or(0),
        payload_bytes: f.number(payload_bytes).unwrap_or(0),
        tcp_flags: if proto == 6 {
            flags_from_history(&history, originator)
        } else {
            0
        },
    };
    let orig_port: u16 = parsed(f, "id.orig_p")?;
    let resp_port: u16 = parsed(f, "id.resp_p")?;
    Ok(FlowRecord {
        first_packet: ordinal,
        ts_first,
        ts_last: ts_first.saturating_add(interval(f, "duration")?.max(0)),
        orig_addr,
        orig_port,
        resp_addr,
        resp_port,
        has_ports: true,
        proto,
        vlan: f.number("vlan"),
        tunnel: None,
        orig: direction(["orig_pkts", "orig_ip_bytes", "orig_bytes"], true),
        resp: direction(["resp_pkts", "resp_ip_bytes", "resp_bytes"], false),
        conn_state: f
            .text("conn_state")
            .and_then(|s| ConnState::from_name(&s))
            .unwrap_or(ConnState::OTH),
        history: History::from_letters(&history),
        end_reason: EndReason::Exported,
        source: FlowSource::Log(LogKind::Zeek),
    })
}

/// Longest DNS name or answer text kept: a name is at most 255 bytes on the wire, about
/// 1 KiB with every byte escaped. Longer text is not DNS and is refused, so one line
/// cannot make a batch of rows big.
pub(crate) const MAX_DNS_TEXT: usize = 1024;

/// A name as the DNS table stores it: ASCII lower case, no trailing dot.
pub(crate) fn dns_name(name: &str) -> Result<String, Malformed> {
    if name.len() > MAX_DNS_TEXT {
        return Err(Malformed::Invalid("DNS name"));
    }
    Ok(name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase())
}

/// The record type of an answer Zeek wrote as text only: addresses are A or AAAA; any
/// other answer to an A or AAAA question is a CNAME on the way; otherwise the
/// question's type.
fn answer_type(data: &str, qtype: u16) -> u16 {
    const A: u16 = 1;
    const CNAME: u16 = 5;
    const AAAA: u16 = 28;
    match data.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => A,
        Ok(IpAddr::V6(_)) => AAAA,
        Err(_) if qtype == A || qtype == AAAA => CNAME,
        Err(_) => qtype,
    }
}

/// One `dns.log` line as the DNS messages it stands for: the query at `ts`, and the
/// reply at `ts + rtt` when the line has an rcode. Zeek does not say whether it saw the
/// query of a reply-only exchange (and logs before Zeek 2.2 have no `rtt` at all), so a
/// query is always counted: what detection reads of DNS (names asked, addresses
/// answered) is the same either way. Each message takes the next ordinal.
pub(crate) fn dns_rows(
    f: &impl Fields,
    ordinal: &mut u64,
    out: &mut Vec<DnsRow>,
) -> Result<(), Malformed> {
    let ts = time(f, "ts")?;
    let ends = DnsEnds {
        client: parsed(f, "id.orig_h")?,
        client_port: parsed(f, "id.orig_p")?,
        server: parsed(f, "id.resp_h")?,
        server_port: parsed(f, "id.resp_p")?,
        tcp: required(f, "proto")? == "tcp",
    };
    let qtype = f.number("qtype").unwrap_or(0);
    let query = DnsMessage {
        id: f.number("trans_id").unwrap_or(0),
        is_response: false,
        opcode: 0,
        rcode: 0,
        authoritative: false,
        truncated: f.flag("TC"),
        recursion_desired: f.flag("RD"),
        recursion_available: false,
        qname: f.text("query").map(|q| dns_name(&q)).transpose()?,
        qtype,
        qclass: f.number("qclass").unwrap_or(0),
        answers: Vec::new(),
    };
    let rcode = f.number::<u8>("rcode");
    let reply_at = ts.saturating_add(interval(f, "rtt")?);
    out.push(ends.row(ts, ordinal, query.clone()));
    if let Some(rcode) = rcode {
        let ttls = f.items("TTLs");
        let answers = f
            .items("answers")
            .iter()
            .zip(ttls.iter().map(Some).chain(std::iter::repeat(None)))
            .filter(|(data, _)| data.len() <= MAX_DNS_TEXT)
            .take(wormsign_decode::dns::MAX_ANSWERS)
            .map(|(data, ttl)| DnsAnswer {
                rtype: answer_type(data, qtype),
                ttl: ttl.and_then(|t| parse_decimal_seconds(t)).map_or(0, |ns| {
                    u32::try_from(ns / 1_000_000_000).unwrap_or(u32::MAX)
                }),
                data: data.to_string(),
            })
            .collect();
        let reply = DnsMessage {
            is_response: true,
            rcode,
            authoritative: f.flag("AA"),
            recursion_available: f.flag("RA"),
            answers,
            ..query
        };
        out.push(ends.row(reply_at, ordinal, reply));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_letters_give_each_side_its_flags() {
        use tcp_flags::{ACK, FIN, RST, SYN};
        assert_eq!(flags_from_history("ShADadFf", true), SYN | ACK | FIN);
        assert_eq!(flags_from_history("ShADadFf", false), SYN | ACK | FIN);
        assert_eq!(flags_from_history("Sr", true), SYN);
        assert_eq!(flags_from_history("Sr", false), RST);
        assert_eq!(flags_from_history("", true), 0);
    }

    #[test]
    fn answer_types_from_text() {
        assert_eq!(answer_type("54.245.228.191", 1), 1);
        assert_eq!(answer_type("2001:db8::1", 28), 28);
        assert_eq!(answer_type("guyspy.com", 1), 5);
        assert_eq!(answer_type("host.example", 12), 12);
    }

    #[test]
    fn names_are_stored_lower_case_without_the_root_dot() {
        assert_eq!(dns_name("WWW.Example.COM.").unwrap(), "www.example.com");
        assert!(dns_name(&"a".repeat(2000)).is_err());
    }
}
