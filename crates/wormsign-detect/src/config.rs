//! The rule set: networks, services, the detector's caps, and every rule's section
//! (declared beside its rule, see [`crate::settings`]); reading and printing rules files.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::rules::{ArpConfig, BruteForceConfig, CncConfig, ExploitConfig, ScanConfig, TrwConfig};
use crate::settings::{addresses, at_least, settings};

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

    /// The number of leading bits that name the network.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether the network is an IPv4 one.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
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

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

/// A network service worms spread over: one `[[service]]` of a rules file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ServiceEntry", into = "ServiceEntry")]
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

/// A `[[service]]` as written. Unlike [`Service`], its protocol is a name and it may
/// leave out what follows from the name: `proto` (tcp), `vector` (the name) and
/// `bruteforce_vector` (the name + `_bruteforce`).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceEntry {
    name: String,
    port: u16,
    proto: Option<String>,
    vector: Option<String>,
    bruteforce_vector: Option<String>,
}

impl TryFrom<ServiceEntry> for Service {
    type Error = String;

    fn try_from(entry: ServiceEntry) -> Result<Service, String> {
        let proto = match entry.proto.as_deref().unwrap_or("tcp") {
            "tcp" => 6,
            "udp" => 17,
            p => {
                return Err(format!(
                    "service {}: proto {p:?} is not tcp or udp",
                    entry.name
                ))
            }
        };
        let vector = entry.vector.unwrap_or_else(|| entry.name.clone());
        let bruteforce_vector = entry
            .bruteforce_vector
            .unwrap_or_else(|| format!("{}_bruteforce", entry.name));
        Ok(Service::new(
            &entry.name,
            entry.port,
            proto,
            &vector,
            &bruteforce_vector,
        ))
    }
}

impl From<Service> for ServiceEntry {
    fn from(s: Service) -> ServiceEntry {
        ServiceEntry {
            proto: Some(if s.proto == 17 { "udp" } else { "tcp" }.to_string()),
            vector: Some(s.vector),
            bruteforce_vector: Some(s.bruteforce_vector),
            name: s.name,
            port: s.port,
        }
    }
}

/// The caps on a detection's (or one part's) state.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Caps {
    /// Addresses an exact distinct-address set holds.
    pub exact_set: usize,
    /// Scanning sources held at once.
    pub sources: usize,
    /// Entries of a pair table, and kept sessions.
    pub pairs: usize,
}

settings! {
    /// Everything the detector needs to know: a rules file's top level and its sections,
    /// in the order `wormsign rules` prints them. [`DetectConfig::default`] is the built-in
    /// rule set; every field is public so a caller can override any of it.
    pub struct DetectConfig {
        /// Internal networks (default RFC 1918 and fc00::/7).
        pub internal: Vec<Cidr> = private_networks(),
        /// Authorized scanners and heavy hitters: alerted with `allowlisted`, never
        /// infected.
        pub allowlist: Vec<Cidr> = Vec::new(),
        /// Honeypot addresses: any flow to one raises `honeypot`.
        #[serde(deserialize_with = "addresses")]
        pub honeypots: Vec<IpAddr> = Vec::new(),
        /// Ports whose completed inbound sessions from outside raise `exposed_service`
        /// (default 3389, 445, 1433).
        pub exposed_ports: Vec<u16> = vec![3389, 445, 1433],
        /// `[zones]`: named networks (`branch = ["10.164.0.0/16"]`) for the segmentation
        /// check; an address belongs to the zone with its longest matching prefix.
        pub zones: BTreeMap<String, Vec<Cidr>> = BTreeMap::new(),
        /// Exact distinct-destination sets hold at most this many addresses per source
        /// (and per source and service); beyond it the set is saturated and a HyperLogLog
        /// sketch estimates the distinct count (default 4096).
        #[serde(deserialize_with = "at_least::<1, _>")]
        pub max_tracked: usize = 4096,
        /// Scanning sources (TRW walks and their fan-out counters) held at once; beyond it
        /// the least recently active eighth of the sources no rule has flagged yet is
        /// evicted (counted in [`crate::DetectStats::sources_evicted`]). Pairs (brute
        /// force, honeypot, C&C contacts, exposed services) and kept sessions are capped at
        /// 64 times this (default 262 144).
        #[serde(deserialize_with = "at_least::<8, _>")]
        pub max_sources: usize = 262_144,
        /// Flows the rules may use (worm services, honeypots, C&C and exposed ports) held
        /// in memory at once, 80 bytes each. Beyond it, each batch of this many is sorted
        /// by time into an anonymous temporary file in `TMPDIR` (74 bytes a flow, twice
        /// that while 64 files are merged into one; on a tmpfs they take memory too) and
        /// all are merged at the end, so the rules read every flow in time order (the
        /// flows held in files counted in [`crate::DetectStats::flows_in_files`]). If no
        /// file can be written, up to 16 times this many are held in memory instead
        /// (counted in [`crate::DetectStats::flows_held_without_files`]); beyond, a batch
        /// goes through the rules at once and flows of later batches older than its
        /// newest are counted in [`crate::DetectStats::late_flows`]: results may then
        /// depend on input order (`analyze` first reads its stored tables back, with the
        /// same cap). The default keeps detection's memory flat once a capture has more
        /// than this many usable flows, at a few percent more time where it has many
        /// (default 65 536).
        #[serde(deserialize_with = "at_least::<1, _>")]
        pub max_pending_flows: usize = 1 << 16,
        /// `[scan]`: scan fan-out and failed first contacts.
        pub scan: ScanConfig = ScanConfig::default(),
        /// `[trw]`: Threshold Random Walk.
        pub trw: TrwConfig = TrwConfig::default(),
        /// `[arp]`: ARP sweeps.
        pub arp: ArpConfig = ArpConfig::default(),
        /// `[brute_force]`: brute force, by flow shapes and by logins.
        pub brute_force: BruteForceConfig = BruteForceConfig::default(),
        /// `[cnc]`: C&C indicators and lookups.
        pub cnc: CncConfig = CncConfig::default(),
        /// `[exploit]`: MS17-010 exploits and the DoublePulsar implant.
        pub exploit: ExploitConfig = ExploitConfig::default(),
        /// `[[service]]`: worm services (default SMB 445 and 139, RDP 3389, MSSQL 1433/tcp
        /// and 1434/udp, SSH 22). Any `[[service]]` in a rules file replaces the whole
        /// list.
        #[serde(rename = "service")]
        pub services: Vec<Service> = worm_services(),
    }
}

/// Whether `name` ends with `suffix`, ASCII case ignored (bytes: a name with non-ASCII
/// bytes must not be cut inside a character).
pub(crate) fn ends_with_ignore_case(name: &[u8], suffix: &[u8]) -> bool {
    name.len() >= suffix.len() && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

fn private_networks() -> Vec<Cidr> {
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

fn worm_services() -> Vec<Service> {
    vec![
        Service::new("smb", 445, 6, "eternalblue_smb", "smb_bruteforce"),
        Service::new("netbios", 139, 6, "eternalblue_smb", "smb_bruteforce"),
        Service::new("rdp", 3389, 6, "rdp", "rdp_bruteforce"),
        Service::new("mssql", 1433, 6, "mssql", "mssql_bruteforce"),
        Service::new("mssql_browser", 1434, 17, "mssql", "mssql"),
        Service::new("ssh", 22, 6, "ssh", "ssh_bruteforce"),
    ]
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

/// Why a rules file or an indicator list was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesError {
    /// What is wrong, with the TOML parser's line and column when it found it.
    pub message: String,
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid rules: {}", self.message)
    }
}

impl std::error::Error for RulesError {}

impl DetectConfig {
    /// The rule set as TOML (for `wormsign rules`), in the format
    /// [`DetectConfig::from_toml`] reads. Times are in seconds.
    pub fn to_toml(&self) -> String {
        // Every field is a number, string, list or table of those: TOML can hold it all.
        toml::to_string(self).expect("a rule set is always expressible in TOML")
    }

    /// The defaults with every setting present in `text` (a TOML rules file in the format
    /// of [`DetectConfig::to_toml`]) replacing its default. Lists replace the default
    /// list, except `[cnc] extra_domains`, which adds to it; any `[[service]]` replaces
    /// the whole service list. Unknown keys are errors.
    pub fn from_toml(text: &str) -> Result<DetectConfig, RulesError> {
        let mut config: DetectConfig = toml::from_str(text).map_err(|e| RulesError {
            message: e.to_string(),
        })?;
        config.cnc.add_extra_domains();
        config
            .trw
            .check()
            .map_err(|message| RulesError { message })?;
        Ok(config)
    }

    /// Adds a user indicator file: one entry per line, `#` comments; entries that parse
    /// as IP addresses become C&C addresses, the others C&C domain suffixes.
    pub fn add_indicators(&mut self, text: &str) {
        for entry in parse_indicator_list(text) {
            match entry.parse::<IpAddr>() {
                Ok(ip) => self.cnc.ips.push(ip),
                Err(_) => self.cnc.domains.push(entry),
            }
        }
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

    /// Whether detection reads a DNS message (a response or not) asking for `qname`:
    /// C&C names (the rules), and responses to reverse lookups (`*.in-addr.arpa`,
    /// `*.ip6.arpa`: host names for the hosts table). Reading stored DNS back and feeding
    /// it from the pipeline both keep these (and [`crate::KeptDns`] only what they name).
    pub fn wants_dns(&self, qname: &str, is_response: bool) -> bool {
        // Every DNS message of a run passes here: no allocation.
        let name = qname.trim_end_matches('.').as_bytes();
        let reverse = || {
            ends_with_ignore_case(name, b".in-addr.arpa")
                || ends_with_ignore_case(name, b".ip6.arpa")
        };
        (is_response && reverse()) || self.cnc_domain_match(qname).is_some()
    }

    /// The C&C suffix `qname` matches (equal, or ending in `.` + suffix), if any.
    pub fn cnc_domain_match(&self, qname: &str) -> Option<&str> {
        self.cnc.domains.first_match(qname)
    }

    /// The caps of one of `parts` parts of a detection: the sources and pairs held at
    /// once are shared out evenly, so the memory bound does not grow with the parts.
    pub(crate) fn caps(&self, parts: usize) -> Caps {
        let sources = self.max_sources.max(8);
        // Pair tables and kept sessions: pairs outnumber sources, but a flood of them
        // must not grow memory without bound either.
        let pairs = sources.saturating_mul(64);
        let parts = parts.max(1);
        Caps {
            exact_set: self.max_tracked.max(1),
            sources: sources.div_ceil(parts),
            pairs: pairs.div_ceil(parts),
        }
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
        assert!(t.contains("[scan]\nwindow_s = 60.0\n"), "{t}");
        assert!(t.contains("\"t.awcna.com\""), "{t}");
        assert!(t.contains("port = 1434\nproto = \"udp\""), "{t}");
        assert!(!t.contains("extra_domains"), "{t}");
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

    #[test]
    fn defaults_round_trip() {
        let d = DetectConfig::default();
        assert_eq!(DetectConfig::from_toml(&d.to_toml()).unwrap(), d);
        assert_eq!(DetectConfig::from_toml("").unwrap(), d);
    }

    /// Every setting changed from its default is printed and read back as set.
    #[test]
    fn changed_settings_round_trip() {
        let mut c = DetectConfig::from_toml(
            r#"
allowlist = ["10.0.0.99"]
honeypots = ["fc00::99"]
exposed_ports = [22]
max_tracked = 7
max_sources = 9
max_pending_flows = 11
[scan]
window_s = 0.25
fanout_threshold = 3
fanout_min_failed_ratio = 0.75
failed_threshold = 0
failed_window_s = 1e-3
[trw]
theta0 = 0.7
theta1 = 0.3
pd = 0.9
pf = 0.05
[arp]
window_s = 5
threshold = 2
[brute_force]
window_s = 1.5
threshold = 4
max_session_s = 2
success_bytes = 10
[cnc]
forward_window_s = 0
domains = ["a.example"]
extra_domains = ["b.example"]
ips = ["192.0.2.1"]
[exploit]
implant_checks_alert = false
[[service]]
proto = "udp"
port = 1434
name = "browser"
vector = "mssql"
"#,
        )
        .unwrap();
        c.add_indicators("c.example\n");
        assert_eq!(
            c.cnc.domains.as_slice(),
            ["a.example", "b.example", "c.example"]
        );
        assert_eq!(c.scan.failed_window.ns(), 1_000_000);
        assert!(!c.exploit.implant_checks_alert);
        assert_eq!(DetectConfig::from_toml(&c.to_toml()).unwrap(), c);
    }

    #[test]
    fn overrides() {
        let c = DetectConfig::from_toml(
            r#"
allowlist = ["10.0.0.99", "10.5.0.0/16"]
honeypots = ["10.0.0.250"]
[trw]
pd = 0.999
[brute_force]
threshold = 5
window_s = 120
[cnc]
extra_domains = ["evil.example."]
ips = ["198.51.100.7"]
[[service]]
name = "winrm"
port = 5985
"#,
        )
        .unwrap();
        assert_eq!(c.allowlist.len(), 2);
        assert!(c.is_allowlisted("10.5.3.4".parse().unwrap()));
        assert_eq!(c.trw.pd, 0.999);
        assert_eq!(c.trw.theta0, 0.8);
        assert_eq!(c.brute_force.threshold, 5);
        assert_eq!(c.brute_force.window.ns(), 120_000_000_000);
        assert_eq!(c.cnc_domain_match("a.evil.example"), Some("evil.example"));
        assert!(c.cnc_domain_match("t.awcna.com").is_some());
        assert_eq!(c.services.len(), 1);
        assert_eq!(c.services[0].vector, "winrm");
        assert_eq!(c.services[0].bruteforce_vector, "winrm_bruteforce");
        assert_eq!(c.service_index(6, 5985), Some(0));
    }

    #[test]
    fn thresholds_and_caps_are_raised_to_their_minimum() {
        let c = DetectConfig::from_toml(
            "max_tracked = 0\nmax_sources = 1\nmax_pending_flows = 0\n\
             [scan]\nfanout_threshold = 0\nfailed_threshold = 0\n\
             [arp]\nthreshold = 0\n[brute_force]\nthreshold = 0\n",
        )
        .unwrap();
        assert_eq!(
            (c.max_tracked, c.max_sources, c.max_pending_flows),
            (1, 8, 1)
        );
        assert_eq!(c.scan.fanout_threshold, 1);
        assert_eq!(c.scan.failed_threshold, 0, "0 disables failed_contacts");
        assert_eq!((c.arp.threshold, c.brute_force.threshold), (1, 1));
    }

    #[test]
    fn errors() {
        for bad in [
            "unknown = 1",
            "internal = [\"10.0.0.0/99\"]",
            "[trw]\ntheta1 = 0.9",
            "[trw]\npd = 1.0",
            "[trw]\nnope = 1",
            "[scan]\nwindow_s = -1.0",
            "[cnc]\nforward_window_s = \"1\"",
            "[[service]]\nname = \"x\"\nport = 1\nproto = \"sctp\"",
            "[[service]]\nport = 1",
            "honeypots = [\"nope\"]",
            "[cnc]\nips = [\"10.0.0.1/8\"]",
        ] {
            assert!(DetectConfig::from_toml(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn user_indicators() {
        let mut c = DetectConfig::default();
        c.add_indicators("# mine\nbad.example\n203.0.113.9\n");
        assert!(c.cnc_domain_match("x.bad.example").is_some());
        assert_eq!(c.cnc.ips, vec!["203.0.113.9".parse::<IpAddr>().unwrap()]);
    }
}
