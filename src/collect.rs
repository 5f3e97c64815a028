//! `wormsign collect`: options and printing around `wormsign_engine::Collector`, a
//! NetFlow v5/v9/IPFIX collector writing rolling Parquet files of flow rows.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use wormsign_engine::{netflow_json, sflow_json, CollectConfig, Collector, DEFAULT_RECV_BUFFER};

#[derive(Args, Debug)]
pub struct CollectArgs {
    /// Address and UDP port to listen on. Loopback unless told otherwise.
    #[arg(long, default_value = "127.0.0.1:2055")]
    listen: SocketAddr,
    /// Directory for the rolling `flows-YYYYMMDDTHHMMSSZ.parquet` files.
    #[arg(long, short)]
    out: PathBuf,
    /// Start a new file this often: a number with s, m or h (e.g. 30s, 5m, 1h).
    #[arg(long, default_value = "5m", value_parser = parse_interval)]
    rotate: Duration,
    /// Socket receive buffer to ask for, in bytes, or with K, M or G (binary units).
    /// Linux grants at most `net.core.rmem_max`; the start-up line says what was given.
    #[arg(long, default_value_t = DEFAULT_RECV_BUFFER, value_parser = parse_bytes)]
    recv_buffer: usize,
    /// Write the final counters as JSON to this file when the collector stops.
    #[arg(long)]
    summary_json: Option<PathBuf>,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text:?} (use e.g. 30s, 5m, 1h)"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("unknown unit in {text:?} (use s, m or h)")),
    };
    if secs == 0 {
        return Err("the rotation interval must be positive".into());
    }
    Ok(Duration::from_secs(secs))
}

fn parse_bytes(text: &str) -> Result<usize, String> {
    let (number, shift) = match text.char_indices().last() {
        Some((at, 'K')) => (&text[..at], 10),
        Some((at, 'M')) => (&text[..at], 20),
        Some((at, 'G')) => (&text[..at], 30),
        _ => (text, 0),
    };
    number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("not a size: {text:?} (use e.g. 8388608, 512K, 8M)"))
}

/// Receives export datagrams until SIGINT or SIGTERM, then completes the current file.
pub fn collect(args: &CollectArgs) -> anyhow::Result<ExitCode> {
    let collector = Collector::bind(&CollectConfig {
        listen: args.listen,
        out: args.out.clone(),
        rotate: args.rotate,
        recv_buffer: args.recv_buffer,
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    eprintln!(
        "wormsign: collecting on udp://{} (receive buffer {} bytes as the kernel counts them, {} asked for)",
        collector.local_addr()?,
        collector.recv_buffer()?,
        args.recv_buffer
    );
    let summary = collector.run(&stop)?;
    let stats = &summary.netflow;
    eprintln!(
        "wormsign: collected {} datagrams: {} decoded, {} records, {} lost by sequence, {} malformed, {} data sets without template; {} files in {}",
        summary.datagrams,
        stats.packets,
        stats.records,
        stats.sequence_lost,
        stats.malformed,
        stats.data_sets_without_template,
        summary.files,
        args.out.display()
    );
    let sflow = &summary.sflow;
    if sflow.datagrams > 0 {
        eprintln!(
            "wormsign: sflow: {} datagrams, {} flow samples ({} metered into flows), {} counter samples, {} malformed",
            sflow.datagrams, sflow.flow_samples, sflow.sampled_packets, sflow.counter_samples, sflow.malformed
        );
    }
    if let Some(path) = &args.summary_json {
        let json = serde_json::json!({
            "datagrams": summary.datagrams,
            "files": summary.files,
            "recv_buffer": summary.recv_buffer,
            "netflow": netflow_json(stats),
            "sflow": sflow_json(&summary.sflow),
        });
        crate::write_json_file(path, &json)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_interval("30s"), Ok(Duration::from_secs(30)));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("5x").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("8388608"), Ok(8 << 20));
        assert_eq!(parse_bytes("512K"), Ok(512 << 10));
        assert_eq!(parse_bytes("8M"), Ok(8 << 20));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("8X").is_err());
        assert!(parse_bytes("M").is_err());
    }
}
