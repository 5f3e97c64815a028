//! Capture timestamps as UTC calendar fields, for file names, reports and JSON.

/// A timestamp (ns since the Unix epoch) split into UTC calendar fields, proleptic
/// Gregorian. Any `i64` converts without panicking, including times before 1970 that
/// damaged captures carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtcTime {
    /// Year (may be before 1970 or after 9999 for bogus timestamps).
    pub year: i64,
    /// Month, 1–12.
    pub month: u8,
    /// Day of the month, 1–31.
    pub day: u8,
    /// Hour, 0–23.
    pub hour: u8,
    /// Minute, 0–59.
    pub minute: u8,
    /// Second, 0–59.
    pub second: u8,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

impl UtcTime {
    /// Splits `ns` since the Unix epoch (Howard Hinnant's civil-from-days algorithm).
    pub fn from_unix_ns(ns: i64) -> UtcTime {
        let secs = ns.div_euclid(1_000_000_000);
        let nanos = ns.rem_euclid(1_000_000_000) as u32;
        let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        UtcTime {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: (sod / 3600) as u8,
            minute: (sod / 60 % 60) as u8,
            second: (sod % 60) as u8,
            nanos,
        }
    }

    /// RFC 3339 with microseconds, e.g. `2019-01-01T04:46:00.123456Z`.
    pub fn rfc3339_micros(&self) -> String {
        let UtcTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanos,
        } = *self;
        let micros = nanos / 1000;
        format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{micros:06}Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let t = UtcTime::from_unix_ns(1_546_318_800_123_456_789);
        assert_eq!(t.rfc3339_micros(), "2019-01-01T05:00:00.123456Z");
        assert_eq!(
            UtcTime::from_unix_ns(0).rfc3339_micros(),
            "1970-01-01T00:00:00.000000Z"
        );
        assert_eq!(UtcTime::from_unix_ns(951_782_400_000_000_000).day, 29);
        let before = UtcTime::from_unix_ns(-1);
        assert_eq!(
            (before.year, before.month, before.day, before.second),
            (1969, 12, 31, 59)
        );
        UtcTime::from_unix_ns(i64::MIN);
        UtcTime::from_unix_ns(i64::MAX);
    }
}
