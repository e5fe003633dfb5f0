//! Retry policies for failed connection attempts, and the pool's one jitter.

use std::time::Duration;

use crate::error::ConfigError;

/// `base` spread uniformly over `base x (1 ± spread)`, saturating at `Duration::MAX`. Every
/// randomised duration of the pool comes from here: retry delays, the pause after a failed
/// attempt, connection lifetimes and health-check times, so that connections and pools that
/// started together do not act together.
pub(crate) fn jitter(base: Duration, spread: f64) -> Duration {
    let factor = 1.0 - spread + 2.0 * spread * fastrand::f64();
    Duration::try_from_secs_f64(base.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

/// `base` shortened by up to `max_cut`, uniformly: a connection's lifetime under
/// `lifetime_jitter`.
pub(crate) fn shortened(base: Duration, max_cut: Duration) -> Duration {
    base.saturating_sub(max_cut.mul_f64(fastrand::f64()))
}

/// How to retry a connection attempt that failed. Every delay gets ±20% jitter, so that many
/// pools (or many connections of one pool) that failed together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields))]
pub enum RetryPolicy {
    /// Fail at the first error.
    None,
    /// Wait `initial`, then twice as long each time up to `max`, for at most `max_retries`
    /// retries.
    Exponential {
        /// The first delay.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        initial: Duration,
        /// The longest delay.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        max: Duration,
        /// Retries after the first attempt.
        max_retries: u32,
    },
    /// Wait `delay` between attempts, for at most `max_retries` retries.
    Linear {
        /// The delay between attempts.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        delay: Duration,
        /// Retries after the first attempt.
        max_retries: u32,
    },
}

impl RetryPolicy {
    /// How many retries follow a failed first attempt.
    pub fn max_retries(&self) -> u32 {
        match *self {
            Self::None => 0,
            Self::Exponential { max_retries, .. } | Self::Linear { max_retries, .. } => max_retries,
        }
    }

    /// The delay before retry number `retry` (1 for the first retry) without jitter, or `None`
    /// when no more retries are allowed.
    pub fn base_delay(&self, retry: u32) -> Option<Duration> {
        if retry == 0 || retry > self.max_retries() {
            return None;
        }
        match *self {
            Self::None => None,
            Self::Exponential { initial, max, .. } => {
                let factor = 2u32.saturating_pow(retry - 1);
                Some(initial.saturating_mul(factor).min(max))
            }
            Self::Linear { delay, .. } => Some(delay),
        }
    }

    /// The delay before retry number `retry`, with ±20% jitter.
    pub fn delay(&self, retry: u32) -> Option<Duration> {
        self.base_delay(retry).map(|delay| jitter(delay, 0.2))
    }

    /// The longest delay it can ask for, before jitter.
    pub(crate) fn longest(&self) -> Option<Duration> {
        match *self {
            Self::None => None,
            Self::Exponential { max, .. } => Some(max),
            Self::Linear { delay, .. } => Some(delay),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            Self::Exponential { initial, max, .. } if initial.is_zero() || max < initial => {
                Err(ConfigError::RetryDelays)
            }
            Self::Linear { delay, .. } if delay.is_zero() => Err(ConfigError::Zero("retry.delay")),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_doubles_up_to_the_cap_then_stops() {
        let policy = RetryPolicy::Exponential {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            max_retries: 6,
        };
        let delays: Vec<_> = (1..=7).map(|r| policy.base_delay(r)).collect();
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(delays, [ms(100), ms(200), ms(400), ms(800), ms(1600), ms(2000), None]);
    }

    #[test]
    fn linear_and_none() {
        let linear = RetryPolicy::Linear { delay: Duration::from_secs(1), max_retries: 5 };
        assert_eq!(linear.base_delay(5), Some(Duration::from_secs(1)));
        assert_eq!(linear.base_delay(6), None);
        assert_eq!(RetryPolicy::None.base_delay(1), None);
    }

    #[test]
    fn jitter_saturates_instead_of_overflowing() {
        for _ in 0..100 {
            // Up to 1.2 x Duration::MAX: saturates instead of panicking in `mul_f64`.
            assert!(jitter(Duration::MAX, 0.2) >= Duration::MAX.mul_f64(0.79));
            assert!(shortened(Duration::from_secs(1), Duration::MAX) <= Duration::from_secs(1));
        }
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let linear = RetryPolicy::Linear { delay: Duration::from_secs(1), max_retries: 1 };
        for _ in 0..1000 {
            let delay = linear.delay(1).unwrap();
            assert!(delay >= Duration::from_millis(800) && delay <= Duration::from_millis(1200), "{delay:?}");
        }
    }
}
