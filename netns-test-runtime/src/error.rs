//! The one error type of the runtime.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;

use crate::diagnose::Diagnosis;

/// Everything that can go wrong while netns-test isolates a test or acts on a
/// namespace. Each variant names the step that failed, and its message says
/// what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `unshare(CLONE_NEWNET)` failed.
    #[error(
        "create a network namespace with unshare(CLONE_NEWNET): {source}; this needs CAP_SYS_ADMIN: run as root, or let netns-test use process mode (NETNS_TEST_MODE=process)"
    )]
    Unshare {
        /// Why the kernel refused.
        #[source]
        source: Errno,
    },
    /// `setns(2)` into a network namespace failed.
    #[error(
        "move a thread into network namespace {inode} with setns(2): {source}; this needs CAP_SYS_ADMIN over that namespace"
    )]
    Setns {
        /// The inode of the namespace.
        inode: u64,
        /// Why the kernel refused.
        #[source]
        source: Errno,
    },
    /// An rtnetlink request failed.
    #[error("{operation}: {source}")]
    Netlink {
        /// The operation and its object, e.g. `bring lo up`.
        operation: String,
        /// What the kernel or the socket said.
        #[source]
        source: NetlinkError,
    },
    /// A file under `/proc` could not be read or opened.
    #[error("{step}: {path}: {source}; netns-test needs /proc mounted")]
    Proc {
        /// What netns-test was doing.
        step: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The body's thread was found in the harness's network namespace, so the
    /// body was not run.
    #[error(
        "refusing to run the body: its thread is still in the harness's network namespace ({namespace}), so it would touch the host's network; please report this as a bug"
    )]
    NotIsolated {
        /// The namespace the body would have shared, by cookie or inode.
        namespace: String,
    },
    /// A thread could not be started.
    #[error("start a thread for {purpose}: {source}")]
    SpawnThread {
        /// What the thread was for.
        purpose: &'static str,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Neither thread mode nor process mode works on this machine.
    #[error("{0}")]
    Unavailable(Diagnosis),
    /// An environment variable of netns-test has a value it does not understand.
    #[error("environment variable {name}={value:?} is not understood; use {expected}")]
    BadEnv {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// The values it takes.
        expected: &'static str,
    },
    /// A step of running a test in a child process failed.
    #[error("{step}: {source}")]
    Child {
        /// What netns-test was doing.
        step: &'static str,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The child process that ran the test ended without reporting how the
    /// body ended.
    #[error("{0}")]
    ChildEnded(ChildEnded),
    /// The test ran longer than its timeout.
    #[error(
        "timed out after {:?}; {}", after,
        if *left_running {
            "the body's thread was left running, because a thread cannot be stopped from outside (use NETNS_TEST_MODE=process to have timed-out tests killed)"
        } else {
            "the test's process was killed"
        }
    )]
    TimedOut {
        /// The timeout.
        after: Duration,
        /// Whether the body is still running (thread mode).
        left_running: bool,
    },
    /// Making the private sysfs of `#[netns_test(sysfs)]` failed.
    #[error(
        "{step}: {source}; `sysfs` needs CAP_SYS_ADMIN over the test's namespaces, which both modes give"
    )]
    Mount {
        /// What netns-test was doing.
        step: &'static str,
        /// Why the kernel refused.
        #[source]
        source: Errno,
    },
    /// The kernel has no driver for a kind of link.
    #[error(
        "{operation}: the kernel has no `{kind}` driver (Unknown device type, EOPNOTSUPP); load it with `modprobe {kind}` or build the kernel with it, or use veth and bridge links, which most kernels have"
    )]
    MissingDriver {
        /// The operation, e.g. `add dummy d0`.
        operation: String,
        /// The link kind.
        kind: &'static str,
    },
    /// A sysctl could not be read or written.
    #[error("{operation}: {source}")]
    Sysctl {
        /// The operation, e.g. `write net.ipv4.ip_forward`.
        operation: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// An IP prefix that is not `address/length`, or whose length does not
    /// fit its address.
    #[error("`{text}` is not an IP prefix: {reason}; write e.g. `10.0.0.1/24` or `fd00::1/64`")]
    BadPrefix {
        /// The text given.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A sysctl name outside `net.*`, or one that is not a plain dotted name.
    #[error(
        "`{name}` is not a network sysctl: NetNs reads and writes only `net.*` names, such as `net.ipv4.ip_forward`"
    )]
    BadSysctl {
        /// The name given.
        name: String,
    },
    /// The child process reported a failure to set up the test's namespace.
    #[error("in the test's child process: {message}")]
    InChild {
        /// The child's error, as it displayed it.
        message: String,
    },
}

/// A failure of one rtnetlink request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetlinkError {
    /// The kernel refused the request.
    #[error("{} ({:?})", .0.desc(), .0)]
    Kernel(Errno),
    /// The netlink socket failed.
    #[error("netlink socket: {0}")]
    Socket(#[source] io::Error),
    /// A reply could not be decoded, or was cut short.
    #[error("malformed netlink reply: {0}")]
    Malformed(String),
    /// A reply answered another request.
    #[error("netlink reply has sequence number {got}, expected {expected}")]
    WrongSequence {
        /// The request's sequence number.
        expected: u32,
        /// The reply's.
        got: u32,
    },
}

/// How a test's child process ended before it reported the body's outcome.
#[derive(Debug)]
pub struct ChildEnded {
    /// Which process: the test's child, or a helper.
    pub(crate) process: &'static str,
    /// Whether the child had started the body.
    pub(crate) started: bool,
    /// How it ended, e.g. `exited with status 0` or `was killed by SIGSEGV`.
    pub(crate) how: String,
    /// The last lines the child's test harness printed.
    pub(crate) harness_output: String,
}

impl std::fmt::Display for ChildEnded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.started {
            write!(
                f,
                "{} {} before the body finished (did the body call std::process::exit, abort, or crash?)",
                self.process, self.how
            )?;
        } else {
            write!(
                f,
                "{} {} without running the test (did libtest's filter find it? the test name may not match)",
                self.process, self.how
            )?;
        }
        if !self.harness_output.trim().is_empty() {
            write!(
                f,
                "\nthe child's test harness printed:\n{}",
                self.harness_output.trim_end()
            )?;
        }
        Ok(())
    }
}
