//! DNS messages and ARP packets reduced to what detection reads: the rows of
//! `dns.parquet` and `arp.parquet` read back, owned and small.

use std::net::{IpAddr, Ipv4Addr};

/// One DNS message, owned and stripped to what detection needs, as read back from
/// `dns.parquet` (`client`, `server`, `message.qname`, `message.is_response`, and the `rdata` of A/AAAA
/// and PTR answers).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DnsEvent {
    /// Capture time, ns since the Unix epoch.
    pub ts_ns: i64,
    /// The side that asks (a query's sender, a response's receiver).
    pub client: IpAddr,
    /// The side that answers.
    pub server: IpAddr,
    /// First question's name, lower case, no trailing dot.
    pub qname: Option<String>,
    /// The QR bit.
    pub is_response: bool,
    /// A/AAAA answers as address strings and PTR answers as names (other record types
    /// are left out).
    pub answers: Vec<String>,
}

/// One ARP packet as detection reads it back from `arp.parquet` (`sender_ip`, `target_ip`,
/// `op == request`, `sender_mac`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArpEvent {
    /// Capture time, ns since the Unix epoch.
    pub ts_ns: i64,
    /// Sender protocol address.
    pub sender: Ipv4Addr,
    /// Target protocol address (the address asked for in a request).
    pub target: Ipv4Addr,
    /// A who-has request (op 1).
    pub is_request: bool,
    /// Sender hardware address: the interface that claims `sender` (host identity).
    pub sender_mac: [u8; 6],
}

/// One naming fact (DHCP, NetBIOS name service) as detection reads it back from
/// `names.parquet`: `name` and `mac` belong to `address` from `ts_ns` on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NameEvent {
    /// Capture time, ns since the Unix epoch.
    pub ts_ns: i64,
    /// `dhcp` or `nbns`.
    pub protocol: String,
    /// The message (`ack`, `request`, `registration`, `node_status`, …).
    pub message: String,
    /// The address named.
    pub address: Option<Ipv4Addr>,
    /// The MAC address (DHCP client hardware address, NBNS unit id).
    pub mac: Option<[u8; 6]>,
    /// The host name or NetBIOS name.
    pub name: Option<String>,
    /// The NetBIOS name type (its 16th byte).
    pub suffix: Option<u8>,
}
