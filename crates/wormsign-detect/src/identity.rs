//! Host identity: what the traffic says a host is, so responders can find the machine by
//! name and interface rather than by an address DHCP may since have given away.
//!
//! - MAC address: the sender hardware address of its ARP packets, the client of a DHCP
//!   ACK giving it the address, the unit id of an NBNS node status. The MAC that held the
//!   address at the host's infection (or first seen, for other hosts) is the host's; any
//!   other MAC claiming the address means its owner changed (a DHCP lease moved, or
//!   something spoofed it), and when.
//! - Names: the workstation an NTLMSSP login names and the host name of a TDS LOGIN7 (the
//!   client's own name, as Windows and SQL clients send it), the DHCP host name of the
//!   MAC the address was given to, the NetBIOS names registered for it, and the names
//!   reverse DNS lookups (PTR) answered for the address.
//! - Users: the accounts of successful logins from the host (NTLMSSP, TDS LOGIN7).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::{HashMap, HashSet};
use wormsign_inspect::{Fact, Outcome, Protocol};

use crate::config::ends_with_ignore_case;
use crate::model::{HostRow, NameEvent};
use crate::rules::Events;

/// Names and users listed per host.
const LISTED: usize = 8;

/// What identifies a host, where the traffic shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The MAC address that held the IP at the host's infection (other hosts: the first
    /// seen), `aa:bb:cc:dd:ee:ff`.
    pub mac: Option<String>,
    /// Other MAC addresses that claimed the IP during the capture, in order.
    pub other_macs: Vec<String>,
    /// When another MAC first claimed the IP (ns since the Unix epoch).
    pub owner_changed_at: Option<i64>,
    /// The best name: the first login's workstation name (NTLMSSP, TDS), else the first
    /// PTR answer.
    pub host_name: Option<String>,
    /// Every name seen, with where it came from: `WKS-7 (ntlmssp)`, `APP01 (tds login)`,
    /// `fs1.corp (dns ptr)`.
    pub names: Vec<String>,
    /// Accounts of successful logins from the host.
    pub users: Vec<String>,
}

/// Fills in the identity of every host from the run's ARP, DNS and session events.
pub(crate) fn identify(hosts: &mut [HostRow], events: &Events<'_>) {
    let wanted: HashSet<IpAddr> = hosts.iter().map(|h| h.ip).collect();
    let mut macs: HashMap<IpAddr, Vec<(i64, [u8; 6])>> = HashMap::new();
    for a in &events.arp {
        let ip = IpAddr::V4(a.sender);
        if a.sender_mac != [0; 6] && !a.sender.is_unspecified() && wanted.contains(&ip) {
            let seen = macs.entry(ip).or_default();
            if seen.last().map(|&(_, m)| m) != Some(a.sender_mac) {
                seen.push((a.ts_ns, a.sender_mac));
            }
        }
    }
    let mut names: HashMap<IpAddr, Vec<(String, &str)>> = HashMap::new();
    let mut users: HashMap<IpAddr, Vec<String>> = HashMap::new();
    for e in events
        .sessions
        .iter()
        .filter(|e| wanted.contains(&e.client))
    {
        if let Some(w) = e.workstation.as_deref().filter(|w| !w.is_empty()) {
            let from = match e.protocol {
                Protocol::Tds => "tds login",
                _ => "ntlmssp",
            };
            add(names.entry(e.client).or_default(), (w.to_string(), from));
        }
        if let (Fact::Login, Outcome::Success, Some(u)) = (e.fact, e.outcome, e.user.as_deref()) {
            add(users.entry(e.client).or_default(), u.to_string());
        }
    }
    from_names(&events.names, &wanted, &mut macs, &mut names);
    for e in events.dns.iter().filter(|e| e.is_response) {
        let Some(ip) = e.qname.as_deref().and_then(reverse_name_ip) else {
            continue;
        };
        if wanted.contains(&ip) {
            for name in e.answers.iter().filter(|a| a.parse::<IpAddr>().is_err()) {
                add(names.entry(ip).or_default(), (name.clone(), "dns ptr"));
            }
        }
    }
    for seen in macs.values_mut() {
        // ARP and DHCP give the owners in two lists: merge them in time order.
        seen.sort_by_key(|&(ts, _)| ts);
        seen.dedup_by_key(|&mut (_, mac)| mac);
    }
    for h in hosts.iter_mut() {
        let at = h.first_malicious_at.unwrap_or(i64::MIN);
        let named = names.remove(&h.ip).unwrap_or_default();
        h.identity = Identity {
            host_name: named.first().map(|(n, _)| n.clone()),
            names: named
                .iter()
                .map(|(n, from)| format!("{n} ({from})"))
                .collect(),
            users: users.remove(&h.ip).unwrap_or_default(),
            ..owner(macs.get(&h.ip).map_or(&[], Vec::as_slice), at)
        };
    }
}

/// What DHCP and the NetBIOS name service say of the wanted addresses: a DHCP ACK (or
/// INFORM) gives the address to a MAC, which names it with the host name its DHCP
/// messages carry; an NBNS registration, answer or node status names it with a unique
/// workstation or server name (suffix 00 or 20).
fn from_names<'e>(
    facts: &[&'e NameEvent],
    wanted: &HashSet<IpAddr>,
    macs: &mut HashMap<IpAddr, Vec<(i64, [u8; 6])>>,
    names: &mut HashMap<IpAddr, Vec<(String, &'e str)>>,
) {
    let dhcp_name: HashMap<[u8; 6], &str> = facts
        .iter()
        .filter(|f| f.protocol == "dhcp")
        .filter_map(|f| Some((f.mac?, f.name.as_deref()?)))
        .collect();
    for f in facts {
        let Some(ip) = f.address.map(IpAddr::V4).filter(|ip| wanted.contains(ip)) else {
            continue;
        };
        match (f.protocol.as_str(), f.message.as_str(), f.mac) {
            ("dhcp", "ack" | "inform", Some(mac)) => {
                macs.entry(ip).or_default().push((f.ts_ns, mac));
                if let Some(name) = f.name.as_deref().or(dhcp_name.get(&mac).copied()) {
                    add(names.entry(ip).or_default(), (name.to_string(), "dhcp"));
                }
            }
            ("nbns", _, mac) if matches!(f.suffix, Some(0x00 | 0x20)) => {
                if let Some(name) = &f.name {
                    add(names.entry(ip).or_default(), (name.clone(), "nbns"));
                }
                if let Some(mac) = mac {
                    macs.entry(ip).or_default().push((f.ts_ns, mac));
                }
            }
            _ => {}
        }
    }
}

/// Adds `item` to `list` unless it is there or the list is full; login names go before
/// DNS names, each in the order seen.
fn add<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if list.len() < LISTED && !list.contains(&item) {
        list.push(item);
    }
}

/// The MAC that held the address at `at` (the last one seen by then, else the first),
/// the others, and when the owner first changed.
fn owner(seen: &[(i64, [u8; 6])], at: i64) -> Identity {
    let Some(&(_, first)) = seen.first() else {
        return Identity::default();
    };
    let held = seen
        .iter()
        .rev()
        .find(|&&(ts, _)| ts <= at)
        .map_or(first, |&(_, m)| m);
    let mut others: Vec<String> = Vec::new();
    for &(_, m) in seen.iter().filter(|&&(_, m)| m != held) {
        add(&mut others, mac_text(m));
    }
    Identity {
        mac: Some(mac_text(held)),
        other_macs: others,
        owner_changed_at: seen.get(1).map(|&(ts, _)| ts),
        ..Identity::default()
    }
}

fn mac_text(m: [u8; 6]) -> String {
    let mut s = String::with_capacity(17);
    for (i, b) in m.iter().enumerate() {
        let _ = write!(s, "{}{b:02x}", if i > 0 { ":" } else { "" });
    }
    s
}

/// The address a reverse lookup asks about: `4.3.2.1.in-addr.arpa` is 1.2.3.4, and
/// `ip6.arpa` names hold 32 nibbles, least significant first. It allocates nothing: each
/// reverse-lookup response a decode worker keeps passes here ([`crate::KeptDns`]).
pub(crate) fn reverse_name_ip(qname: &str) -> Option<IpAddr> {
    let q = qname.trim_end_matches('.');
    // The suffixes are ASCII, so where they start is a character boundary.
    let before = |suffix: &str| {
        ends_with_ignore_case(q.as_bytes(), suffix.as_bytes()).then(|| &q[..q.len() - suffix.len()])
    };
    if let Some(v4) = before(".in-addr.arpa") {
        let mut labels = v4.split('.');
        let mut octet = || labels.next()?.parse::<u8>().ok();
        let (d, c, b, a) = (octet()?, octet()?, octet()?, octet()?);
        return labels
            .next()
            .is_none()
            .then(|| IpAddr::V4(Ipv4Addr::new(a, b, c, d)));
    }
    let (mut value, mut nibbles) = (0u128, 0u32);
    for label in before(".ip6.arpa")?.split('.') {
        let &[digit] = label.as_bytes() else {
            return None;
        };
        let nibble = char::from(digit).to_digit(16).filter(|_| nibbles < 32)?;
        value |= u128::from(nibble) << (4 * nibbles);
        nibbles += 1;
    }
    (nibbles == 32).then(|| IpAddr::V6(Ipv6Addr::from(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name_ip("8.1.164.10.in-addr.arpa"),
            Some("10.164.1.8".parse().unwrap())
        );
        assert_eq!(
            reverse_name_ip("8.1.164.10.IN-ADDR.ARPA."),
            Some("10.164.1.8".parse().unwrap())
        );
        assert_eq!(reverse_name_ip("1.164.10.in-addr.arpa"), None);
        assert_eq!(reverse_name_ip("x.1.164.10.in-addr.arpa"), None);
        let v6 = "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa";
        assert_eq!(
            reverse_name_ip(v6),
            Some("4321:0:1:2:3:4:567:89ab".parse().unwrap())
        );
        assert_eq!(reverse_name_ip("1.2.ip6.arpa"), None);
    }

    #[test]
    fn the_owner_at_infection_and_the_change() {
        let (a, b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let i = owner(&[(10, a), (50, b), (90, a)], 60);
        assert_eq!(i.mac.as_deref(), Some("02:00:00:00:00:02"));
        assert_eq!(i.other_macs, vec!["02:00:00:00:00:01".to_string()]);
        assert_eq!(i.owner_changed_at, Some(50));
        let before = owner(&[(10, a), (50, b)], 5);
        assert_eq!(before.mac.as_deref(), Some("02:00:00:00:00:01"));
        assert_eq!(owner(&[(10, a)], 5).owner_changed_at, None);
    }
}
