//! The test model: what `#[netns_test]` describes, and the registry that lets
//! a helper process find a body by its path.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::error::Error;
use crate::netns::NetNs;
use crate::topology::{Network, NetworkBuilder};

/// Every `#[netns_test]` of the binary, for a helper process to find by path.
#[linkme::distributed_slice]
pub static TESTS: [Test];

/// One test, as the attribute describes it.
#[derive(Debug)]
pub struct Test {
    /// `module_path!()` and the function's name, joined by `::`.
    pub path: &'static str,
    /// Whether libtest expects the test to panic.
    pub should_panic: ShouldPanic,
    /// The attribute's options.
    pub options: Options,
    /// The user's function, wrapped to report its result.
    pub body: Body,
    /// How often libtest has started it in this process.
    pub runs: Runs,
}

/// The options of `#[netns_test(...)]`. The attribute writes those it is
/// given over [`Options::DEFAULT`], so that a new option changes no
/// expansion that does not use it.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// `timeout`.
    pub timeout: Option<Duration>,
    /// `seed`: the seed of the test's draws.
    pub seed: Option<u64>,
    /// `sysfs`: mount a sysfs of the test's namespace.
    pub sysfs: bool,
    /// `process`: a process of its own, whatever the mode.
    pub process: bool,
    /// `capture`: capture packets, and keep them on failure.
    pub capture: bool,
}

impl Options {
    /// No option given.
    pub const DEFAULT: Options = Options {
        timeout: None,
        seed: None,
        sysfs: false,
        process: false,
        capture: false,
    };
}

/// Counts libtest's starts of one test in one process. libtest starts each
/// of its entries once, on a thread named after the test; a second start
/// means a second entry with the same function, which only a `#[test]`
/// above `#[netns_test]` makes. A call from another test's thread (a test
/// that calls a test function) is not a start.
#[derive(Debug)]
pub struct Runs(AtomicUsize);

impl Runs {
    /// No start yet.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Runs(AtomicUsize::new(0))
    }

    /// Counts a start of the test named `name` if libtest made it, and says
    /// whether an earlier one was counted.
    pub(crate) fn started_before(&self, name: &str) -> bool {
        std::thread::current().name() == Some(name) && self.0.fetch_add(1, Ordering::Relaxed) > 0
    }
}

/// What a `#[netns_test]` function may return: `()`, or `Result<(), E>`
/// where `E: Debug`, as for a plain `#[test]`. An `Err` fails the test and
/// shows the error's `Debug` form.
#[diagnostic::on_unimplemented(
    message = "a `#[netns_test]` function must return `()` or `Result<(), E>` where `E: Debug`, not `{Self}`",
    label = "this is returned by the test"
)]
pub trait TestResult {
    /// The test's result, as the runtime reports it.
    #[doc(hidden)]
    fn into_test_result(self) -> Result<(), TestError>;
}

impl TestResult for () {
    fn into_test_result(self) -> Result<(), TestError> {
        Ok(())
    }
}

impl<E: fmt::Debug> TestResult for Result<(), E> {
    fn into_test_result(self) -> Result<(), TestError> {
        self.map_err(|error| TestError::from_debug(format!("{error:?}")))
    }
}

/// The user's function, by what it takes.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    /// It takes nothing.
    Plain(fn() -> Result<(), TestError>),
    /// It takes the handle to its namespace, which the runtime opens for it.
    WithNs(fn(NetNs) -> Result<(), TestError>),
    /// It takes a network, which the runtime builds from the declaration
    /// the first function returns, inside the test's namespace.
    WithNetwork(
        fn() -> NetworkBuilder,
        fn(&Network) -> Result<(), TestError>,
    ),
}

impl Body {
    /// The body with what it takes, opening the handle with `open` only
    /// for a body that takes one: opening it costs an nsfs inode.
    pub(crate) fn ready(self, open: impl FnOnce() -> Result<NetNs, Error>) -> Result<Call, Error> {
        Ok(match self {
            Body::Plain(body) => Call::Plain(body),
            Body::WithNs(body) => Call::WithNs(body, open()?),
            Body::WithNetwork(declare, body) => Call::WithNetwork(declare, body),
        })
    }
}

/// A body with what it takes, ready to run inside its namespace.
#[derive(Debug)]
pub(crate) enum Call {
    /// A body that takes nothing.
    Plain(fn() -> Result<(), TestError>),
    /// A body and the handle to the namespace it runs in.
    WithNs(fn(NetNs) -> Result<(), TestError>, NetNs),
    /// A body and its network's declaration, built as the body starts.
    WithNetwork(
        fn() -> NetworkBuilder,
        fn(&Network) -> Result<(), TestError>,
    ),
}

impl Test {
    /// The test's own timeout, or the default from `NETNS_TEST_TIMEOUT`.
    pub(crate) fn timeout_or_default(&self) -> Result<Option<Duration>, Error> {
        match self.options.timeout {
            Some(timeout) => Ok(Some(timeout)),
            None => crate::env::timeout(),
        }
    }

    /// Where the test stands in the registry: the same in every process
    /// that runs this binary, and unique, unlike its path (a test in a
    /// `const _: () = { ... }` block has the path of one outside it).
    pub(crate) fn index(&'static self) -> Option<usize> {
        TESTS.iter().position(|test| std::ptr::eq(test, self))
    }

    /// libtest's name for the test: its path without the crate's name.
    pub(crate) fn name(&self) -> &'static str {
        let path = self.path;
        path.split_once("::").map_or(path, |(_, rest)| rest)
    }
}

/// Mirrors `#[should_panic]`.
#[derive(Debug, Clone, Copy)]
pub enum ShouldPanic {
    /// No `#[should_panic]`.
    No,
    /// `#[should_panic]`.
    Yes,
    /// `#[should_panic(expected = "...")]`.
    WithMessage(&'static str),
}

/// The error of a test that returned `Err`, shown as libtest shows it: the
/// `Debug` form of the user's error.
pub struct TestError(String);

impl TestError {
    /// The error whose `Debug` form is `debug`.
    pub(crate) fn from_debug(debug: String) -> Self {
        TestError(debug)
    }

    /// The user's error's `Debug` form.
    pub(crate) fn as_debug(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_drop_the_crate() {
        let named = |path| Test {
            path,
            should_panic: ShouldPanic::No,
            options: Options::DEFAULT,
            body: Body::Plain(|| Ok(())),
            runs: Runs::new(),
        };
        assert_eq!(named("my_crate::a::b::test").name(), "a::b::test");
        assert_eq!(named("integration::test").name(), "test");
        assert_eq!(named("lonely").name(), "lonely");
    }
}
