//! What the simulator does with a request ([`Mode`]) and how long it waits first ([`Delay`]).
//!
//! The command line and the `sim_*` query parameters share one text grammar, parsed here by
//! `FromStr`; `Display` prints the same form back. Delay sampling is pure: the caller owns the
//! random number generator (one per simulator thread, seeded from `--seed`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;

/// Longest delay any distribution yields (and longest `slow-body` step): a long tail that
/// outlives every partner time-out is as good as a hang, and a bound keeps tests finite.
pub const MAX_DELAY: Duration = Duration::from_secs(10);

/// How the simulator answers a partner request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `200` with `{"segments":[…]}` (and `"ttl"` when set).
    Ok,
    /// `204`, no body: the partner knows nothing about the user.
    Empty,
    /// `404`, no body: the partner knows nothing about the user.
    NotFound,
    /// This status (200–599) with a short plain-text body.
    Status(u16),
    /// Close with a TCP reset (`SO_LINGER` 0) without answering.
    Reset,
    /// Read the request and never answer; the connection stays open until the client closes it
    /// or the simulator stops.
    Hang,
    /// The head at once, then the normal body one byte per this interval.
    SlowBody(Duration),
    /// `200` with `Content-Type: application/json` and a body that is not JSON.
    Garbage,
    /// `200` with a well-formed-looking JSON body of [`OVERSIZE_BYTES`](super::OVERSIZE_BYTES).
    Oversize,
    /// Answer normally, but close the connection after its N-th request (that answer says
    /// `Connection: close`).
    CloseAfter(u32),
    /// `200` with `{"segments": 5}`.
    WrongShape,
}

/// A delay distribution; every sample is capped at [`MAX_DELAY`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Delay {
    /// Always this long.
    Fixed(Duration),
    /// Uniform between `min` and `max`.
    Uniform {
        /// Shortest delay.
        min: Duration,
        /// Longest delay.
        max: Duration,
    },
    /// Log-normal: `median × e^(sigma·Z)` with Z standard normal (a long right tail).
    LogNormal {
        /// Median delay.
        median: Duration,
        /// Spread of the logarithm; 0 makes it fixed.
        sigma: f64,
    },
    /// Pareto: `scale × U^(−1/alpha)`, at least `scale`; smaller `alpha`, heavier tail.
    Pareto {
        /// Smallest delay.
        scale: Duration,
        /// Tail index (> 0).
        alpha: f64,
    },
}

/// A mode, delay or override that does not parse; the message says what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

/// Names of the modes as counted in `/__sim/stats` `by_mode`, in [`Mode::index`] order, with
/// `rejected` (malformed requests and bad `sim_*` parameters) last.
pub const MODE_NAMES: [&str; 12] = [
    "ok",
    "empty",
    "notfound",
    "status",
    "reset",
    "hang",
    "slow-body",
    "garbage",
    "oversize",
    "close-after",
    "wrong-shape",
    "rejected",
];

/// Index of `rejected` in [`MODE_NAMES`].
pub const REJECTED: usize = MODE_NAMES.len() - 1;

// === impl Mode ===

impl Mode {
    /// Position of this mode's counter in [`MODE_NAMES`].
    pub fn index(self) -> usize {
        match self {
            Mode::Ok => 0,
            Mode::Empty => 1,
            Mode::NotFound => 2,
            Mode::Status(_) => 3,
            Mode::Reset => 4,
            Mode::Hang => 5,
            Mode::SlowBody(_) => 6,
            Mode::Garbage => 7,
            Mode::Oversize => 8,
            Mode::CloseAfter(_) => 9,
            Mode::WrongShape => 10,
        }
    }

    /// The mode's name without its argument (`status`, `slow-body`, …).
    pub fn name(self) -> &'static str {
        MODE_NAMES[self.index()]
    }
}

impl FromStr for Mode {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Mode, ParseError> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let mode = match (name, arg) {
            ("ok", None) => Mode::Ok,
            ("empty", None) => Mode::Empty,
            ("notfound", None) => Mode::NotFound,
            ("reset", None) => Mode::Reset,
            ("hang", None) => Mode::Hang,
            ("garbage", None) => Mode::Garbage,
            ("oversize", None) => Mode::Oversize,
            ("wrong-shape", None) => Mode::WrongShape,
            ("status", Some(code)) => Mode::Status(parse_status(code)?),
            ("slow-body", Some(ms)) => Mode::SlowBody(parse_ms(ms, "slow-body:MS_PER_BYTE")?),
            ("close-after", Some(n)) => match n.parse::<u32>() {
                Ok(n) if n >= 1 => Mode::CloseAfter(n),
                _ => return Err(ParseError(format!("close-after:N needs N >= 1, not {n:?}"))),
            },
            _ => {
                return Err(ParseError(format!(
                    "unknown mode {s:?}; expected ok, empty, notfound, status:CODE, reset, hang, \
                     slow-body:MS_PER_BYTE, garbage, oversize, close-after:N or wrong-shape"
                )))
            }
        };
        Ok(mode)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Status(code) => write!(f, "status:{code}"),
            Mode::SlowBody(d) => write!(f, "slow-body:{}", d.as_secs_f64() * 1e3),
            Mode::CloseAfter(n) => write!(f, "close-after:{n}"),
            other => f.write_str(other.name()),
        }
    }
}

/// A status the simulator may send: 200–599 (1xx are interim answers, not results).
pub fn parse_status(s: &str) -> Result<u16, ParseError> {
    match s.parse::<u16>() {
        Ok(code) if (200..=599).contains(&code) => Ok(code),
        _ => Err(ParseError(format!("status must be a number in 200..=599, not {s:?}"))),
    }
}

/// Milliseconds (fractions allowed) as a duration, at most [`MAX_DELAY`].
fn parse_ms(s: &str, what: &str) -> Result<Duration, ParseError> {
    match s.parse::<f64>() {
        Ok(ms) if (0.0..=MAX_DELAY.as_secs_f64() * 1e3).contains(&ms) => {
            Ok(Duration::from_secs_f64(ms / 1e3))
        }
        _ => Err(ParseError(format!("{what}: {s:?} is not a number of milliseconds in 0..=10000"))),
    }
}

/// A positive, finite number (distribution shape parameters).
fn parse_shape(s: &str, what: &str, allow_zero: bool) -> Result<f64, ParseError> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && (x > 0.0 || (allow_zero && x == 0.0)) => Ok(x),
        _ => Err(ParseError(format!("{what}: {s:?} is not a valid number"))),
    }
}

// === impl Delay ===

impl Delay {
    /// No delay.
    pub const NONE: Delay = Delay::Fixed(Duration::ZERO);

    /// One delay drawn from the distribution, at most [`MAX_DELAY`].
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        let secs = match *self {
            Delay::Fixed(d) => return d.min(MAX_DELAY),
            Delay::Uniform { min, max } => {
                let (lo, hi) = (min.as_secs_f64(), max.as_secs_f64());
                lo + (hi - lo) * rng.random::<f64>()
            }
            Delay::LogNormal { median, sigma } => median.as_secs_f64() * (sigma * standard_normal(rng)).exp(),
            Delay::Pareto { scale, alpha } => scale.as_secs_f64() * open_unit(rng).powf(-1.0 / alpha),
        };
        if secs.is_finite() && secs > 0.0 {
            Duration::from_secs_f64(secs.min(MAX_DELAY.as_secs_f64()))
        } else if secs > 0.0 {
            MAX_DELAY
        } else {
            Duration::ZERO
        }
    }
}

/// A uniform number in (0, 1]: never 0, so logarithms and negative powers stay finite.
fn open_unit<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    1.0 - rng.random::<f64>()
}

/// A standard normal number (Box–Muller).
fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let (u1, u2) = (open_unit(rng), rng.random::<f64>());
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl FromStr for Delay {
    type Err = ParseError;

    /// `fixed` (no delay; the command line's `--delay-ms`/`--delay-us` give the value),
    /// `fixed:MS`, `uniform:MIN_MS:MAX_MS`, `lognormal:MEDIAN_MS:SIGMA`, `pareto:SCALE_MS:ALPHA`.
    fn from_str(s: &str) -> Result<Delay, ParseError> {
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            ["fixed"] => Ok(Delay::NONE),
            ["fixed", ms] => Ok(Delay::Fixed(parse_ms(ms, "fixed:MS")?)),
            ["uniform", lo, hi] => {
                let (min, max) = (parse_ms(lo, "uniform:MIN_MS")?, parse_ms(hi, "uniform:MAX_MS")?);
                if min > max {
                    return Err(ParseError(format!("uniform:{lo}:{hi}: MIN_MS is above MAX_MS")));
                }
                Ok(Delay::Uniform { min, max })
            }
            ["lognormal", median, sigma] => Ok(Delay::LogNormal {
                median: parse_ms(median, "lognormal:MEDIAN_MS")?,
                sigma: parse_shape(sigma, "lognormal:SIGMA", true)?,
            }),
            ["pareto", scale, alpha] => Ok(Delay::Pareto {
                scale: parse_ms(scale, "pareto:SCALE_MS")?,
                alpha: parse_shape(alpha, "pareto:ALPHA", false)?,
            }),
            _ => Err(ParseError(format!(
                "unknown delay {s:?}; expected fixed, fixed:MS, uniform:MIN_MS:MAX_MS, \
                 lognormal:MEDIAN_MS:SIGMA or pareto:SCALE_MS:ALPHA"
            ))),
        }
    }
}

impl fmt::Display for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: &Duration| d.as_secs_f64() * 1e3;
        match self {
            Delay::Fixed(d) => write!(f, "fixed:{}", ms(d)),
            Delay::Uniform { min, max } => write!(f, "uniform:{}:{}", ms(min), ms(max)),
            Delay::LogNormal { median, sigma } => write!(f, "lognormal:{}:{sigma}", ms(median)),
            Delay::Pareto { scale, alpha } => write!(f, "pareto:{}:{alpha}", ms(scale)),
        }
    }
}

// === impl ParseError ===

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}
