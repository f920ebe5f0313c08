//! Token buckets per method and per item (`governor`), only where the policy sets a rate: no
//! default can tell a runaway loop from a host that legitimately pipelines many calls, and no
//! bucket at all is what guarantees a normal session never trips.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;

use crate::maps::Map;
use crate::policy::values::RateLimit;

/// The bucket a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Tools,
    Prompts,
    Resources,
}

#[derive(Debug, Default)]
pub struct RateLimits {
    methods: Map<Family, DefaultDirectRateLimiter>,
    /// (family, item name) → bucket.
    items: Map<(Family, String), DefaultDirectRateLimiter>,
    clock: DefaultClock,
}

fn limiter(rate: RateLimit) -> DefaultDirectRateLimiter {
    let count = NonZeroU32::new(rate.count).unwrap_or(NonZeroU32::MIN);
    let period = rate.per / count.get();
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(count))
        .allow_burst(count);
    RateLimiter::direct(quota)
}

impl RateLimits {
    pub fn set_method(&mut self, family: Family, rate: RateLimit) {
        self.methods.insert(family, limiter(rate));
    }

    pub fn set_item(&mut self, family: Family, name: &str, rate: RateLimit) {
        self.items.insert((family, name.to_owned()), limiter(rate));
    }

    /// Whether any item has its own bucket (then the item's name must be read).
    pub fn has_items(&self) -> bool {
        !self.items.is_empty()
    }

    /// Take one token for `family` and, if it has its own bucket, for `item`; `Err` carries
    /// how long until a retry can succeed.
    pub fn check(&self, family: Family, item: Option<&str>) -> Result<(), Duration> {
        if let Some(l) = self.methods.get(&family) {
            l.check().map_err(|n| n.wait_time_from(self.clock.now()))?;
        }
        if let Some(name) = item {
            // Avoid allocating a key on the fast path when there are no per-item buckets.
            if !self.items.is_empty() {
                if let Some(l) = self.items.get(&(family, name.to_owned())) {
                    l.check().map_err(|n| n.wait_time_from(self.clock.now()))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_bucket_refuses_after_burst_and_names_the_wait() {
        let mut r = RateLimits::default();
        r.set_method(
            Family::Tools,
            RateLimit {
                count: 3,
                per: Duration::from_secs(60),
            },
        );
        for _ in 0..3 {
            assert!(r.check(Family::Tools, Some("echo")).is_ok());
        }
        let wait = r.check(Family::Tools, Some("echo")).unwrap_err();
        assert!(
            wait > Duration::from_secs(5) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(r.check(Family::Prompts, None).is_ok());
    }

    #[test]
    fn rate_item_bucket_is_separate() {
        let mut r = RateLimits::default();
        r.set_item(
            Family::Tools,
            "slow",
            RateLimit {
                count: 1,
                per: Duration::from_secs(60),
            },
        );
        assert!(r.check(Family::Tools, Some("slow")).is_ok());
        assert!(r.check(Family::Tools, Some("slow")).is_err());
        assert!(r.check(Family::Tools, Some("fast")).is_ok());
    }
}
