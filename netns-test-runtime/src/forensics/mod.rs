//! What a failed test leaves behind: the state of each namespace it made,
//! taken at its panic, its `Err` or its timeout, and, when asked for, a
//! pcapng file of every packet that crossed them.
//!
//! Every mode prepares a body through the sandbox, which opens the test's
//! [`Evidence`] there, in the process that runs the body; the state and
//! the capture are gathered where the namespaces are, and the report is
//! written to the body's stderr, which every mode sends to the test's
//! output. A passing test pays for a registry entry and the rtnetlink
//! socket that brought its `lo` up, kept open; with capture off, nothing
//! else.

mod capture;
mod capture_files;
mod state;

use std::cell::Cell;
use std::fmt::Write;
use std::panic::{self, PanicHookInfo};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, PoisonError, Weak};

use crate::env;
use crate::error::Error;
use crate::netlink::Rtnl;
use crate::netns::{NetNs, NsKey};
use crate::outcome::{Outcome, panic_fails};
use crate::test::Test;

use self::capture::Capture;

/// When a test's evidence is concluded.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Moment<'a> {
    /// The body has ended so.
    Ended(&'a Outcome),
    /// The body ran past its timeout, and still runs.
    TimedOut,
}

/// The namespaces a test made, held open until its report is written, and
/// what was gathered of them.
pub(crate) struct Evidence {
    test: &'static Test,
    /// The rtnetlink socket that brought the test's `lo` up, made inside
    /// its namespace: it keeps the namespace alive, and leads to it.
    own: Rtnl,
    /// The first [`KEPT`] namespaces made with `NetNs::new` during the
    /// test, in order, and how many more were made.
    made: Mutex<Vec<NetNs>>,
    not_kept: AtomicUsize,
    /// The keys under which the registry finds this test.
    keys: Mutex<Vec<NsKey>>,
    /// The state at the latest panic inside the test's namespaces.
    at_panic: Mutex<Option<String>>,
    /// The capture, when asked for; why there is none, when it could not
    /// start (which fails no test: a failed one says why).
    capture: Option<Result<Capture, Error>>,
    keep_all: bool,
    concluded: AtomicBool,
}

impl std::fmt::Debug for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evidence")
            .field("test", &self.test.path)
            .finish_non_exhaustive()
    }
}

/// How many of the namespaces a test makes with `NetNs::new` are kept for
/// its report: enough for any topology, and few enough that a test making
/// thousands (one after another) does not run out of descriptors.
const KEPT: usize = 32;

/// The open tests of this process, by the keys of their namespaces.
static OPEN: Mutex<Vec<(NsKey, Weak<Evidence>)>> = Mutex::new(Vec::new());

/// The test whose namespaces include the one keyed `key`.
fn find(key: NsKey) -> Option<Arc<Evidence>> {
    let open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
    open.iter()
        .find(|(open_key, _)| *open_key == key)
        .and_then(|(_, evidence)| evidence.upgrade())
}

impl Evidence {
    /// Opens the evidence of `test`, whose body is about to run on the
    /// calling thread, inside the namespace keyed `here`; `own` is a socket
    /// made in it. Starts the capture when `mode` asks for it.
    pub(crate) fn open(
        test: &'static Test,
        here: NsKey,
        own: Rtnl,
        mode: env::Capture,
    ) -> Result<Arc<Self>, Error> {
        install_panic_hook();
        let capture = match mode {
            env::Capture::Off => None,
            env::Capture::Failed | env::Capture::All => Some(Capture::start(test.name())),
        };
        let evidence = Arc::new(Evidence {
            test,
            own,
            made: Mutex::new(Vec::new()),
            not_kept: AtomicUsize::new(0),
            keys: Mutex::new(vec![here]),
            at_panic: Mutex::new(None),
            capture,
            keep_all: mode == env::Capture::All,
            concluded: AtomicBool::new(false),
        });
        OPEN.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((here, Arc::downgrade(&evidence)));
        Ok(evidence)
    }

    /// The state of every namespace of the test, now.
    fn state(&self) -> String {
        let mut out = String::new();
        match NetNs::of_socket(&self.own) {
            Ok(own) => state::write(&mut out, "test: the test's own namespace", &own),
            Err(error) => {
                let _ = writeln!(
                    out,
                    "  test: the test's own namespace\n    unreadable: {error}"
                );
            }
        }
        let made = self.made.lock().unwrap_or_else(PoisonError::into_inner);
        for (i, ns) in made.iter().enumerate() {
            state::write(&mut out, &format!("ns{}: made by NetNs::new", i + 2), ns);
        }
        let not_kept = self.not_kept.load(Ordering::Relaxed);
        if not_kept > 0 {
            let _ = writeln!(
                out,
                "  and {not_kept} more namespaces made by NetNs::new, not kept (a test keeps its first {KEPT})"
            );
        }
        out
    }

    /// Ends the evidence, once: for a failed test, the report to print;
    /// the capture is kept or removed. Later calls return `None`.
    pub(crate) fn conclude(&self, moment: Moment<'_>) -> Option<String> {
        if self.concluded.swap(true, Ordering::AcqRel) {
            return None;
        }
        let failed = match moment {
            Moment::TimedOut => true,
            Moment::Ended(outcome) => outcome.fails(self.test.should_panic),
        };
        let mut report = String::new();
        let why = match moment {
            Moment::TimedOut => Some("when it timed out, still running"),
            Moment::Ended(Outcome::Panicked(_)) => Some("at its panic"),
            Moment::Ended(Outcome::Returned(_)) => Some("when it returned Err"),
            Moment::Ended(Outcome::Passed) => Some("when it returned without the expected panic"),
            Moment::Ended(Outcome::Runtime(_)) => None,
        };
        if let Some(why) = why.filter(|_| failed) {
            let taken_at_panic = match moment {
                Moment::Ended(Outcome::Panicked(_)) => self
                    .at_panic
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take(),
                _ => None,
            };
            let state = taken_at_panic.unwrap_or_else(|| self.state());
            let _ = write!(
                report,
                "netns-test: the network of `{}` {why}:\n{state}",
                self.test.name()
            );
        }
        if let Some(capture) = &self.capture {
            capture::warn_once();
            let finished = match capture {
                Ok(capture) => capture.finish(failed || self.keep_all),
                Err(error) => {
                    if failed {
                        let _ = writeln!(report, "netns-test: no packets were captured: {error}");
                    }
                    Ok(None)
                }
            };
            match finished {
                Ok(Some((file, what))) if failed => {
                    let _ = writeln!(
                        report,
                        "netns-test: its packets ({what}): {}",
                        file.display()
                    );
                }
                Ok(_) => {}
                Err(error) => {
                    let _ = writeln!(report, "netns-test: the capture failed: {error}");
                }
            }
        }
        (!report.is_empty()).then_some(report)
    }
}

impl Drop for Evidence {
    fn drop(&mut self) {
        if let Some(Ok(capture)) = &self.capture {
            let _ = capture.finish(false);
        }
        let keys = std::mem::take(&mut *self.keys.lock().unwrap_or_else(PoisonError::into_inner));
        OPEN.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(key, evidence)| evidence.strong_count() > 0 && !keys.contains(key));
    }
}

/// Readies the process for `test`, on the thread that runs it, outside its
/// namespace: where its packets are to be captured, the capture thread.
/// Returns how they are captured, for [`Evidence::open`].
pub(crate) fn ready_for(test: &Test) -> Result<env::Capture, Error> {
    let mode = capture_mode(test)?;
    if mode != env::Capture::Off {
        // Checked here, before the body, as every variable is.
        env::capture_limit()?;
        capture::start_service()?;
    }
    Ok(mode)
}

/// Whether and how `test`'s packets are captured.
fn capture_mode(test: &Test) -> Result<env::Capture, Error> {
    Ok(match (env::capture()?, test.capture) {
        (env::Capture::Off, true) => env::Capture::Failed,
        (mode, _) => mode,
    })
}

/// In the test process, after the process that ran `test`'s body ended
/// without a report (a crash, or stopped at a timeout): keeps the capture
/// it was writing, if any, and says where it is.
pub(crate) fn salvage(test: &Test) -> Option<String> {
    if capture_mode(test).ok()? == env::Capture::Off {
        return None;
    }
    capture::salvage(test.name())
}

/// Adds `ns`, just made by `NetNs::new` (keyed `key`) on behalf of the
/// calling thread, to the evidence of the test that thread belongs to:
/// it is kept open until the test's report, and captured when the test's
/// packets are.
pub(crate) fn adopt(ns: &NetNs, key: NsKey) -> Result<(), Error> {
    let Some(evidence) = NsKey::of_this_thread().ok().and_then(find) else {
        return Ok(());
    };
    let label = {
        let mut made = evidence.made.lock().unwrap_or_else(PoisonError::into_inner);
        if made.len() == KEPT {
            evidence.not_kept.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let kept = ns.try_clone().map_err(|source| Error::Duplicate {
            step: "keep a test's namespace open for its failure report",
            source,
        })?;
        made.push(kept);
        format!("ns{}", made.len() + 1)
    };
    evidence
        .keys
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(key);
    OPEN.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((key, Arc::downgrade(&evidence)));
    if let Some(Ok(capture)) = &evidence.capture {
        capture.watch(label, ns)?;
    }
    Ok(())
}

thread_local! {
    /// The hook is taking a state on this thread: a panic inside it must
    /// not start another.
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Chains a panic hook to whatever hook is there: a panic on a thread
/// inside a test's namespaces records their state before unwinding drops
/// the body's sockets. It acts on nothing else.
fn install_panic_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            record_at_panic(info);
            previous(info);
        }));
    });
}

/// Takes the state of the test the panicking thread belongs to, unless the
/// panic is one its `should_panic` expects: the test then passes, and pays
/// for nothing.
fn record_at_panic(info: &PanicHookInfo<'_>) {
    if IN_HOOK.with(|in_hook| in_hook.replace(true)) {
        return;
    }
    let evidence = NsKey::of_this_thread().ok().and_then(find);
    if let Some(evidence) =
        evidence.filter(|evidence| panic_fails(info.payload(), evidence.test.should_panic))
    {
        let state = evidence.state();
        *evidence
            .at_panic
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(state);
    }
    IN_HOOK.with(|in_hook| in_hook.set(false));
}
