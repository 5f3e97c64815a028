//! C&C name matching, which every DNS message of a run passes through
//! (`DetectConfig::wants_dns`): `cargo bench -p wormsign-detect --bench indicators`.
//!
//! * `wants_dns/builtin`: the built-in DriveLife / Lemon Duck list (11 suffixes);
//! * `wants_dns/feed_10k`: the same plus a 10 000-domain indicator file, the size of a
//!   small threat-intelligence feed.
//!
//! Each iteration matches 4 096 names shaped like a capture's: two to four labels under
//! common top-level domains, one in 64 a C&C name, one in 8 in mixed case (resolvers'
//! 0x20 randomization), one in 16 a reverse lookup. Throughput is in names.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wormsign_detect::DetectConfig;

const NAMES: usize = 4_096;
const FEED: usize = 10_000;

/// A fixed-seed xorshift: the same names and feed on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    fn label(&mut self) -> String {
        let len = 3 + self.below(10);
        (0..len)
            .map(|_| char::from(b'a' + self.below(26) as u8))
            .collect()
    }

    fn tld(&mut self) -> &'static str {
        ["com", "net", "org", "cn", "ru", "top"][self.below(6) as usize]
    }
}

fn names(rng: &mut Rng) -> Vec<String> {
    (0..NAMES)
        .map(|i| match i % 64 {
            0 => format!("{}.t.awcna.com", rng.label()),
            n if n % 16 == 1 => format!("{}.{}.10.in-addr.arpa", rng.below(256), rng.below(256)),
            n if n % 8 == 2 => format!("WwW.{}.{}", rng.label().to_uppercase(), rng.tld()),
            _ => {
                let labels: Vec<String> = (0..1 + rng.below(3)).map(|_| rng.label()).collect();
                format!("{}.{}", labels.join("."), rng.tld())
            }
        })
        .collect()
}

fn feed(rng: &mut Rng) -> String {
    (0..FEED)
        .map(|_| format!("{}.{}\n", rng.label(), rng.tld()))
        .collect()
}

fn wants_dns(c: &mut Criterion) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let names = names(&mut rng);
    let builtin = DetectConfig::default();
    let mut with_feed = DetectConfig::default();
    with_feed.add_indicators(&feed(&mut rng));
    let mut group = c.benchmark_group("wants_dns");
    group.throughput(Throughput::Elements(NAMES as u64));
    for (label, config) in [("builtin", &builtin), ("feed_10k", &with_feed)] {
        group.bench_function(label, |b| {
            b.iter(|| {
                names
                    .iter()
                    .filter(|n| config.wants_dns(black_box(n)))
                    .count()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, wants_dns);
criterion_main!(benches);
