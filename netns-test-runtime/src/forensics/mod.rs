//! What a failed test leaves behind: the state of each namespace it made,
//! taken at its end, with its sockets taken as early as they can be (at
//! its first panic that can fail it, before unwinding; before an async
//! runtime is dropped at `Err`), and, when asked for, a pcapng file of
//! every packet that crossed them.
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
mod commands;
mod held;
mod pcapng;
mod state;
mod time_order;
mod wires;

use std::cell::Cell;
use std::fmt::Write;
use std::os::fd::AsFd;
use std::panic::{self, PanicHookInfo};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::command::CommandOutput;
use crate::env;
use crate::error::Error;
use crate::netlink::Rtnl;
use crate::netns::{NetNs, NsKey};
use crate::outcome::{Outcome, panic_fails};
use crate::plan::Plan;
use crate::seed;
use crate::test::Test;
use crate::topology::WireShared;
use crate::watchdog;

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
    /// The inodes of every namespace made with `NetNs::new` during the
    /// test, kept or not: what runs in them ends with the test.
    made_inodes: Mutex<Vec<u64>>,
    /// The watchdog's slots that hold its namespaces while it runs (thread
    /// mode): what runs in them is killed if the test process is.
    watched: Mutex<Vec<watchdog::Slot>>,
    /// What could not be gathered, for the report.
    problems: Mutex<Vec<String>>,
    /// The keys under which the registry finds this test.
    keys: Mutex<Vec<NsKey>>,
    /// The sockets of its namespaces (its own first, then those it made),
    /// taken at its first panic that can fail it, before unwinding closed
    /// the body's; or when its async runtime returned `Err`, before the
    /// runtime and its tasks were dropped.
    early_sockets: Mutex<Option<EarlySockets>>,
    /// How many panics that can fail the test there were.
    panics: AtomicUsize,
    /// The capture, when asked for; why there is none, when it could not
    /// start (which fails no test: a failed one says why).
    capture: Option<Result<Capture, Error>>,
    keep_all: bool,
    concluded: AtomicBool,
    /// The test's seed, planted for its namespace while it runs.
    seed: seed::Planted,
    /// The wires the test made, for the report.
    wires: Mutex<Vec<Arc<WireShared>>>,
    /// The commands it made with `NetNs::command`, for the report.
    commands: Mutex<Vec<Arc<CommandOutput>>>,
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
    /// made in it. Starts the capture when its `plan` asks for it.
    pub(crate) fn open(
        test: &'static Test,
        here: NsKey,
        own: Rtnl,
        plan: &Plan,
    ) -> Result<Arc<Self>, Error> {
        keep_panic_hook();
        crate::netns::watch_new_namespaces(adopt);
        crate::topology::watch_new_wires(adopt_wire);
        crate::command::watch_new_commands(adopt_command);
        let capture = match plan.capture {
            env::Capture::Off => None,
            env::Capture::Failed | env::Capture::All => Some(Capture::start(
                test.name(),
                plan.capture_limit,
                &plan.capture_dir,
            )),
        };
        // On the body's thread, inside the test's namespace.
        let watched = watchdog::watch(own.as_fd(), crate::procfs::netns_of_this_thread)
            .into_iter()
            .collect();
        let evidence = Arc::new(Evidence {
            watched: Mutex::new(watched),
            test,
            own,
            made: Mutex::new(Vec::new()),
            not_kept: AtomicUsize::new(0),
            made_inodes: Mutex::new(Vec::new()),
            problems: Mutex::new(Vec::new()),
            keys: Mutex::new(vec![here]),
            early_sockets: Mutex::new(None),
            panics: AtomicUsize::new(0),
            capture,
            keep_all: plan.capture == env::Capture::All,
            concluded: AtomicBool::new(false),
            seed: seed::Planted::plant(here, plan.seed),
            wires: Mutex::new(Vec::new()),
            commands: Mutex::new(Vec::new()),
        });
        OPEN.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((here, Arc::downgrade(&evidence)));
        BODY_EVIDENCE.with(|body| *body.borrow_mut() = Arc::downgrade(&evidence));
        Ok(evidence)
    }

    /// The inodes of the namespaces made with `NetNs::new` during the test.
    pub(crate) fn made_namespaces(&self) -> Vec<u64> {
        self.made_inodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The test's namespaces, its own first, each with its label.
    fn namespaces(&self) -> Vec<(String, Result<NetNs, Error>)> {
        let own = NetNs::of_socket(&self.own);
        let made = self.made.lock().unwrap_or_else(PoisonError::into_inner);
        let made = made.iter().enumerate().map(|(i, ns)| {
            let label = match ns.name() {
                Some(name) => format!("{name}: made by NetNs::named"),
                None => format!("ns{}: made by NetNs::new", i + 2),
            };
            (
                label,
                ns.try_clone().map_err(|source| Error::Duplicate {
                    step: "read a namespace the test made, for its report",
                    source,
                }),
            )
        });
        std::iter::once(("test: the test's own namespace".to_owned(), own))
            .chain(made)
            .collect()
    }

    /// Takes the sockets of the test's namespaces now, once: `when` says
    /// when, in the report.
    fn keep_sockets(&self, when: &'static str) {
        let mut early = self
            .early_sockets
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if early.is_some() {
            return;
        }
        let keys = self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let cookies: Option<Vec<u64>> = keys
            .iter()
            .map(|key| match key {
                NsKey::Cookie(cookie) => Some(*cookie),
                NsKey::Inode(_) => None,
            })
            .collect();
        let sockets = match cookies {
            // What unwinding is about to close: the sockets this process
            // holds, read from its descriptors.
            Some(cookies) => {
                let held = held::held_sockets(&cookies);
                (0..cookies.len())
                    .map(|index| {
                        let entries = held.iter().filter(|(at, _)| *at == index);
                        state::Taken::Held(entries.map(|(_, entry)| entry.clone()).collect())
                    })
                    .collect()
            }
            // Before Linux 5.14, no socket tells its namespace cheaply:
            // every socket of every namespace, dumped.
            None => self
                .namespaces()
                .into_iter()
                .map(|(_, ns)| state::Taken::Dumped(ns.and_then(|ns| ns.sockets_listed())))
                .collect(),
        };
        *early = Some(EarlySockets { when, sockets });
    }

    /// The state of every namespace of the test, now, but for the sockets
    /// taken earlier, `early`.
    fn state(&self, early: Option<EarlySockets>) -> String {
        let mut out = String::new();
        let mut early = early.map(|early| early.sockets.into_iter());
        for (label, ns) in self.namespaces() {
            let taken = early.as_mut().and_then(Iterator::next);
            match ns {
                Ok(ns) => state::write(&mut out, &label, &ns, taken),
                Err(error) => {
                    let _ = writeln!(out, "  {label}\n    unreadable: {error}");
                }
            }
        }
        for problem in self
            .problems
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(out, "  {problem}");
        }
        for wire in self
            .wires
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            wires::write(&mut out, wire);
        }
        for command in self
            .commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            commands::write(&mut out, command);
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
        // The test is over: its wires' relays end with it (after the
        // report below has read their counters).
        let _wires_end = WiresEnd(&self.wires);
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
            let early = self
                .early_sockets
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let panics = self.panics.load(Ordering::Relaxed);
            let sockets = match (moment, &early) {
                (Moment::Ended(Outcome::Panicked(_)), Some(early)) if panics > 1 => {
                    format!(" (its sockets {} of the first of its {panics} panics, the rest after)", early.when)
                }
                (Moment::Ended(Outcome::Panicked(_)), Some(early)) => {
                    format!(" (its sockets {}, the rest after)", early.when)
                }
                (Moment::Ended(Outcome::Returned(_)), Some(early)) => {
                    format!(" (its sockets {})", early.when)
                }
                (Moment::Ended(Outcome::Panicked(_)), None) => " (its sockets after unwinding closed the body's: the panic hook that takes them at the panic did not run)".to_owned(),
                (Moment::Ended(Outcome::Returned(_)), None) => " (its sockets after the body's locals were dropped)".to_owned(),
                _ => String::new(),
            };
            let state = self.state(early);
            let _ = write!(
                report,
                "netns-test: the network of `{}` {why}{sockets}:\n{state}",
                self.test.name()
            );
            if let Some(seed) = self.seed.used() {
                let _ = writeln!(
                    report,
                    "netns-test: its seed was {seed}; replay it with NETNS_TEST_SEED={seed} cargo test -- {} --exact",
                    self.test.name()
                );
            }
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

/// Readies the process for a test with `plan`, on the thread that runs it,
/// outside its namespace: where its packets are to be captured, the
/// capture thread.
pub(crate) fn ready_for(plan: &Plan) -> Result<(), Error> {
    if plan.capture != env::Capture::Off {
        capture::start_service(&plan.capture_dir)?;
    }
    Ok(())
}

/// In the test process, after the process that ran `test`'s body ended
/// without a report (a crash, or stopped at a timeout): keeps the capture
/// it was writing, if any, and says where it is.
pub(crate) fn salvage(test: &Test, plan: &Plan) -> Option<String> {
    if plan.capture == env::Capture::Off {
        return None;
    }
    capture::salvage(test.name(), &plan.capture_dir)
}

/// Adds `ns`, just made by `NetNs::new` (keyed `key`) on behalf of the
/// calling thread, to the evidence of the test that thread belongs to:
/// it is kept open until the test's report, and captured when the test's
/// packets are.
/// Ends the relays of a test's wires when dropped.
struct WiresEnd<'a>(&'a Mutex<Vec<Arc<WireShared>>>);

impl Drop for WiresEnd<'_> {
    fn drop(&mut self) {
        for wire in self.0.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            wire.end();
        }
    }
}

/// The evidence of the test the calling thread works in.
fn of_this_thread() -> Option<Arc<Evidence>> {
    NsKey::of_this_thread()
        .ok()
        .and_then(find)
        .or_else(|| BODY_EVIDENCE.with(|body| body.borrow().upgrade()))
}

/// Keeps a wire just made for the report of the test the calling thread
/// works in.
fn adopt_wire(wire: &Arc<WireShared>) {
    if let Some(evidence) = of_this_thread() {
        evidence
            .wires
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(wire));
    }
}

/// Keeps a command just made for the report of the test the calling
/// thread works in.
fn adopt_command(command: &Arc<CommandOutput>) {
    if let Some(evidence) = of_this_thread() {
        evidence
            .commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(command));
    }
}

fn adopt(ns: &NetNs, key: NsKey) {
    let Some(evidence) = NsKey::of_this_thread().ok().and_then(find) else {
        return;
    };
    // Evidence gathering never fails the user's `NetNs::new`: what it
    // could not do is a line of the report.
    if let Err(error) = evidence.adopt(ns, key) {
        evidence
            .problems
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(format!(
                "a namespace made by NetNs::new is not in this report in full: {error}"
            ));
    }
}

impl Evidence {
    /// Adds `ns`, just made by `NetNs::new` (keyed `key`), to this test's.
    fn adopt(self: &Arc<Self>, ns: &NetNs, key: NsKey) -> Result<(), Error> {
        self.made_inodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(ns.inode());
        let label = {
            let mut made = self.made.lock().unwrap_or_else(PoisonError::into_inner);
            if made.len() == KEPT {
                self.not_kept.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            let kept = ns.try_clone().map_err(|source| Error::Duplicate {
                step: "keep a test's namespace open for its failure report",
                source,
            })?;
            if let Some(slot) = watchdog::watch(kept.as_fd(), || Some(kept.inode())) {
                self.watched
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(slot);
            }
            made.push(kept);
            match ns.name() {
                Some(name) => name.to_owned(),
                None => format!("ns{}", made.len() + 1),
            }
        };
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(key);
        self.seed.add(key);
        OPEN.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((key, Arc::downgrade(self)));
        if let Some(Ok(capture)) = &self.capture {
            capture.watch(label, ns)?;
        }
        Ok(())
    }
}

thread_local! {
    /// The hook is taking a state on this thread: a panic inside it must
    /// not start another.
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };

    /// The evidence of the test whose body runs on this thread, found
    /// without a system call: a body that catches many panics on its own
    /// thread pays next to nothing for each. Other threads of a test (an
    /// async runtime's workers) are found by the key of their namespace.
    static BODY_EVIDENCE: std::cell::RefCell<Weak<Evidence>> = const { std::cell::RefCell::new(Weak::new()) };
}

/// The data address of the panic hook this module installed, to know it
/// again among the hooks `panic::take_hook` returns.
static OUR_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Makes sure the panic hook that takes a test's sockets at its panic is
/// installed, chained to whatever hook is there: at the first test, and
/// again at any later test where code (a logging crate, say) has replaced
/// it with `panic::set_hook` since. A panic on a thread inside a test's
/// namespaces takes their sockets before unwinding closes the body's; the
/// hook acts on nothing else.
fn keep_panic_hook() {
    static KEEPING: Mutex<()> = Mutex::new(());
    let _keeping = KEEPING.lock().unwrap_or_else(PoisonError::into_inner);
    let current = panic::take_hook();
    let address = |hook: &(dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static)| {
        std::ptr::from_ref(hook).cast::<()>() as usize
    };
    if address(current.as_ref()) == OUR_HOOK.load(Ordering::Relaxed) {
        panic::set_hook(current);
        return;
    }
    let ours: Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static> =
        Box::new(move |info: &PanicHookInfo<'_>| {
            // Once per panic on this thread: a hook that chains this one
            // may be chained by it in turn, and a panic inside the hook must
            // not start another.
            if IN_HOOK.with(|in_hook| in_hook.replace(true)) {
                current(info);
                return;
            }
            record_at_panic(info);
            current(info);
            IN_HOOK.with(|in_hook| in_hook.set(false));
        });
    OUR_HOOK.store(address(ours.as_ref()), Ordering::Relaxed);
    panic::set_hook(ours);
}

/// Takes the sockets of the test the panicking thread belongs to, at the
/// first panic that can fail it (unless its `should_panic` expects it: the
/// test then passes, and pays for nothing). Later panics only count: a test
/// that catches many (proptest, `catch_unwind`) pays for one.
fn record_at_panic(info: &PanicHookInfo<'_>) {
    let evidence = BODY_EVIDENCE
        .with(|body| body.borrow().upgrade())
        .or_else(|| NsKey::of_this_thread().ok().and_then(find));
    if let Some(evidence) =
        evidence.filter(|evidence| panic_fails(info.payload(), evidence.test.should_panic))
    {
        evidence.panics.fetch_add(1, Ordering::Relaxed);
        evidence.keep_sockets("before unwinding");
    }
}

/// Where a body is about to return `Err` (`when` says where: before its
/// locals are dropped, or its async runtime and tasks), on a thread of its
/// test: takes the test's sockets for its report.
pub(crate) fn record_at_err(when: &'static str) {
    let evidence = BODY_EVIDENCE
        .with(|body| body.borrow().upgrade())
        .or_else(|| NsKey::of_this_thread().ok().and_then(find));
    if let Some(evidence) = evidence {
        evidence.keep_sockets(when);
    }
}

/// The sockets of a test's namespaces, taken before its end.
struct EarlySockets {
    /// When, as the report says it.
    when: &'static str,
    /// Those of each namespace, its own first.
    sockets: Vec<state::Taken>,
}
