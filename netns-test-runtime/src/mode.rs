//! Choosing how tests are isolated: thread mode or process mode.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::OnceLock;
use std::thread;

use nix::errno::Errno;
use nix::libc;
use nix::sched::{CloneFlags, unshare};

use crate::diagnose::Diagnosis;
use crate::error::Error;
use crate::userns::UsernsSetup;

/// How the body of a test is isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// On a thread of the test process that unshared its network namespace.
    Thread,
    /// In a child process per test, inside a new user and network namespace.
    Process,
    /// On a thread of a long-lived helper process that holds a user
    /// namespace of its own.
    Helper,
}

/// What `NETNS_TEST_MODE` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Requested {
    Auto,
    Forced(Mode),
}

impl Requested {
    pub(crate) fn from_env() -> Result<Self, Error> {
        match std::env::var("NETNS_TEST_MODE").as_deref() {
            Err(_) | Ok("" | "auto") => Ok(Requested::Auto),
            Ok("thread") => Ok(Requested::Forced(Mode::Thread)),
            Ok("process") => Ok(Requested::Forced(Mode::Process)),
            Ok("helper") => Ok(Requested::Forced(Mode::Helper)),
            Ok(other) => Err(Error::BadEnv {
                name: "NETNS_TEST_MODE",
                value: other.into(),
                expected: "`thread`, `helper`, `process` or `auto`",
            }),
        }
    }
}

/// What the first thread-mode test of this process found: whether it could
/// unshare `CLONE_NEWNET`. That test is the probe, so that a process that
/// runs one test (as under nextest) makes one namespace, not two.
static THREAD_MODE: OnceLock<Result<(), Errno>> = OnceLock::new();

/// The mode for this process's tests. Thread mode is tried first (unless
/// another mode is forced) by the test itself; once a test has found that it
/// cannot unshare, the fallback is probed, once.
pub(crate) fn selected() -> Result<Mode, Error> {
    let requested = Requested::from_env()?;
    match (requested, THREAD_MODE.get()) {
        (Requested::Auto | Requested::Forced(Mode::Thread), None | Some(Ok(()))) => {
            Ok(Mode::Thread)
        }
        (_, thread) => {
            static FALLBACK: OnceLock<Result<Mode, Diagnosis>> = OnceLock::new();
            let thread = thread.copied();
            FALLBACK
                .get_or_init(|| fallback(requested, thread))
                .clone()
                .map_err(Error::Unavailable)
        }
    }
}

/// Records what a thread-mode test found when it unshared its namespace;
/// returns whether thread mode is now known not to work here. A failure
/// after thread mode has worked is the test's own error, not the machine's.
pub(crate) fn thread_mode_found(result: Result<(), Errno>) -> bool {
    let _ = THREAD_MODE.set(result);
    matches!(THREAD_MODE.get(), Some(Err(_)))
}

/// The mode when thread mode failed with `thread`, or was not asked for.
fn fallback(requested: Requested, thread: Option<Result<(), Errno>>) -> Result<Mode, Diagnosis> {
    let process = match requested {
        Requested::Forced(Mode::Thread) => None,
        _ => Some(probe_process()),
    };
    match (requested, process) {
        (Requested::Forced(mode @ (Mode::Process | Mode::Helper)), Some(Ok(()))) => Ok(mode),
        // Rootless: the helper is as isolated as a process per test for
        // everything but a crash, and several times faster.
        (_, Some(Ok(()))) => Ok(Mode::Helper),
        (_, process) => Err(Diagnosis::gather(requested, thread, process)),
    }
}

/// Whether this process may unshare CLONE_NEWNET: tried on a throwaway thread.
pub(crate) fn probe_thread() -> Result<(), Errno> {
    thread::Builder::new()
        .name("netns-test-probe".into())
        .spawn(|| unshare(CloneFlags::CLONE_NEWNET))
        .map_err(|error| Errno::from_raw(error.raw_os_error().unwrap_or(libc::EAGAIN)))?
        .join()
        .unwrap_or(Err(Errno::EINVAL))
}

/// Whether a child of this process can enter a new user and network
/// namespace: a fork that sets up the namespaces and then stops short of exec.
pub(crate) fn probe_process() -> Result<(), Errno> {
    /// Returned by the probe's `pre_exec` once the namespaces are set up, so
    /// that the child exits instead of running anything.
    const SET_UP: i32 = libc::ECANCELED;
    let setup = UsernsSetup::for_current_user();
    let mut command = Command::new("/proc/self/exe");
    // SAFETY: the closure is async-signal-safe: `UsernsSetup::enter` only
    // makes system calls on buffers prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            setup.enter()?;
            Err(std::io::Error::from_raw_os_error(SET_UP))
        });
    }
    match command.spawn() {
        Err(error) if error.raw_os_error() == Some(SET_UP) => Ok(()),
        Err(error) => Err(Errno::from_raw(
            error.raw_os_error().unwrap_or(libc::EINVAL),
        )),
        Ok(mut child) => {
            // Cannot happen: the pre_exec hook never lets exec run.
            let _ = child.kill();
            let _ = child.wait();
            Err(Errno::EINVAL)
        }
    }
}
