//! `Rate`: an amount of requests per window of time, such as 10/s or 5000/h.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A rate: `amount` requests per `window`, such as 10 per second, 0.5 per second or
/// 5000 per hour. Rates below one a second are kept exactly, as an amount and a
/// window rather than a rounded number per second.
///
/// The bucket refills evenly: 5000/h is one request every 0.72 s, not 5000 at the top
/// of each hour. A rate is never zero; "no limit" is
/// [`no_rate_limit`](crate::FanOutClientBuilder::no_rate_limit).
///
/// Parsed from the forms the command line takes: `AMOUNT[/WINDOW]`, where AMOUNT is a
/// positive decimal and WINDOW a unit (`s`, `min`, `h`, `d`, `ms`) with an optional
/// whole multiplier in front.
///
/// ```
/// use std::time::Duration;
/// use fanout::Rate;
///
/// let rate: Rate = "900/15min".parse()?;
/// assert_eq!(rate, Rate::new(900, Duration::from_secs(15 * 60))?);
/// assert_eq!(rate.interval(), Duration::from_secs(1));
///
/// let slow: Rate = "0.5".parse()?;
/// assert_eq!(slow.interval(), Duration::from_secs(2));
/// assert_eq!(slow.as_per_second(), 0.5);
/// # Ok::<(), fanout::RateError>(())
/// ```
#[derive(Clone, Copy)]
pub struct Rate {
    amount: u64,
    window: Duration,
}

/// Why a [`Rate`] could not be made or parsed. The message names the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid rate {given:?}: {reason} (accepted: AMOUNT[/WINDOW] such as 10, 0.5, 100/min, 5000/h, 900/15min, 86400/d)"
)]
pub struct RateError {
    given: String,
    reason: &'static str,
}

/// The shortest window a rate may have. With it, the highest rate is 10^9 a second,
/// so that one request's interval is at least a nanosecond.
const MIN_INTERVAL: Duration = Duration::from_nanos(1);
/// The longest window accepted: a year. Longer windows are not HTTP quotas.
const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 60 * 60);

impl Rate {
    /// `amount` requests per `window`. Fails if either is zero, if the window is
    /// longer than a year, or if the rate is over 10^9 a second.
    pub fn new(amount: u64, window: Duration) -> Result<Rate, RateError> {
        let given = || format!("{amount}/{window:?}");
        if amount == 0 {
            return Err(RateError {
                given: given(),
                reason: "the amount must be greater than 0",
            });
        }
        if window.is_zero() {
            return Err(RateError {
                given: given(),
                reason: "the window must be longer than 0",
            });
        }
        if window > MAX_WINDOW {
            return Err(RateError {
                given: given(),
                reason: "the window must be at most a year",
            });
        }
        if window.as_nanos() < u128::from(amount) * MIN_INTERVAL.as_nanos() {
            return Err(RateError {
                given: given(),
                reason: "the rate must be at most 10^9 a second",
            });
        }
        Ok(Rate { amount, window })
    }

    /// `n` requests a second.
    ///
    /// ```
    /// assert_eq!(fanout::Rate::per_second(10)?.as_per_second(), 10.0);
    /// # Ok::<(), fanout::RateError>(())
    /// ```
    pub fn per_second(n: u64) -> Result<Rate, RateError> {
        Rate::new(n, Duration::from_secs(1))
    }

    /// Requests per window, as given.
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// The window the amount is counted over, as given.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The average time between two requests: the window divided by the amount,
    /// rounded up to a whole nanosecond so that the rate is never exceeded.
    pub fn interval(&self) -> Duration {
        let nanos = self.window.as_nanos().div_ceil(u128::from(self.amount));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Requests per second, as a float: for display and for comparing rates.
    pub fn as_per_second(&self) -> f64 {
        self.amount as f64 / self.window.as_secs_f64()
    }
}

impl Rate {
    /// A rate of `per_second` requests a second, for rates the library computes (never
    /// parsed from users): kept as an amount per microsecond-exact window.
    pub(crate) fn from_per_second(per_second: f64) -> Option<Rate> {
        if !(per_second.is_finite() && per_second > 0.0) {
            return None;
        }
        // An amount per a million-second window keeps six decimals for slow rates;
        // fast rates keep the amount per second.
        if per_second >= 1000.0 {
            Rate::new(per_second.round() as u64, Duration::from_secs(1)).ok()
        } else {
            // Reduced, so that 20/s shows as 20/s and not as 20000000/1000000s.
            let micro = (per_second * 1e6).round().max(1.0) as u64;
            let common = gcd(micro, 1_000_000);
            Rate::new(micro / common, Duration::from_secs(1_000_000 / common)).ok()
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl PartialEq for Rate {
    /// Equal when the rates are: 1/2s equals 30/min.
    fn eq(&self, other: &Rate) -> bool {
        u128::from(self.amount) * other.window.as_nanos()
            == u128::from(other.amount) * self.window.as_nanos()
    }
}

impl Eq for Rate {}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Rate {
    /// As an amount per window in the largest whole unit: `10/s`, `5000/h`,
    /// `900/15min`, `1/2s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.window.as_nanos();
        for (unit, unit_nanos) in UNITS_LARGEST_FIRST {
            if nanos % unit_nanos == 0 {
                let count = nanos / unit_nanos;
                if count > 1000 {
                    // A computed rate, such as 5186287/500000s: per second reads better.
                    let per_second = self.as_per_second();
                    return write!(f, "{per_second:.3}/s");
                }
                return if count == 1 {
                    write!(f, "{}/{unit}", self.amount)
                } else {
                    write!(f, "{}/{count}{unit}", self.amount)
                };
            }
        }
        write!(f, "{}/{nanos}ns", self.amount)
    }
}

const UNITS_LARGEST_FIRST: [(&str, u128); 6] = [
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("min", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
];

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "d" | "day" => 86_400_000_000_000,
        "h" | "hour" => 3_600_000_000_000,
        "m" | "min" | "minute" => 60_000_000_000,
        "s" | "sec" | "second" => 1_000_000_000,
        "ms" => 1_000_000,
        _ => return None,
    })
}

impl FromStr for Rate {
    type Err = RateError;

    /// Parses `AMOUNT[/WINDOW]`: `10`, `0.5`, `100/min`, `5000/h`, `900/15min`,
    /// `86400/d`. Without a window the amount is per second.
    fn from_str(s: &str) -> Result<Rate, RateError> {
        let fail = |reason| RateError {
            given: s.to_owned(),
            reason,
        };
        let (amount, window) = match s.trim().split_once('/') {
            Some((amount, window)) => (amount.trim(), window.trim()),
            None => (s.trim(), "s"),
        };
        let (mantissa, scale) = parse_decimal(amount).ok_or(fail("the amount is not a number"))?;
        if mantissa == 0 {
            return Err(fail("the amount must be greater than 0"));
        }
        let digits_end = window
            .find(|c: char| !c.is_ascii_digit())
            .ok_or(fail("the window has no unit"))?;
        let (count, unit) = window.split_at(digits_end);
        let count: u128 = if count.is_empty() {
            1
        } else {
            count.parse().map_err(|_| fail("the window is too long"))?
        };
        if count == 0 {
            return Err(fail("the window must be longer than 0"));
        }
        let unit = unit_nanos(unit.trim()).ok_or(fail("unknown window unit"))?;
        // AMOUNT = mantissa / 10^scale per count*unit = mantissa per count*unit*10^scale.
        let window_nanos = count
            .checked_mul(unit)
            .and_then(|n| n.checked_mul(10u128.pow(scale)))
            .ok_or(fail("the window is too long"))?;
        let window_nanos =
            u64::try_from(window_nanos).map_err(|_| fail("the window is too long"))?;
        Rate::new(mantissa, Duration::from_nanos(window_nanos)).map_err(|e| fail(e.reason))
    }
}

/// A decimal such as `12` or `0.25`, as (mantissa, number of decimals).
fn parse_decimal(s: &str) -> Option<(u64, u32)> {
    let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole
        .bytes()
        .chain(fraction.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // At most nine decimals: a rate is not known finer than that.
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > 9 {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let mantissa = digits.parse::<u64>().ok()?;
    Some((mantissa, fraction.len() as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(s: &str) -> Rate {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_documented_forms_parse_to_their_rates() {
        let per = |amount, secs| Rate::new(amount, Duration::from_secs(secs)).unwrap();
        assert_eq!(rate("10"), per(10, 1));
        assert_eq!(rate("0.5"), per(1, 2));
        assert_eq!(rate("100/min"), per(100, 60));
        assert_eq!(rate("5000/h"), per(5000, 3600));
        assert_eq!(rate("900/15min"), per(900, 900));
        assert_eq!(rate("86400/d"), per(1, 1));
        assert_eq!(rate("30/min"), per(1, 2));
        assert_eq!(rate("2.5/s"), per(5, 2));
        assert_eq!(rate("10/100ms"), per(100, 1));
    }

    #[test]
    fn intervals_are_exact_for_slow_rates() {
        assert_eq!(rate("5000/h").interval(), Duration::from_millis(720));
        assert_eq!(rate("0.5").interval(), Duration::from_secs(2));
        assert_eq!(rate("3/s").interval(), Duration::from_nanos(333_333_334));
    }

    #[test]
    fn bad_forms_are_refused_with_the_accepted_forms_named() {
        for bad in [
            "0",
            "0/h",
            "5/0s",
            "abc",
            "",
            "/s",
            "5/",
            "5/fortnight",
            "-1",
            "1e3",
            "0.0",
            "1/0.5s",
            "5/s/s",
        ] {
            let err = bad.parse::<Rate>().unwrap_err().to_string();
            assert!(err.contains("AMOUNT[/WINDOW]"), "{bad}: {err}");
        }
    }

    #[test]
    fn display_uses_the_largest_whole_unit() {
        assert_eq!(rate("10").to_string(), "10/s");
        assert_eq!(rate("5000/h").to_string(), "5000/h");
        assert_eq!(rate("900/15min").to_string(), "900/15min");
        assert_eq!(rate("0.5").to_string(), "5/10s");
    }

    #[test]
    fn rates_out_of_range_are_refused() {
        assert!(Rate::new(1, Duration::from_secs(400 * 86_400)).is_err());
        assert!(Rate::new(2_000_000_000, Duration::from_secs(1)).is_err());
        assert!(Rate::new(1_000_000_000, Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn computed_rates_keep_their_value() {
        let r = Rate::from_per_second(12.345).unwrap();
        assert!((r.as_per_second() - 12.345).abs() < 1e-6);
        assert_eq!(Rate::from_per_second(20.0).unwrap().to_string(), "20/s");
        assert_eq!(Rate::from_per_second(0.5).unwrap().to_string(), "1/2s");
        assert_eq!(
            Rate::from_per_second(10.372574).unwrap().to_string(),
            "10.373/s"
        );
        assert!(Rate::from_per_second(0.0).is_none());
        assert!(Rate::from_per_second(f64::NAN).is_none());
    }
}
