//! Reading a TOML rules file on top of the built-in defaults.

use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;

use crate::config::{parse_indicator_list, Cidr, DetectConfig, Service};

const NS_PER_SEC: f64 = 1e9;

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

fn err(message: String) -> RulesError {
    RulesError { message }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    internal: Option<Vec<String>>,
    allowlist: Option<Vec<String>>,
    honeypots: Option<Vec<String>>,
    exposed_ports: Option<Vec<u16>>,
    max_tracked: Option<usize>,
    max_sources: Option<usize>,
    max_pending_flows: Option<usize>,
    scan: Option<Scan>,
    trw: Option<Trw>,
    arp: Option<Arp>,
    brute_force: Option<Brute>,
    cnc: Option<Cnc>,
    service: Option<Vec<Svc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scan {
    window_s: Option<f64>,
    fanout_threshold: Option<usize>,
    fanout_min_failed_ratio: Option<f64>,
    failed_threshold: Option<usize>,
    failed_window_s: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Trw {
    theta0: Option<f64>,
    theta1: Option<f64>,
    pd: Option<f64>,
    pf: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Arp {
    window_s: Option<f64>,
    threshold: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Brute {
    window_s: Option<f64>,
    threshold: Option<usize>,
    max_session_s: Option<f64>,
    success_bytes: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cnc {
    forward_window_s: Option<f64>,
    domains: Option<Vec<String>>,
    extra_domains: Option<Vec<String>>,
    ips: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Svc {
    name: String,
    port: u16,
    proto: Option<String>,
    vector: Option<String>,
    bruteforce_vector: Option<String>,
}

fn cidrs(v: Vec<String>) -> Result<Vec<Cidr>, RulesError> {
    v.iter()
        .map(|s| s.parse().map_err(|e| err(format!("{e}"))))
        .collect()
}

fn ips(v: Vec<String>) -> Result<Vec<IpAddr>, RulesError> {
    v.iter()
        .map(|s| {
            s.trim()
                .parse()
                .map_err(|_| err(format!("not an IP address: {s:?}")))
        })
        .collect()
}

fn ns(s: f64, what: &str) -> Result<i64, RulesError> {
    if s.is_finite() && s >= 0.0 {
        Ok((s * NS_PER_SEC).round() as i64)
    } else {
        Err(err(format!(
            "{what} must be a non-negative number of seconds"
        )))
    }
}

fn prob(p: f64, what: &str) -> Result<f64, RulesError> {
    if p > 0.0 && p < 1.0 {
        Ok(p)
    } else {
        Err(err(format!("{what} must be strictly between 0 and 1")))
    }
}

impl DetectConfig {
    /// The defaults with every setting present in `text` (a TOML rules file in the format
    /// of [`DetectConfig::to_toml`]) replacing its default. Lists replace the default
    /// list, except `[cnc] extra_domains`, which adds to it; any `[[service]]` replaces
    /// the whole service list. Unknown keys are errors.
    pub fn from_toml(text: &str) -> Result<DetectConfig, RulesError> {
        let f: File = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let mut c = DetectConfig::default();
        if let Some(v) = f.internal {
            c.internal = cidrs(v)?;
        }
        if let Some(v) = f.allowlist {
            c.allowlist = cidrs(v)?;
        }
        if let Some(v) = f.honeypots {
            c.honeypots = ips(v)?;
        }
        if let Some(v) = f.exposed_ports {
            c.exposed_ports = v;
        }
        if let Some(v) = f.max_tracked {
            c.max_tracked = v.max(1);
        }
        if let Some(v) = f.max_sources {
            c.max_sources = v.max(8);
        }
        if let Some(v) = f.max_pending_flows {
            c.max_pending_flows = v.max(1);
        }
        if let Some(s) = f.scan {
            if let Some(v) = s.window_s {
                c.scan_window_ns = ns(v, "scan.window_s")?;
            }
            if let Some(v) = s.fanout_threshold {
                c.fanout_threshold = v.max(1);
            }
            if let Some(v) = s.fanout_min_failed_ratio {
                c.fanout_min_failed_ratio = v;
            }
            if let Some(v) = s.failed_threshold {
                c.failed_threshold = v;
            }
            if let Some(v) = s.failed_window_s {
                c.failed_window_ns = ns(v, "scan.failed_window_s")?;
            }
        }
        if let Some(t) = f.trw {
            if let Some(v) = t.theta0 {
                c.trw.theta0 = prob(v, "trw.theta0")?;
            }
            if let Some(v) = t.theta1 {
                c.trw.theta1 = prob(v, "trw.theta1")?;
            }
            if let Some(v) = t.pd {
                c.trw.pd = prob(v, "trw.pd")?;
            }
            if let Some(v) = t.pf {
                c.trw.pf = prob(v, "trw.pf")?;
            }
            if c.trw.theta1 >= c.trw.theta0 || c.trw.pf >= c.trw.pd {
                return Err(err("trw needs theta1 < theta0 and pf < pd".to_string()));
            }
        }
        if let Some(a) = f.arp {
            if let Some(v) = a.window_s {
                c.arp_window_ns = ns(v, "arp.window_s")?;
            }
            if let Some(v) = a.threshold {
                c.arp_threshold = v.max(1);
            }
        }
        if let Some(b) = f.brute_force {
            if let Some(v) = b.window_s {
                c.brute_window_ns = ns(v, "brute_force.window_s")?;
            }
            if let Some(v) = b.threshold {
                c.brute_threshold = v.max(1);
            }
            if let Some(v) = b.max_session_s {
                c.brute_max_session_ns = ns(v, "brute_force.max_session_s")?;
            }
            if let Some(v) = b.success_bytes {
                c.brute_success_bytes = v;
            }
        }
        if let Some(n) = f.cnc {
            if let Some(v) = n.forward_window_s {
                c.dns_forward_window_ns = ns(v, "cnc.forward_window_s")?;
            }
            if let Some(v) = n.domains {
                c.cnc_domains = parse_indicator_list(&v.join("\n"));
            }
            if let Some(v) = n.extra_domains {
                c.cnc_domains.extend(parse_indicator_list(&v.join("\n")));
            }
            if let Some(v) = n.ips {
                c.cnc_ips = ips(v)?;
            }
        }
        if let Some(v) = f.service {
            c.services = v
                .into_iter()
                .map(|s| {
                    let proto = match s.proto.as_deref().unwrap_or("tcp") {
                        "tcp" => 6,
                        "udp" => 17,
                        p => {
                            return Err(err(format!(
                                "service {}: proto {p:?} is not tcp or udp",
                                s.name
                            )))
                        }
                    };
                    let vector = s.vector.unwrap_or_else(|| s.name.clone());
                    let bf = s
                        .bruteforce_vector
                        .unwrap_or_else(|| format!("{}_bruteforce", s.name));
                    Ok(Service::new(&s.name, s.port, proto, &vector, &bf))
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(c)
    }

    /// Adds a user indicator file: one entry per line, `#` comments; entries that parse
    /// as IP addresses become C&C addresses, the others C&C domain suffixes.
    pub fn add_indicators(&mut self, text: &str) {
        for entry in parse_indicator_list(text) {
            match entry.parse::<IpAddr>() {
                Ok(ip) => self.cnc_ips.push(ip),
                Err(_) => self.cnc_domains.push(entry),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip() {
        let d = DetectConfig::default();
        assert_eq!(DetectConfig::from_toml(&d.to_toml()).unwrap(), d);
        assert_eq!(DetectConfig::from_toml("").unwrap(), d);
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
        assert_eq!(c.brute_threshold, 5);
        assert_eq!(c.brute_window_ns, 120_000_000_000);
        assert_eq!(c.cnc_domain_match("a.evil.example"), Some("evil.example"));
        assert!(c.cnc_domain_match("t.awcna.com").is_some());
        assert_eq!(c.services.len(), 1);
        assert_eq!(c.services[0].vector, "winrm");
        assert_eq!(c.service_index(6, 5985), Some(0));
    }

    #[test]
    fn errors() {
        for bad in [
            "unknown = 1",
            "internal = [\"10.0.0.0/99\"]",
            "[trw]\ntheta1 = 0.9",
            "[scan]\nwindow_s = -1.0",
            "[[service]]\nname = \"x\"\nport = 1\nproto = \"sctp\"",
            "honeypots = [\"nope\"]",
        ] {
            assert!(DetectConfig::from_toml(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn user_indicators() {
        let mut c = DetectConfig::default();
        c.add_indicators("# mine\nbad.example\n203.0.113.9\n");
        assert!(c.cnc_domain_match("x.bad.example").is_some());
        assert_eq!(c.cnc_ips, vec!["203.0.113.9".parse::<IpAddr>().unwrap()]);
    }
}
