//! The one error type of the runtime.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;

use crate::diagnose::Diagnosis;

mod kind;

/// Everything that can go wrong while netns-test isolates a test or acts on a
/// namespace. Each variant names the step that failed, and its message says
/// what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `unshare(CLONE_NEWNET)` failed.
    #[error(
        "create a network namespace with unshare(CLONE_NEWNET): {source}; {}",
        unshare_remedy(*source)
    )]
    Unshare {
        /// Why the kernel refused.
        #[source]
        source: Errno,
    },
    /// A passing shortage (memory, threads, or a namespace limit that the
    /// tests running at once have reached) met this test: it fails, and
    /// decides nothing for later tests, which try again.
    #[error(
        "{step} met a passing shortage: {source}; this test fails and later tests try again; {}",
        unshare_remedy(*source)
    )]
    Shortage {
        /// What netns-test was doing.
        step: &'static str,
        /// What the kernel answered.
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
    #[error("{step}: {source}")]
    Netlink {
        /// The operation and its object, e.g. `bring lo up`.
        step: String,
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
    /// The body's thread ended in the harness's network namespace: the body
    /// moved it there, so it may have changed the host's network.
    #[error(
        "the body's thread ended in the harness's network namespace, so the body may have changed the host's network; did it call setns(2) with a saved /proc/self/ns/net? In a threaded process that file names the main thread's namespace, not the calling thread's: use /proc/thread-self/ns/net, or NetNs::enter, whose guard moves the thread back"
    )]
    EndedInHarnessNs,
    /// The namespace of a socket could not be found.
    #[error(
        "find the network namespace of a test's socket (ioctl SIOCGSKNS, Linux 4.9): {source}; it needs CAP_NET_ADMIN over the namespace"
    )]
    SocketNamespace {
        /// The errno.
        source: Errno,
    },
    /// A step of the packet capture failed.
    #[error("packet capture: {step}: {source}")]
    Capture {
        /// What was being done.
        step: &'static str,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// No directory could take capture files: neither the one asked for
    /// (or the default) nor the fallback in the system's temporary directory.
    #[error(
        "packet capture: the capture directory {} cannot be used: {problem}; set NETNS_TEST_CAPTURE_DIR to a directory that belongs to you and that no one else may write",
        dir.display()
    )]
    CaptureDir {
        /// The directory.
        dir: PathBuf,
        /// Why it cannot be used.
        #[source]
        problem: CaptureDirProblem,
    },
    /// libtest started the test a second time in one process.
    #[error(
        "`{test}` is registered with libtest twice, so it is listed and run twice: a `#[test]` above `#[netns_test]` adds a registration that `#[netns_test]` cannot see; remove that `#[test]`, or move it below `#[netns_test]`"
    )]
    RegisteredTwice {
        /// libtest's name of the test.
        test: &'static str,
    },
    /// A thread could not be started.
    #[error("start a thread for {step}: {source}")]
    SpawnThread {
        /// What the thread was for.
        step: &'static str,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A thread of netns-test ended without reporting what it did.
    #[error(
        "the thread for {step} ended without reporting; was it killed from outside? please report this as a bug otherwise"
    )]
    ThreadLost {
        /// What the thread was for.
        step: &'static str,
    },
    /// A file descriptor could not be duplicated.
    #[error("duplicate a file descriptor for {step}: {source}; is the process out of descriptors?")]
    Duplicate {
        /// What the copy was for.
        step: &'static str,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// No mode works on this machine: not thread mode, and neither helper nor
    /// process mode.
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
    /// Two helper processes in a row ended before the test's body started.
    #[error(
        "two helper processes in a row ended before the test started; run with NETNS_TEST_MODE=process to see what a child process reports"
    )]
    HelpersLost,
    /// A helper process was asked for a test that is not registered in it.
    #[error(
        "the helper process has no #[netns_test] registered as `{path}`; is the test binary being rebuilt while it runs?"
    )]
    TestNotRegistered {
        /// The test's path, `module_path!()::name`.
        path: String,
    },
    /// A message between the test process and its child or helper was
    /// malformed.
    #[error(
        "{step} was malformed; were the test binary and the process it started built alike? please report this as a bug otherwise"
    )]
    Malformed {
        /// Which message.
        step: &'static str,
    },
    /// The body's stdout and stderr could not be sent to the harness.
    #[error("send the body's stdout and stderr to the harness: {source}")]
    Redirect {
        /// Why the kernel refused.
        #[source]
        source: Errno,
    },
    /// The test ran longer than its timeout.
    #[error("timed out after {after:?}; {stopped}")]
    TimedOut {
        /// The timeout.
        after: Duration,
        /// What became of the body.
        stopped: Stopped,
    },
    /// The async runtime of an `async` test could not be built.
    #[error(
        "build the tokio runtime of the async test: {source}; is the process out of threads or descriptors?"
    )]
    AsyncRuntime {
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Building the async runtime of an `async` test panicked, as tokio
    /// does when it cannot start a worker thread (`RLIMIT_NPROC`, a
    /// cgroup's `pids.max`, memory for the threads' stacks).
    #[error(
        "build the tokio runtime of the async test: it panicked: {message}; is the process out of threads (RLIMIT_NPROC, a cgroup's pids.max) or memory? Fewer `threads`, or a higher limit, lets it start"
    )]
    AsyncRuntimePanicked {
        /// The panic's message.
        message: String,
    },
    /// Making the private sysfs of `#[netns_test(sysfs)]` failed.
    #[error(
        "{step}: {source}; `sysfs` needs CAP_SYS_ADMIN over the test's namespaces, which every mode gives"
    )]
    Mount {
        /// What netns-test was doing.
        step: &'static str,
        /// Why the kernel refused.
        #[source]
        source: Errno,
    },
    /// The view of `/etc` that shows a network's names to its hosts
    /// could not be made or entered.
    #[error(
        "{step}: {source}; a network's names need a private mount namespace, which needs CAP_SYS_ADMIN over the test's namespaces (every mode gives it) and an /etc/hosts to bind over"
    )]
    Names {
        /// What netns-test was doing.
        step: &'static str,
        /// Why the kernel refused.
        #[source]
        source: Errno,
    },
    /// A task of [`NetNs::spawn_async`](crate::NetNs::spawn_async) was
    /// aborted, or its namespace's runtime ended (its `NetNs` was dropped)
    /// before the task did.
    #[error(
        "a task of NetNs::spawn_async ended before its output: it was aborted, or the NetNs that ran it was dropped, which ends its runtime; keep the NetNs (or its Network) until the task is awaited"
    )]
    TaskCancelled,
    /// A pipe could not be made.
    #[error("{step}: make a pipe: {source}; is the process out of descriptors?")]
    Pipe {
        /// What netns-test was doing.
        step: &'static str,
        /// Why the kernel refused.
        #[source]
        source: Errno,
    },
    /// The kernel has no driver for a kind of link.
    #[error(
        "{step}: the kernel has no `{kind}` driver (Unknown device type, EOPNOTSUPP); load it with `modprobe {kind}` or build the kernel with it, or use veth and bridge links, which most kernels have"
    )]
    MissingDriver {
        /// The operation, e.g. `add dummy d0`.
        step: String,
        /// The link kind.
        kind: &'static str,
    },
    /// A link did not become ready in time.
    #[error(
        "{step}: not ready after {waited:?}; the kernel's deferred work (link watch, address setup) did not run in time: is the machine overloaded?"
    )]
    NotReady {
        /// The operation, e.g. `bring link a0 up`.
        step: String,
        /// How long it waited.
        waited: Duration,
    },
    /// A sysctl could not be read or written.
    #[error("{step}: {source}")]
    Sysctl {
        /// The operation, e.g. `write net.ipv4.ip_forward`.
        step: String,
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
    /// A name for [`NetNs::named`](crate::NetNs::named) that it does not
    /// take.
    #[error("`{name}` cannot name a network namespace: {reason}; e.g. `router` or `client-1`")]
    BadName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Conditions for a wire with a value out of range.
    #[error("{step}: `{field}`: {reason}")]
    BadConditions {
        /// The operation, e.g. `set conditions of wire a0 <-> b0`.
        step: String,
        /// The field, e.g. `loss`.
        field: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// A name that is neither end of a wire.
    #[error("`{end}` is no end of wire {wire}: name one of its two links")]
    NotAnEnd {
        /// The wire, `a0 <-> b0`.
        wire: String,
        /// The name given.
        end: String,
    },
    /// A wire's relay could not start, or cannot take a change.
    #[error("{step}: {reason}")]
    Relay {
        /// The operation, e.g. `partition of wire a0 <-> b0`.
        step: String,
        /// What went wrong, and what to do about it.
        reason: &'static str,
    },
    /// An nftables transaction or a ctnetlink request failed.
    #[error(
        "{step}: {source}; NAT needs nftables and connection tracking in the kernel (nf_tables, nft_nat, nft_masq, nft_ct, nf_conntrack_netlink: `modprobe` them if they are modules) and CAP_NET_ADMIN over the namespace, which every mode gives"
    )]
    Nftables {
        /// The operation, e.g. `add a NAT on wan0`.
        step: String,
        /// What the kernel or the socket said.
        #[source]
        source: NetlinkError,
    },
    /// A NAT asked for what it cannot be given.
    #[error("{step}: {reason}")]
    Nat {
        /// The operation, e.g. `forward udp port 4000 of wan0 to 192.168.1.10:4000`.
        step: String,
        /// What is wrong, and what to do about it.
        reason: &'static str,
    },
    /// A network declaration ([`Network::builder`](crate::Network::builder))
    /// that cannot be built, or a look-up in a built [`Network`](crate::Network)
    /// of something it does not have.
    #[error("{step}: {reason}")]
    Network {
        /// The declaration or look-up, e.g. `link alice to home9`.
        step: String,
        /// What is wrong, and what to do about it.
        reason: &'static str,
    },
    /// A MAC address that is not six two-digit hexadecimal octets.
    #[error(
        "`{text}` is not a MAC address; write six two-digit hexadecimal octets, e.g. `02:00:0a:00:00:01`"
    )]
    BadMac {
        /// The text given.
        text: String,
    },
    /// No socket served a port in time ([`NetNs::wait_for_listener`](crate::NetNs::wait_for_listener)).
    #[error(
        "no {protocol} socket served port {port} in {namespace} after {waited:?}; did the server start, and bind that port in this namespace (not in the test's own, or the host's)? {}",
        match sockets.is_empty() {
            true => "it has no TCP or UDP socket".to_owned(),
            false => format!("its sockets: {}", sockets.join("; ")),
        }
    )]
    NoListener {
        /// TCP or UDP.
        protocol: crate::Protocol,
        /// The port.
        port: u16,
        /// The namespace, as `Debug` shows it.
        namespace: String,
        /// How long it waited.
        waited: Duration,
        /// The sockets it had, as `ss` shows them.
        sockets: Vec<String>,
    },
    /// A sysctl name outside `net.*`, or one that is not a plain dotted name.
    #[error(
        "`{name}` is not a network sysctl: NetNs reads and writes only `net.*` names, such as `net.ipv4.ip_forward`"
    )]
    BadSysctl {
        /// The name given.
        name: String,
    },
    /// The child process or helper that ran the test reported a failure of
    /// netns-test there.
    #[error("in the process that ran the test: {message}")]
    InChild {
        /// The error, as that process displayed it.
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

/// What became of a body that ran past its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stopped {
    /// Its thread was left running (thread mode): a thread cannot be
    /// stopped from outside.
    LeftRunning,
    /// The test's own process was killed (process mode).
    Process,
    /// The helper process that ran it was killed (helper mode).
    Helper,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stopped::LeftRunning => {
                "the body's thread was left running, because a thread cannot be stopped from outside (use NETNS_TEST_MODE=helper or process to have timed-out tests killed)"
            }
            Stopped::Process => "the test's process was killed",
            Stopped::Helper => {
                "the helper process that ran it was killed, with everything the body started"
            }
        })
    }
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
    /// The last lines the child's own libtest printed.
    pub(crate) libtest_output: String,
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
        if !self.libtest_output.trim().is_empty() {
            write!(
                f,
                "\nthe child's libtest printed:\n{}",
                self.libtest_output.trim_end()
            )?;
        }
        Ok(())
    }
}

/// What to do when `unshare(CLONE_NEWNET)` fails with `errno`.
fn unshare_remedy(errno: Errno) -> &'static str {
    match errno {
        Errno::ENOSPC | Errno::EUSERS => {
            "a limit of namespaces is reached: fewer tests at once (--test-threads), or raise it: `sudo sysctl -w user.max_net_namespaces=15000 user.max_user_namespaces=15000`"
        }
        Errno::ENOMEM | Errno::EAGAIN | Errno::EMFILE | Errno::ENFILE => {
            "the kernel or the process is out of memory or descriptors: fewer tests at once (--test-threads)"
        }
        Errno::EINVAL => "this kernel has no network namespaces (CONFIG_NET_NS)",
        _ => {
            "this needs CAP_SYS_ADMIN: run as root, or leave NETNS_TEST_MODE unset (or `helper` or `process`) so that netns-test runs the body inside a user namespace of its own"
        }
    }
}

/// Why a directory cannot take capture files: netns-test writes only where
/// no one but the running user can plant or read a file.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureDirProblem {
    /// A system call on the directory failed.
    #[error("{step}: {source}")]
    Io {
        /// What was being done.
        step: &'static str,
        /// Why it failed.
        #[source]
        source: Errno,
    },
    /// The directory belongs to another user.
    #[error("it belongs to uid {owner}, not to this user (uid {user})")]
    NotOwned {
        /// Its owner.
        owner: u32,
        /// The running user.
        user: u32,
    },
    /// Others may write to the directory.
    #[error("its group or others may write to it (mode {mode:o})")]
    WritableByOthers {
        /// Its permission bits.
        mode: u32,
    },
    /// Its owner may not write to it.
    #[error("it is not writable (mode {mode:o})")]
    NotWritable {
        /// Its permission bits.
        mode: u32,
    },
}
