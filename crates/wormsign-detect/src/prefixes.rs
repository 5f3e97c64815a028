//! Longest-prefix matching of addresses against many networks, in one hash lookup per
//! prefix length in use: a zones file maps every subnet of a site, and every worm-service
//! flow's two addresses are looked up.

use std::net::IpAddr;

use hashbrown::HashMap;

use crate::config::Cidr;

/// Networks, each with a value. An address matches the network with the longest prefix
/// that contains it; a network given twice keeps its smallest value.
#[derive(Clone, Debug, Default)]
pub(crate) struct PrefixTable {
    values: HashMap<Cidr, u16>,
    /// The prefix lengths in use, longest first: IPv4 networks', IPv6 networks'.
    v4_lengths: Vec<u8>,
    v6_lengths: Vec<u8>,
}

impl PrefixTable {
    /// Adds `network` with `value`.
    pub fn insert(&mut self, network: Cidr, value: u16) {
        let kept = self.values.entry(network).or_insert(value);
        *kept = (*kept).min(value);
        let lengths = match network {
            n if n.is_ipv4() => &mut self.v4_lengths,
            _ => &mut self.v6_lengths,
        };
        if let Err(at) = lengths.binary_search_by(|l| network.prefix().cmp(l)) {
            lengths.insert(at, network.prefix());
        }
    }

    /// The value of the longest network that contains `ip`, if any. IPv4-mapped IPv6
    /// addresses are not unmapped (as [`Cidr::contains`]).
    pub fn longest_match(&self, ip: IpAddr) -> Option<u16> {
        let lengths = match ip {
            IpAddr::V4(_) => &self.v4_lengths,
            IpAddr::V6(_) => &self.v6_lengths,
        };
        lengths
            .iter()
            .filter_map(|&len| Cidr::new(ip, len))
            .find_map(|network| self.values.get(&network).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(networks: &[(&str, u16)]) -> PrefixTable {
        let mut t = PrefixTable::default();
        for &(n, v) in networks {
            t.insert(n.parse().unwrap(), v);
        }
        t
    }

    /// What matching every network in turn gives: the longest prefix, then the smallest
    /// value (the zone check's rule before this table).
    fn scanned(networks: &[(&str, u16)], ip: IpAddr) -> Option<u16> {
        networks
            .iter()
            .map(|&(n, v)| (n.parse::<Cidr>().unwrap(), v))
            .filter(|(n, _)| n.contains(ip))
            .max_by_key(|&(n, v)| (n.prefix(), std::cmp::Reverse(v)))
            .map(|(_, v)| v)
    }

    #[test]
    fn the_longest_prefix_wins_and_a_network_given_twice_keeps_its_smallest_value() {
        let t = table(&[
            ("10.0.0.0/8", 0),
            ("10.1.0.0/16", 1),
            ("10.1.2.0/24", 3),
            ("10.1.2.0/24", 2),
        ]);
        let at = |s: &str| t.longest_match(s.parse().unwrap());
        assert_eq!(at("10.9.9.9"), Some(0));
        assert_eq!(at("10.1.9.9"), Some(1));
        assert_eq!(at("10.1.2.3"), Some(2));
        assert_eq!(at("11.0.0.1"), None);
        assert_eq!(at("::ffff:10.1.2.3"), None);
    }

    /// The table answers what matching every network in turn answers, for networks of
    /// both families, nested, repeated, host routes and default routes, given in any
    /// order.
    #[test]
    fn the_table_agrees_with_matching_every_network() {
        let networks = [
            ("10.0.0.0/8", 4),
            ("10.1.0.0/16", 2),
            ("10.1.2.0/24", 7),
            ("10.1.2.0/24", 1),
            ("10.1.2.3", 5),
            ("0.0.0.0/0", 9),
            ("192.168.0.0/16", 3),
            ("fd00::/8", 6),
            ("fd00:1::/32", 0),
            ("::/0", 8),
            ("::ffff:10.0.0.0/104", 10),
        ];
        let addresses = [
            "10.1.2.3",
            "10.1.2.4",
            "10.1.3.1",
            "10.2.0.1",
            "8.8.8.8",
            "192.168.5.5",
            "fd00:1::1",
            "fd00:2::1",
            "2001:db8::1",
            "::ffff:10.1.2.3",
        ];
        let orders = [networks.to_vec(), networks.iter().rev().copied().collect()];
        for n in 0..=networks.len() {
            for order in &orders {
                let given = &order[..n];
                let t = table(given);
                for a in addresses {
                    let ip: IpAddr = a.parse().unwrap();
                    assert_eq!(t.longest_match(ip), scanned(given, ip), "{a} in {given:?}");
                }
            }
        }
    }
}
