//! Entering a new user and network namespace in a freshly forked child.

use std::ffi::CStr;
use std::io;

use nix::libc;
use nix::unistd::{getgid, getpid, getuid};

/// What a child needs to become root of a new user namespace, prepared before
/// the fork so that the child only makes system calls.
#[derive(Debug, Clone)]
pub(crate) struct UsernsSetup {
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
    /// The parent's pid, to tie the child's life to the parent's.
    parent: libc::pid_t,
}

impl UsernsSetup {
    /// Maps the caller's uid and gid to 0 inside the new namespace.
    pub(crate) fn for_current_user() -> Self {
        UsernsSetup {
            uid_map: format!("0 {} 1\n", getuid()).into_bytes(),
            gid_map: format!("0 {} 1\n", getgid()).into_bytes(),
            parent: getpid().as_raw(),
        }
    }

    /// Asks the kernel to kill this child with SIGKILL when the thread that
    /// forked it ends, so that no test process outlives the test binary, and
    /// fails if the parent is gone already. Async-signal-safe, like `enter`.
    pub(crate) fn die_with_parent(&self) -> io::Result<()> {
        // SAFETY: prctl(PR_SET_PDEATHSIG) takes integers only.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: getppid(2) has no arguments and cannot fail.
        if unsafe { libc::getppid() } != self.parent {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
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
        // SAFETY: unshare(2) takes only flags and touches no memory of ours.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // An unprivileged process may write its gid_map only after it has
        // given up setgroups(2); see user_namespaces(7).
        match write_file(c"/proc/self/setgroups", b"deny") {
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) => {}
            other => other?,
        }
        write_file(c"/proc/self/uid_map", &self.uid_map)?;
        write_file(c"/proc/self/gid_map", &self.gid_map)
    }
}

/// Writes `data` to `path` with one `write`, as the `/proc` map files require.
fn write_file(path: &CStr, data: &[u8]) -> io::Result<()> {
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `data` is valid for `data.len()` bytes, and `fd` is open.
    let written = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    let result = if written < 0 {
        Err(io::Error::last_os_error())
    } else if written as usize != data.len() {
        Err(io::Error::from_raw_os_error(libc::EIO))
    } else {
        Ok(())
    };
    // SAFETY: `fd` was opened above and is closed once.
    unsafe { libc::close(fd) };
    result
}
