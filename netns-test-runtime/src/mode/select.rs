//! Choosing this process's mode, once.
//!
//! Thread mode is tried first, unless another mode is forced, by the first
//! test itself: its body's thread tries `unshare(CLONE_NEWNET)`, and what it
//! found is recorded here. A process that runs one test (as under nextest)
//! so makes one namespace, not two. Once a test was refused, the fallback is
//! probed, once, and every later test uses it.

use std::sync::OnceLock;

use nix::errno::Errno;

use crate::diagnose::{Diagnosis, probe_process, probe_thread};
use crate::env;
use crate::error::Error;
use crate::mode::{Mode, Requested};
use crate::test::Test;

/// What the first thread-mode test of this process found when it tried
/// `unshare(CLONE_NEWNET)`: set only after a real attempt.
static THREAD_MODE: OnceLock<Result<(), Errno>> = OnceLock::new();

/// The fallback, when thread mode was refused or not asked for.
static FALLBACK: OnceLock<Result<Fallback, Diagnosis>> = OnceLock::new();

/// The modes that run a body in another process, one of which is used
/// where thread mode is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fallback {
    Helper,
    Process,
}

impl From<Fallback> for Mode {
    fn from(fallback: Fallback) -> Mode {
        match fallback {
            Fallback::Helper => Mode::Helper,
            Fallback::Process => Mode::Process,
        }
    }
}

/// What `NETNS_TEST_MODE` asks for.
pub(crate) fn requested() -> Result<Requested, Error> {
    env::choice(
        "NETNS_TEST_MODE",
        "`thread`, `helper`, `process` or `auto`",
        Requested::Auto,
        &[
            ("thread", Requested::Forced(Mode::Thread)),
            ("helper", Requested::Forced(Mode::Helper)),
            ("process", Requested::Forced(Mode::Process)),
            ("auto", Requested::Auto),
            ("", Requested::Auto),
        ],
    )
}

/// The mode for this process's next test.
pub(crate) fn selected() -> Result<Mode, Error> {
    let requested = requested()?;
    match (requested, THREAD_MODE.get()) {
        (Requested::Auto | Requested::Forced(Mode::Thread), None | Some(Ok(()))) => {
            Ok(Mode::Thread)
        }
        (_, thread) => fallback(requested, thread.copied()).map(Mode::from),
    }
}

/// The mode for `test`: its own process where it asks for one
/// (`#[netns_test(process)]`), else this process's mode.
pub(crate) fn selected_for(test: &Test) -> Result<Mode, Error> {
    if !test.options.process {
        return selected();
    }
    // A value of NETNS_TEST_MODE that is not understood fails every test.
    requested()?;
    match process_probe()? {
        Ok(()) => Ok(Mode::Process),
        Err(errno) => Err(Error::Unavailable(Diagnosis::gather(
            Requested::ProcessAttribute,
            None,
            Some(Err(errno)),
        ))),
    }
}

/// Whether a child may enter a new user and network namespace, for the
/// fallback and for `process` tests alike: the machine's answer is probed
/// once per process (a fork); a passing shortage is that test's error, and
/// the next test probes again.
fn process_probe() -> Result<Result<(), Errno>, Error> {
    static PROBED: OnceLock<Result<(), Errno>> = OnceLock::new();
    if let Some(probed) = PROBED.get() {
        return Ok(*probed);
    }
    match probe_process() {
        Err(errno) if !about_the_machine(errno) => Err(Error::Shortage {
            step: "entering a new user and network namespace",
            source: errno,
        }),
        probed => Ok(*PROBED.get_or_init(|| probed)),
    }
}

/// Records that a thread-mode test unshared its namespace.
pub(crate) fn thread_mode_worked() {
    let _ = THREAD_MODE.set(Ok(()));
}

/// Records that a thread-mode test's `unshare(CLONE_NEWNET)` was refused
/// with `errno`, and returns the mode the test goes to instead. A refusal
/// after thread mode has worked in this process is that test's own error,
/// not the machine's.
pub(crate) fn thread_mode_refused(errno: Errno) -> Result<Fallback, Error> {
    if !about_the_machine(errno) {
        return Err(Error::Shortage {
            step: "unshare(CLONE_NEWNET)",
            source: errno,
        });
    }
    let _ = THREAD_MODE.set(Err(errno));
    match THREAD_MODE.get() {
        Some(Err(_)) => fallback(requested()?, Some(Err(errno))),
        _ => Err(Error::Unshare { source: errno }),
    }
}

/// Whether making a namespace failing with `errno` says what this machine
/// allows (a permission, a kernel feature, a limit of zero), rather than a
/// passing shortage (memory, threads, or a namespace limit that the tests
/// running at once have reached). Only the former decides the mode.
fn about_the_machine(errno: Errno) -> bool {
    let zero = |limit: &str| {
        std::fs::read_to_string(format!("/proc/sys/user/{limit}"))
            .is_ok_and(|value| value.trim() == "0")
    };
    match errno {
        Errno::ENOSPC => zero("max_net_namespaces") || zero("max_user_namespaces"),
        Errno::ENOMEM | Errno::EAGAIN | Errno::EMFILE | Errno::ENFILE | Errno::EUSERS => false,
        _ => true,
    }
}

/// The mode when thread mode was refused with `thread`, or not asked for:
/// decided once, by the machine's answers only.
fn fallback(requested: Requested, thread: Option<Result<(), Errno>>) -> Result<Fallback, Error> {
    if let Some(decided) = FALLBACK.get() {
        return decided.clone().map_err(Error::Unavailable);
    }
    let process = match requested {
        Requested::Forced(Mode::Thread) => None,
        _ => Some(process_probe()?),
    };
    FALLBACK
        .get_or_init(|| match (requested, process) {
            (Requested::Forced(Mode::Process), Some(Ok(()))) => Ok(Fallback::Process),
            // Rootless: a helper is as isolated as a process per test for
            // everything but a crash, and several times faster.
            (_, Some(Ok(()))) => Ok(Fallback::Helper),
            (_, process) => Err(Diagnosis::gather(requested, thread, process)),
        })
        .clone()
        .map_err(Error::Unavailable)
}

/// The mode this process's netns tests use, as `NETNS_TEST_MODE` and the
/// machine decide. Where no test has run yet, it probes thread mode first,
/// as the first test would.
///
/// # Errors
///
/// [`Error::Unavailable`] when no mode works, [`Error::BadEnv`], or
/// [`Error::Shortage`] when the probe met a passing shortage.
///
/// # Example
///
/// ```
/// match netns_test_runtime::selected_mode() {
///     Ok(mode) => println!("netns tests run in {mode} mode here"),
///     Err(error) => println!("netns tests cannot run here: {error}"),
/// }
/// ```
pub fn selected_mode() -> Result<Mode, Error> {
    let mode = match selected()? {
        Mode::Thread if THREAD_MODE.get().is_none() => match probe_thread() {
            Ok(()) => {
                thread_mode_worked();
                Mode::Thread
            }
            Err(errno) => thread_mode_refused(errno)?.into(),
        },
        mode => mode,
    };
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shortage fails the test that met it, and decides nothing: the next
    /// test tries thread mode again, and no test is skipped for it.
    #[test]
    fn a_passing_shortage_is_the_tests_own_error() {
        for errno in [Errno::ENOMEM, Errno::EAGAIN, Errno::EMFILE, Errno::ENFILE] {
            let refused = thread_mode_refused(errno);
            assert!(
                matches!(refused, Err(Error::Shortage { source, .. }) if source == errno),
                "{errno}: {refused:?}"
            );
        }
        assert!(
            THREAD_MODE.get().is_none(),
            "a shortage was taken for the machine's answer"
        );
        let zero = |limit| {
            std::fs::read_to_string(format!("/proc/sys/user/{limit}"))
                .is_ok_and(|value| value.trim() == "0")
        };
        assert_eq!(
            about_the_machine(Errno::ENOSPC),
            zero("max_net_namespaces") || zero("max_user_namespaces")
        );
        assert!(about_the_machine(Errno::EPERM));
        assert!(about_the_machine(Errno::EINVAL));
    }
}
