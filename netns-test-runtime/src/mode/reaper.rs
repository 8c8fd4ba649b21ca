//! Nothing a body starts outlives its test.
//!
//! Between the test process and each process it starts (a process-mode
//! child, or a helper) stands a reaper: the process the test process forks,
//! which enters the new user and network namespace, makes itself a child
//! subreaper (`PR_SET_CHILD_SUBREAPER`, see prctl(2)) and forks the process
//! that runs the test binary. Every process the body starts, and every
//! process those start, stays below the reaper, even when its parent dies.
//! When the test binary's process ends, or the reaper is told to stop (the
//! test process timed the test out, died, or was interrupted), the reaper
//! kills them all and ends as the test binary's process did.
//!
//! A helper outlives its tests, so it is a subreaper itself and kills the
//! processes of each body before it reports the body's outcome. In thread
//! mode the body shares the test process, which becomes a subreaper at its
//! first thread-mode test: there, the processes below it in the test's
//! network namespaces are killed when the test ends, with their
//! descendants, and the watchdog (`crate::watchdog`) kills them when the
//! test process is killed.
//!
//! The reaper runs between fork and exec of a multi-threaded process, so
//! everything it does is async-signal-safe: system calls on fixed buffers.

use std::ffi::CStr;
use std::io;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::libc;
use nix::sys::prctl::{set_child_subreaper, set_pdeathsig};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::stat::Mode;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getpid, getppid, read};

use crate::procfs;

/// The signal the test process sends a reaper to stop it, and that the
/// kernel sends it when the test process's thread that started it ends.
pub(crate) const STOP: Signal = Signal::SIGTERM;

/// The signals a reaper waits for instead of dying of: its child's end, and
/// each that would end it before it has killed the test's processes.
fn awaited() -> SigSet {
    let mut set = SigSet::empty();
    for signal in [
        Signal::SIGCHLD,
        STOP,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        set.add(signal);
    }
    set
}

/// In a freshly forked child, between fork and exec: becomes the reaper and
/// forks the process that goes on to exec, which is the only one this
/// returns in. The reaper never returns.
pub(crate) fn become_reaper() -> io::Result<()> {
    set_child_subreaper(true)?;
    let awaited = awaited();
    let mut unblocked = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&awaited), Some(&mut unblocked))?;
    let reaper = getpid();
    // SAFETY: this process has one thread (it was just forked), and both
    // sides go on with async-signal-safe system calls only until the child
    // execs.
    match unsafe { fork() }? {
        ForkResult::Child => {
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&unblocked), None)?;
            set_pdeathsig(Signal::SIGKILL)?;
            if getppid() != reaper {
                return Err(Errno::ESRCH.into());
            }
            Ok(())
        }
        ForkResult::Parent { child } => reap(child, &awaited),
    }
}

/// The reaper: waits for `child`, then kills every process left below it,
/// and ends as `child` did.
fn reap(child: Pid, awaited: &SigSet) -> ! {
    close_every_descriptor();
    let status = loop {
        match awaited.wait() {
            Ok(Signal::SIGCHLD) => {
                if let Some(status) = reap_zombies(child) {
                    break Some(status);
                }
            }
            Ok(_) => break None,
            Err(_) => {}
        }
    };
    kill_children(c"/proc/thread-self/children");
    end_as(status)
}

/// Reaps every child that has ended; returns `child`'s status once it has.
fn reap_zombies(child: Pid) -> Option<WaitStatus> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return None,
            Ok(status) if status.pid() == Some(child) => return Some(status),
            Ok(_) | Err(Errno::EINTR) => {}
            // No child left: it has ended, without a status for us.
            Err(_) => return Some(WaitStatus::Signaled(child, Signal::SIGKILL, false)),
        }
    }
}

/// Closes every descriptor, so that the test process sees its pipes, and
/// the pipe that tells it that exec succeeded, close when the child does.
fn close_every_descriptor() {
    // SAFETY: close_range(2) closes descriptors of this process and reads
    // no memory of ours; nothing here uses a descriptor afterwards.
    let closed = unsafe { libc::syscall(libc::SYS_close_range, 0, libc::c_uint::MAX, 0) };
    if closed != 0 {
        // Before Linux 5.9: close them one by one.
        for fd in 0..65_536 {
            // SAFETY: as above; closing a descriptor that is not open fails
            // harmlessly with EBADF.
            unsafe { libc::close(fd) };
        }
    }
}

/// Kills and reaps every child that `children` (a `/proc/<pid>/task/<tid>/children`
/// file of this process) lists, again and again, since the children of a
/// killed child become this subreaper's, until it lists none.
/// Async-signal-safe, for the reaper.
fn kill_children(children: &CStr) {
    loop {
        let mut listed = [0u8; 4096];
        let length = match open(children, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()) {
            Ok(file) => read(&file, &mut listed).unwrap_or(0),
            Err(_) => 0,
        };
        let mut killed = [0i32; 512];
        let mut count = 0;
        let mut pid = 0i32;
        for &byte in &listed[..length] {
            match byte {
                b'0'..=b'9' => {
                    pid = pid
                        .saturating_mul(10)
                        .saturating_add(i32::from(byte - b'0'))
                }
                _ if pid > 0 && count < killed.len() => {
                    killed[count] = pid;
                    count += 1;
                    pid = 0;
                }
                _ => pid = 0,
            }
        }
        if count == 0 {
            return;
        }
        for &pid in &killed[..count] {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        for &pid in &killed[..count] {
            while waitpid(Pid::from_raw(pid), None) == Err(Errno::EINTR) {}
        }
    }
}

/// Ends this process as a process that ended with `status` did; without one,
/// as told to stop.
fn end_as(status: Option<WaitStatus>) -> ! {
    let signal = match status {
        Some(WaitStatus::Exited(_, code)) => {
            // SAFETY: _exit(2) ends the process; it takes an integer.
            unsafe { libc::_exit(code) }
        }
        Some(WaitStatus::Signaled(_, signal, _)) => signal,
        _ => STOP,
    };
    // SAFETY: signal(2) to the default action, then the signal itself:
    // system calls on integers only.
    unsafe {
        libc::signal(signal as libc::c_int, libc::SIG_DFL);
    }
    let mut only = SigSet::empty();
    only.add(signal);
    let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&only), None);
    let _ = kill(getpid(), signal);
    // SAFETY: as above; reached only if the signal did not end the process.
    unsafe { libc::_exit(128 + signal as libc::c_int) }
}

/// In a helper, and in a test process that runs a test in thread mode:
/// makes it the subreaper of the processes its bodies start, so that a
/// daemon that leaves its parent stays below it, to be killed with its test.
pub(crate) fn adopt_orphans() -> Result<(), Errno> {
    set_child_subreaper(true)
}

/// In a helper: kills every process below it, those a body started and
/// those they started, before it reports the body's outcome.
pub(crate) fn kill_descendants() {
    // The children of a killed child become this subreaper's: again, until
    // none is left.
    loop {
        let children = procfs::children_of(std::process::id() as i32);
        if children.is_empty() {
            return;
        }
        for &pid in &children {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        for pid in children {
            while waitpid(Pid::from_raw(pid), None) == Err(Errno::EINTR) {}
        }
    }
}

/// Whether this process has any child, running, stopped or a zombie: one
/// system call, so that thread mode looks for a body's processes only where
/// there may be some.
pub(crate) fn has_children() -> bool {
    let any = WaitPidFlag::WNOHANG
        | WaitPidFlag::WNOWAIT
        | WaitPidFlag::WEXITED
        | WaitPidFlag::WSTOPPED
        | WaitPidFlag::WCONTINUED;
    waitid(Id::All, any) != Err(Errno::ECHILD)
}

/// In thread mode, where the body shares the test process: kills every
/// process below this one that is in one of the network namespaces
/// `namespaces` (inodes, as `/proc/<pid>/ns/net` names them), and every
/// process below those, and reaps them. The test process is a subreaper
/// ([`adopt_orphans`]) in thread mode, so a daemon that left its parent, or
/// a shell's background job, is still below it. Never the calling thread's
/// own namespace: the harness's processes are not a body's.
pub(crate) fn kill_in_namespaces(namespaces: &[u64]) {
    kill_below(|ns| namespaces.contains(&ns));
}

/// In thread mode, where no other test can be running (a process that runs
/// one test, or one whose tests have all ended): kills every process below
/// this one in another network namespace than the calling thread's, and
/// every process below those. What a body started in a namespace of its
/// own making (`unshare -n`) is found only so.
pub(crate) fn kill_outside_this_namespace() {
    kill_below(|_| true);
}

/// Kills every process below this one whose network namespace is not the
/// calling thread's and is `doomed`, and every process below those, and
/// reaps them.
fn kill_below(doomed: impl Fn(u64) -> bool) {
    let here = procfs::netns_of_this_thread();
    let doomed_ns = |ns: Option<u64>| ns.is_some_and(|ns| Some(ns) != here && doomed(ns));
    let direct: Vec<i32> = procfs::children_of(std::process::id() as i32)
        .into_iter()
        .filter(|&pid| doomed_ns(procfs::netns_of_process(pid)))
        .collect();
    if direct.is_empty() {
        return;
    }
    // Stop each before listing its children, so that none forks meanwhile;
    // a parent is listed before its children.
    let mut doomed = Vec::new();
    let mut found = direct;
    found.reverse();
    while let Some(pid) = found.pop() {
        let _ = kill(Pid::from_raw(pid), Signal::SIGSTOP);
        doomed.push(pid);
        found.extend(procfs::children_of(pid));
    }
    for &pid in &doomed {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    // Parents first: once a parent is reaped, its children are this
    // subreaper's, to reap in turn. A process that is some other's child
    // (this process was no subreaper when it was orphaned) is not ours to
    // reap, and fails with ECHILD.
    for pid in doomed {
        while waitpid(Pid::from_raw(pid), None) == Err(Errno::EINTR) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The processes of the calling thread's own namespace are never
    /// killed, whatever a caller passes: they are the harness's.
    #[test]
    fn the_callers_own_namespace_is_never_cleaned() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("start sleep");
        let here = procfs::netns_of_this_thread().expect("this thread's namespace");
        kill_in_namespaces(&[here]);
        let still_running = child.try_wait().expect("look at the child").is_none();
        let _ = child.kill();
        let _ = child.wait();
        assert!(still_running, "the harness's own child was killed");
    }
}
