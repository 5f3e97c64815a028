//! Detection configuration: networks, services, thresholds, indicators.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

const NS_PER_SEC: i64 = 1_000_000_000;

/// The DriveLife / Lemon Duck indicator file shipped with the crate.
pub const DRIVELIFE_INDICATORS: &str = include_str!("../indicators/drivelife.txt");

/// An IPv4 or IPv6 network in CIDR notation, e.g. `10.0.0.0/8` or `fc00::/7`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a string is not a [`Cidr`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CidrError(pub String);

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a CIDR network: {:?}", self.0)
    }
}

impl std::error::Error for CidrError {}

impl Cidr {
    /// The network of `addr` with `prefix` leading bits (host bits are cleared).
    /// `None` if the prefix is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let addr = match addr {
            IpAddr::V4(a) if prefix <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) if prefix <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
            _ => return None,
        };
        Some(Cidr { addr, prefix })
    }

    /// A single address (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Cidr {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Cidr { addr, prefix }
    }

    /// Whether `ip` is inside the network. IPv4-mapped IPv6 addresses are not unmapped.
    pub fn contains(&self, ip: IpAddr) -> bool {
        Cidr::new(ip, self.prefix).is_some_and(|n| n.addr == self.addr)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `a.b.c.d/n`, `x::y/n`, or a bare address (a host network).
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let err = || CidrError(s.to_string());
        let s = s.trim();
        match s.split_once('/') {
            Some((a, p)) => {
                let addr: IpAddr = a.parse().map_err(|_| err())?;
                let prefix: u8 = p.parse().map_err(|_| err())?;
                Cidr::new(addr, prefix).ok_or_else(err)
            }
            None => s.parse().map(Cidr::host).map_err(|_| err()),
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A network service worms spread over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Short name used in alerts, e.g. `smb`.
    pub name: String,
    /// Responder port.
    pub port: u16,
    /// IP protocol: 6 TCP, 17 UDP.
    pub proto: u8,
    /// Infection vector name for propagation edges, e.g. `eternalblue_smb`, `rdp`.
    pub vector: String,
    /// The vector when the parent brute-forced the child first, e.g. `smb_bruteforce`.
    pub bruteforce_vector: String,
}

impl Service {
    /// A service from its parts.
    pub fn new(name: &str, port: u16, proto: u8, vector: &str, bruteforce_vector: &str) -> Self {
        Service {
            name: name.to_string(),
            port,
            proto,
            vector: vector.to_string(),
            bruteforce_vector: bruteforce_vector.to_string(),
        }
    }
}

/// Threshold Random Walk parameters (Jung, Paxson, Berger, Balakrishnan 2004).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrwConfig {
    /// P(first contact succeeds | benign host).
    pub theta0: f64,
    /// P(first contact succeeds | scanner).
    pub theta1: f64,
    /// Desired detection probability.
    pub pd: f64,
    /// Tolerated false-positive probability.
    pub pf: f64,
}

impl Default for TrwConfig {
    fn default() -> Self {
        TrwConfig {
            theta0: 0.8,
            theta1: 0.2,
            pd: 0.99,
            pf: 0.01,
        }
    }
}

impl TrwConfig {
    /// Upper threshold η1 = Pd / Pf: at or above it, the source is a scanner.
    pub fn eta1(&self) -> f64 {
        self.pd / self.pf
    }

    /// Lower threshold η0 = (1 − Pd) / (1 − Pf): at or below it, the source is benign.
    pub fn eta0(&self) -> f64 {
        (1.0 - self.pd) / (1.0 - self.pf)
    }
}

/// Everything the detector needs to know. [`DetectConfig::default`] is the built-in rule
/// set; every field is public so a caller can override any of it.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectConfig {
    /// Internal networks (default RFC 1918 and fc00::/7).
    pub internal: Vec<Cidr>,
    /// Worm services (default SMB 445 and 139, RDP 3389, MSSQL 1433/tcp and 1434/udp, SSH 22).
    pub services: Vec<Service>,
    /// Ports whose completed inbound sessions from outside raise `exposed_service`
    /// (default 3389, 445, 1433).
    pub exposed_ports: Vec<u16>,
    /// Fan-out window (default 60 s).
    pub scan_window_ns: i64,
    /// Distinct destinations of one source on one service within the window that raise
    /// `scan_fanout` (default 10).
    pub fanout_threshold: usize,
    /// Failed share of first contacts at or above which a fan-out is worm scanning (an
    /// infection sign) rather than a heavy hitter (default 0.5).
    pub fanout_min_failed_ratio: f64,
    /// Failed first contacts (to distinct addresses, on any worm service) of one source
    /// within `failed_window_ns` that raise `failed_contacts`; 0 disables (default 4).
    /// Unlike TRW, successes in between do not offset failures: a worm that also reaches
    /// open ports (a LAN sweep) is flagged on its 4th miss.
    pub failed_threshold: usize,
    /// Window of `failed_contacts` (default 600 s, so slow scanners are caught too).
    pub failed_window_ns: i64,
    /// TRW parameters.
    pub trw: TrwConfig,
    /// ARP sweep window (default 60 s).
    pub arp_window_ns: i64,
    /// Distinct who-has targets of one requester within the window (default 32).
    pub arp_threshold: usize,
    /// Brute-force window (default 300 s).
    pub brute_window_ns: i64,
    /// Short completed sessions of one (source, destination, service) within the window
    /// (default 10).
    pub brute_threshold: usize,
    /// A session lasting at most this long is short (default 30 s).
    pub brute_max_session_ns: i64,
    /// A session of the pair carrying at least this many payload bytes (both directions),
    /// or lasting longer than `brute_max_session_ns`, after brute-forcing began counts as
    /// a successful login (default 64 KiB).
    pub brute_success_bytes: u64,
    /// C&C domain suffixes, lower case, no trailing dot (default: the DriveLife list).
    pub cnc_domains: Vec<String>,
    /// C&C addresses.
    pub cnc_ips: Vec<IpAddr>,
    /// A resolver's upstream query for a C&C name this soon after a client asked it the
    /// same name is attributed to the client (default 1 s).
    pub dns_forward_window_ns: i64,
    /// Honeypot addresses.
    pub honeypots: Vec<IpAddr>,
    /// Authorized scanners and heavy hitters: alerted with `allowlisted`, never infected.
    pub allowlist: Vec<Cidr>,
    /// Exact distinct-destination sets hold at most this many addresses per source (and
    /// per source and service); beyond it the set is saturated and a HyperLogLog sketch
    /// estimates the distinct count (default 4096).
    pub max_tracked: usize,
    /// Scanning sources (TRW walks and their fan-out counters) held at once; beyond it
    /// the least recently active eighth of the sources no rule has flagged yet is
    /// evicted (counted in [`crate::DetectStats::sources_evicted`]). Pairs (brute force,
    /// honeypot, C&C contacts, exposed services) and kept sessions are capped at 64
    /// times this (default 262 144).
    pub max_sources: usize,
    /// Flows the rules may use (worm services, honeypots, C&C and exposed ports) are
    /// gathered up to this many, sorted by time and run through the rules; then the next
    /// batch is gathered. One batch gives results independent of input order; flows
    /// older than an earlier batch's newest are counted in
    /// [`crate::DetectStats::late_flows`] (default 1 048 576).
    pub max_pending_flows: usize,
}

/// Parses an indicator file: one entry per line, `#` comments and blank lines ignored,
/// entries lower-cased with any trailing dot removed.
pub fn parse_indicator_list(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| l.trim_end_matches('.').to_ascii_lowercase())
        .collect()
}

impl Default for DetectConfig {
    fn default() -> Self {
        let internal = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        DetectConfig {
            internal,
            services: vec![
                Service::new("smb", 445, 6, "eternalblue_smb", "smb_bruteforce"),
                Service::new("netbios", 139, 6, "eternalblue_smb", "smb_bruteforce"),
                Service::new("rdp", 3389, 6, "rdp", "rdp_bruteforce"),
                Service::new("mssql", 1433, 6, "mssql", "mssql_bruteforce"),
                Service::new("mssql_browser", 1434, 17, "mssql", "mssql"),
                Service::new("ssh", 22, 6, "ssh", "ssh_bruteforce"),
            ],
            exposed_ports: vec![3389, 445, 1433],
            scan_window_ns: 60 * NS_PER_SEC,
            fanout_threshold: 10,
            fanout_min_failed_ratio: 0.5,
            failed_threshold: 4,
            failed_window_ns: 600 * NS_PER_SEC,
            trw: TrwConfig::default(),
            arp_window_ns: 60 * NS_PER_SEC,
            arp_threshold: 32,
            brute_window_ns: 300 * NS_PER_SEC,
            brute_threshold: 10,
            brute_max_session_ns: 30 * NS_PER_SEC,
            brute_success_bytes: 64 * 1024,
            cnc_domains: parse_indicator_list(DRIVELIFE_INDICATORS),
            cnc_ips: Vec::new(),
            dns_forward_window_ns: NS_PER_SEC,
            honeypots: Vec::new(),
            allowlist: Vec::new(),
            max_tracked: 4096,
            max_sources: 262_144,
            max_pending_flows: 1 << 20,
        }
    }
}

impl DetectConfig {
    /// The rule set as TOML (for `wormsign rules`), in the format
    /// [`DetectConfig::from_toml`] reads. Times are in seconds.
    pub fn to_toml(&self) -> String {
        fn list<T: fmt::Display>(v: &[T]) -> String {
            let items: Vec<String> = v.iter().map(|x| format!("\"{x}\"")).collect();
            format!("[{}]", items.join(", "))
        }
        let s = |ns: i64| format!("{:?}", ns as f64 / NS_PER_SEC as f64);
        let mut o = String::new();
        o.push_str(&format!("internal = {}\n", list(&self.internal)));
        o.push_str(&format!("allowlist = {}\n", list(&self.allowlist)));
        o.push_str(&format!("honeypots = {}\n", list(&self.honeypots)));
        o.push_str(&format!("exposed_ports = {:?}\n", self.exposed_ports));
        o.push_str(&format!("max_tracked = {}\n", self.max_tracked));
        o.push_str(&format!("max_sources = {}\n", self.max_sources));
        o.push_str(&format!(
            "max_pending_flows = {}\n\n[scan]\n",
            self.max_pending_flows
        ));
        o.push_str(&format!("window_s = {}\n", s(self.scan_window_ns)));
        o.push_str(&format!("fanout_threshold = {}\n", self.fanout_threshold));
        o.push_str(&format!(
            "fanout_min_failed_ratio = {:?}\n",
            self.fanout_min_failed_ratio
        ));
        o.push_str(&format!("failed_threshold = {}\n", self.failed_threshold));
        o.push_str(&format!(
            "failed_window_s = {}\n\n[trw]\n",
            s(self.failed_window_ns)
        ));
        o.push_str(&format!(
            "theta0 = {:?}\ntheta1 = {:?}\npd = {:?}\npf = {:?}\n\n[arp]\n",
            self.trw.theta0, self.trw.theta1, self.trw.pd, self.trw.pf
        ));
        o.push_str(&format!(
            "window_s = {}\nthreshold = {}\n\n[brute_force]\n",
            s(self.arp_window_ns),
            self.arp_threshold
        ));
        o.push_str(&format!(
            "window_s = {}\nthreshold = {}\nmax_session_s = {}\nsuccess_bytes = {}\n\n[cnc]\n",
            s(self.brute_window_ns),
            self.brute_threshold,
            s(self.brute_max_session_ns),
            self.brute_success_bytes
        ));
        o.push_str(&format!(
            "forward_window_s = {}\n",
            s(self.dns_forward_window_ns)
        ));
        o.push_str(&format!("domains = {}\n", list(&self.cnc_domains)));
        o.push_str(&format!("ips = {}\n", list(&self.cnc_ips)));
        for sv in &self.services {
            o.push_str(&format!(
                "\n[[service]]\nname = \"{}\"\nport = {}\nproto = \"{}\"\nvector = \"{}\"\nbruteforce_vector = \"{}\"\n",
                sv.name,
                sv.port,
                if sv.proto == 17 { "udp" } else { "tcp" },
                sv.vector,
                sv.bruteforce_vector
            ));
        }
        o
    }

    /// Whether `ip` is in an internal network.
    pub fn is_internal(&self, ip: IpAddr) -> bool {
        self.internal.iter().any(|n| n.contains(ip))
    }

    /// Whether `ip` is allowlisted.
    pub fn is_allowlisted(&self, ip: IpAddr) -> bool {
        self.allowlist.iter().any(|n| n.contains(ip))
    }

    /// The index in `services` of the service a flow to `port` over `proto` uses.
    pub fn service_index(&self, proto: u8, port: u16) -> Option<usize> {
        self.services
            .iter()
            .position(|s| s.proto == proto && s.port == port)
    }

    /// The C&C suffix `qname` matches (equal, or ending in `.` + suffix), if any.
    pub fn cnc_domain_match(&self, qname: &str) -> Option<&str> {
        // Bytes, not str slices: a name with non-ASCII bytes (escaped or replaced by the
        // DNS parser) must not be cut inside a character.
        let q = qname.trim_end_matches('.').as_bytes();
        self.cnc_domains
            .iter()
            .find(|d| {
                let d = d.as_bytes();
                q.len() >= d.len()
                    && q[q.len() - d.len()..].eq_ignore_ascii_case(d)
                    && (q.len() == d.len() || q[q.len() - d.len() - 1] == b'.')
            })
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_contains() {
        let n: Cidr = "192.168.1.77/24".parse().unwrap();
        assert_eq!(n.to_string(), "192.168.1.0/24");
        assert!(n.contains("192.168.1.200".parse().unwrap()));
        assert!(!n.contains("192.168.2.1".parse().unwrap()));
        assert!(!n.contains("fc00::1".parse().unwrap()));
        let u: Cidr = "fc00::/7".parse().unwrap();
        assert!(u.contains("fd12::1".parse().unwrap()));
        assert!(!u.contains("fe80::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
        assert_eq!(
            "10.1.2.3".parse::<Cidr>().unwrap().to_string(),
            "10.1.2.3/32"
        );
    }

    #[test]
    fn domain_suffix_match() {
        let c = DetectConfig::default();
        assert_eq!(c.cnc_domain_match("t.awcna.com"), Some("t.awcna.com"));
        assert_eq!(
            c.cnc_domain_match("x.down.ackng.com."),
            Some("down.ackng.com")
        );
        assert_eq!(c.cnc_domain_match("LPLP.ACKNG.COM"), Some("lplp.ackng.com"));
        assert_eq!(c.cnc_domain_match("notackng.com"), None);
        assert_eq!(c.cnc_domain_match("example.com"), None);
        // Multi-byte characters where a suffix would start: no panic, no match.
        for name in [
            "\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}",
            "é.awcna.co\u{e9}",
            "ñt.awcna.com",
        ] {
            let _ = c.cnc_domain_match(name);
        }
        assert_eq!(
            c.cnc_domain_match("\u{fffd}.t.awcna.com"),
            Some("t.awcna.com")
        );
    }

    #[test]
    fn defaults_as_toml() {
        let t = DetectConfig::default().to_toml();
        assert!(
            t.contains(
                "internal = [\"10.0.0.0/8\", \"172.16.0.0/12\", \"192.168.0.0/16\", \"fc00::/7\"]"
            ),
            "{t}"
        );
        assert!(
            t.contains("[trw]\ntheta0 = 0.8\ntheta1 = 0.2\npd = 0.99\npf = 0.01\n"),
            "{t}"
        );
        assert!(t.contains("\"t.awcna.com\""), "{t}");
        assert!(t.contains("port = 1434\nproto = \"udp\""), "{t}");
    }

    #[test]
    fn defaults() {
        let c = DetectConfig::default();
        assert!(c.is_internal("172.20.0.1".parse().unwrap()));
        assert!(!c.is_internal("172.32.0.1".parse().unwrap()));
        assert_eq!(
            c.service_index(17, 1434).map(|i| c.services[i].port),
            Some(1434)
        );
        assert_eq!(c.service_index(17, 445), None);
        assert!((c.trw.eta1() - 99.0).abs() < 1e-9);
    }
}
