//! What a run is told: [`PipelineConfig`] (every setting, with its default declared once
//! here or in the stage that owns it), [`Output`] (where the tables go), [`Control`]
//! (how the caller watches and stops it), and [`DetectSettings`] (where detection's rule
//! set comes from).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use wormsign_columnar::Partitioning;
use wormsign_decode::{TunnelConfig, TunnelKind};
use wormsign_detect::{parse_zones_file, Cidr, DetectConfig};
use wormsign_flow::FlowConfig;
use wormsign_inspect::{InspectConfig, Protocol};

use crate::{Error, Input};

/// Every setting of the analyze pipeline. `Default` is the CLI's defaults: the command
/// line, `bench-rules` and the Python package all start from it.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Decode workers and flow shards (each), and Parquet encoding threads.
    pub threads: usize,
    /// Flow-table settings; `max_flows` is the total, split evenly across shards.
    pub flow: FlowConfig,
    /// Which tunnels are unwrapped, on which UDP ports, and how deep.
    pub tunnels: TunnelConfig,
    /// UDP destination ports whose datagrams are decoded as NetFlow/IPFIX exports
    /// instead of being metered as flows.
    pub netflow_ports: Vec<u16>,
    /// Which TCP ports are read as SMB, TDS and RDP, and how much of each session.
    pub inspect: InspectConfig,
    /// Write flows, dns, arp and sessions as Hive-partitioned directories instead of
    /// single files (Parquet output only).
    pub partitioning: Option<Partitioning>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            flow: FlowConfig::default(),
            tunnels: TunnelConfig::default(),
            netflow_ports: wormsign_netflow::DEFAULT_PORTS.to_vec(),
            inspect: InspectConfig::default(),
            partitioning: None,
        }
    }
}

impl PipelineConfig {
    /// Reads at most `max_bytes` of each direction of an SMB, TDS or RDP session; 0 turns
    /// protocol inspection off (detection then rests on flow shapes only).
    pub fn set_inspect_bytes(&mut self, max_bytes: u32) {
        self.inspect.max_bytes = max_bytes;
        if max_bytes == 0 {
            self.inspect.smb_ports.clear();
            self.inspect.tds_ports.clear();
            self.inspect.rdp_ports.clear();
        }
    }

    /// Provenance stored in every Parquet file's key-value metadata: the version, the
    /// inputs and the settings that shape the rows.
    pub fn provenance(&self, inputs: &[Input]) -> Vec<(String, String)> {
        let secs = |ns: i64| ns as f64 / 1e9;
        let f = &self.flow;
        let i = &self.inspect;
        let options = serde_json::json!({
            "max_flows": f.max_flows,
            "tcp_timeout": secs(f.tcp_idle_ns),
            "udp_timeout": secs(f.udp_idle_ns),
            "icmp_timeout": secs(f.other_idle_ns),
            "active_timeout": secs(f.active_ns),
            "tunnel_ports": self.tunnels.udp_ports.iter()
                .map(|&(port, kind)| tunnel_port_name(kind, port))
                .collect::<Vec<_>>(),
            "tunnel_depth": self.tunnels.max_depth,
            "netflow_ports": self.netflow_ports,
            "inspect_ports": {"smb": i.smb_ports, "tds": i.tds_ports, "rdp": i.rdp_ports},
            "inspect_bytes": i.max_bytes,
            "partition_by": self.partitioning.map(|p| format!("{p:?}").to_lowercase()),
        });
        vec![
            ("wormsign.version".into(), env!("CARGO_PKG_VERSION").into()),
            ("wormsign.inputs".into(), input_names(inputs)),
            ("wormsign.options".into(), options.to_string()),
        ]
    }
}

/// The pipeline's settings as a front end takes them: seconds, names, ports; `None` (or
/// empty) leaves the default. The CLI's options and the Python keywords both fill this in,
/// so they cannot drift apart.
#[derive(Clone, Debug, Default)]
pub struct PipelineOptions {
    /// Decode workers and flow shards (each), and Parquet encoding threads.
    pub threads: Option<usize>,
    /// Most live flows held at once.
    pub max_flows: Option<usize>,
    /// TCP idle timeout, seconds.
    pub tcp_timeout: Option<f64>,
    /// UDP idle timeout, seconds.
    pub udp_timeout: Option<f64>,
    /// ICMP and other-protocol idle timeout, seconds.
    pub icmp_timeout: Option<f64>,
    /// Active timeout, seconds.
    pub active_timeout: Option<f64>,
    /// UDP ports decoded as a tunnel besides the default ones.
    pub tunnel_ports: Vec<(TunnelKind, u16)>,
    /// Most tunnels unwrapped around one packet (0: none).
    pub tunnel_depth: Option<u8>,
    /// UDP ports decoded as NetFlow/IPFIX besides the default ones.
    pub netflow_ports: Vec<u16>,
    /// TCP ports read as a protocol besides the default ones.
    pub inspect_ports: Vec<(Protocol, u16)>,
    /// Bytes of each session direction read (0: no inspection).
    pub inspect_bytes: Option<u32>,
    /// Hive partitioning of the Parquet tables.
    pub partition_by: Option<Partitioning>,
}

impl PipelineOptions {
    /// These options laid over [`PipelineConfig::default`].
    pub fn config(&self) -> Result<PipelineConfig, Error> {
        let mut c = PipelineConfig::default();
        if let Some(threads) = self.threads {
            c.threads = threads.max(1);
        }
        if let Some(max_flows) = self.max_flows {
            c.flow.max_flows = max_flows.max(1);
        }
        let timeouts = [
            ("tcp timeout", self.tcp_timeout, &mut c.flow.tcp_idle_ns),
            ("udp timeout", self.udp_timeout, &mut c.flow.udp_idle_ns),
            ("icmp timeout", self.icmp_timeout, &mut c.flow.other_idle_ns),
            ("active timeout", self.active_timeout, &mut c.flow.active_ns),
        ];
        for (name, secs, ns) in timeouts {
            if let Some(secs) = secs {
                *ns = seconds_to_ns(name, secs)?;
            }
        }
        c.tunnels
            .udp_ports
            .extend(self.tunnel_ports.iter().map(|&(kind, port)| (port, kind)));
        if let Some(depth) = self.tunnel_depth {
            c.tunnels.max_depth = depth;
        }
        c.netflow_ports.extend(&self.netflow_ports);
        for &(protocol, port) in &self.inspect_ports {
            let ports = match protocol {
                Protocol::Smb => &mut c.inspect.smb_ports,
                Protocol::Tds => &mut c.inspect.tds_ports,
                Protocol::Rdp => &mut c.inspect.rdp_ports,
            };
            ports.push(port);
        }
        if let Some(bytes) = self.inspect_bytes {
            c.set_inspect_bytes(bytes);
        }
        c.partitioning = self.partition_by;
        Ok(c)
    }
}

/// `smb=8445` → (SMB, 8445): an extra inspected port as `--inspect-port` takes it.
pub fn parse_inspect_port(s: &str) -> Result<(Protocol, u16), Error> {
    parse_named_port(s, "inspect port", "PROTOCOL=PORT, e.g. tds=14330", |name| {
        Protocol::from_name(name)
            .ok_or_else(|| format!("unknown protocol {name:?}: smb, tds or rdp"))
    })
}

/// `vxlan=8472` → (VXLAN, 8472): an extra tunnel port as `--tunnel-port` takes it.
pub fn parse_tunnel_port(s: &str) -> Result<(TunnelKind, u16), Error> {
    parse_named_port(s, "tunnel port", "TUNNEL=PORT, e.g. vxlan=8472", |name| {
        TunnelKind::from_name(name)
            .filter(|k| k.is_udp())
            .ok_or_else(|| format!("{name:?} is not a UDP tunnel: vxlan, geneve, gtpu or teredo"))
    })
}

/// `vxlan=8472`: a tunnel port as `--tunnel-port` and the provenance write it.
fn tunnel_port_name(kind: TunnelKind, port: u16) -> String {
    format!("{}={port}", kind.as_str())
}

/// The tunnels a run unwrapped, from the `wormsign.options` its provenance wrote (the
/// defaults for a run that recorded none), so a later reading of its inputs decodes them
/// as the run did.
pub(crate) fn recorded_tunnels(options: &serde_json::Value) -> Result<TunnelConfig, Error> {
    let mut tunnels = TunnelConfig::default();
    if let Some(depth) = options["tunnel_depth"].as_u64() {
        tunnels.max_depth = u8::try_from(depth).unwrap_or(u8::MAX);
    }
    if let Some(ports) = options["tunnel_ports"].as_array() {
        tunnels.udp_ports = ports
            .iter()
            .map(|p| parse_tunnel_port(p.as_str().unwrap_or_default()))
            .map(|p| p.map(|(kind, port)| (port, kind)))
            .collect::<Result<_, _>>()?;
    }
    Ok(tunnels)
}

/// `NAME=PORT`, with NAME looked up by `lookup`; errors name the option (`what`) and
/// show the expected form.
fn parse_named_port<T>(
    s: &str,
    what: &str,
    form: &str,
    lookup: impl Fn(&str) -> Result<T, String>,
) -> Result<(T, u16), Error> {
    let bad = |why: String| Error::Config(format!("{what} {s:?}: {why}"));
    let (name, port) = s
        .split_once('=')
        .ok_or_else(|| bad(format!("expected {form}")))?;
    let named = lookup(name).map_err(bad)?;
    let port = port
        .parse()
        .map_err(|e| bad(format!("port {port:?}: {e}")))?;
    Ok((named, port))
}

/// Where `analyze` puts its tables.
#[derive(Clone, Debug)]
pub enum Output {
    /// Parquet files in this directory (created if missing): `flows.parquet`,
    /// `dns.parquet`, `arp.parquet`, `sessions.parquet`, or their partitioned
    /// directories. Each appears only when complete.
    Parquet(PathBuf),
    /// Arrow record batches kept in memory and returned in [`crate::Tables`].
    Memory,
    /// Both: the Parquet files of [`Output::Parquet`], and this run's batches in memory.
    ParquetAndMemory(PathBuf),
}

/// Shared between a run and its caller: progress counters to watch, and a flag to stop.
#[derive(Default, Debug)]
pub struct Control {
    /// Source bytes consumed.
    pub bytes: AtomicU64,
    /// Records read.
    pub packets: AtomicU64,
    /// Set to stop: the reader stops at the next chunk boundary and the pipeline
    /// finishes the tables with what was read (when it cut an input short, the summary
    /// says so in a warning).
    pub stop: Arc<AtomicBool>,
}

/// A rule set's text: a rules file (TOML, the format `wormsign rules` prints) or the
/// TOML itself.
#[derive(Clone, Debug)]
pub enum Rules {
    /// A rules file.
    File(PathBuf),
    /// Rules-file text.
    Toml(String),
}

/// Where detection's settings come from, each over the one before: the built-in rules,
/// a rules file, indicator files, then networks and addresses given one by one. The CLI's
/// options and the Python package's arguments both fill this in.
#[derive(Clone, Debug, Default)]
pub struct DetectSettings {
    /// Settings it has replace the defaults.
    pub rules: Option<Rules>,
    /// Indicator files: one C&C domain suffix or IP address per line, `#` comments;
    /// added to the built-in list.
    pub indicators: Vec<PathBuf>,
    /// Internal networks; when any is given they replace the default RFC 1918 + ULA ones.
    pub internal: Vec<Cidr>,
    /// Honeypot addresses: any connection to one is an alert.
    pub honeypots: Vec<IpAddr>,
    /// Allowlisted networks (authorized scanners): reported, marked, never infected.
    pub allowlist: Vec<Cidr>,
    /// Zones for the segmentation check: (name, network), added to the rules file's.
    pub zones: Vec<(String, Cidr)>,
    /// Zones files: one `NAME=CIDR` per line, `#` comments; read before `zones`.
    pub zone_files: Vec<PathBuf>,
}

impl DetectSettings {
    /// The rule set these settings make.
    pub fn config(&self) -> Result<DetectConfig, Error> {
        let mut c = match &self.rules {
            None => DetectConfig::default(),
            Some(Rules::Toml(text)) => DetectConfig::from_toml(text)
                .map_err(|e| Error::Config(format!("rules: {}", e.message)))?,
            Some(Rules::File(path)) => {
                let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
                DetectConfig::from_toml(&text)
                    .map_err(|e| Error::Config(format!("{}: {}", path.display(), e.message)))?
            }
        };
        for path in &self.indicators {
            c.add_indicators(&std::fs::read_to_string(path).map_err(Error::io(path))?);
        }
        if !self.internal.is_empty() {
            c.internal.clone_from(&self.internal);
        }
        c.honeypots.extend(self.honeypots.iter().copied());
        c.allowlist.extend(self.allowlist.iter().copied());
        for path in &self.zone_files {
            let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
            let zones = parse_zones_file(&text)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            add_zones(&mut c, zones);
        }
        add_zones(&mut c, self.zones.iter().cloned());
        Ok(c)
    }
}

fn add_zones(c: &mut DetectConfig, zones: impl IntoIterator<Item = (String, Cidr)>) {
    for (name, net) in zones {
        c.zones.entry(name).or_default().push(net);
    }
}

/// A duration option given in seconds (`name` for the error) as the ns the flow table
/// counts in: it must be positive and finite.
fn seconds_to_ns(name: &str, secs: f64) -> Result<i64, Error> {
    if !(secs.is_finite() && secs > 0.0) {
        return Err(Error::Config(format!(
            "{name} must be a positive number of seconds"
        )));
    }
    Ok((secs * 1e9).min(i64::MAX as f64) as i64)
}

/// The `wormsign.inputs` metadata of a run's tables (and of detection over them): the
/// inputs' names as a JSON list.
pub(crate) fn input_names(inputs: &[Input]) -> String {
    let names: Vec<String> = inputs.iter().map(Input::name).collect();
    serde_json::to_string(&names).unwrap_or_default()
}
