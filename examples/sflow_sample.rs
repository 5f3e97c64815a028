//! Samples an Ethernet capture as an sFlow v5 agent would, for benchmarks of sFlow
//! metering (`benches/inputs.sh`):
//!
//! ```text
//! cargo run --release --example sflow_sample -- RATE IN.pcap OUT.pcap
//! ```
//!
//! RATE 1 samples every frame (see `wormsign_synth::sflow`).

use std::path::Path;
use std::process::ExitCode;

use wormsign_synth::sflow::sample_capture;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [rate, input, output] = &args[..] else {
        eprintln!("usage: sflow_sample RATE IN.pcap OUT.pcap");
        return ExitCode::from(2);
    };
    let Ok(rate) = rate.parse::<u32>() else {
        eprintln!("sflow_sample: RATE must be a positive number, not {rate}");
        return ExitCode::from(2);
    };
    match sample_capture(Path::new(input), rate, 1, Path::new(output)) {
        Ok(s) => {
            eprintln!(
                "sflow_sample: {} samples of {} frames in {} datagrams to {output}",
                s.samples, s.frames, s.datagrams
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sflow_sample: {e}");
            ExitCode::from(1)
        }
    }
}
