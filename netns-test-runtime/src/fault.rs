//! Faults that the project's own tests inject, through the hidden variable
//! `__NETNS_TEST_FAULT` (names separated by commas), to prove that each
//! check fails closed: remove the check, and the test that injects its fault
//! fails. A fault can only make a test fail, never pass.

use std::sync::OnceLock;

/// A fault, by the name `__NETNS_TEST_FAULT` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// `harness-is-here`: the sandbox takes the body's own namespace for the
    /// harness's, as if it had failed to leave it.
    HarnessIsHere,
    /// `forwarding-host`: a fresh namespace starts forwarding, as on a host
    /// that forwards.
    ForwardingHost,
    /// `early-threads`: the constructor before `main` finds the process
    /// has more than one thread.
    EarlyThreads,
    /// `async-runtime`: building an async test's runtime fails.
    #[cfg_attr(
        not(feature = "tokio"),
        expect(dead_code, reason = "only the tokio runtime is built")
    )]
    AsyncRuntime,
    /// `async-runtime-threads`: an async test's runtime cannot start its
    /// worker threads, and tokio panics while it is built.
    #[cfg_attr(
        not(feature = "tokio"),
        expect(dead_code, reason = "only the tokio runtime is built")
    )]
    AsyncRuntimeThreads,
    /// `slow-capture`: the capture reads each packet 100 µs late, as on a
    /// loaded machine or a slow disk, so any steady sender outpaces it.
    SlowCapture,
    /// `no-fast-path`: the kernel refuses a wire's `clsact` qdisc, as one
    /// without it does, so that its relay reads its ports, as on such a
    /// kernel. A hook more than a fault: it proves that path still works.
    NoFastPath,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::HarnessIsHere => "harness-is-here",
            Fault::ForwardingHost => "forwarding-host",
            Fault::EarlyThreads => "early-threads",
            Fault::AsyncRuntime => "async-runtime",
            Fault::AsyncRuntimeThreads => "async-runtime-threads",
            Fault::SlowCapture => "slow-capture",
            Fault::NoFastPath => "no-fast-path",
        }
    }
}

/// Whether `fault` is injected in this process.
pub(crate) fn injected(fault: Fault) -> bool {
    static FAULTS: OnceLock<String> = OnceLock::new();
    FAULTS
        .get_or_init(|| std::env::var("__NETNS_TEST_FAULT").unwrap_or_default())
        .split(',')
        .any(|name| name == fault.name())
}
