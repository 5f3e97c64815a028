//! `wormsign carve`: the packets behind an alert, a host, an edge or a flow, as a pcap.
//! The work is `wormsign_engine::carve`; this is options and printing.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use wormsign_engine::{carve, CarveTarget};

/// `wormsign carve`.
#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("claim").required(true).multiple(false))]
pub struct CarveArgs {
    /// Directory of a run (flows.parquet, and alerts.parquet or propagation.parquet for
    /// --alert and --edge).
    dir: PathBuf,
    /// The flows an alert counted (its hosts and service, within its first and last
    /// evidence).
    #[arg(long, value_name = "ID", group = "claim")]
    alert: Option<String>,
    /// Every flow of a host.
    #[arg(long, value_name = "IP", group = "claim")]
    host: Option<IpAddr>,
    /// The sessions a propagation edge rests on, `PARENT-CHILD`.
    #[arg(long, value_name = "PARENT-CHILD", group = "claim", value_parser = parse_edge)]
    edge: Option<(IpAddr, IpAddr)>,
    /// The flows with this Community ID (`1:...`).
    #[arg(long, value_name = "COMMUNITY_ID", group = "claim")]
    flow: Option<String>,
    /// The pcap to write.
    #[arg(long, short)]
    out: PathBuf,
    /// The run's captures, in the order they were analysed, when they are no longer
    /// where the run's metadata says (repeatable).
    #[arg(long = "input", value_name = "CAPTURE")]
    inputs: Vec<PathBuf>,
}

/// `PARENT-CHILD`, for IPv4 and IPv6 alike (an IPv6 address has no `-`).
fn parse_edge(s: &str) -> Result<(IpAddr, IpAddr), String> {
    let (parent, child) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?}: expected PARENT-CHILD"))?;
    let ip = |a: &str| a.parse::<IpAddr>().map_err(|e| format!("{a:?}: {e}"));
    Ok((ip(parent)?, ip(child)?))
}

pub fn carve_cmd(args: &CarveArgs) -> anyhow::Result<ExitCode> {
    let target = match (&args.alert, args.host, args.edge, &args.flow) {
        (Some(id), ..) => CarveTarget::Alert(id.clone()),
        (_, Some(ip), ..) => CarveTarget::Host(ip),
        (_, _, Some((parent, child)), _) => CarveTarget::Edge(parent, child),
        (.., Some(id)) => CarveTarget::Flow(id.clone()),
        _ => unreachable!("clap requires one claim"),
    };
    let inputs = (!args.inputs.is_empty()).then_some(args.inputs.as_slice());
    let carved = carve(&args.dir, &target, inputs, &args.out)?;
    for w in &carved.warnings {
        eprintln!("wormsign: warning: {w}");
    }
    println!(
        "wrote {} packets of {} flows to {}",
        carved.packets,
        carved.flows,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
