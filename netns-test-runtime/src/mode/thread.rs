//! Thread mode, and the body runner it shares with helpers: the body runs on
//! a thread of its own, named like the test, that unshares a fresh network
//! namespace; the thread's exit discards it. The calling thread never moves.

use std::cell::Cell;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex, Once, OnceLock, PoisonError, Weak, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::unistd::gettid;

use crate::error::{Error, Stopped};
use crate::forensics::{Evidence, Moment};
use crate::mode::child::{BodyStreams, redirected};
use crate::mode::{early, reaper};
use crate::netns::NsKey;
use crate::outcome::Outcome;
use crate::procfs;
use crate::sandbox::{Entry, Sandbox, Unprepared};
use crate::test::Test;
use crate::watchdog;

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

/// The process that installed the exit guard: a process a body forks
/// inherits the handler, and its `exit` is its own.
static HARNESS_PID: OnceLock<u32> = OnceLock::new();

/// In thread mode the body shares the test binary's process, so its
/// `std::process::exit(0)` would end the run green. An `atexit(3)` handler
/// makes such an exit fail the run instead, naming the test. The process
/// also becomes the subreaper of what its bodies start, so that a daemon
/// that leaves its parent is still found, and killed, at its test's end.
fn guard_process(harness_ns: NsKey) {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let _ = HARNESS_NS.set(harness_ns);
        let _ = HARNESS_PID.set(std::process::id());
        // Before the subreaper: the watchdog must be no child of this
        // process, whose children are the bodies'.
        watchdog::start(early::runs_one_test());
        if let Err(errno) = reaper::adopt_orphans() {
            let _ = writeln!(
                std::io::stderr(),
                "netns-test: cannot make the test process a subreaper (prctl(PR_SET_CHILD_SUBREAPER): {errno}): a daemon a body starts may outlive its test"
            );
        }
        // SAFETY: `fail_if_a_body_exits` is an `extern "C" fn()` that
        // does not unwind, as atexit(3) requires.
        unsafe { libc::atexit(fail_if_a_body_exits) };
    });
}

/// Ends the process with status 101 when the thread calling `exit` is a
/// test body, or any thread inside a test's network namespace (one the
/// body started, such as an async runtime's worker).
extern "C" fn fail_if_a_body_exits() {
    // A process a body forked, which has the body's thread-local state and
    // namespace in its one thread, exits as it pleases.
    if HARNESS_PID.get() != Some(&std::process::id()) {
        return;
    }
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
    guard_process(harness_ns);
    let sandbox = Sandbox {
        entry: Entry::Unshare,
        harness_ns,
    };
    let body = Arc::new(BodyThread::default());
    let ran = run_on_named_thread(test, sandbox, Io::Inherited, timeout, Some(&body));
    // The body's thread has ended, having noted the test's namespaces and
    // the threads it left, or timed out and runs on: then they are read
    // through it now.
    let (namespaces, left) = match ran {
        ThreadRun::Failed(Error::TimedOut { .. }) => {
            let namespaces = body.namespaces_now();
            let left = match namespaces.first() {
                Some(&own) => threads_left_in(own, |tid| Some(tid) != body.tid.get().copied()),
                None => Vec::new(),
            };
            (namespaces, left)
        }
        _ => (
            body.namespaces().to_vec(),
            body.threads_left.get().cloned().unwrap_or_default(),
        ),
    };
    if !namespaces.is_empty() && reaper::has_children() {
        reaper::kill_in_namespaces(&namespaces);
    }
    warn_of_threads_left(test, left);
    ran
}

/// Threads that a test left in its namespace, named by [`warn_of_threads_left`],
/// for the failures of later tests to mention, with the test that left them.
static THREADS_LEFT: Mutex<Vec<(&'static str, String)>> = Mutex::new(Vec::new());

/// Names, in one stderr line, the threads of this process that `test` left
/// in its namespace: a process-wide pool the test started lazily, which
/// every later test would use inside this test's namespace.
fn warn_of_threads_left(test: &Test, left: Vec<String>) {
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
        .push((test.name(), left));
}

/// How long threads found in a test's namespace after its body may take to
/// end, as an async runtime's workers do once the runtime is dropped, before
/// they count as left behind.
const EXITING: Duration = Duration::from_millis(200);

/// This process's threads that `wanted` selects and that stay in the
/// namespace `ns`, by name and thread id: those still there [`EXITING`]
/// after this is called. Never the calling thread, or the main thread
/// (libtest's, or a helper's), which runs no test.
fn threads_left_in(ns: u64, wanted: impl Fn(i32) -> bool) -> Vec<String> {
    let here = gettid().as_raw();
    let main = std::process::id() as i32;
    let deadline = Instant::now() + EXITING;
    loop {
        let left = threads_in(ns, |tid| tid != here && tid != main && wanted(tid));
        if left.is_empty() || Instant::now() >= deadline {
            return left
                .into_iter()
                .map(|(tid, name)| format!("{name} (tid {tid})"))
                .collect();
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// This process's threads that `wanted` selects and are in the namespace
/// `ns`, by thread id and name.
fn threads_in(ns: u64, wanted: impl Fn(i32) -> bool) -> Vec<(i32, String)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let tid = task.file_name().to_str()?.parse().ok()?;
            let path = task.path();
            (wanted(tid) && procfs::netns_of(path.join("ns/net")) == Some(ns)).then(|| {
                let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
                (tid, name.trim().to_owned())
            })
        })
        .collect()
}

/// The threads earlier tests left in their namespaces, for the failure of
/// `test`: not those `test` left itself.
pub(crate) fn threads_left_before(test: &Test) -> Vec<String> {
    THREADS_LEFT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|(name, _)| *name != test.name())
        .map(|(name, left)| format!("{left}, left by `{name}`"))
        .collect()
}

/// How many threads this process has: the link count of `/proc/self/task`
/// but its own two, which the kernel counts without reading anything of the
/// threads.
fn threads_in_process() -> u64 {
    std::fs::metadata("/proc/self/task").map_or(u64::MAX, |task| task.nlink().saturating_sub(2))
}

/// What the runner learns of a body's thread, to find what the body left:
/// the processes it started, and the threads it left in its namespace.
#[derive(Debug, Default)]
pub(crate) struct BodyThread {
    /// Its thread id.
    tid: OnceLock<i32>,
    /// The inodes of the test's namespaces, read at the body's end where the
    /// process had children then: its own first, then those it made with
    /// `NetNs::new`.
    namespaces: OnceLock<Vec<u64>>,
    /// The threads the body left in its namespace, named.
    threads_left: OnceLock<Vec<String>>,
    /// The test's evidence, which lists the namespaces it made.
    evidence: OnceLock<Weak<Evidence>>,
}

impl BodyThread {
    /// The inodes of the test's namespaces, read at the body's end: its
    /// own first, then those it made.
    pub(crate) fn namespaces(&self) -> &[u64] {
        self.namespaces.get().map_or(&[], Vec::as_slice)
    }

    /// Whether the body left threads in its namespace.
    pub(crate) fn left_threads(&self) -> bool {
        self.threads_left.get().is_some_and(|left| !left.is_empty())
    }

    /// On the body's thread, once the body has ended: notes the test's
    /// namespaces where the process has children (which may be the body's,
    /// to kill), and the threads left in its own, where the process has
    /// threads other than the body's, the main one and the `harness` thread
    /// that waits for it (which may be the main one). A process with nothing
    /// of either pays for two system calls.
    fn note_what_is_left(&self, evidence: &Evidence, harness: i32) {
        let main = std::process::id() as i32;
        let known = if harness == main { 2 } else { 3 };
        let others = threads_in_process() > known;
        let children = reaper::has_children();
        if !others && !children {
            return;
        }
        let Some(own) = procfs::netns_of_this_thread() else {
            return;
        };
        if children {
            let namespaces = std::iter::once(own).chain(evidence.made_namespaces());
            let _ = self.namespaces.set(namespaces.collect());
        }
        if others {
            let left = threads_left_in(own, |tid| tid != harness);
            let _ = self.threads_left.set(left);
        }
    }

    /// The test's namespaces while its body runs on (it timed out): its
    /// own, read through its thread, then those it made.
    fn namespaces_now(&self) -> Vec<u64> {
        let own = self
            .tid
            .get()
            .and_then(|tid| procfs::netns_of(format!("/proc/self/task/{tid}/ns/net")));
        let made = self.evidence.get().and_then(Weak::upgrade);
        own.into_iter()
            .chain(made.iter().flat_map(|evidence| evidence.made_namespaces()))
            .collect()
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
        // Before any unshare: it says nothing of whether thread mode works.
        Err(error) => return ThreadRun::Failed(error),
    };
    let body = body.cloned();
    let harness = gettid().as_raw();
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
                    let evidence = Arc::clone(&prepared.evidence);
                    let _ = evidence_here.set(Arc::clone(&evidence));
                    drop(evidence_here);
                    if let Some(body) = &body {
                        let _ = body.evidence.set(Arc::downgrade(&evidence));
                    }
                    let outcome = match io {
                        Io::Inherited => sandbox.run(prepared),
                        Io::Redirected(streams) => redirected(&streams, || sandbox.run(prepared)),
                    };
                    // Only a body that ran in its own namespace has one to
                    // look into for what it left.
                    let isolated = !matches!(outcome, Outcome::Runtime(Error::EndedInHarnessNs));
                    if let Some(body) = body.filter(|_| isolated) {
                        body.note_what_is_left(&evidence, harness);
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
                stopped: Stopped::LeftRunning,
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
