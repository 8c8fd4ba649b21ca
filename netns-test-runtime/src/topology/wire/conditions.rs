//! What a wire does to the packets that cross it, one way.

use std::fmt;
use std::time::Duration;

use crate::error::Error;

/// The conditions of a [`Wire`](crate::Wire), one way: a perfect link by
/// default, to which each builder method adds one imperfection.
///
/// They apply in this order, as on a real path: a packet is lost; or it is
/// duplicated; it waits its turn to be sent at the [`rate`](Self::rate),
/// or is dropped at the tail of a full [`queue`](Self::queue); it takes the
/// [`delay`](Self::delay) and [`jitter`](Self::jitter) to arrive, in the
/// order it was sent; unless [`reorder`](Self::reorder) sends it ahead of
/// those queued before it. Every draw is made from the test's seed and the
/// packet ([`seed`](crate::seed)), so a test replays exactly.
///
/// Frames that keep a link working rather than carry data (ARP, IPv6
/// neighbour and router discovery, MLD, IGMP) are never lost, duplicated
/// or reordered, and draw nothing: they take the delay and the rate alone,
/// so a lossy link still resolves its neighbours, and the draws of the
/// data do not depend on when those frames happen to come.
///
/// ```
/// use std::time::Duration;
/// use netns_test_runtime::Conditions;
///
/// let lossy = Conditions::new()
///     .delay(Duration::from_millis(40))
///     .jitter(Duration::from_millis(5))
///     .loss(0.02)
///     .rate(10_000_000);
/// assert_eq!(lossy.to_string(), "delay 40ms jitter 5ms loss 2% rate 10000000bit/s");
/// assert_eq!(netns_test_runtime::Conditions::new().to_string(), "perfect");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Conditions {
    pub(crate) delay: Duration,
    pub(crate) jitter: Duration,
    pub(crate) loss: f64,
    pub(crate) duplicate: f64,
    pub(crate) reorder: f64,
    pub(crate) rate: Option<u64>,
    pub(crate) queue: Option<usize>,
}

impl Conditions {
    /// A perfect link: nothing lost, nothing late.
    pub const fn new() -> Conditions {
        Conditions {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            rate: None,
            queue: None,
        }
    }

    /// Every packet arrives `delay` after it is sent (after its turn at the
    /// rate, if any).
    pub const fn delay(mut self, delay: Duration) -> Conditions {
        self.delay = delay;
        self
    }

    /// Each packet's delay varies by up to `jitter` either way (drawn
    /// uniformly, never below zero), without reordering: a packet never
    /// arrives before one sent ahead of it, as on a real link.
    pub const fn jitter(mut self, jitter: Duration) -> Conditions {
        self.jitter = jitter;
        self
    }

    /// A fraction of packets, `0.0..=1.0`, is lost.
    pub const fn loss(mut self, fraction: f64) -> Conditions {
        self.loss = fraction;
        self
    }

    /// A fraction of packets, `0.0..=1.0`, arrives twice.
    pub const fn duplicate(mut self, fraction: f64) -> Conditions {
        self.duplicate = fraction;
        self
    }

    /// A fraction of packets, `0.0..=1.0`, is sent at once, ahead of those
    /// queued before it (by the delay or the rate).
    pub const fn reorder(mut self, fraction: f64) -> Conditions {
        self.reorder = fraction;
        self
    }

    /// Packets leave at most at `bits_per_second`, counting every byte of
    /// their Ethernet frames; those that come faster wait in a queue.
    pub const fn rate(mut self, bits_per_second: u64) -> Conditions {
        self.rate = Some(bits_per_second);
        self
    }

    /// The queue before the [`rate`](Self::rate) holds at most `packets`;
    /// one that comes when it is full is dropped (tail drop). Without a
    /// rate, nothing queues. Unbounded by default.
    pub const fn queue(mut self, packets: usize) -> Conditions {
        self.queue = Some(packets);
        self
    }

    /// Whether nothing is conditioned: the relay only forwards.
    pub(crate) fn is_perfect(&self) -> bool {
        *self == Conditions::new()
    }

    /// Whether a draw decides something of each data packet: then each
    /// packet must cross alone, not as part of a segmentation offload's
    /// super-frame.
    pub(crate) fn draws_per_packet(&self) -> bool {
        self.loss > 0.0 || self.duplicate > 0.0 || self.reorder > 0.0
    }

    /// Checks every field, naming the first that is out of range.
    pub(crate) fn check(&self, step: &str) -> Result<(), Error> {
        let fractions = [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ];
        for (field, value) in fractions {
            if !(0.0..=1.0).contains(&value) {
                return Err(Error::BadConditions {
                    step: step.to_owned(),
                    field,
                    reason: format!("{value} is not a fraction in 0.0..=1.0"),
                });
            }
        }
        if self.rate == Some(0) {
            return Err(Error::BadConditions {
                step: step.to_owned(),
                field: "rate",
                reason: "0 bits per second passes nothing; use partition() for that".into(),
            });
        }
        if self.queue == Some(0) {
            return Err(Error::BadConditions {
                step: step.to_owned(),
                field: "queue",
                reason: "a queue of 0 packets drops everything; use partition() for that".into(),
            });
        }
        let limit = Duration::from_secs(3600);
        for (field, value) in [("delay", self.delay), ("jitter", self.jitter)] {
            if value > limit {
                return Err(Error::BadConditions {
                    step: step.to_owned(),
                    field,
                    reason: format!("{value:?} is more than an hour"),
                });
            }
        }
        Ok(())
    }
}

impl fmt::Display for Conditions {
    /// As `tc` shows netem's: `delay 40ms jitter 5ms loss 2%`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_perfect() {
            return f.write_str("perfect");
        }
        let mut parts = Vec::new();
        if !self.delay.is_zero() {
            parts.push(format!("delay {:?}", self.delay));
        }
        if !self.jitter.is_zero() {
            parts.push(format!("jitter {:?}", self.jitter));
        }
        for (name, value) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            if value > 0.0 {
                parts.push(format!("{name} {}%", value * 100.0));
            }
        }
        if let Some(rate) = self.rate {
            parts.push(format!("rate {rate}bit/s"));
        }
        if let Some(queue) = self.queue {
            parts.push(format!("queue {queue}"));
        }
        f.write_str(&parts.join(" "))
    }
}
