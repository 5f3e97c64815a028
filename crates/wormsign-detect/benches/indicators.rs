//! C&C name matching, which every DNS message of a run passes through
//! (`DetectConfig::wants_dns`): `cargo bench -p wormsign-detect --bench indicators`.
//!
//! * `wants_dns/builtin`: the built-in DriveLife / Lemon Duck list (11 suffixes);
//! * `wants_dns/feed_10k`: the same plus a 10 000-domain indicator file, the size of a
//!   small threat-intelligence feed.
//!
//! Each iteration matches 4 096 names shaped like a capture's, in lower case as the DNS
//! decoder stores them: two to four labels under common top-level domains, one in 64 a
//! C&C name, one in 16 a reverse lookup (which `wants_dns` keeps before any C&C match).
//! Throughput is in names.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wormsign_detect::DetectConfig;

const NAMES: usize = 4_096;
const FEED: usize = 10_000;

/// A label of 3 to 12 letters spelling `n` (scrambled, so neighbours differ early).
fn label(n: u64) -> String {
    let mut x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 8;
    (0..3 + n % 10)
        .map(|_| {
            let letter = char::from(b'a' + (x % 26) as u8);
            x /= 26;
            letter
        })
        .collect()
}

fn tld(n: u64) -> &'static str {
    ["com", "net", "org", "cn", "ru", "top"][(n % 6) as usize]
}

fn names() -> Vec<String> {
    (0..NAMES as u64)
        .map(|i| match i % 64 {
            0 => format!("{}.t.awcna.com", label(i)),
            n if n % 16 == 1 => format!("{}.{}.10.in-addr.arpa", i % 256, i / 256),
            _ => {
                let labels: Vec<String> = (0..1 + i % 3).map(|k| label(i * 3 + k)).collect();
                format!("{}.{}", labels.join("."), tld(i / 7))
            }
        })
        .collect()
}

/// Domains under the names' top-level domains, spelled from other numbers than theirs.
fn feed() -> String {
    (0..FEED as u64)
        .map(|i| format!("{}.{}\n", label(1 << 40 | i), tld(i)))
        .collect()
}

fn wants_dns(c: &mut Criterion) {
    let names = names();
    let builtin = DetectConfig::default();
    let mut with_feed = DetectConfig::default();
    with_feed.add_indicators(&feed());
    let mut group = c.benchmark_group("wants_dns");
    group.throughput(Throughput::Elements(NAMES as u64));
    for (label, config) in [("builtin", &builtin), ("feed_10k", &with_feed)] {
        group.bench_function(label, |b| {
            b.iter(|| {
                names
                    .iter()
                    .filter(|n| config.wants_dns(black_box(n), true))
                    .count()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, wants_dns);
criterion_main!(benches);
