//! Thread mode: the body runs on a thread of the test process, through the
//! shared runner ([`super::runner`]); this file holds what thread mode adds
//! to it: the exit guard, the subreaper and the watchdog, and the kill and
//! the warning after each body.

use std::cell::Cell;
use std::io::Write;
use std::sync::{Arc, Mutex, Once, OnceLock, PoisonError};

use nix::libc;

use crate::error::Error;
use crate::mode::runner::{BODY, BodyThread, Io, ThreadRun, run_on_named_thread, threads_left_in};
use crate::mode::{early, reaper};
use crate::netns::NsKey;
use crate::plan::Plan;
use crate::sandbox::{Entry, Sandbox};
use crate::test::Test;
use crate::watchdog;

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
        // process, whose children are the bodies'. Only where thread mode
        // can work: a process without CAP_SYS_ADMIN, whose first test here
        // is only the probe of thread mode, runs its tests on helpers,
        // which have a reaper of their own, and keeps its memory and
        // descriptors to itself.
        if early::has_cap_sys_admin() {
            watchdog::start(early::runs_one_test());
        }
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
        // The run ends as usual: every test has ended, so what is below
        // this process in another network namespace is what a body left
        // that no test's namespace names (one that moved itself into a
        // namespace of its own, and was orphaned).
        reaper::kill_outside_this_namespace();
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
pub(crate) fn run(test: &'static Test, plan: Plan) -> ThreadRun {
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
    let ran = run_on_named_thread(test, sandbox, Io::Inherited, plan, Some(&body));
    // The body's thread has ended, having noted the test's namespaces and
    // the threads it left, or timed out and runs on: then they are read
    // through it now.
    let (namespaces, left) = match ran {
        ThreadRun::Failed(Error::TimedOut { .. }) => {
            let namespaces = body.namespaces_now();
            let left = match namespaces.first() {
                Some(&own) => threads_left_in(own, |tid| Some(tid) != body.tid()),
                None => Vec::new(),
            };
            (namespaces, left)
        }
        _ => (body.namespaces().to_vec(), body.threads_left()),
    };
    if reaper::has_children() {
        match early::runs_one_test() {
            // The one test's: everything below this process in another
            // network namespace, a namespace the test made or one that a
            // process of the body's made for itself (`unshare -n`).
            true => reaper::kill_outside_this_namespace(),
            // Other tests may be running: only what is in this test's
            // namespaces is its own; the rest ends at the process's exit.
            false if !namespaces.is_empty() => reaper::kill_in_namespaces(&namespaces),
            false => {}
        }
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
