//! Thread mode, and the body runner it shares with helpers: the body runs on
//! a thread of its own, named like the test, that unshares a fresh network
//! namespace; the thread's exit discards it. The calling thread never moves.

use std::os::fd::OwnedFd;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use nix::errno::Errno;

use crate::error::Error;
use crate::mode::child::redirected;
use crate::netns::NsKey;
use crate::outcome::Outcome;
use crate::sandbox::{Entry, Sandbox, Unprepared};
use crate::test::Test;

/// Where the body's stdout and stderr go.
#[derive(Debug)]
pub(crate) enum Io {
    /// Where the calling thread's go: libtest's capture reaches threads it
    /// spawns.
    Inherited,
    /// To these pipes, as a helper sends them to the test process.
    Redirected { stdout: OwnedFd, stderr: OwnedFd },
}

/// How a run on a named thread went.
#[derive(Debug)]
pub(crate) enum ThreadRun {
    /// The thread unshared its namespace, and the test ended so.
    Ran(Outcome),
    /// `unshare(CLONE_NEWNET)` was refused: nothing else was tried.
    Refused(Errno),
    /// netns-test lost the thread, or could not start it, or stopped waiting.
    Failed(Error),
}

impl ThreadRun {
    /// The test's outcome, where a refusal is netns-test's failure.
    pub(crate) fn into_outcome(self) -> Outcome {
        match self {
            ThreadRun::Ran(outcome) => outcome,
            ThreadRun::Refused(source) => Outcome::Runtime(Error::Unshare { source }),
            ThreadRun::Failed(error) => Outcome::Runtime(error),
        }
    }
}

/// Thread mode: runs `test` on a thread of this process.
pub(crate) fn run(test: &'static Test, timeout: Option<Duration>) -> ThreadRun {
    match NsKey::of_this_thread() {
        Ok(harness_ns) => {
            let sandbox = Sandbox {
                entry: Entry::Unshare,
                harness_ns,
            };
            run_on_named_thread(test, sandbox, Io::Inherited, timeout)
        }
        Err(error) => ThreadRun::Failed(error),
    }
}

/// Prepares and runs `test`'s body on a new thread named like the test, and
/// waits for it at most `timeout`. A thread that times out is left running:
/// a thread cannot be stopped from outside.
pub(crate) fn run_on_named_thread(
    test: &'static Test,
    sandbox: Sandbox,
    io: Io,
    timeout: Option<Duration>,
) -> ThreadRun {
    let (done, report) = mpsc::sync_channel(1);
    let spawned = thread::Builder::new()
        .name(test.name().to_owned())
        .spawn(move || {
            let ran = match sandbox.prepare(test) {
                Err(Unprepared::Refused(errno)) => ThreadRun::Refused(errno),
                Err(Unprepared::Failed(error)) => ThreadRun::Ran(Outcome::Runtime(error)),
                Ok(call) => ThreadRun::Ran(match io {
                    Io::Inherited => Outcome::of_call(call),
                    Io::Redirected { stdout, stderr } => {
                        redirected(&stdout, &stderr, || Outcome::of_call(call))
                    }
                }),
            };
            // The caller may have stopped waiting after a timeout.
            let _ = done.send(ran);
        });
    let handle = match spawned {
        Ok(handle) => handle,
        Err(source) => {
            return ThreadRun::Failed(Error::SpawnThread {
                step: "the test's body",
                source,
            });
        }
    };
    let lost = || Error::ThreadLost {
        step: "the test's body",
    };
    let received = match timeout {
        Some(after) => report.recv_timeout(after).map_err(|error| match error {
            mpsc::RecvTimeoutError::Timeout => Error::TimedOut {
                after,
                left_running: true,
            },
            mpsc::RecvTimeoutError::Disconnected => lost(),
        }),
        None => report.recv().map_err(|_| lost()),
    };
    match received {
        Ok(ran) => {
            // The thread has reported and is ending: once it has, its
            // namespace is gone.
            let _ = handle.join();
            ran
        }
        Err(error) => ThreadRun::Failed(error),
    }
}
