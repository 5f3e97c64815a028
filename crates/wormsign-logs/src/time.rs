//! Timestamps as flow logs write them: seconds since the epoch with a decimal fraction
//! (Zeek's TSV and default JSON) or ISO 8601 (Zeek's `JSON::TS_ISO8601`).

/// Integer timestamps above this are milliseconds (Zeek's `JSON::TS_MILLIS`): as
/// seconds they would be after the year 5000.
const MILLIS_ABOVE: i64 = 100_000_000_000;

/// `text` as ns since the Unix epoch.
pub(crate) fn parse_time(text: &str) -> Option<i64> {
    if text.contains('T') {
        return parse_iso8601(text);
    }
    match text.parse::<i64>() {
        Ok(ms) if ms > MILLIS_ABOVE => ms.checked_mul(1_000_000),
        _ => parse_decimal_seconds(text),
    }
}

/// A decimal number of seconds (`1379288667.706265`, `-0.5`, `3`) as ns, read digit by
/// digit: a round trip through `f64` would move microsecond timestamps by a nanosecond.
pub(crate) fn parse_decimal_seconds(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let seconds: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut nanos = 0i64;
    for (i, b) in fraction.bytes().take(9).enumerate() {
        nanos += i64::from(b - b'0') * 10i64.pow(8 - i as u32);
    }
    let total = seconds.checked_mul(1_000_000_000)?.checked_add(nanos)?;
    Some(if negative { -total } else { total })
}

/// `2019-12-03T22:44:56.052279Z`, `…+0000` or `…+01:00` as ns since the epoch.
fn parse_iso8601(text: &str) -> Option<i64> {
    let (date, rest) = text.split_once('T')?;
    let mut parts = date.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    let zone_at = rest
        .find(['Z', '+'])
        .or_else(|| rest.rfind('-'))
        .unwrap_or(rest.len());
    let (clock, zone) = rest.split_at(zone_at);
    let mut hms = clock.splitn(3, ':');
    let hour: i64 = hms.next()?.parse().ok()?;
    let minute: i64 = hms.next()?.parse().ok()?;
    let seconds = parse_decimal_seconds(hms.next()?)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // Years beyond ISO 8601's four digits are refused; a time beyond what ns in an i64
    // hold (1677 to 2262) is refused by the checked arithmetic.
    if !(0..=9999).contains(&year) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let local_seconds = days * 86_400 + hour * 3_600 + minute * 60 - zone_offset(zone)?;
    local_seconds
        .checked_mul(1_000_000_000)?
        .checked_add(seconds)
}

/// `Z`, `+0000`, `-05:00`, or nothing (UTC) as seconds east of UTC.
fn zone_offset(zone: &str) -> Option<i64> {
    if zone.is_empty() || zone == "Z" {
        return Some(0);
    }
    let sign = match zone.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i64 = digits[..2].parse().ok()?;
    let minutes: i64 = digits[2..].parse().ok()?;
    Some(sign * (hours * 3_600 + minutes * 60))
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let m = i64::from(month);
    let day_of_year = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_seconds_keep_every_digit() {
        assert_eq!(
            parse_time("1379288667.706265"),
            Some(1_379_288_667_706_265_000)
        );
        assert_eq!(parse_time("3"), Some(3_000_000_000));
        assert_eq!(parse_time("1575413096052"), Some(1_575_413_096_052_000_000));
        assert_eq!(parse_time("-0.5"), Some(-500_000_000));
        assert_eq!(parse_time("1.1234567891"), Some(1_123_456_789));
        assert_eq!(parse_time("x"), None);
        assert_eq!(parse_time("."), None);
        assert_eq!(parse_time(""), None);
    }

    #[test]
    fn iso8601_with_every_zone_form() {
        // date -u -d @1575413096 → 2019-12-03T22:44:56Z
        let ns = 1_575_413_096_052_279_000;
        assert_eq!(parse_time("2019-12-03T22:44:56.052279Z"), Some(ns));
        assert_eq!(parse_time("2019-12-03T22:44:56.052279+0000"), Some(ns));
        assert_eq!(parse_time("2019-12-03T23:44:56.052279+01:00"), Some(ns));
        assert_eq!(parse_time("2019-12-03T17:44:56.052279-0500"), Some(ns));
        assert_eq!(parse_time("1969-12-31T23:59:59Z"), Some(-1_000_000_000));
        assert_eq!(parse_time("2019-13-03T22:44:56Z"), None);
        assert_eq!(parse_time("2019-12-03T22:44:56+05"), None);
        // Beyond what ns since the epoch hold in an i64, or what a year is.
        assert_eq!(parse_time("9999-12-03T22:44:56Z"), None);
        assert_eq!(parse_time("99999999999999-12-03T22:44:56Z"), None);
    }
}
