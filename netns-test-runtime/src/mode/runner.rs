//! The one body runner every mode shares: the body runs on a thread of its
//! own, named like the test, prepared by the sandbox (which, in thread
//! mode and in helpers, unshares a fresh network namespace; the thread's
//! exit discards it), and watched for its timeout. The calling thread never
//! moves. It also learns what the body left: the processes it started and
//! the threads it left in its namespace.

use std::cell::Cell;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, OnceLock, Weak, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::unistd::gettid;

use crate::error::{Error, Stopped};
use crate::forensics::{Evidence, Moment};
use crate::mode::child::{BodyStreams, redirected};
use crate::mode::reaper;
use crate::outcome::Outcome;
use crate::plan::Plan;
use crate::procfs;
use crate::sandbox::{Sandbox, Unprepared};
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
    pub(crate) static BODY: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// How long threads found in a test's namespace after its body may take to
/// end, as an async runtime's workers do once the runtime is dropped, before
/// they count as left behind.
const EXITING: Duration = Duration::from_millis(200);

/// This process's threads that `wanted` selects and that stay in the
/// namespace `ns`, by name and thread id: those still there [`EXITING`]
/// after this is called. Never the calling thread, or the main thread
/// (libtest's, or a helper's), which runs no test.
pub(crate) fn threads_left_in(ns: u64, wanted: impl Fn(i32) -> bool) -> Vec<String> {
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

    /// The threads the body left in its namespace, named.
    pub(crate) fn threads_left(&self) -> Vec<String> {
        self.threads_left.get().cloned().unwrap_or_default()
    }

    /// The body's thread id, once it has started.
    pub(crate) fn tid(&self) -> Option<i32> {
        self.tid.get().copied()
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
    pub(crate) fn namespaces_now(&self) -> Vec<u64> {
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
    plan: Plan,
    body: Option<&Arc<BodyThread>>,
) -> ThreadRun {
    if let Err(error) = crate::forensics::ready_for(&plan) {
        // Before any unshare: it says nothing of whether thread mode works.
        return ThreadRun::Failed(error);
    }
    let body = body.cloned();
    let timeout = plan.timeout;
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
            let ran = match sandbox.prepare(test, &plan) {
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
