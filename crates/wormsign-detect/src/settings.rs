//! How a setting is declared: once, with its doc, its rules-file key and its default.
//!
//! Every section of a rules file (`[scan]`, `[trw]`, …, and the top level) is one struct
//! written with [`settings!`]. serde reads it over the defaults (a missing key keeps its
//! default, an unknown key is an error) and prints it (`wormsign rules`), so a setting
//! cannot be read under one name and printed under another, and a printed file reads back
//! as the same rule set. Values that need checking are checked as they are read, by their
//! type ([`TimeSpan`], [`crate::Cidr`]) or by a `deserialize_with` helper from this module.

use std::net::IpAddr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const NS_PER_SEC: i64 = 1_000_000_000;

/// Declares a settings section: a struct whose fields are written
/// `doc, serde attributes, pub name: Type = default,`. It derives serde (every key
/// optional, unknown keys rejected), `Clone`, `Debug`, `PartialEq`, and `Default` from the
/// defaults given.
macro_rules! settings {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                pub $field:ident: $ty:ty = $default:expr,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $($(#[$field_meta])* pub $field: $ty,)*
        }

        impl Default for $name {
            fn default() -> Self {
                $name { $($field: $default,)* }
            }
        }
    };
}
pub(crate) use settings;

/// A length of capture time. Rules files give it in seconds (`window_s = 60.0`), never
/// negative; the rules compare it with capture timestamps in ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeSpan {
    ns: i64,
}

impl TimeSpan {
    /// `secs` whole seconds.
    pub const fn from_secs(secs: i64) -> TimeSpan {
        TimeSpan {
            ns: secs * NS_PER_SEC,
        }
    }

    /// `secs` seconds rounded to the ns; `None` unless finite and not negative.
    pub fn from_secs_f64(secs: f64) -> Option<TimeSpan> {
        (secs.is_finite() && secs >= 0.0).then(|| TimeSpan {
            ns: (secs * NS_PER_SEC as f64).round() as i64,
        })
    }

    /// The span in ns.
    pub const fn ns(self) -> i64 {
        self.ns
    }

    /// The span in seconds.
    pub fn as_secs_f64(self) -> f64 {
        self.ns as f64 / NS_PER_SEC as f64
    }
}

impl Serialize for TimeSpan {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_secs_f64())
    }
}

impl<'de> Deserialize<'de> for TimeSpan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TimeSpan, D::Error> {
        let secs = f64::deserialize(d)?;
        TimeSpan::from_secs_f64(secs)
            .ok_or_else(|| D::Error::custom("must be a non-negative number of seconds"))
    }
}

/// Reads a probability strictly between 0 and 1 (TRW's parameters: 0 and 1 would make
/// its log-likelihood ratios infinite).
pub(crate) fn probability<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let p = f64::deserialize(d)?;
    if p > 0.0 && p < 1.0 {
        Ok(p)
    } else {
        Err(D::Error::custom("must be strictly between 0 and 1"))
    }
}

/// Reads a count, raised to `MIN` (a threshold or cap below it would make the rule fire on
/// nothing or hold nothing).
pub(crate) fn at_least<'de, const MIN: usize, D: Deserializer<'de>>(
    d: D,
) -> Result<usize, D::Error> {
    Ok(usize::deserialize(d)?.max(MIN))
}

/// Reads a list of IP addresses, surrounding blanks allowed.
pub(crate) fn addresses<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| {
            s.trim()
                .parse()
                .map_err(|_| D::Error::custom(format!("not an IP address: {s:?}")))
        })
        .collect()
}

/// Reads a list of indicators the way an indicator file is read
/// ([`crate::parse_indicator_list`]): `#` comments and blanks dropped, lower case, no
/// trailing dot.
pub(crate) fn indicator_list<'de, D: Deserializer<'de>, L: FromIterator<String>>(
    d: D,
) -> Result<L, D::Error> {
    let entries = Vec::<String>::deserialize(d)?;
    Ok(crate::parse_indicator_list(&entries.join("\n"))
        .into_iter()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_spans_are_seconds_in_files_and_ns_inside() {
        assert_eq!(TimeSpan::from_secs(60).ns(), 60_000_000_000);
        assert_eq!(
            TimeSpan::from_secs_f64(0.5),
            Some(TimeSpan { ns: 500_000_000 })
        );
        assert_eq!(TimeSpan::from_secs_f64(-1.0), None);
        assert_eq!(TimeSpan::from_secs_f64(f64::NAN), None);
        assert_eq!(TimeSpan::from_secs(1).as_secs_f64(), 1.0);
    }
}
