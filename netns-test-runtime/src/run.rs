//! Running one test: which role this process plays, which mode it uses, and
//! reporting the outcome.

use std::io::Write;
use std::panic;
use std::sync::OnceLock;

use nix::unistd::getppid;

use crate::env;
use crate::error::Error;
use crate::mode::child::take_inherited;
use crate::mode::runner::ThreadRun;
use crate::mode::select::{self, Fallback};
use crate::mode::thread;
use crate::mode::wire::{CHILD_MARKER, ChildMarker, HELPER_MARKER, HelperMarker};
use crate::mode::{Mode, helper, process};
use crate::outcome::{Outcome, conclude};
use crate::plan::Plan;
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
    /// process that set it started this one, through the reaper between
    /// them, so that a process a body starts never takes its parent's
    /// marker as its own.
    fn detect() -> &'static Role {
        static ROLE: OnceLock<Role> = OnceLock::new();
        ROLE.get_or_init(|| {
            let marker = |name| std::env::var(name).ok();
            let child = marker(CHILD_MARKER).and_then(|text| ChildMarker::decode(&text));
            let helper = marker(HELPER_MARKER).and_then(|text| HelperMarker::decode(&text));
            if child.is_none() && helper.is_none() {
                return Role::Harness;
            }
            let started_by = parent_of(getppid().as_raw());
            match (child, helper) {
                (Some(child), _) if started_by == Some(child.parent) => Role::Child(child),
                (_, Some(helper)) if started_by == Some(helper.parent) => Role::Helper(helper),
                _ => Role::Harness,
            }
        })
    }
}

/// The parent of process `pid`, from `/proc/<pid>/stat`.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid ...: comm may hold anything, so split after ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Runs a test in the mode this process uses, and reports its outcome.
pub(crate) fn run(test: &'static Test) -> Result<(), TestError> {
    // The descriptors a marker names are taken once: a test that calls the
    // function of the test its process was started for (a nested call)
    // runs as in any test process.
    match Role::detect() {
        Role::Child(marker) if marker.is_for(test) => {
            if let Some(fds) = take_inherited(marker.fds) {
                return conclude(test, process::run_child(test, marker, fds));
            }
        }
        Role::Helper(marker) if marker.name == test.name() => {
            if let Some([socket]) = take_inherited([marker.socket]) {
                helper::serve(socket);
            }
        }
        _ => {}
    }
    if test.runs.started_before(test.name()) {
        let error = Error::RegisteredTwice { test: test.name() };
        return conclude(test, Outcome::Runtime(error));
    }
    // Each variable is checked for every test, whether it matters to it or not.
    let unavailable = match env::unavailable() {
        Ok(unavailable) => unavailable,
        Err(error) => return conclude(test, Outcome::Runtime(error)),
    };
    // Decided once, here, for every process that runs the test.
    let plan = match Plan::resolve(test) {
        Ok(plan) => plan,
        Err(error) => return conclude(test, Outcome::Runtime(error)),
    };
    let outcome = match select::selected_for(test) {
        Ok(mode) => run_in(mode, test, &plan),
        Err(error) => Outcome::Runtime(error),
    };
    match outcome {
        // Only the choice of mode finds no mode; the body has not run.
        Outcome::Runtime(Error::Unavailable(diagnosis))
            if unavailable == env::Unavailable::Skip =>
        {
            skip(test, &diagnosis.to_string())
        }
        outcome => {
            if let Outcome::Runtime(Error::ChildEnded(_) | Error::TimedOut { .. }) = outcome {
                if let Some(note) = crate::forensics::salvage(test, &plan) {
                    eprint!("{note}");
                }
            }
            if !matches!(outcome, Outcome::Passed) {
                let left = thread::threads_left_before(test);
                if !left.is_empty() {
                    eprintln!(
                        "netns-test: earlier tests left threads in their network namespaces, which this test may have used: {}; see #[netns_test(process)]",
                        left.join("; ")
                    );
                }
            }
            conclude(test, outcome)
        }
    }
}

/// Runs a test in `mode`. In thread mode, the test is the probe: if its
/// thread may not unshare (its body has not run), it goes to the fallback.
fn run_in(mode: Mode, test: &'static Test, plan: &Plan) -> Outcome {
    let fallback = match mode {
        Mode::Thread => match thread::run(test, plan.clone()) {
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
        Fallback::Helper => helper::run_parent(test, plan),
        Fallback::Process => process::run_parent(test, plan),
    }
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
