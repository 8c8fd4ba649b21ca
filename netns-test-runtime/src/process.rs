//! Process mode: the test binary runs itself again, for one test, inside a new
//! user and network namespace; the parent reports the child's outcome.
//!
//! The child writes a record of the body's outcome over an inherited pipe, and
//! only that record decides the result. The body's stdout and stderr come over
//! two more pipes and are printed through the parent's `print!` and `eprint!`,
//! so libtest captures them for this test. What the child's own libtest prints
//! is kept aside and shown only when the child ends without a record.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::unistd::{dup, dup2_stderr, dup2_stdout, getpid, getppid, pipe2};

use crate::__private::Test;
use crate::error::{ChildEnded, Error};
use crate::netlink;
use crate::netns::{NsKey, ensure_isolated, handle_if, private_sysfs};
use crate::outcome::{Outcome, Record, started_frame};
use crate::userns::UsernsSetup;

/// The environment variable that tells a child which test it runs, and where.
const MARKER: &str = "__NETNS_TEST_CHILD";

/// How much of the child's own harness output is kept for a failure message.
const HARNESS_OUTPUT_KEPT: usize = 4096;

/// What the parent tells the child.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Marker {
    /// The parent's pid, so that a grandchild does not take the marker as its own.
    parent: u32,
    record: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    /// The parent's harness namespace, which the body must not be in.
    harness: NsKey,
    /// The test's libtest name.
    name: String,
}

impl Marker {
    fn encode(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}:{}",
            self.parent,
            self.record,
            self.stdout,
            self.stderr,
            self.harness.encode(),
            self.name
        )
    }

    fn decode(text: &str) -> Option<Marker> {
        let mut fields = text.splitn(6, ':');
        let mut number = || fields.next()?.parse::<u64>().ok();
        let (parent, record, stdout, stderr) = (number()?, number()?, number()?, number()?);
        Some(Marker {
            parent: parent.try_into().ok()?,
            record: record.try_into().ok()?,
            stdout: stdout.try_into().ok()?,
            stderr: stderr.try_into().ok()?,
            harness: NsKey::decode(fields.next()?)?,
            name: fields.next()?.to_owned(),
        })
    }

    /// The marker, when this process is the child that runs `name`.
    pub(crate) fn for_test(name: &str) -> Option<Marker> {
        let marker = Marker::decode(&std::env::var(MARKER).ok()?)?;
        (marker.name == name && marker.parent == getppid().as_raw() as u32).then_some(marker)
    }
}

/// In the child: runs the body and writes its record. Returns the outcome,
/// so that the child's own libtest reports it too.
pub(crate) fn run_child(test: &Test, marker: Marker) -> Outcome {
    static TAKEN: AtomicBool = AtomicBool::new(false);
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Outcome::Harness(Error::InChild {
            message: "the test ran twice in its child process".into(),
        });
    }
    // SAFETY: the parent opened these descriptors for this child, cleared
    // their close-on-exec flag, and named them in the marker; `TAKEN` makes
    // this the only place that takes ownership of them.
    let (mut record, stdout, stderr) = unsafe {
        (
            File::from(OwnedFd::from_raw_fd(marker.record)),
            OwnedFd::from_raw_fd(marker.stdout),
            OwnedFd::from_raw_fd(marker.stderr),
        )
    };
    // The record decides the result: if it cannot be written, the parent
    // reports the child as ended before the body finished.
    if record.write_all(&started_frame()).is_err() {
        return Outcome::Harness(Error::InChild {
            message: "cannot write the record".into(),
        });
    }
    let prepared = netlink::loopback_up()
        .and_then(|()| if test.sysfs { private_sysfs() } else { Ok(()) })
        .and_then(|()| ensure_isolated(marker.harness))
        .and_then(|()| handle_if(test.handle));
    let outcome = match prepared {
        Err(error) => Outcome::Harness(error),
        Ok(ns) => redirected(&stdout, &stderr, || Outcome::of_body(test.body, ns)),
    };
    let _ = record.write_all(&outcome.to_frame());
    outcome
}

/// Runs `f` with this process's stdout and stderr sent to the given pipes.
pub(crate) fn redirected(
    stdout: &OwnedFd,
    stderr: &OwnedFd,
    f: impl FnOnce() -> Outcome,
) -> Outcome {
    let _ = io::stdout().flush();
    let saved = dup(io::stdout()).and_then(|out| Ok((out, dup(io::stderr())?)));
    let Ok((saved_out, saved_err)) = saved.and_then(|saved| {
        dup2_stdout(stdout)?;
        dup2_stderr(stderr)?;
        Ok(saved)
    }) else {
        return Outcome::Harness(Error::InChild {
            message: "cannot send the body's output to the parent".into(),
        });
    };
    let outcome = f();
    let _ = io::stdout().flush();
    let _ = dup2_stdout(saved_out).and_then(|()| dup2_stderr(saved_err));
    outcome
}

/// In the parent: runs the test in a child process and returns its outcome.
pub(crate) fn run_parent(name: &str, timeout: Option<Duration>) -> Outcome {
    match spawn_and_wait(name, timeout) {
        Ok(outcome) => outcome,
        Err(error) => Outcome::Harness(error),
    }
}

pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    pipe2(OFlag::O_CLOEXEC).map_err(|errno| Error::Child {
        step: "create a pipe to the test's child process",
        source: errno.into(),
    })
}

fn spawn_and_wait(name: &str, timeout: Option<Duration>) -> Result<Outcome, Error> {
    let harness = NsKey::of_this_thread()?;
    let (record_r, record_w) = pipe()?;
    let (stdout_r, stdout_w) = pipe()?;
    let (stderr_r, stderr_w) = pipe()?;
    let (harness_r, harness_w) = pipe()?;
    let marker = Marker {
        parent: getpid().as_raw() as u32,
        record: record_w.as_raw_fd(),
        stdout: stdout_w.as_raw_fd(),
        stderr: stderr_w.as_raw_fd(),
        harness,
        name: name.to_owned(),
    };
    let mut child = spawn_child(
        name,
        (MARKER, marker.encode()),
        &[&record_w, &stdout_w, &stderr_w],
        Some(harness_w),
    )?;
    // Only the child may hold the write ends, so that the reads end.
    drop((record_w, stdout_w, stderr_w));
    let streams = Streams {
        record: record_r,
        stdout: stdout_r,
        stderr: stderr_r,
        harness: Some(harness_r),
    };
    match streams.pump(&mut child, timeout)? {
        Pumped::TimedOut => Ok(Outcome::Harness(Error::TimedOut {
            after: timeout.unwrap_or_default(),
            left_running: false,
        })),
        Pumped::Finished {
            record,
            harness_output,
        } => {
            let status = child.wait().map_err(|source| Error::Child {
                step: "wait for the test's child process",
                source,
            })?;
            Ok(outcome_of(
                &record,
                Some(status),
                harness_output,
                "the test's child process",
            ))
        }
    }
}

/// Starts the test binary again for the test `name`, inside a new user and
/// network namespace, with `inherited` descriptors left open across exec and
/// the child's own harness output sent to `harness` (or nowhere). The child
/// is killed when the calling thread ends.
pub(crate) fn spawn_child(
    name: &str,
    (marker, value): (&str, String),
    inherited: &[&OwnedFd],
    harness: Option<OwnedFd>,
) -> Result<Child, Error> {
    let exe = std::env::current_exe().map_err(|source| Error::Child {
        step: "find the test binary to run it again (std::env::current_exe)",
        source,
    })?;
    let (stdout, stderr) = match harness {
        Some(harness) => {
            let copy = harness.try_clone().map_err(|source| Error::Child {
                step: "duplicate a pipe to the test's child process",
                source,
            })?;
            (Stdio::from(harness), Stdio::from(copy))
        }
        None => (Stdio::null(), Stdio::null()),
    };
    let mut command = Command::new(&exe);
    command
        .args([
            name,
            "--exact",
            "--nocapture",
            "--include-ignored",
            "--test-threads=1",
            "--color=never",
        ])
        .env(marker, value)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    let inherited: Vec<RawFd> = inherited.iter().map(|fd| fd.as_raw_fd()).collect();
    let setup = UsernsSetup::for_current_user();
    let enter = move || {
        for &fd in &inherited {
            // SAFETY: fcntl(F_SETFD) only changes the flags of `fd`, which is
            // open in this child.
            if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        setup.die_with_parent()?;
        setup.enter()
    };
    // SAFETY: `enter` is async-signal-safe: it makes system calls only, on
    // descriptors and buffers prepared before the fork.
    unsafe { command.pre_exec(enter) };
    command.spawn().map_err(|source| Error::Child {
        step: "start the test's child process in a new user and network namespace",
        source,
    })
}

/// The outcome a record reports, or, when it reports none, how the process
/// that should have written it ended (`None`: it is still running).
pub(crate) fn outcome_of(
    record: &[u8],
    status: Option<ExitStatus>,
    harness_output: String,
    process: &'static str,
) -> Outcome {
    let how = || status.map_or_else(|| "stopped reporting".to_owned(), describe);
    let ended = |started: bool, how: String| {
        Outcome::Harness(Error::ChildEnded(ChildEnded {
            process,
            started,
            how,
            harness_output,
        }))
    };
    match Record::decode(record) {
        Ok(Record {
            outcome: Some(outcome),
            ..
        }) => outcome,
        Ok(Record { started, .. }) => ended(started, how()),
        Err(problem) => ended(true, format!("{} ({problem})", how())),
    }
}

/// Says how a child ended, naming the signal that killed it.
fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    let Some(signal) = status.signal() else {
        return format!("ended ({status})");
    };
    let name = Signal::try_from(signal).map_or("an unknown signal", Signal::as_str);
    let what = match signal {
        libc::SIGSEGV => " (invalid memory access, or a stack overflow)",
        libc::SIGABRT => {
            " (the process aborted: std::process::abort, a stack overflow, or a panic while panicking)"
        }
        libc::SIGBUS => " (bus error)",
        libc::SIGILL => " (illegal instruction)",
        libc::SIGFPE => " (arithmetic error)",
        libc::SIGKILL => " (killed from outside, e.g. by the OOM killer)",
        _ => "",
    };
    let core = if status.core_dumped() {
        ", core dumped"
    } else {
        ""
    };
    format!("was killed by signal {signal}, {name}{what}{core}")
}

/// The parent's ends of the pipes of one test.
pub(crate) struct Streams {
    pub(crate) record: OwnedFd,
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
    /// What the child's own libtest prints, for a process-mode child.
    pub(crate) harness: Option<OwnedFd>,
}

/// What [`Streams::pump`] saw.
pub(crate) enum Pumped {
    /// The pipes were closed, or the child exited and they were drained.
    Finished {
        record: Vec<u8>,
        harness_output: String,
    },
    /// The timeout passed, and the child was killed.
    TimedOut,
}

impl Streams {
    /// Reads the pipes until they are closed, or until `child` has exited
    /// and they are drained, forwarding the body's output through `print!`
    /// and `eprint!`. Kills the child when `timeout` passes.
    pub(crate) fn pump(
        self,
        child: &mut Child,
        timeout: Option<Duration>,
    ) -> Result<Pumped, Error> {
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        let mut record = Vec::new();
        let mut harness = Vec::new();
        let mut stdout = Lines::new(|text| print!("{text}"));
        let mut stderr = Lines::new(|text| eprint!("{text}"));
        let fds: Vec<&OwnedFd> = [&self.record, &self.stdout, &self.stderr]
            .into_iter()
            .chain(self.harness.as_ref())
            .collect();
        let mut open = vec![true; fds.len()];
        let mut exited = false;
        let mut buffer = [0u8; 8192];
        let waited = |source| Error::Child {
            step: "wait for the test's child process",
            source,
        };
        loop {
            // Once the child has exited, drain what is left without waiting:
            // a process the body started may still hold a pipe open.
            let wait = if exited {
                PollTimeout::ZERO
            } else {
                PollTimeout::from(100u16)
            };
            let polled: Vec<usize> = (0..fds.len()).filter(|&index| open[index]).collect();
            let mut poll_fds: Vec<PollFd<'_>> = polled
                .iter()
                .map(|&index| PollFd::new(fds[index].as_fd(), PollFlags::POLLIN))
                .collect();
            let ready = match poll(&mut poll_fds, wait) {
                Ok(ready) => ready,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(errno) => return Err(waited(errno.into())),
            };
            for (&index, polled_fd) in polled.iter().zip(&poll_fds) {
                if !polled_fd.any().unwrap_or(false) {
                    continue;
                }
                match nix::unistd::read(fds[index].as_fd(), &mut buffer) {
                    Ok(0) | Err(_) => open[index] = false,
                    Ok(n) => match index {
                        0 => record.extend_from_slice(&buffer[..n]),
                        1 => stdout.push(&buffer[..n]),
                        2 => stderr.push(&buffer[..n]),
                        _ => {
                            harness.extend_from_slice(&buffer[..n]);
                            let excess = harness.len().saturating_sub(HARNESS_OUTPUT_KEPT);
                            harness.drain(..excess);
                        }
                    },
                }
            }
            if !open.contains(&true) || (exited && ready == 0) {
                break;
            }
            // A helper closes the record last; what is left of the output is
            // drained without waiting for a process the body left behind.
            if self.harness.is_none() && !open[0] {
                exited = true;
            }
            if !exited {
                exited = child.try_wait().map_err(waited)?.is_some();
            }
            if !exited && deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                let _ = child.kill();
                let _ = child.wait();
                stdout.finish();
                stderr.finish();
                return Ok(Pumped::TimedOut);
            }
        }
        stdout.finish();
        stderr.finish();
        Ok(Pumped::Finished {
            record,
            harness_output: String::from_utf8_lossy(&harness).into_owned(),
        })
    }
}

/// Forwards bytes as whole lines, so that multi-byte characters stay whole.
struct Lines<F: FnMut(&str)> {
    pending: Vec<u8>,
    forward: F,
}

impl<F: FnMut(&str)> Lines<F> {
    fn new(forward: F) -> Self {
        Lines {
            pending: Vec::new(),
            forward,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        if let Some(end) = self.pending.iter().rposition(|&byte| byte == b'\n') {
            let lines: Vec<u8> = self.pending.drain(..=end).collect();
            (self.forward)(&String::from_utf8_lossy(&lines));
        }
    }

    fn finish(&mut self) {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            (self.forward)(&String::from_utf8_lossy(&rest));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::NsId;

    #[test]
    fn the_marker_survives_the_trip() {
        let marker = Marker {
            parent: 4242,
            record: 5,
            stdout: 6,
            stderr: 7,
            harness: NsKey::Cookie(4026531840),
            name: "outer::inner::a_test".into(),
        };
        assert_eq!(Marker::decode(&marker.encode()), Some(marker));
        let by_inode = Marker {
            harness: NsKey::Inode(NsId {
                dev: 4,
                ino: 4026531840,
            }),
            ..Marker::decode("1:5:6:7:c1:t").expect("a marker")
        };
        assert_eq!(Marker::decode(&by_inode.encode()), Some(by_inode));
        assert_eq!(Marker::decode("1:2:3"), None);
        assert_eq!(Marker::decode("x:5:6:7:c4:name"), None);
        assert_eq!(Marker::decode("1:5:6:7:4.9:name"), None);
    }

    #[test]
    fn signals_are_named() {
        let segv = describe(ExitStatus::from_raw(libc::SIGSEGV));
        assert!(segv.contains("SIGSEGV"), "{segv}");
        let abort = describe(ExitStatus::from_raw(libc::SIGABRT));
        assert!(abort.contains("SIGABRT"), "{abort}");
        assert_eq!(
            describe(ExitStatus::from_raw(3 << 8)),
            "exited with status 3"
        );
    }

    /// A child whose libtest finds no such test ends without a record, and
    /// the report says so and shows what the child's harness printed.
    #[test]
    fn a_child_that_finds_no_test_fails() {
        let outcome = run_parent("no::such::test", None);
        let Outcome::Harness(Error::ChildEnded(ended)) = outcome else {
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

    #[test]
    fn lines_are_forwarded_whole() {
        let mut seen = Vec::new();
        let mut lines = Lines::new(|text: &str| seen.push(text.to_owned()));
        lines.push("é".as_bytes().split_at(1).0);
        lines.push(&["é".as_bytes().split_at(1).1, b"\nnext"].concat());
        lines.finish();
        assert_eq!(seen, ["é\n", "next"]);
    }
}
