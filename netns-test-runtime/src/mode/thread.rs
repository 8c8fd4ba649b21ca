//! Thread mode, and the body runner it shares with helpers: the body runs on
//! a thread of its own, named like the test, that unshares a fresh network
//! namespace; the thread's exit discards it. The calling thread never moves.

use std::cell::Cell;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock, PoisonError, mpsc};
use std::thread;
use std::time::Duration;

use nix::errno::Errno;
use nix::libc;
use nix::unistd::gettid;

use crate::error::Error;
use crate::forensics::{Evidence, Moment};
use crate::mode::child::{BodyStreams, redirected};
use crate::mode::reaper;
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
    /// To these, as a helper receives them from the test process.
    Redirected(BodyStreams),
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

thread_local! {
    /// The name of the test whose body runs on this thread.
    static BODY: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// The harness's namespace, once the exit guard is installed.
static HARNESS_NS: OnceLock<NsKey> = OnceLock::new();

/// In thread mode the body shares the test binary's process, so its
/// `std::process::exit(0)` would end the run green. An `atexit(3)` handler
/// makes such an exit fail the run instead, naming the test.
fn guard_exit(harness_ns: NsKey) {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let _ = HARNESS_NS.set(harness_ns);
        // SAFETY: `fail_if_a_body_exits` is an `extern "C" fn()` that
        // does not unwind, as atexit(3) requires.
        unsafe { libc::atexit(fail_if_a_body_exits) };
    });
}

/// Ends the process with status 101 when the thread calling `exit` is a
/// test body, or any thread inside a test's network namespace (one the
/// body started, such as an async runtime's worker).
extern "C" fn fail_if_a_body_exits() {
    let body = BODY.try_with(Cell::get).ok().flatten();
    let in_a_test = HARNESS_NS.get().is_some_and(|harness_ns| {
        NsKey::of_this_thread().is_ok_and(|here| here.differs_from(*harness_ns))
    });
    if body.is_none() && !in_a_test {
        return;
    }
    let message = match body {
        Some(name) => format!(
            "\nnetns-test: the body of `{name}` called std::process::exit, which would end the test run as if every test had passed; the run fails instead (exit status 101)\n"
        ),
        None => "\nnetns-test: a thread inside a test's network namespace called std::process::exit, which would end the test run as if every test had passed; the run fails instead (exit status 101)\n".to_owned(),
    };
    let _ = std::io::stderr().write_all(message.as_bytes());
    // SAFETY: _exit(2) ends the process at once, without running the
    // remaining atexit handlers, which would flush a libtest that is
    // mid-test.
    unsafe { libc::_exit(101) };
}

/// Thread mode: runs `test` on a thread of this process, and then kills the
/// processes the body started, even when it timed out.
pub(crate) fn run(test: &'static Test, timeout: Option<Duration>) -> ThreadRun {
    let harness_ns = match NsKey::of_this_thread() {
        Ok(harness_ns) => harness_ns,
        Err(error) => return ThreadRun::Failed(error),
    };
    guard_exit(harness_ns);
    let sandbox = Sandbox {
        entry: Entry::Unshare,
        harness_ns,
    };
    let body = Arc::new(BodyThread::default());
    let ran = run_on_named_thread(test, sandbox, Io::Inherited, timeout, Some(&body));
    // The body's thread has ended (it set `ns` if the process had children
    // or more threads then), or timed out and runs on (its namespace is
    // read through it).
    let timed_out = matches!(ran, ThreadRun::Failed(Error::TimedOut { .. }));
    let ns = match timed_out {
        true => body
            .tid
            .get()
            .and_then(|tid| std::fs::read_link(format!("/proc/self/task/{tid}/ns/net")).ok()),
        false => body.ns.get().cloned(),
    };
    if let Some(ns) = ns {
        if timed_out || reaper::has_children() {
            reaper::kill_in_namespace(&ns);
        }
        if timed_out || body.threads_grew() {
            warn_of_threads_left(test, &ns, body.tid.get().copied());
        }
    }
    ran
}

/// Threads that a test left in its namespace, named by [`warn_of_threads_left`],
/// for the failures of later tests to mention.
static THREADS_LEFT: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Names, in one stderr line, the threads of this process still in the
/// namespace `ns` of `test` (but the body's own, `body`, when it timed out
/// and runs on): a process-wide pool the test started lazily, which every
/// later test would use inside this test's namespace.
fn warn_of_threads_left(test: &Test, ns: &Path, body: Option<i32>) {
    let left = threads_in(ns, body);
    if left.is_empty() {
        return;
    }
    let left = left.join(", ");
    // Straight to the process's stderr, as a skip is: a passing test's
    // captured output is not shown.
    let _ = writeln!(
        std::io::stderr(),
        "netns-test: after `{}`, threads of this process are still in its network namespace: {left}; a process-wide pool (async-std's or async-io's executor, rayon's global pool, a lazily started worker) made by a test stays in that test's namespace for every later test: give the tests that use it #[netns_test(process)]",
        test.name()
    );
    THREADS_LEFT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(format!("{left}, left by `{}`", test.name()));
}

/// This process's threads in the namespace `ns`, but `except`, by name and
/// thread id.
pub(crate) fn threads_in(ns: &Path, except: Option<i32>) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter(|task| {
            let tid = task.file_name().to_str().and_then(|tid| tid.parse().ok());
            tid != except
                && std::fs::read_link(task.path().join("ns/net")).is_ok_and(|link| link == ns)
        })
        .map(|task| {
            let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            format!(
                "{} (tid {})",
                name.trim(),
                task.file_name().to_string_lossy()
            )
        })
        .collect()
}

/// The threads earlier tests left in their namespaces, for a failure's note.
pub(crate) fn threads_left() -> Vec<String> {
    THREADS_LEFT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// How many threads this process has, and two: the link count of
/// `/proc/self/task`, which the kernel counts without reading anything else
/// of the threads (unlike `/proc/self/stat`, which sums their CPU times).
fn threads_in_process() -> u64 {
    std::fs::metadata("/proc/self/task").map_or(0, |task| task.nlink())
}

/// What thread mode learns of a body's thread, to find the processes the
/// body started.
#[derive(Debug, Default)]
pub(crate) struct BodyThread {
    /// Its thread id.
    tid: OnceLock<i32>,
    /// The `/proc` link of its namespace, read at the body's end, and only
    /// where the process had children or more threads then: reading a fresh
    /// thread's link costs a few percent of a namespace.
    ns: OnceLock<PathBuf>,
    /// The process had more threads after the body than before it: some
    /// may be the body's, still in its namespace.
    threads_grew: AtomicBool,
}

impl BodyThread {
    /// Whether the body left threads that may still be in its namespace.
    pub(crate) fn threads_grew(&self) -> bool {
        self.threads_grew.load(Ordering::Relaxed)
    }

    /// The link of the body's namespace, where it was read.
    pub(crate) fn ns(&self) -> Option<&Path> {
        self.ns.get().map(PathBuf::as_path)
    }
}

/// Prepares and runs `test`'s body on a new thread named like the test, and
/// waits for it at most `timeout`. A thread that times out is left running:
/// a thread cannot be stopped from outside.
///
/// When `body` is given, the body's thread records itself there.
pub(crate) fn run_on_named_thread(
    test: &'static Test,
    sandbox: Sandbox,
    io: Io,
    timeout: Option<Duration>,
    body: Option<&Arc<BodyThread>>,
) -> ThreadRun {
    let capture = match crate::forensics::ready_for(test) {
        Ok(capture) => capture,
        Err(error) => return ThreadRun::Ran(Outcome::Runtime(error)),
    };
    let body = body.cloned();
    let (done, report) = mpsc::sync_channel(1);
    // The body's evidence, for a report at its timeout.
    let evidence = Arc::new(OnceLock::<Arc<Evidence>>::new());
    let evidence_here = Arc::clone(&evidence);
    let spawned = thread::Builder::new()
        .name(test.name().to_owned())
        .spawn(move || {
            BODY.with(|name| name.set(Some(test.name())));
            if let Some(body) = &body {
                let _ = body.tid.set(gettid().as_raw());
            }
            let ran = match sandbox.prepare(test, capture) {
                Err(Unprepared::Refused(errno)) => ThreadRun::Refused(errno),
                Err(Unprepared::Failed(error)) => ThreadRun::Ran(Outcome::Runtime(error)),
                Ok(prepared) => {
                    let _ = evidence_here.set(Arc::clone(&prepared.evidence));
                    drop(evidence_here);
                    let threads = body.as_ref().map(|_| threads_in_process());
                    let outcome = match io {
                        Io::Inherited => sandbox.run(prepared),
                        Io::Redirected(streams) => redirected(&streams, || sandbox.run(prepared)),
                    };
                    // Only a body that ran in its own namespace has one to
                    // look into; and only where the process has children (to
                    // kill) or more threads than before (to name) is there
                    // anything to find.
                    let isolated = !matches!(outcome, Outcome::Runtime(Error::EndedInHarnessNs));
                    let grew = threads.is_some_and(|before| threads_in_process() > before);
                    if let Some(body) =
                        body.filter(|_| isolated && (grew || reaper::has_children()))
                    {
                        body.threads_grew.store(grew, Ordering::Relaxed);
                        if let Ok(link) = std::fs::read_link("/proc/thread-self/ns/net") {
                            let _ = body.ns.set(link);
                        }
                    }
                    ThreadRun::Ran(outcome)
                }
            };
            BODY.with(|name| name.set(None));
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
        Err(error) => {
            if let (Error::TimedOut { .. }, Some(evidence)) = (&error, evidence.get()) {
                // The body runs on, in the namespaces as it has them now.
                if let Some(report) = evidence.conclude(Moment::TimedOut) {
                    eprint!("{report}");
                }
            }
            ThreadRun::Failed(error)
        }
    }
}
