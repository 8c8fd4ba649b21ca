//! What is decided once per test, in the test process: its timeout,
//! whether, how much and where its packets are captured, and its seed. The plan goes down
//! to the mode, the runner and the failure reports, and across the wire to
//! a helper or a process-mode child, which read no setting of their own for
//! it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::env;
use crate::error::Error;
use crate::test::Test;

/// A test's settings, decided once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Its timeout: its own, or `NETNS_TEST_TIMEOUT`'s.
    pub(crate) timeout: Option<Duration>,
    /// Whether its packets are captured, and which files are kept:
    /// `NETNS_TEST_CAPTURE`, or `failed` for `#[netns_test(capture)]`.
    pub(crate) capture: env::Capture,
    /// The most bytes of packets its capture holds:
    /// `NETNS_TEST_CAPTURE_LIMIT`.
    pub(crate) capture_limit: u64,
    /// The seed of its draws: `NETNS_TEST_SEED`, its own `seed = N`, or a
    /// random one.
    pub(crate) seed: u64,
    /// Where its capture files go, absolute: `NETNS_TEST_CAPTURE_DIR`, or
    /// by default `netns-test-captures` in the cargo profile directory of
    /// the test binary. Each user's files go to a directory of their own
    /// below it, or to a fallback where it cannot be used (decided where
    /// the body runs).
    pub(crate) capture_dir: Arc<Path>,
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
            seed: env::seed()?
                .or(test.options.seed)
                .unwrap_or_else(crate::seed::random),
            capture_dir: capture_dir(),
        })
    }
}

/// The capture directory of every test of this process, resolved at its
/// first test, before any body: relative to the directory the test binary
/// started in, whatever a body does to it later.
fn capture_dir() -> Arc<Path> {
    static DIR: OnceLock<Arc<Path>> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let asked = env::capture_dir()
            .unwrap_or_else(|| default_base(&std::env::current_exe().unwrap_or_default()));
        std::path::absolute(&asked).unwrap_or(asked).into()
    });
    Arc::clone(dir)
}

/// `netns-test-captures` in the cargo profile directory the test binary is
/// in: `target/<profile>/deps/<binary>` or `target/<profile>/examples/<binary>`.
fn default_base(exe: &Path) -> PathBuf {
    exe.parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."))
        .join("netns-test-captures")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_go_to_the_profile_directory_by_default() {
        let exe = Path::new("/src/target/debug/deps/topology-0123456789abcdef");
        assert_eq!(
            default_base(exe),
            Path::new("/src/target/debug/netns-test-captures")
        );
    }
}
