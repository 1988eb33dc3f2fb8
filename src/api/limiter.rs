//! Keeping under the API's rate limit before the service has to say so.
//!
//! [`RequestLimiter`] is a token bucket whose tokens come back one by one,
//! each a full window after it was spent: at most `requests` requests in
//! any window of `per`, so a fresh client may use its whole allowance at
//! once and then one request per freed slot. A token counts as spent when
//! the response head arrived (not when the request left), which is never
//! earlier than the moment the service counted the request; a client that
//! waits for the slot therefore never exceeds the service's window, however
//! long requests take. It owns timing only and performs no I/O.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// At most `requests` requests in any window of `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
}

impl RateLimit {
    /// The service's documented limit: 30 requests per minute per tenant.
    pub const SERVICE: RateLimit = RateLimit { requests: 30, per: Duration::from_secs(60) };

    /// Parses `30/min`, `30/60s`, `100/1s`, `5/2s` or a bare `30` (per minute).
    pub fn parse(text: &str) -> Result<RateLimit, String> {
        let (count, window) = text.split_once('/').unwrap_or((text, "1m"));
        let requests: u32 = count
            .trim()
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("{text:?}: the request count must be a positive integer (e.g. 30/min)"))?;
        let window = match window.trim() {
            "min" | "minute" => "1m",
            "s" | "sec" | "second" => "1s",
            "h" | "hour" => "1h",
            w => w,
        };
        let per_ms = crate::time::parse_duration_ms(window)?;
        if per_ms <= 0 {
            return Err(format!("{text:?}: the window must be longer than zero"));
        }
        Ok(RateLimit { requests, per: Duration::from_millis(per_ms as u64) })
    }

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
}

impl RequestLimiter {
    pub fn new(limit: RateLimit) -> Self {
        // A small margin covers a service that measures its window a
        // little differently; 0.5 % of the window costs 0.5 % of the rate.
        let margin = limit.per / 200;
        Self { limit, margin, spent: VecDeque::with_capacity(limit.requests as usize), waited: Duration::ZERO }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// How long until a token is free at `now` (zero when one is).
    pub fn wait_needed(&mut self, now: Instant) -> Duration {
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
        loop {
            let wait = self.wait_needed(Instant::now());
            if wait.is_zero() {
                return;
            }
            self.waited += wait;
            std::thread::sleep(wait);
        }
    }

    /// Marks a token spent at `at` (when the response head arrived, or the
    /// request failed).
    pub fn spend(&mut self, at: Instant) {
        self.spent.push_back(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates() {
        assert_eq!(RateLimit::parse("30/min"), Ok(RateLimit::SERVICE));
        assert_eq!(RateLimit::parse("30"), Ok(RateLimit::SERVICE));
        assert_eq!(RateLimit::parse("5/2s"), Ok(RateLimit { requests: 5, per: Duration::from_secs(2) }));
        assert_eq!(RateLimit::parse("100/s").unwrap().per, Duration::from_secs(1));
        assert!(RateLimit::parse("0/min").is_err());
        assert!(RateLimit::parse("x/min").is_err());
        assert!(RateLimit::parse("3/0s").is_err());
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
        let mut rng = crate::generate::Rng::new(9);
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
