//! Process mode: the test binary runs itself again, for one test, inside a
//! new user and network namespace; the parent reports the child's outcome as
//! its own.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;

use nix::unistd::getpid;

use crate::error::{Error, Stopped};
use crate::mode::child::{self, BodyStreams, ChildEnds, ChildRun, Ran, spawn_child, stdin_copy};
use crate::mode::runner::{Io, run_on_named_thread};
use crate::mode::wire::{CHILD_MARKER, ChildMarker, outcome_frame, started_frame};
use crate::netns::NsKey;
use crate::outcome::Outcome;
use crate::plan::Plan;
use crate::sandbox::{Entry, Sandbox};
use crate::test::Test;

/// In the parent: runs the test in a child process and returns its outcome.
pub(crate) fn run_parent(test: &'static Test, plan: &Plan) -> Outcome {
    let Some(index) = test.index() else {
        return Outcome::Runtime(Error::TestNotRegistered {
            path: test.path.to_owned(),
        });
    };
    spawn_and_wait(test.name(), index, plan).unwrap_or_else(Outcome::Runtime)
}

fn spawn_and_wait(name: &str, index: usize, plan: &Plan) -> Result<Outcome, Error> {
    let harness_ns = NsKey::of_this_thread()?;
    let (run, ends) = ChildRun::open(true)?;
    let marker = ChildMarker {
        parent: getpid().as_raw(),
        index,
        fds: ends.body.each_ref().map(AsRawFd::as_raw_fd),
        harness_ns,
        name: name.to_owned(),
        plan: plan.clone(),
    };
    let ChildEnds { body, libtest } = ends;
    let mut child = spawn_child(
        name,
        (CHILD_MARKER, marker.encode()),
        &body.each_ref(),
        Stdio::inherit(),
        libtest,
    )?;
    drop(body);
    match run.wait(&mut child, plan.timeout, Stopped::Process)? {
        Ran::TimedOut(outcome) => Ok(outcome),
        Ran::Finished {
            record,
            libtest_output,
        } => {
            let status = child.wait().map_err(|source| Error::Child {
                step: "wait for the test's child process",
                source,
            })?;
            Ok(child::outcome_of(
                &record,
                Some(status),
                libtest_output,
                "the test's child process",
            ))
        }
    }
}

/// In the child: runs the body, on a thread named like the test as in
/// every mode, and writes its record. The child keeps the test's timeout
/// itself, so that a body that runs past it is reported with its network
/// as it is then. Returns the outcome, so that the child's own libtest
/// reports it too.
pub(crate) fn run_child(test: &'static Test, marker: &ChildMarker, fds: [OwnedFd; 3]) -> Outcome {
    let [record, stdout, stderr] = fds;
    let mut record = File::from(record);
    // The record decides the result: if it cannot be written, the parent
    // reports the child as ended before the body finished.
    if let Err(source) = record.write_all(&started_frame()) {
        return Outcome::Runtime(Error::Child {
            step: "write the outcome record to the parent",
            source,
        });
    }
    let sandbox = Sandbox {
        entry: Entry::AlreadyInside,
        harness_ns: marker.harness_ns,
    };
    let outcome = match stdin_copy() {
        Ok(stdin) => {
            let streams = BodyStreams {
                stdin,
                stdout,
                stderr,
            };
            run_on_named_thread(
                test,
                sandbox,
                Io::Redirected(streams),
                marker.plan.clone(),
                None,
            )
            .into_outcome()
        }
        Err(error) => Outcome::Runtime(error),
    };
    let _ = record.write_all(&outcome_frame(&outcome));
    if let Outcome::Runtime(Error::TimedOut { .. }) = outcome {
        // The body runs on, with the test's output redirected to it: the
        // parent reports the timeout, and this process ends here, silent.
        let _ = std::io::stdout().flush();
        // SAFETY: _exit(2) ends the process at once, without running
        // destructors or atexit handlers that could wait on the body.
        unsafe { nix::libc::_exit(1) };
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child whose libtest finds no such test ends without a record, and
    /// the report says so and shows what the child's libtest printed.
    #[test]
    fn a_child_that_finds_no_test_fails() {
        let plan = Plan {
            timeout: None,
            capture: crate::env::Capture::Off,
            capture_limit: 0,
            seed: 0,
            capture_dir: std::path::Path::new("/nowhere").into(),
        };
        let outcome = spawn_and_wait("no::such::test", 0, &plan).unwrap_or_else(Outcome::Runtime);
        let Outcome::Runtime(Error::ChildEnded(ended)) = outcome else {
            panic!("expected the child to end without a record, got {outcome:?}");
        };
        let message = ended.to_string();
        assert!(!ended.started, "{message}");
        assert!(
            message.contains("exited with status 0 without running the test"),
            "{message}"
        );
        assert!(message.contains("running 0 tests"), "{message}");
    }
}
