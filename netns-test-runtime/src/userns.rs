//! Entering a new user and network namespace in a freshly forked child.

use std::ffi::CStr;
use std::io;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sched::{CloneFlags, unshare};
use nix::sys::prctl::set_pdeathsig;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::unistd::{Pid, getgid, getpid, getppid, getuid, write};

/// What a child needs to become root of a new user namespace, prepared before
/// the fork so that the child only makes system calls.
#[derive(Debug, Clone)]
pub(crate) struct UsernsSetup {
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
    /// The parent's pid, to tie the child's life to the parent's.
    parent: Pid,
}

impl UsernsSetup {
    /// Maps the caller's uid and gid to 0 inside the new namespace.
    pub(crate) fn for_current_user() -> Self {
        UsernsSetup {
            uid_map: format!("0 {} 1\n", getuid()).into_bytes(),
            gid_map: format!("0 {} 1\n", getgid()).into_bytes(),
            parent: getpid(),
        }
    }

    /// Asks the kernel to send this child `signal` when the thread that
    /// forked it ends, so that no test process outlives the test binary, and
    /// fails if the parent is gone already. Async-signal-safe, like `enter`.
    pub(crate) fn die_with_parent(&self, signal: Signal) -> io::Result<()> {
        set_pdeathsig(signal)?;
        if getppid() != self.parent {
            return Err(Errno::ESRCH.into());
        }
        Ok(())
    }

    /// Moves the calling process into a new user and network namespace, and
    /// maps the caller to root there.
    ///
    /// Async-signal-safe: it allocates nothing and only calls `unshare`,
    /// `open`, `write` and `close`, so it may run between `fork` and `exec`
    /// (`Command::pre_exec`). `unshare(CLONE_NEWUSER)` needs a single-threaded
    /// process, which a freshly forked child is.
    pub(crate) fn enter(&self) -> io::Result<()> {
        self.enter_user_namespace(CloneFlags::CLONE_NEWNET)
    }

    /// Moves the calling process into a new user namespace, with the other
    /// namespaces in `also`, and maps the caller to root there.
    /// Async-signal-safe, like [`UsernsSetup::enter`]; the process must have
    /// one thread.
    pub(crate) fn enter_user_namespace(&self, also: CloneFlags) -> io::Result<()> {
        unshare(CloneFlags::CLONE_NEWUSER | also)?;
        // An unprivileged process may write its gid_map only after it has
        // given up setgroups(2); see user_namespaces(7).
        match write_file(c"/proc/self/setgroups", b"deny") {
            Err(Errno::ENOENT) => {}
            other => other?,
        }
        write_file(c"/proc/self/uid_map", &self.uid_map)?;
        write_file(c"/proc/self/gid_map", &self.gid_map)?;
        Ok(())
    }
}

/// Writes `data` to `path` with one `write`, as the `/proc` map files require.
fn write_file(path: &CStr, data: &[u8]) -> Result<(), Errno> {
    let fd = open(path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    match write(&fd, data)? {
        written if written == data.len() => Ok(()),
        _ => Err(Errno::EIO),
    }
}
