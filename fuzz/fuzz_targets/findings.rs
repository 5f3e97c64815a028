//! Detection part findings from another process (see replay::findings).
#![no_main]

// Every target includes all of replay.rs and uses one of its functions.
#[allow(dead_code)]
#[path = "../replay.rs"]
mod replay;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = replay::findings(data);
});
