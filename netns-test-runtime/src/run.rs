//! Running one test: choosing the mode, isolating the body, reporting.

use std::io::Write;
use std::panic;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::__private::{ShouldPanic, Test, TestError};
use crate::error::Error;
use crate::helper;
use crate::mode::{self, Mode};
use crate::netns::{NsKey, ensure_isolated, handle_if, private_sysfs, unshare_fresh};
use crate::outcome::Outcome;
use crate::process::{self, Marker};

/// Runs a test in the mode this process uses, and reports its outcome.
pub(crate) fn run(test: &Test) -> Result<(), TestError> {
    let name = test_name(test.path);
    if let Some(marker) = Marker::for_test(name) {
        let outcome = process::run_child(test, marker);
        return conclude(test, outcome);
    }
    if let Some(socket) = helper::helper_socket(name) {
        helper::serve(socket);
    }
    let outcome = match mode::selected().and_then(|mode| Ok((mode, timeout(test)?))) {
        Ok((Mode::Thread, timeout)) => match run_thread(test, name, timeout) {
            // The body has not run, and thread mode does not work here: the
            // test goes to the fallback mode, which `selected` now returns.
            Outcome::Harness(Error::Unshare { source }) if mode::thread_mode_found(Err(source)) => {
                return run(test);
            }
            outcome => {
                mode::thread_mode_found(Ok(()));
                outcome
            }
        },
        Ok((Mode::Process, timeout)) => process::run_parent(name, timeout),
        Ok((Mode::Helper, timeout)) => helper::run_parent(test, name, timeout),
        Err(Error::Unavailable(diagnosis)) if skip_unavailable() => {
            return skip(test, name, &diagnosis.to_string());
        }
        Err(error) => Outcome::Harness(error),
    };
    conclude(test, outcome)
}

/// libtest's name for a test: its path without the crate's name.
pub(crate) fn test_name(path: &str) -> &str {
    path.split_once("::").map_or(path, |(_, rest)| rest)
}

/// The test's own timeout, or the default from `NETNS_TEST_TIMEOUT`.
fn timeout(test: &Test) -> Result<Option<Duration>, Error> {
    if test.timeout.is_some() {
        return Ok(test.timeout);
    }
    let Ok(text) = std::env::var("NETNS_TEST_TIMEOUT") else {
        return Ok(None);
    };
    parse_duration(&text).map(Some).ok_or(Error::BadEnv {
        name: "NETNS_TEST_TIMEOUT",
        value: text,
        expected: "a whole number followed by `ms`, `s` or `m`, e.g. `30s`",
    })
}

/// Parses `"500ms"`, `"10s"` or `"2m"`, as the attribute's `timeout` does.
fn parse_duration(text: &str) -> Option<Duration> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let millis = match unit {
        "ms" => number,
        "s" => number.checked_mul(1_000)?,
        "m" => number.checked_mul(60_000)?,
        _ => return None,
    };
    (millis > 0).then(|| Duration::from_millis(millis))
}

fn skip_unavailable() -> bool {
    std::env::var("NETNS_TEST_UNAVAILABLE").is_ok_and(|value| value == "skip")
}

/// Passes a test that cannot run, loudly, as `NETNS_TEST_UNAVAILABLE=skip` asks.
fn skip(test: &Test, name: &str, why: &str) -> Result<(), TestError> {
    let first_line = why.lines().next().unwrap_or(why);
    // Straight to the process's stderr: libtest would hide captured output of
    // a passing test, and a skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "netns-test: SKIPPED {name}: {first_line} (NETNS_TEST_UNAVAILABLE=skip)"
    );
    match test.should_panic {
        ShouldPanic::No => Ok(()),
        ShouldPanic::Yes => panic::resume_unwind(Box::new("netns-test: skipped")),
        ShouldPanic::WithMessage(expected) => panic::resume_unwind(Box::new(expected)),
    }
}

/// Thread mode: the body runs on a thread of its own, named like the test,
/// that has unshared its network namespace.
fn run_thread(test: &Test, name: &str, timeout: Option<Duration>) -> Outcome {
    let harness = match NsKey::of_this_thread() {
        Ok(harness) => harness,
        Err(error) => return Outcome::Harness(error),
    };
    let (body, sysfs, handle) = (test.body, test.sysfs, test.handle);
    let (done, outcome) = mpsc::sync_channel(1);
    let spawned = thread::Builder::new().name(name.to_owned()).spawn(move || {
        let prepared = unshare_fresh()
            .and_then(|()| if sysfs { private_sysfs() } else { Ok(()) })
            .and_then(|()| ensure_isolated(harness))
            .and_then(|()| handle_if(handle));
        let outcome = match prepared {
            Ok(ns) => Outcome::of_body(body, ns),
            Err(error) => Outcome::Harness(error),
        };
        // The harness may have stopped waiting after a timeout.
        let _ = done.send(outcome);
    });
    let handle = match spawned {
        Ok(handle) => handle,
        Err(source) => {
            return Outcome::Harness(Error::SpawnThread {
                purpose: "the test's body",
                source,
            });
        }
    };
    let received = match timeout {
        Some(timeout) => outcome.recv_timeout(timeout).map_err(|error| match error {
            mpsc::RecvTimeoutError::Timeout => Error::TimedOut {
                after: timeout,
                left_running: true,
            },
            mpsc::RecvTimeoutError::Disconnected => lost_thread(),
        }),
        None => outcome.recv().map_err(|_| lost_thread()),
    };
    match received {
        Ok(outcome) => {
            // The thread has sent its outcome and is ending: when it has, its
            // namespace is gone.
            let _ = handle.join();
            outcome
        }
        Err(error) => Outcome::Harness(error),
    }
}

fn lost_thread() -> Error {
    Error::SpawnThread {
        purpose: "the test's body",
        source: std::io::Error::other("the thread ended without reporting"),
    }
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
        Outcome::Returned(debug) => Err(TestError::from_debug(debug)),
        Outcome::Panicked(payload) => panic::resume_unwind(payload),
        Outcome::Harness(error) => match test.should_panic {
            ShouldPanic::No => panic!("netns-test: {error}"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_drop_the_crate() {
        assert_eq!(test_name("my_crate::a::b::test"), "a::b::test");
        assert_eq!(test_name("integration::test"), "test");
        assert_eq!(test_name("lonely"), "lonely");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("3s"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        for bad in ["0s", "", "s", "3", "1.5s", "-1s", "3h"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
