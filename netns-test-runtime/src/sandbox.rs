//! The one step every mode takes around a body: before it, a fresh network
//! namespace with `lo` up and the kernel's default forwarding, the optional
//! private `/sys` and `/proc/net`, the isolation check, the test's evidence
//! (for a failure report) and the handle, in that order; after it, the
//! isolation check again, and the report of a failure.
//!
//! Thread mode, helpers and process-mode children all prepare a body here,
//! so a guarantee made here holds in every mode.

use std::sync::Arc;

use nix::errno::Errno;
use nix::libc;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::unistd::{getpid, write};

use crate::error::Error;
use crate::fault::{self, Fault};
use crate::forensics::{Evidence, Moment};
use crate::netns::{self, NetNs, NsKey};
use crate::outcome::Outcome;
use crate::plan::Plan;
use crate::test::{Call, Test};

/// How the body's thread gets its fresh network namespace.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Entry {
    /// The thread unshares one (thread mode, and helpers).
    Unshare,
    /// The process was started inside one (a process-mode child).
    AlreadyInside,
}

/// Where a body is prepared, and the namespace it must not share.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sandbox {
    pub(crate) entry: Entry,
    /// The namespace of the harness thread that runs the test.
    pub(crate) harness_ns: NsKey,
}

/// Why a body could not be prepared.
#[derive(Debug)]
pub(crate) enum Unprepared {
    /// `unshare(CLONE_NEWNET)` was refused: the thread has not moved, and
    /// nothing else was tried. In thread mode this is the probe's answer.
    Refused(Errno),
    /// A later step failed.
    Failed(Error),
}

impl From<Unprepared> for Error {
    fn from(unprepared: Unprepared) -> Error {
        match unprepared {
            Unprepared::Refused(source) => Error::Unshare { source },
            Unprepared::Failed(error) => error,
        }
    }
}

/// A body ready to run, and the evidence its failure would leave.
#[derive(Debug)]
pub(crate) struct Prepared {
    call: Call,
    pub(crate) evidence: Arc<Evidence>,
}

impl Sandbox {
    /// Prepares the calling thread for `test`'s body, as its `plan` says,
    /// and returns the body with what it takes.
    pub(crate) fn prepare(&self, test: &'static Test, plan: &Plan) -> Result<Prepared, Unprepared> {
        if let Entry::Unshare = self.entry {
            unshare(CloneFlags::CLONE_NEWNET).map_err(Unprepared::Refused)?;
        }
        let harness_ns = || match fault::injected(Fault::HarnessIsHere) {
            true => NsKey::of_this_thread(),
            false => Ok(self.harness_ns),
        };
        let prepared = || {
            let rtnl = netns::settle_fresh()?;
            if test.options.sysfs {
                private_sysfs()?;
            }
            let here = NsKey::of_this_thread_by(&rtnl)?;
            ensure_isolated(here, harness_ns()?)?;
            let evidence = Evidence::open(test, here, rtnl, plan)?;
            let call = test.body.ready(NetNs::current)?;
            Ok(Prepared { call, evidence })
        };
        prepared().map_err(Unprepared::Failed)
    }

    /// Runs a prepared body on the calling thread, and checks, after it,
    /// that the thread is still outside the harness's namespace. A failure
    /// is reported with its evidence, on the body's stderr.
    pub(crate) fn run(&self, prepared: Prepared) -> Outcome {
        let Prepared { call, evidence } = prepared;
        let outcome = self.run_call(call);
        if let Some(report) = evidence.conclude(Moment::Ended(&outcome)) {
            eprint!("{report}");
        }
        outcome
    }

    fn run_call(&self, call: Call) -> Outcome {
        let pid = getpid();
        let outcome = Outcome::of_call(call);
        if getpid() != pid {
            // A process the body forked returned from the body. Only the
            // process that prepared the body reports its outcome, so the
            // copy ends here, with no allocation (another thread may have
            // held the allocator's lock when it was forked).
            let _ = write(
                std::io::stderr(),
                b"netns-test: a process forked by a test body returned from the body; it exits without reporting\n",
            );
            // SAFETY: _exit(2) ends the process at once; it runs no atexit
            // handler or destructor that could find state torn by the fork.
            unsafe { libc::_exit(0) };
        }
        match NsKey::of_this_thread() {
            Ok(here) if here.differs_from(self.harness_ns) => outcome,
            Ok(_) => Outcome::Runtime(Error::EndedInHarnessNs),
            Err(error) => Outcome::Runtime(error),
        }
    }
}

/// Fails closed unless the calling thread's namespace, keyed `here`, is not
/// the harness's.
pub(crate) fn ensure_isolated(here: NsKey, harness_ns: NsKey) -> Result<(), Error> {
    if !here.differs_from(harness_ns) {
        return Err(Error::NotIsolated {
            namespace: harness_ns.to_string(),
        });
    }
    Ok(())
}

/// Gives the calling thread a private mount namespace in which `/sys` is a
/// sysfs of the thread's network namespace, so `/sys/class/net` lists the
/// test's links, and `/proc/net` shows it too. `/proc/net` is
/// `/proc/self/net`, which shows the namespace of the process's main
/// thread (in thread mode, the host's); the thread's own `net` directory is
/// bound over it. Nothing propagates back to the host's mounts: every mount
/// is made private first. The mount namespace ends with the thread (thread
/// mode, helpers) or the process (process mode).
fn private_sysfs() -> Result<(), Error> {
    let failed = |step: &'static str| move |source| Error::Mount { step, source };
    unshare(CloneFlags::CLONE_NEWNS).map_err(failed(
        "give the test a private mount namespace (unshare(CLONE_NEWNS))",
    ))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(failed("make the test's mounts private"))?;
    mount(
        Some("sysfs"),
        "/sys",
        Some("sysfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(failed(
        "mount a sysfs of the test's network namespace on /sys",
    ))?;
    mount(
        Some("/proc/thread-self/net"),
        "/proc/self/net",
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(failed(
        "bind the test thread's /proc/thread-self/net over /proc/net",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::NsId;

    /// The check every mode makes before running a body refuses a thread
    /// that is in the harness's namespace.
    #[test]
    fn the_isolation_check_fails_closed() {
        let here = NsKey::of_this_thread().expect("this thread's key");
        let refused = ensure_isolated(here, here).expect_err("the same namespace must be refused");
        assert!(matches!(refused, Error::NotIsolated { .. }), "{refused}");
        assert!(
            refused.to_string().starts_with("refusing to run the body"),
            "{refused}"
        );
    }

    /// A key of another kind cannot tell the namespaces apart, so it never
    /// counts as isolated.
    #[test]
    fn keys_of_different_kinds_are_not_isolated() {
        let inode = NsKey::Inode(NsId { dev: 4, ino: 7 });
        assert!(!NsKey::Cookie(7).differs_from(inode));
        assert!(!inode.differs_from(NsKey::Cookie(7)));
        assert!(NsKey::Cookie(7).differs_from(NsKey::Cookie(8)));
        assert!(!NsKey::Cookie(7).differs_from(NsKey::Cookie(7)));
        assert!(inode.differs_from(NsKey::Inode(NsId { dev: 4, ino: 8 })));
    }
}
