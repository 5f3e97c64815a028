//! Test-only helpers shared by every crate's tests: where the shared capture corpus is,
//! whether an external tool can be run, and a random assignment of addresses to parts.
//!
//! One policy for anything a test needs from outside the repository: when it is missing,
//! the test prints `skipping: …` and checks nothing, **unless the environment variable `CI`
//! is set**, where the test panics with what is missing and how to get it. A run in CI
//! therefore never passes a check it did not make.
//!
//! `WORMSIGN_SHARED` overrides where `../shared` is looked for (the directory holding
//! `captures/`); pointing it at a missing directory shows what a run without the corpus
//! does.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The shared material's default place: `../shared`, beside the repository.
const DEFAULT_SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared");

/// How to get the capture corpus, for messages.
const HOW_TO_GET_SHARED: &str = "check out the read-only `shared/` material beside this \
     repository (so that ../shared/captures/MANIFEST.tsv exists), or point WORMSIGN_SHARED at it";

/// Whether the `CI` environment variable is set (to anything).
pub fn under_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// Something a test needs is missing: under CI a panic saying `what` and `how` to get it,
/// otherwise a `skipping:` line (the caller then returns without checking).
#[track_caller]
pub fn missing(what: &str, how: &str) {
    if under_ci() {
        panic!("{what}; CI is set, so this fails instead of skipping. To fix: {how}");
    }
    println!("skipping: {what} ({how})");
}

/// The `shared/` directory: `$WORMSIGN_SHARED` if set, else `../shared` beside the
/// repository. Not checked for existence.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("WORMSIGN_SHARED") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_SHARED),
    }
}

/// The capture corpus directory (`shared/captures`), without checking it.
pub fn captures_dir() -> PathBuf {
    shared_dir().join("captures")
}

/// A capture of the corpus by its manifest path, without checking it.
pub fn capture_path(rel: &str) -> PathBuf {
    captures_dir().join(rel)
}

/// The capture corpus directory when it is there (it holds `MANIFEST.tsv`). When it is
/// not: `None` after a `skipping:` line, or a panic under CI.
#[track_caller]
pub fn shared_captures() -> Option<PathBuf> {
    let dir = captures_dir();
    if dir.join("MANIFEST.tsv").is_file() {
        Some(dir)
    } else {
        missing(
            &format!(
                "the shared capture corpus is missing: no {}",
                dir.join("MANIFEST.tsv").display()
            ),
            HOW_TO_GET_SHARED,
        );
        None
    }
}

/// One file of the capture corpus (`rel` as in MANIFEST.tsv) when it is there; otherwise
/// `None` after a `skipping:` line, or a panic under CI.
#[track_caller]
pub fn shared_capture(rel: &str) -> Option<PathBuf> {
    let dir = shared_captures()?;
    let path = dir.join(rel);
    if path.is_file() {
        Some(path)
    } else {
        missing(
            &format!("capture {} is missing from the corpus", path.display()),
            HOW_TO_GET_SHARED,
        );
        None
    }
}

/// Whether the external tool `name` is installed: `name ARG` starts (`ARG` being a
/// version or help flag; its exit code is ignored, as some tools exit 1 after their help,
/// except 126/127, a shell's "cannot run"). When it is not: `false` after a `skipping:`
/// line, or a panic under CI saying to run `tests/install-tools.sh`.
#[track_caller]
pub fn require_tool(name: &str, arg: &str) -> bool {
    let ok = Command::new(name)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| !matches!(s.code(), Some(126 | 127)));
    if !ok {
        missing(
            &format!("the external tool `{name}` is missing (`{name} {arg}` did not run)"),
            "run tests/install-tools.sh, which installs tshark, capinfos, editcap, mergecap, \
             tcpdump, nfdump/nfcapd, softflowd and argus",
        );
    }
    ok
}

/// How many of `usable` flows detection holds in temporary files with `max_pending_flows`
/// at `cap` (its `flows_in_files`, while files can be written): every full batch but the
/// last, since a batch is written only when a flow comes beyond it.
pub fn held_in_files(usable: u64, cap: u64) -> u64 {
    usable.saturating_sub(1) / cap * cap
}

/// How many of `usable` flows pushed one by one detection holds in memory beyond
/// `max_pending_flows` at `cap` when no temporary file can be written (its
/// `flows_held_without_files`): up to 16 times the cap are held (`CAPS_HELD_WITHOUT_FILES` in
/// wormsign-detect's `spill.rs`, whose tests check this against it); the flow beyond
/// makes them all go through the rules, and the next flows start again.
pub fn held_without_files(usable: u64, cap: u64) -> u64 {
    let at_once = 16 * cap + 1;
    let (let_go, rest) = (usable / at_once, usable % at_once);
    let_go * (at_once - cap) + rest.saturating_sub(cap)
}

/// SplitMix64 of an address and a seed: a random assignment of addresses to detection
/// parts (`Partition::by(k, |ip| random_part(ip, seed))`), different for every seed and
/// unrelated to the detector's own hash.
pub fn random_part(ip: IpAddr, seed: u64) -> usize {
    let bits = match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    let z = seed ^ (bits as u64) ^ ((bits >> 64) as u64).rotate_left(17);
    mix(z.wrapping_add(GOLDEN_GAMMA)) as usize
}

/// A fixed pseudo-random sequence (SplitMix64), for tests that drive an implementation
/// and a plain model of it with the same random operations: the same on every run and
/// platform, so a failure can be replayed.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next number below `n` (at least 1).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        mix(self.0) % n.max(1)
    }
}

/// SplitMix64's increment.
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
