//! What the expansion of `#[netns_test]` calls. Not a public API: it changes
//! without notice.

use std::fmt;
use std::time::Duration;

pub use linkme;

use crate::netns::NetNs;

/// Every `#[netns_test]` of the binary, for the helper process to find by path.
#[linkme::distributed_slice]
pub static TESTS: [Test];

/// One test, as the attribute describes it.
#[derive(Debug)]
pub struct Test {
    /// `module_path!()` and the function's name, joined by `::`.
    pub path: &'static str,
    /// Whether libtest expects the test to panic.
    pub should_panic: ShouldPanic,
    /// The attribute's `timeout`.
    pub timeout: Option<Duration>,
    /// The attribute's `sysfs`: mount a sysfs of the test's namespace.
    pub sysfs: bool,
    /// Whether the function takes the handle to its namespace.
    pub handle: bool,
    /// Runs the user's function, with the handle when it takes one.
    pub body: fn(Handle) -> Result<(), TestError>,
}

/// The handle to the test's namespace, given to a body that takes one.
#[derive(Debug)]
pub struct Handle(pub(crate) Option<NetNs>);

impl Handle {
    /// The handle. The runtime opens it whenever [`Test::handle`] is set.
    ///
    /// # Panics
    ///
    /// If the runtime did not open it: a bug in netns-test.
    pub fn into_netns(self) -> NetNs {
        self.0.unwrap_or_else(|| {
            panic!(
                "netns-test: the test takes its NetNs, but none was opened; please report this bug"
            )
        })
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
    pub(crate) fn from_debug(debug: String) -> Self {
        TestError(debug)
    }

    pub(crate) fn into_debug(self) -> String {
        self.0
    }
}

impl fmt::Debug for TestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a test function may return.
#[diagnostic::on_unimplemented(
    message = "a `#[netns_test]` function must return `()` or `Result<(), E>` where `E: Debug`, not `{Self}`",
    label = "this is returned by the test"
)]
pub trait Report {
    /// The test's result.
    fn report(self) -> Result<(), TestError>;
}

impl Report for () {
    fn report(self) -> Result<(), TestError> {
        Ok(())
    }
}

impl<E: fmt::Debug> Report for Result<(), E> {
    fn report(self) -> Result<(), TestError> {
        self.map_err(|error| TestError(format!("{error:?}")))
    }
}

/// Fails to compile unless a test may return `T`.
pub const fn assert_report<T: Report>() {}

/// Fails to compile unless `R` can run async tests.
pub const fn assert_async_runtime<R: AsyncRuntime>() {}

/// Converts what the user's function returned.
pub fn report<R: Report>(returned: R) -> Result<(), TestError> {
    returned.report()
}

/// What the generated `#[test]` returns: `()`, or a `Result` when the user's
/// function returns one.
pub trait Conclusion {
    /// Converts the runtime's result.
    fn conclusion(result: Result<(), TestError>) -> Self;
}

impl Conclusion for () {
    fn conclusion(result: Result<(), TestError>) {
        if let Err(error) = result {
            // Only a body returning `Result` produces an error.
            panic!("{error:?}");
        }
    }
}

impl Conclusion for Result<(), TestError> {
    fn conclusion(result: Result<(), TestError>) -> Self {
        result
    }
}

/// Runs a test in a fresh network namespace.
pub fn run<C: Conclusion>(test: &Test) -> C {
    C::conclusion(crate::run::run(test))
}

/// Selects tokio as the runtime of an `async` test.
#[derive(Debug, Clone, Copy)]
pub struct Tokio;

/// An async runtime that can run a test's future.
#[diagnostic::on_unimplemented(
    message = "an `async` `#[netns_test]` needs the `tokio` feature of `netns-test-runtime`",
    label = "async tests run on tokio",
    note = "enable it in Cargo.toml: `netns-test-runtime = {{ version = \"0.1\", features = [\"tokio\"] }}`"
)]
pub trait AsyncRuntime {
    /// Runs `future` to completion on a new runtime built on this thread.
    fn block_on<F: Future>(self, threads: Option<usize>, future: F) -> F::Output;
}

#[cfg(feature = "tokio")]
impl AsyncRuntime for Tokio {
    fn block_on<F: Future>(self, threads: Option<usize>, future: F) -> F::Output {
        let mut builder = match threads {
            None => tokio::runtime::Builder::new_current_thread(),
            Some(threads) => {
                let mut builder = tokio::runtime::Builder::new_multi_thread();
                builder.worker_threads(threads);
                builder
            }
        };
        // Worker and blocking threads are spawned from this thread, so they
        // start in its network namespace.
        let runtime = builder
            .enable_all()
            .build()
            .unwrap_or_else(|error| panic!("netns-test: cannot build the tokio runtime: {error}"));
        runtime.block_on(future)
    }
}

/// Runs an async test's future on `runtime`.
pub fn block_on<R: AsyncRuntime, F: Future>(
    runtime: R,
    threads: Option<usize>,
    future: F,
) -> F::Output {
    runtime.block_on(threads, future)
}
