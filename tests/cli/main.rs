//! Integration tests of the `wormsign` binary against independent tools (capinfos,
//! tshark, editcap, mergecap, gzip, zstd) on the shared capture corpus
//! (`../shared/captures`). Run with `cargo test --release --test cli`.

mod common;

mod bench_rules;
mod collect;
mod damage;
mod detection;
mod determinism;
mod dns;
mod formats;
mod interrupt;
mod linktypes;
mod logs;
mod netflow;
mod outcomes;
mod outputs;
mod partition;
mod protocol;
mod real_captures;
mod responder;
mod sflow;
mod synth;
mod synth_netflow;
mod synth_protocol;
mod tunnels;
mod zeek;
