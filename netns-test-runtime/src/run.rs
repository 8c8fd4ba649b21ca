//! Running one test: which role this process plays, which mode it uses, and
//! reporting the outcome.

use std::io::Write;
use std::panic;
use std::sync::OnceLock;
use std::time::Duration;

use nix::unistd::getppid;

use crate::error::Error;
use crate::mode::select::{self, Fallback};
use crate::mode::thread::{self, ThreadRun};
use crate::mode::wire::{CHILD_MARKER, ChildMarker, HELPER_MARKER, HelperMarker};
use crate::mode::{Mode, helper, process};
use crate::outcome::{Outcome, conclude};
use crate::test::{ShouldPanic, Test, TestError};

/// What this process is to netns-test, from the markers its parent set.
#[derive(Debug)]
enum Role {
    /// A process-mode child: runs one test's body and writes its record.
    Child(ChildMarker),
    /// A helper: serves requests for bodies.
    Helper(HelperMarker),
    /// The process that runs tests: libtest's, under cargo test or nextest.
    Harness,
}

impl Role {
    /// This process's role, read once. A marker counts only where the
    /// process that set it is this one's parent, so that a process a body
    /// starts never takes its parent's marker as its own.
    fn detect() -> &'static Role {
        static ROLE: OnceLock<Role> = OnceLock::new();
        ROLE.get_or_init(|| {
            let parent = getppid().as_raw();
            let marker = |name| std::env::var(name).ok();
            if let Some(child) = marker(CHILD_MARKER).and_then(|text| ChildMarker::decode(&text)) {
                if child.parent == parent {
                    return Role::Child(child);
                }
            }
            if let Some(helper) = marker(HELPER_MARKER).and_then(|text| HelperMarker::decode(&text))
            {
                if helper.parent == parent {
                    return Role::Helper(helper);
                }
            }
            Role::Harness
        })
    }
}

/// Runs a test in the mode this process uses, and reports its outcome.
pub(crate) fn run(test: &'static Test) -> Result<(), TestError> {
    let name = test.name();
    match Role::detect() {
        Role::Child(marker) if marker.name == name => {
            return conclude(test, process::run_child(test, marker));
        }
        Role::Helper(marker) if marker.name == name => helper::serve(marker),
        _ => {}
    }
    let outcome = match select::selected().and_then(|mode| Ok((mode, timeout(test)?))) {
        Ok((mode, timeout)) => run_in(mode, test, timeout),
        Err(error) => Outcome::Runtime(error),
    };
    match outcome {
        // Only the choice of mode finds no mode; the body has not run.
        Outcome::Runtime(Error::Unavailable(diagnosis)) if skip_unavailable() => {
            skip(test, &diagnosis.to_string())
        }
        outcome => conclude(test, outcome),
    }
}

/// Runs a test in `mode`. In thread mode, the test is the probe: if its
/// thread may not unshare (its body has not run), it goes to the fallback.
fn run_in(mode: Mode, test: &'static Test, timeout: Option<Duration>) -> Outcome {
    let fallback = match mode {
        Mode::Thread => match thread::run(test, timeout) {
            ThreadRun::Ran(outcome) => {
                select::thread_mode_worked();
                return outcome;
            }
            ThreadRun::Refused(errno) => match select::thread_mode_refused(errno) {
                Ok(fallback) => fallback,
                Err(error) => return Outcome::Runtime(error),
            },
            failed @ ThreadRun::Failed(_) => return failed.into_outcome(),
        },
        Mode::Helper => Fallback::Helper,
        Mode::Process => Fallback::Process,
    };
    match fallback {
        Fallback::Helper => helper::run_parent(test, timeout),
        Fallback::Process => process::run_parent(test, timeout),
    }
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
fn skip(test: &Test, why: &str) -> Result<(), TestError> {
    let first_line = why.lines().next().unwrap_or(why);
    // Straight to the process's stderr: libtest would hide captured output of
    // a passing test, and a skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "netns-test: SKIPPED {}: {first_line} (NETNS_TEST_UNAVAILABLE=skip)",
        test.name()
    );
    match test.should_panic {
        ShouldPanic::No => Ok(()),
        ShouldPanic::Yes => panic::resume_unwind(Box::new("netns-test: skipped")),
        ShouldPanic::WithMessage(expected) => panic::resume_unwind(Box::new(expected)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
