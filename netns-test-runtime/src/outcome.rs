//! How a body ended, and what the test reports to libtest for it.
//!
//! Every mode runs a body through [`Outcome::of_call`] and reports through
//! [`conclude`], so that an outcome means the same thing in every mode.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

use crate::error::Error;
use crate::test::{Call, ShouldPanic, Test, TestError};

/// How a test's body ended, or why it could not run.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The body returned `()` or `Ok(())`.
    Passed,
    /// The body returned `Err`.
    Returned(TestError),
    /// The body panicked with this payload.
    Panicked(Box<dyn Any + Send>),
    /// netns-test's runtime could not run the body, or lost it.
    Runtime(Error),
}

impl Outcome {
    /// Runs a body, with the handle to its namespace when it takes one.
    pub(crate) fn of_call(call: Call) -> Outcome {
        let ran = match call {
            Call::Plain(body) => catch(body),
            Call::WithNs(body, ns) => catch(|| body(ns)),
            Call::WithNetwork(declare, body) => catch(|| match declare().build() {
                Ok(network) => body(&network),
                Err(error) => fail_runtime(error),
            }),
        };
        match ran {
            Ok(Ok(())) => Outcome::Passed,
            Ok(Err(error)) => Outcome::Returned(error),
            Err(payload) => match payload.downcast::<RuntimeFailure>() {
                Ok(failure) => Outcome::Runtime(failure.0),
                Err(payload) => Outcome::Panicked(payload),
            },
        }
    }
}

impl Outcome {
    /// Whether libtest fails a test whose body ended so, as its
    /// `should_panic` says.
    pub(crate) fn fails(&self, should_panic: ShouldPanic) -> bool {
        match (self, should_panic) {
            (Outcome::Passed, ShouldPanic::No) => false,
            (Outcome::Passed, _) | (Outcome::Returned(_) | Outcome::Runtime(_), _) => true,
            (Outcome::Panicked(payload), _) => panic_fails(payload.as_ref(), should_panic),
        }
    }
}

/// Whether libtest fails a test whose body panicked with `payload`.
pub(crate) fn panic_fails(payload: &(dyn Any + Send), should_panic: ShouldPanic) -> bool {
    match should_panic {
        ShouldPanic::No => true,
        ShouldPanic::Yes => false,
        ShouldPanic::WithMessage(expected) => {
            !panic_message(payload).is_some_and(|message| message.contains(expected))
        }
    }
}

/// The payload with which netns-test's own code inside a body (building the
/// async runtime, or a test's network) unwinds out of it, so that its failure is never taken for
/// the body's panic: a `should_panic` test must not pass on it.
struct RuntimeFailure(Error);

/// Unwinds out of the body as netns-test's failure, not the body's panic.
pub(crate) fn fail_runtime(error: Error) -> ! {
    panic::resume_unwind(Box::new(RuntimeFailure(error)))
}

/// Runs `body` and catches its panic, so that every mode reports it the same way.
pub(crate) fn catch<T>(body: impl FnOnce() -> T) -> std::thread::Result<T> {
    panic::catch_unwind(AssertUnwindSafe(body))
}

/// The text of a panic payload, when it is a string, as libtest reads it.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// Turns an outcome into what the test reports to libtest.
///
/// A panic is re-raised with its payload unchanged, so `should_panic(expected
/// = ...)` matches as it does for a plain test. When netns-test itself fails,
/// a `should_panic` test returns normally instead of panicking, which libtest
/// reports as a failure: a panic would count as the expected one.
pub(crate) fn conclude(test: &Test, outcome: Outcome) -> Result<(), TestError> {
    match outcome {
        Outcome::Passed => Ok(()),
        Outcome::Returned(error) => Err(error),
        Outcome::Panicked(payload) => panic::resume_unwind(payload),
        Outcome::Runtime(error) => match test.should_panic {
            ShouldPanic::No => {
                // A report, not a crash: without the panic hook's "panicked
                // at <a file of this crate>", which would read as a bug here.
                let report = format!("netns-test: {error}");
                eprintln!("{report}");
                panic::resume_unwind(Box::new(report))
            }
            ShouldPanic::Yes | ShouldPanic::WithMessage(_) => {
                eprintln!(
                    "netns-test: {error}\n\
                     netns-test: the body did not run to its end, so this #[should_panic] test fails"
                );
                Ok(())
            }
        },
    }
}
