//! The time, as the responses and the access log print it, formatted once a
//! second rather than once a request.
//!
//! Every response carries `Date: Mon, 30 Nov 2026 13:40:01 GMT`, and every
//! access-log line `[30/Nov/2026:13:40:01 +0000]`. At 100,000 requests a
//! second, formatting them per request would be 100,000 calendar
//! computations of the same second; the loop calls [`Clock::tick`] once per
//! turn, and the text is rebuilt only when the second changes (nginx's
//! `ngx_time_update` does the same).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The current second, formatted for `Date` headers and the access log.
#[derive(Debug)]
pub struct Clock {
    /// Seconds since the epoch that the texts show.
    second: u64,
    /// `Mon, 30 Nov 2026 13:40:01 GMT` (RFC 9110's IMF-fixdate).
    http: String,
    /// `30/Nov/2026:13:40:01 +0000` (Common Log Format).
    log: String,
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

impl Clock {
    /// A clock showing now.
    pub fn new() -> Clock {
        let mut clock = Clock {
            second: u64::MAX,
            http: String::new(),
            log: String::new(),
        };
        clock.tick();
        clock
    }

    /// Reads the wall clock; reformats if the second has changed.
    pub fn tick(&mut self) {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second {
            self.second = second;
            self.http = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(second));
            self.log = clf_time(second);
        }
    }

    /// The `Date` header's value.
    pub fn http_date(&self) -> &str {
        &self.http
    }

    /// The access log's time, without the brackets.
    pub fn log_time(&self) -> &str {
        &self.log
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `30/Nov/2026:13:40:01 +0000` for `secs` since the epoch, in UTC.
fn clf_time(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Year, month (1–12) and day (1–31) of a day count since 1970-01-01, in
/// the proleptic Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_times_match_the_http_dates() {
        for secs in [0, 951_782_400, 1_700_000_000, 1_796_045_201, 4_102_444_800] {
            let http = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
            // "Mon, 30 Nov 2026 13:40:01 GMT" → day, month, year, time.
            let parts: Vec<&str> = http.split([' ', ',']).filter(|p| !p.is_empty()).collect();
            let expected = format!("{}/{}/{}:{} +0000", parts[1], parts[2], parts[3], parts[4]);
            assert_eq!(clf_time(secs), expected, "{secs}");
        }
    }

    #[test]
    fn a_tick_formats_now() {
        let clock = Clock::new();
        assert!(clock.http_date().ends_with(" GMT"));
        assert_eq!(clock.http_date().len(), 29);
        assert!(clock.log_time().ends_with(" +0000"));
    }
}
