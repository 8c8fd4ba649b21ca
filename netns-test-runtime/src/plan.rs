//! What is decided once per test, in the test process: its timeout, and
//! whether and how much of its packets are captured. The plan goes down to
//! the mode, the runner and the failure reports, and across the wire to a
//! helper or a process-mode child, which read no setting of their own for
//! it.

use std::time::Duration;

use crate::env;
use crate::error::Error;
use crate::test::Test;

/// A test's settings, decided once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Its timeout: its own, or `NETNS_TEST_TIMEOUT`'s.
    pub(crate) timeout: Option<Duration>,
    /// Whether its packets are captured, and which files are kept:
    /// `NETNS_TEST_CAPTURE`, or `failed` for `#[netns_test(capture)]`.
    pub(crate) capture: env::Capture,
    /// The most bytes of packets its capture holds:
    /// `NETNS_TEST_CAPTURE_LIMIT`.
    pub(crate) capture_limit: u64,
}

impl Plan {
    /// Decides `test`'s plan from its attribute and the environment, in
    /// the test process. A setting that is not understood fails the test,
    /// whether it matters to it or not.
    pub(crate) fn resolve(test: &Test) -> Result<Plan, Error> {
        let capture = match (env::capture()?, test.options.capture) {
            (env::Capture::Off, true) => env::Capture::Failed,
            (capture, _) => capture,
        };
        Ok(Plan {
            timeout: test.timeout_or_default()?,
            capture,
            capture_limit: env::capture_limit()?,
        })
    }
}
