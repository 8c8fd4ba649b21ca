//! What the expansion of `#[netns_test]` calls. Not a public API: it changes
//! without notice.

use std::fmt;
use std::pin::Pin;

pub use linkme;

pub use crate::test::{Body, ShouldPanic, TESTS, Test, TestError};

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
        self.map_err(|error| TestError::from_debug(format!("{error:?}")))
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
pub fn run<C: Conclusion>(test: &'static Test) -> C {
    C::conclusion(crate::run::run(test))
}

/// An async test's body, pinned where the expansion made it, so that one
/// instantiation of [`block_on`] serves every async test.
pub type PinnedBody<'a> = Pin<&'a mut dyn Future<Output = Result<(), TestError>>>;

/// The async runtime an `async` test asks for.
#[derive(Debug, Clone, Copy)]
pub enum Flavor {
    /// No `threads`: a current-thread runtime.
    CurrentThread,
    /// `threads = N`, or `threads` alone for the runtime's default count.
    MultiThread(Option<usize>),
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
    /// Runs `body` to completion on a new runtime built on this thread.
    fn block_on(self, flavor: Flavor, body: PinnedBody<'_>) -> Result<(), TestError>;
}

#[cfg(feature = "tokio")]
impl AsyncRuntime for Tokio {
    fn block_on(self, flavor: Flavor, body: PinnedBody<'_>) -> Result<(), TestError> {
        let mut builder = match flavor {
            Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
            Flavor::MultiThread(threads) => {
                let mut builder = tokio::runtime::Builder::new_multi_thread();
                if let Some(threads) = threads {
                    builder.worker_threads(threads);
                }
                builder
            }
        };
        // Worker and blocking threads are spawned from this thread, so they
        // start in its network namespace.
        let built = match crate::fault::injected(crate::fault::Fault::AsyncRuntime) {
            true => Err(std::io::Error::from_raw_os_error(nix::libc::EMFILE)),
            false => builder.enable_all().build(),
        };
        match built {
            Ok(runtime) => runtime.block_on(body),
            Err(source) => crate::outcome::fail_runtime(crate::Error::AsyncRuntime { source }),
        }
    }
}

/// Runs an async test's pinned body on `runtime`.
pub fn block_on<R: AsyncRuntime>(
    runtime: R,
    flavor: Flavor,
    body: PinnedBody<'_>,
) -> Result<(), TestError> {
    runtime.block_on(flavor, body)
}
