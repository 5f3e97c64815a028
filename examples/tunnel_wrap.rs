//! Wraps every frame of an Ethernet capture in a tunnel, for benchmarks and tests of
//! decapsulation (`benches/e2e.sh` measures its cost this way):
//!
//! ```text
//! cargo run --release --example tunnel_wrap -- vxlan IN.pcap OUT.pcap
//! ```
//!
//! Tunnels: vxlan, geneve, gtpu, gre, gre-ethernet, erspan1, erspan2, erspan3,
//! ip-in-ipv4, ip-in-ipv6 (see `wormsign_synth::tunnel`).

use std::path::Path;
use std::process::ExitCode;

use wormsign_synth::tunnel::{wrap_capture, Wrap};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [wrap, input, output] = &args[..] else {
        eprintln!("usage: tunnel_wrap TUNNEL IN.pcap OUT.pcap");
        return ExitCode::from(2);
    };
    let result = wrap
        .parse::<Wrap>()
        .map_err(std::io::Error::other)
        .and_then(|wrap| wrap_capture(Path::new(input), wrap, Path::new(output)));
    match result {
        Ok(packets) => {
            eprintln!("tunnel_wrap: {packets} frames wrapped in {wrap} to {output}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tunnel_wrap: {e}");
            ExitCode::from(1)
        }
    }
}
