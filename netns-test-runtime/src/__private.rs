//! What the expansion of `#[netns_test]` calls. Not a public API: it changes
//! without notice.

use std::pin::Pin;

pub use linkme;

/// Registers a test in [`TESTS`], and is the `&'static Test`. A macro of this
/// crate, so that the expansion names linkme's attributes through no path
/// of its own: with a wrong `crate = "..."`, the import of this module is
/// the one error.
#[doc(hidden)]
#[macro_export]
macro_rules! __netns_test_register {
    ($test:expr) => {{
        #[$crate::__private::linkme::distributed_slice($crate::__private::TESTS)]
        #[linkme(crate = $crate::__private::linkme)]
        static TEST: $crate::__private::Test = $test;
        &TEST
    }};
}

pub use crate::__netns_test_register as register;

pub use crate::test::{Body, Options, Runs, ShouldPanic, TESTS, Test, TestError, TestResult};
pub use crate::topology::NetworkBuilder;

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

/// What a test function that returns `Result` hands to `?`, to `return`,
/// or as its value: the expansion wraps each in [`noted`], so that an `Err`
/// is noted while the body's locals (and the sockets they hold) still live.
pub trait Noted {
    /// Whether it is an error.
    fn is_error(&self) -> bool;
}

impl<T, E> Noted for Result<T, E> {
    fn is_error(&self) -> bool {
        self.is_err()
    }
}

/// `?` on a `Poll<Result<..>>` returns its error too.
impl<T, E> Noted for core::task::Poll<Result<T, E>> {
    fn is_error(&self) -> bool {
        matches!(self, core::task::Poll::Ready(Err(_)))
    }
}

/// `?` on a `Poll<Option<Result<..>>>` returns its error too.
impl<T, E> Noted for core::task::Poll<Option<Result<T, E>>> {
    fn is_error(&self) -> bool {
        matches!(self, core::task::Poll::Ready(Some(Err(_))))
    }
}

/// Hands `value` back; where it is an error, first takes the test's
/// sockets for its report, before the function returns and drops its locals.
#[inline]
pub fn noted<T: Noted>(value: T) -> T {
    if value.is_error() {
        crate::forensics::record_at_err("before the body's locals were dropped");
    }
    value
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
        if crate::fault::injected(crate::fault::Fault::AsyncRuntimeThreads) {
            // A stack no thread can have: the spawn fails, as it does out of
            // threads, and tokio panics as it does then.
            builder.thread_stack_size(usize::MAX / 2);
        }
        // tokio panics, rather than returning an error, when it cannot start
        // a worker: caught here, or a `should_panic` test would pass on it.
        builder.enable_all();
        let built = match (
            crate::fault::injected(crate::fault::Fault::AsyncRuntime),
            flavor,
        ) {
            (true, _) => Ok(Err(std::io::Error::from_raw_os_error(nix::libc::EMFILE))),
            (false, Flavor::CurrentThread) => crate::outcome::catch(|| builder.build()),
            (false, Flavor::MultiThread(_)) => build_within(builder, BUILD_WITHIN),
        };
        match built {
            Ok(Ok(runtime)) => {
                let result = runtime.block_on(body);
                if result.is_err() {
                    // Before the runtime drops the tasks that hold sockets.
                    crate::forensics::record_at_err("before its runtime and tasks were dropped");
                }
                result
            }
            Ok(Err(source)) => crate::outcome::fail_runtime(crate::Error::AsyncRuntime { source }),
            Err(payload) => {
                let message = crate::outcome::panic_message(payload.as_ref())
                    .unwrap_or("a panic without a message")
                    .to_owned();
                crate::outcome::fail_runtime(crate::Error::AsyncRuntimePanicked { message })
            }
        }
    }
}

/// How long a multi-thread runtime may take to be built.
#[cfg(feature = "tokio")]
const BUILD_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Builds a multi-thread runtime on a thread of its own, started from this
/// one (so that its workers start in this thread's network namespace), and
/// waits for it at most `within`. tokio that starts some of its workers and
/// then cannot start the next panics, and then, dropping what it built,
/// waits forever for the workers it started: that thread is left there, and
/// the test fails instead of hanging.
#[cfg(feature = "tokio")]
fn build_within(
    mut builder: tokio::runtime::Builder,
    within: std::time::Duration,
) -> std::thread::Result<std::io::Result<tokio::runtime::Runtime>> {
    let (send, receive) = std::sync::mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("netns-test-runtime".into())
        .spawn(move || {
            let _ = send.send(crate::outcome::catch(|| builder.build()));
        });
    if let Err(source) = spawned {
        return Ok(Err(source));
    }
    match receive.recv_timeout(within) {
        Ok(built) => built,
        Err(_) => Err(Box::new(format!(
            "tokio started some of its worker threads, could not start the next, and still waited for those it started {within:?} later (its panic is printed above)"
        ))),
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
