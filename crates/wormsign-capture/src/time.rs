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
        let fields = [self.month, self.day, self.hour, self.minute, self.second];
        let in_range = fields.iter().all(|&f| f < 100) && self.nanos < 1_000_000_000;
        let (Ok(year @ 0..=9999), true) = (u32::try_from(self.year), in_range) else {
            return self.rfc3339_micros_formatted();
        };
        // Digits written in place: `format!` took a third of the time of writing
        // `alerts.jsonl`, which has three times an alert.
        let mut text = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |end: usize, digits: usize, mut value: u32| {
            for at in (end - digits..end).rev() {
                text[at] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(4, 4, year);
        put(7, 2, self.month.into());
        put(10, 2, self.day.into());
        put(13, 2, self.hour.into());
        put(16, 2, self.minute.into());
        put(19, 2, self.second.into());
        put(26, 6, self.nanos / 1000);
        String::from_utf8(text.to_vec()).expect("ASCII digits and separators")
    }

    /// [`UtcTime::rfc3339_micros`] through `format!`, for years of other than four
    /// digits or fields out of their range (only a hand-made `UtcTime` has them: `i64`
    /// nanoseconds span 1677-2262).
    fn rfc3339_micros_formatted(&self) -> String {
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
    fn rfc3339_digits_are_the_fields_zero_padded() {
        let step = (i64::MAX / 5_000) | 1;
        for ns in (i64::MIN..=i64::MAX).step_by(step as usize) {
            let t = UtcTime::from_unix_ns(ns);
            assert_eq!(t.rfc3339_micros(), t.rfc3339_micros_formatted(), "{ns}");
        }
    }

    #[test]
    fn known_dates() {
        let t = UtcTime::from_unix_ns(1_546_318_800_123_456_789);
        assert_eq!(t.rfc3339_micros(), "2019-01-01T05:00:00.123456Z");
        assert_eq!(
            UtcTime::from_unix_ns(0).rfc3339_micros(),
            "1970-01-01T00:00:00.000000Z"
        );
        assert_eq!(UtcTime::from_unix_ns(951_782_400_000_000_000).day, 29);
        let far = UtcTime {
            year: -1,
            ..UtcTime::from_unix_ns(0)
        };
        assert_eq!(far.rfc3339_micros(), "-001-01-01T00:00:00.000000Z");
        let far = UtcTime {
            year: 12_345,
            ..far
        };
        assert_eq!(far.rfc3339_micros(), "12345-01-01T00:00:00.000000Z");
        let odd = UtcTime {
            hour: 123,
            nanos: 1_234_567_890,
            ..UtcTime::from_unix_ns(0)
        };
        assert_eq!(odd.rfc3339_micros(), "1970-01-01T123:00:00.1234567Z");
        assert_eq!(
            UtcTime::from_unix_ns(i64::MIN).rfc3339_micros(),
            "1677-09-21T00:12:43.145224Z"
        );
        assert_eq!(
            UtcTime::from_unix_ns(i64::MAX).rfc3339_micros(),
            "2262-04-11T23:47:16.854775Z"
        );
        let before = UtcTime::from_unix_ns(-1);
        assert_eq!(
            (before.year, before.month, before.day, before.second),
            (1969, 12, 31, 59)
        );
        UtcTime::from_unix_ns(i64::MIN);
        UtcTime::from_unix_ns(i64::MAX);
    }
}
