//! The plumbing of the modes that run a body in another process: starting
//! the test binary again inside a new user and network namespace, the pipes
//! between the two, pumping them, and reading the outcome.
//!
//! The child writes a record of the body's outcome over an inherited pipe,
//! and only that record decides the result. The body's stdout and stderr come
//! over two more pipes and are printed through the parent's `print!` and
//! `eprint!`, so that libtest captures them for this test. What a
//! process-mode child's own libtest prints is kept aside and shown only when
//! the child ends without a record.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, dup, dup2_stderr, dup2_stdin, dup2_stdout, pipe2};

use crate::error::{ChildEnded, Error, Stopped};
use crate::mode::reaper;
use crate::mode::wire::Record;
use crate::outcome::Outcome;
use crate::userns::UsernsSetup;

/// How long a reaper is given to kill the processes below it and end, once
/// told to stop, before it is killed outright.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// How long after a test's timeout the child is given to report it, with
/// the state of the test's network, before it is stopped unheard.
const REPORT_GRACE: Duration = Duration::from_secs(2);

/// How long a child that has written its outcome is given to end.
const OUTCOME_GRACE: Duration = Duration::from_secs(2);

/// How much of a child's own libtest output is kept for a failure message.
const LIBTEST_OUTPUT_KEPT: usize = 4096;

/// The test binary, as the kernel knows it: it can be run again even after
/// the file was replaced or deleted, as a rebuild during a run does.
const SELF_EXE: &str = "/proc/self/exe";

/// A close-on-exec pipe: (read end, write end).
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    pipe2(OFlag::O_CLOEXEC).map_err(|errno| Error::Child {
        step: "create a pipe to the process that runs the test",
        source: errno.into(),
    })
}

/// Starts the test binary again for the test `name`, inside a new user and
/// network namespace, with `inherited` descriptors left open across exec and
/// the child's own libtest output sent to `libtest` (or nowhere). The
/// returned child is the reaper above the test binary's process (see
/// [`reaper`]); it and everything below it end when the calling thread ends,
/// or when [`stop`] stops it.
pub(crate) fn spawn_child(
    name: &str,
    (marker, value): (&str, String),
    inherited: &[&OwnedFd],
    stdin: Stdio,
    libtest: Option<OwnedFd>,
) -> Result<Child, Error> {
    let (stdout, stderr) = match libtest {
        Some(libtest) => {
            let copy = libtest.try_clone().map_err(|source| Error::Duplicate {
                step: "the child's libtest output",
                source,
            })?;
            (Stdio::from(libtest), Stdio::from(copy))
        }
        None => (Stdio::null(), Stdio::null()),
    };
    let mut command = Command::new(SELF_EXE);
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
        .stdin(stdin)
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
        setup.die_with_parent(reaper::STOP)?;
        setup.enter()?;
        reaper::become_reaper()
    };
    // SAFETY: `enter` is async-signal-safe: it makes system calls only, on
    // descriptors and buffers prepared before the fork.
    unsafe { command.pre_exec(enter) };
    command.spawn().map_err(|source| Error::Child {
        step: "start the test binary again in a new user and network namespace",
        source,
    })
}

/// Stops a child that [`spawn_child`] started, and everything below it:
/// tells its reaper to stop, and kills it if it has not ended in time.
pub(crate) fn stop(child: &mut Child) {
    let pid = Pid::from_raw(child.id() as i32);
    if kill(pid, reaper::STOP).is_ok() && !matches!(exited_within(child, STOP_GRACE), Ok(None)) {
        return;
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits at most `grace` for `child` to exit; with no grace, only looks.
pub(crate) fn exited_within(
    child: &mut Child,
    grace: Duration,
) -> Result<Option<ExitStatus>, Error> {
    let deadline = Instant::now() + grace;
    loop {
        let exited = child.try_wait().map_err(|source| Error::Child {
            step: "wait for the process that runs the test",
            source,
        })?;
        if exited.is_some() || Instant::now() >= deadline {
            return Ok(exited);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// In a child: takes ownership of the descriptors its parent left open for
/// it, once per process. `None` when they were taken already, as when a test
/// calls the function of the test its process runs.
pub(crate) fn take_inherited<const N: usize>(fds: [RawFd; N]) -> Option<[OwnedFd; N]> {
    static TAKEN: AtomicBool = AtomicBool::new(false);
    if TAKEN.swap(true, Ordering::SeqCst) {
        return None;
    }
    // SAFETY: the parent opened these descriptors for this process, cleared
    // their close-on-exec flag and named them in its marker; `TAKEN` makes
    // this the only place that takes ownership of them.
    Some(fds.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// The body's standard streams, as a helper receives them for one test.
#[derive(Debug)]
pub(crate) struct BodyStreams {
    pub(crate) stdin: OwnedFd,
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
}

/// In a child: runs `f` with this process's standard streams on `streams`,
/// and puts them back after.
pub(crate) fn redirected(streams: &BodyStreams, f: impl FnOnce() -> Outcome) -> Outcome {
    let _ = io::stdout().flush();
    let saved = (|| Ok::<_, Errno>([dup(io::stdin())?, dup(io::stdout())?, dup(io::stderr())?]))();
    let redirected = saved.and_then(|saved| {
        dup2_stdin(&streams.stdin)?;
        dup2_stdout(&streams.stdout)?;
        dup2_stderr(&streams.stderr)?;
        Ok(saved)
    });
    let [saved_in, saved_out, saved_err] = match redirected {
        Ok(saved) => saved,
        Err(source) => return Outcome::Runtime(Error::Redirect { source }),
    };
    let outcome = f();
    let _ = io::stdout().flush();
    let _ = dup2_stdin(saved_in)
        .and_then(|()| dup2_stdout(saved_out))
        .and_then(|()| dup2_stderr(saved_err));
    outcome
}

/// A copy of this process's stdin, to give a child or helper; `/dev/null`
/// where the process has none.
pub(crate) fn stdin_copy() -> Result<OwnedFd, Error> {
    match io::stdin().as_fd().try_clone_to_owned() {
        Ok(stdin) => Ok(stdin),
        Err(_) => std::fs::File::open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|source| Error::Duplicate {
                step: "the body's stdin",
                source,
            }),
    }
}

/// The outcome a record reports, or, when it reports none, how the process
/// that should have written it ended (`None`: it is still running).
pub(crate) fn outcome_of(
    record: &[u8],
    status: Option<ExitStatus>,
    libtest_output: String,
    process: &'static str,
) -> Outcome {
    let how = || status.map_or_else(|| "stopped reporting".to_owned(), describe);
    let ended = |started: bool, how: String| {
        Outcome::Runtime(Error::ChildEnded(ChildEnded {
            process,
            started,
            how,
            libtest_output,
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

/// The parent's side of one test whose body runs in another process, a
/// process-mode child or a helper, written once for both: the pipes, made
/// before that process is given their write ends, and read until the
/// outcome.
pub(crate) struct ChildRun {
    streams: Streams,
}

/// The write ends of a [`ChildRun`]'s pipes, for the process that runs the
/// body, to be dropped here once it has them, so that the reads end.
pub(crate) struct ChildEnds {
    /// The record, the body's stdout and its stderr, in this order.
    pub(crate) body: [OwnedFd; 3],
    /// Where a process-mode child's own libtest prints.
    pub(crate) libtest: Option<OwnedFd>,
}

/// How a [`ChildRun`] ended.
pub(crate) enum Ran {
    /// The timeout passed, and the process was stopped: the outcome.
    TimedOut(Outcome),
    /// The pipes were closed, or the process exited and they were drained:
    /// the record, and what a process-mode child's libtest printed.
    Finished {
        record: Vec<u8>,
        libtest_output: String,
    },
}

impl ChildRun {
    /// Makes the pipes of one test, with one for the child's own libtest
    /// output where `libtest` (process mode; a helper has none: it closes
    /// the record last, when the test is done, and lives on).
    pub(crate) fn open(libtest: bool) -> Result<(ChildRun, ChildEnds), Error> {
        let (record, record_w) = pipe()?;
        let (stdout, stdout_w) = pipe()?;
        let (stderr, stderr_w) = pipe()?;
        let (libtest, libtest_w) = match libtest {
            true => {
                let (read, write) = pipe()?;
                (Some(read), Some(write))
            }
            false => (None, None),
        };
        let streams = Streams {
            record,
            stdout,
            stderr,
            libtest,
        };
        let ends = ChildEnds {
            body: [record_w, stdout_w, stderr_w],
            libtest: libtest_w,
        };
        Ok((ChildRun { streams }, ends))
    }

    /// Reads the pipes until the outcome (see [`Streams::pump`]); at the
    /// timeout, the test fails naming what was `stopped`.
    pub(crate) fn wait(
        self,
        child: &mut Child,
        timeout: Option<Duration>,
        stopped: Stopped,
    ) -> Result<Ran, Error> {
        Ok(match self.streams.pump(child, timeout)? {
            Pumped::TimedOut { after } => {
                Ran::TimedOut(Outcome::Runtime(Error::TimedOut { after, stopped }))
            }
            Pumped::Finished {
                record,
                libtest_output,
            } => Ran::Finished {
                record,
                libtest_output,
            },
        })
    }
}

/// The parent's ends of the pipes of one test.
struct Streams {
    record: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    /// What a process-mode child's own libtest prints.
    libtest: Option<OwnedFd>,
}

/// Which pipe a byte came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Record,
    Stdout,
    Stderr,
    Libtest,
}

/// What [`Streams::pump`] saw.
enum Pumped {
    /// The pipes were closed, or the child exited and they were drained.
    Finished {
        record: Vec<u8>,
        libtest_output: String,
    },
    /// The timeout passed, and the child was killed.
    TimedOut { after: Duration },
}

impl Streams {
    /// Reads the pipes until they are closed, or until `child` has exited
    /// and they are drained, forwarding the body's output through `print!`
    /// and `eprint!`. Kills the child when `timeout` passes.
    fn pump(self, child: &mut Child, timeout: Option<Duration>) -> Result<Pumped, Error> {
        // The child keeps the timeout itself and reports it with the test's
        // network as it is then; this deadline, a little later, is for a
        // child that cannot.
        let deadline = timeout.map(|timeout| (Instant::now() + timeout + REPORT_GRACE, timeout));
        let mut record = Vec::new();
        let mut libtest = Vec::new();
        let mut stdout = Lines::new(|text| print!("{text}"));
        let mut stderr = Lines::new(|text| eprint!("{text}"));
        let mut open: Vec<(Stream, &OwnedFd)> = vec![
            (Stream::Record, &self.record),
            (Stream::Stdout, &self.stdout),
            (Stream::Stderr, &self.stderr),
        ];
        open.extend(self.libtest.as_ref().map(|fd| (Stream::Libtest, fd)));
        let mut exited = false;
        let mut outcome_at = None;
        let mut buffer = [0u8; 8192];
        let waited = |source| Error::Child {
            step: "wait for the process that runs the test",
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
            let mut polled: Vec<PollFd<'_>> = open
                .iter()
                .map(|(_, fd)| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
                .collect();
            let ready = match poll(&mut polled, wait) {
                Ok(ready) => ready,
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(waited(errno.into())),
            };
            let readable: Vec<bool> = polled.iter().map(|fd| fd.any().unwrap_or(false)).collect();
            drop(polled);
            let mut closed = Vec::new();
            for (&(stream, fd), readable) in open.iter().zip(readable) {
                if !readable {
                    continue;
                }
                let bytes = match nix::unistd::read(fd.as_fd(), &mut buffer) {
                    Ok(0) | Err(_) => {
                        closed.push(stream);
                        continue;
                    }
                    Ok(n) => &buffer[..n],
                };
                match stream {
                    Stream::Record => record.extend_from_slice(bytes),
                    Stream::Stdout => stdout.push(bytes),
                    Stream::Stderr => stderr.push(bytes),
                    Stream::Libtest => {
                        libtest.extend_from_slice(bytes);
                        let excess = libtest.len().saturating_sub(LIBTEST_OUTPUT_KEPT);
                        libtest.drain(..excess);
                    }
                }
            }
            open.retain(|(stream, _)| !closed.contains(stream));
            if open.is_empty() || (exited && ready == 0) {
                break;
            }
            // A helper closes the record last; what is left of the output is
            // drained without waiting for a process the body left behind.
            let record_open = open.iter().any(|(stream, _)| *stream == Stream::Record);
            if self.libtest.is_none() && !record_open {
                exited = true;
            }
            if !exited {
                exited = child.try_wait().map_err(waited)?.is_some();
            }
            // A child that has reported the outcome and does not end (a
            // destructor that hangs, say) is stopped: the outcome stands.
            if outcome_at.is_none() && Record::decode(&record).is_ok_and(|r| r.outcome.is_some()) {
                outcome_at = Some(Instant::now());
            }
            if !exited && outcome_at.is_some_and(|at| at.elapsed() >= OUTCOME_GRACE) {
                stop(child);
                exited = true;
            }
            let timed_out = deadline.filter(|&(deadline, _)| !exited && Instant::now() >= deadline);
            if let Some((_, after)) = timed_out {
                stop(child);
                stdout.finish();
                stderr.finish();
                return Ok(Pumped::TimedOut { after });
            }
        }
        stdout.finish();
        stderr.finish();
        Ok(Pumped::Finished {
            record,
            libtest_output: String::from_utf8_lossy(&libtest).into_owned(),
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
