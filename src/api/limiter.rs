//! Keeping under the API's rate limit before the service has to say so.
//!
//! [`RequestLimiter`] is a token bucket whose tokens come back one by one,
//! each a full window after it was spent: at most `requests` requests in
//! any window of `per`, so a fresh client may use its whole allowance at
//! once and then one request per freed slot. A token counts as spent when
//! the response head arrived (not when the request left), which is never
//! earlier than the moment the service counted the request; a client that
//! waits for the slot therefore never exceeds the service's window, however
//! long requests take. It owns timing only; with a [`RateLedger`] it also
//! counts the answers other processes recorded for the same portal (and
//! records its own there), so a run that follows another does not start
//! with a burst the service's window cannot hold.

use super::rate_ledger::RateLedger;
use crate::stop::Stop;
use crate::time::{DurationError, parse_duration_ms};
use std::collections::VecDeque;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Why a rate limit could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    #[error("{0:?}: the request count must be a positive integer (e.g. 30/min)")]
    Count(String),
    #[error(transparent)]
    Window(#[from] DurationError),
    #[error("{0:?}: the window must be longer than zero")]
    EmptyWindow(String),
}

/// The one parser of a rate limit, for the command line and the agent's
/// file alike: `30/min`, `30/60s`, `100/1s`, `5/2s` or a bare `30` (per
/// minute).
impl FromStr for RateLimit {
    type Err = RateLimitError;

    fn from_str(text: &str) -> Result<Self, RateLimitError> {
        let (count, window) = text.split_once('/').unwrap_or((text, "1m"));
        let requests: u32 =
            count.trim().parse().ok().filter(|&n| n > 0).ok_or_else(|| RateLimitError::Count(text.to_owned()))?;
        let window = match window.trim() {
            "min" | "minute" => "1m",
            "s" | "sec" | "second" => "1s",
            "h" | "hour" => "1h",
            w => w,
        };
        let per_ms = parse_duration_ms(window)?;
        if per_ms <= 0 {
            return Err(RateLimitError::EmptyWindow(text.to_owned()));
        }
        Ok(RateLimit { requests, per: Duration::from_millis(per_ms as u64) })
    }
}

/// At most `requests` requests in any window of `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
}

impl RateLimit {
    /// The service's documented limit: 30 requests per minute per tenant.
    pub const SERVICE: RateLimit = RateLimit { requests: 30, per: Duration::from_secs(60) };

    /// Requests per minute this limit allows.
    pub fn per_minute(&self) -> f64 {
        f64::from(self.requests) * 60.0 / self.per.as_secs_f64()
    }
}

/// Spent tokens and when they come back.
#[derive(Debug)]
pub struct RequestLimiter {
    limit: RateLimit,
    /// Safety margin added to the window.
    margin: Duration,
    /// When each token of the current window was spent, oldest first.
    spent: VecDeque<Instant>,
    /// Total time spent waiting for a token.
    pub waited: Duration,
    /// Answers shared with other processes; dropped on its first failure
    /// (then this process's answers are counted alone).
    ledger: Option<RateLedger>,
}

impl RequestLimiter {
    pub fn new(limit: RateLimit) -> Self {
        // A small margin covers a service that measures its window a
        // little differently; 0.5 % of the window costs 0.5 % of the rate.
        let margin = limit.per / 200;
        Self {
            limit,
            margin,
            spent: VecDeque::with_capacity(limit.requests as usize),
            waited: Duration::ZERO,
            ledger: None,
        }
    }

    /// Counts, and records, the answers in `ledger` too.
    pub fn with_ledger(mut self, ledger: RateLedger) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// Whether answers are shared with other processes.
    pub fn shares_answers(&self) -> bool {
        self.ledger.is_some()
    }

    /// Replaces the spent tokens by the ledger's answers of the last
    /// window (this process's among them), placed on the monotonic clock.
    fn read_ledger(&mut self, now: Instant) {
        let Some(ledger) = &mut self.ledger else { return };
        let window = self.limit.per + self.margin;
        let wall_now = crate::time::now_ms();
        match ledger.answers_since(wall_now - window.as_millis() as i64) {
            Ok(answers) => {
                self.spent.clear();
                for at in answers {
                    let age = Duration::from_millis(wall_now.saturating_sub(at).max(0) as u64);
                    self.spent.push_back(now.checked_sub(age).unwrap_or(now));
                }
            }
            Err(_) => self.ledger = None,
        }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// How long until a token is free at `now` (zero when one is).
    pub fn wait_needed(&mut self, now: Instant) -> Duration {
        self.read_ledger(now);
        let window = self.limit.per + self.margin;
        while self.spent.front().is_some_and(|t| now.saturating_duration_since(*t) >= window) {
            self.spent.pop_front();
        }
        if self.spent.len() < self.limit.requests as usize {
            return Duration::ZERO;
        }
        let oldest = self.spent[0];
        (oldest + window).saturating_duration_since(now)
    }

    /// Sleeps until a token is free.
    pub fn acquire(&mut self) {
        self.acquire_unless_stopped(None);
    }

    /// Like [`acquire`](Self::acquire), but a stop ends the wait: false
    /// then, and no token is taken.
    pub fn acquire_unless_stopped(&mut self, stop: Option<&Stop>) -> bool {
        loop {
            let wait = self.wait_needed(Instant::now());
            if wait.is_zero() {
                return true;
            }
            let started = Instant::now();
            let stopped = match stop {
                Some(stop) => stop.wait_timeout(wait),
                None => {
                    std::thread::sleep(wait);
                    false
                }
            };
            self.waited += started.elapsed();
            if stopped {
                return false;
            }
        }
    }

    /// Marks a token spent at `at` (when the response head arrived, or the
    /// request failed).
    pub fn spend(&mut self, at: Instant) {
        self.spent.push_back(at);
        if let Some(ledger) = &mut self.ledger {
            let at_ms = crate::time::now_ms() - at.elapsed().as_millis() as i64;
            if ledger.record(at_ms).is_err() {
                self.ledger = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_limiter_waits_for_the_answers_another_process_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let limit = RateLimit { requests: 3, per: Duration::from_secs(60) };
        let url = "https://tenant.example";
        // An earlier run used the whole allowance a moment ago.
        let mut earlier = RequestLimiter::new(limit).with_ledger(RateLedger::open(dir.path(), url, 3).unwrap());
        for _ in 0..3 {
            assert_eq!(earlier.wait_needed(Instant::now()), Duration::ZERO);
            earlier.spend(Instant::now());
        }
        drop(earlier);
        let mut next = RequestLimiter::new(limit).with_ledger(RateLedger::open(dir.path(), url, 3).unwrap());
        let wait = next.wait_needed(Instant::now());
        assert!(wait > Duration::from_secs(50), "the next run must wait for the window: {wait:?}");
        // Without the ledger it would have burst at once.
        assert_eq!(RequestLimiter::new(limit).wait_needed(Instant::now()), Duration::ZERO);
        // Another portal's answers do not count.
        let mut elsewhere =
            RequestLimiter::new(limit).with_ledger(RateLedger::open(dir.path(), "https://other", 3).unwrap());
        assert_eq!(elsewhere.wait_needed(Instant::now()), Duration::ZERO);
    }

    #[test]
    fn parses_rates() {
        assert_eq!("30/min".parse(), Ok(RateLimit::SERVICE));
        assert_eq!("30".parse(), Ok(RateLimit::SERVICE));
        assert_eq!("5/2s".parse(), Ok(RateLimit { requests: 5, per: Duration::from_secs(2) }));
        assert_eq!("100/s".parse::<RateLimit>().unwrap().per, Duration::from_secs(1));
        assert_eq!("0/min".parse::<RateLimit>(), Err(RateLimitError::Count("0/min".into())));
        assert!("x/min".parse::<RateLimit>().is_err());
        assert_eq!("3/0s".parse::<RateLimit>(), Err(RateLimitError::EmptyWindow("3/0s".into())));
        assert!(matches!("3/fortnight".parse::<RateLimit>(), Err(RateLimitError::Window(_))));
        assert_eq!(RateLimit::SERVICE.per_minute(), 30.0);
    }

    #[test]
    fn allows_a_full_window_then_one_per_returned_token() {
        let limit = RateLimit { requests: 3, per: Duration::from_secs(10) };
        let mut limiter = RequestLimiter::new(limit);
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(limiter.wait_needed(t0 + Duration::from_secs(i)), Duration::ZERO);
            limiter.spend(t0 + Duration::from_secs(i));
        }
        let margin = Duration::from_millis(50);
        // The 4th waits for the first token: spent at t0, back at t0 + 10 s + margin.
        assert_eq!(limiter.wait_needed(t0 + Duration::from_secs(4)), Duration::from_secs(6) + margin);
        assert_eq!(limiter.wait_needed(t0 + Duration::from_secs(10) + margin), Duration::ZERO);
        limiter.spend(t0 + Duration::from_secs(10) + margin);
        assert_eq!(limiter.wait_needed(t0 + Duration::from_secs(10) + margin), Duration::from_secs(1));
    }

    /// Whatever the timing, no window of `per` ever holds more than
    /// `requests` spends (checked against a naive count).
    #[test]
    fn never_more_than_the_limit_in_any_window() {
        let limit = RateLimit { requests: 4, per: Duration::from_millis(1000) };
        let mut limiter = RequestLimiter::new(limit);
        let t0 = Instant::now();
        let mut now = t0;
        let mut spends = Vec::new();
        let mut rng = crate::rng::Rng::new(9);
        for _ in 0..200 {
            now += limiter.wait_needed(now);
            // Requests take a random time; the token is spent when they end.
            now += Duration::from_millis(rng.below(300));
            limiter.spend(now);
            spends.push(now);
        }
        for (i, start) in spends.iter().enumerate() {
            let in_window = spends[i..].iter().take_while(|t| t.duration_since(*start) < limit.per).count();
            assert!(in_window <= 4, "window starting at spend {i} holds {in_window}");
        }
    }
}
