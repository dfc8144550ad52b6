//! Calendar fields of a Unix time in UTC, for `year()`, `month()`, `day_of_week()` …

use super::plan::Calendar;

/// The field of the UTC date and time `seconds` after the epoch (fractions truncated, as
/// Prometheus converts to an integer first). NaN and ±Inf give NaN.
pub fn calendar_field(field: Calendar, seconds: f64) -> f64 {
    if !seconds.is_finite() {
        return f64::NAN;
    }
    let secs = seconds.trunc() as i64;
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    match field {
        Calendar::DayOfMonth => day as f64,
        // 1970-01-01 was a Thursday (4).
        Calendar::DayOfWeek => (days + 4).rem_euclid(7) as f64,
        Calendar::DayOfYear => (days - days_from_civil(year, 1, 1) + 1) as f64,
        Calendar::DaysInMonth => days_in_month(year, month) as f64,
        Calendar::Hour => (of_day / 3600) as f64,
        Calendar::Minute => (of_day % 3600 / 60) as f64,
        Calendar::Month => month as f64,
        Calendar::Year => year as f64,
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's `civil_from_days`: (year, month 1–12, day 1–31).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since the epoch of a civil date (inverse of [`civil_from_days`]).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_known_dates() {
        // 2024-02-29T13:45:00Z, a Thursday, day 60 of a leap year.
        let t = 1_709_214_300.0;
        assert_eq!(calendar_field(Calendar::Year, t), 2024.0);
        assert_eq!(calendar_field(Calendar::Month, t), 2.0);
        assert_eq!(calendar_field(Calendar::DayOfMonth, t), 29.0);
        assert_eq!(calendar_field(Calendar::DayOfWeek, t), 4.0);
        assert_eq!(calendar_field(Calendar::DayOfYear, t), 60.0);
        assert_eq!(calendar_field(Calendar::DaysInMonth, t), 29.0);
        assert_eq!(calendar_field(Calendar::Hour, t), 13.0);
        assert_eq!(calendar_field(Calendar::Minute, t), 45.0);
        // Before the epoch: 1969-12-31T23:59:59Z, a Wednesday.
        assert_eq!(calendar_field(Calendar::Year, -1.0), 1969.0);
        assert_eq!(calendar_field(Calendar::DayOfWeek, -1.0), 3.0);
        assert_eq!(calendar_field(Calendar::DayOfYear, -1.0), 365.0);
        assert!(calendar_field(Calendar::Hour, f64::NAN).is_nan());
    }
}
