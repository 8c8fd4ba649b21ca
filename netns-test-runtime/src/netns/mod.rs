//! Network namespaces: identity, creation on a thread, and the [`NetNs`] handle.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::panic;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock, mpsc};
use std::thread::{self, JoinHandle};

use nix::errno::Errno;
use nix::sched::{CloneFlags, setns, unshare};

use crate::error::{Error, NetlinkError};
use crate::fault::{self, Fault};
use crate::names::Names;
use crate::netlink::{self, LazyRtnl, Rtnl};

mod enter;

pub use enter::EnterGuard;

/// `SIOCGSKNS` (`linux/sockios.h`, Linux 4.9): a socket's network namespace.
const SIOCGSKNS: u32 = 0x894C;

/// The calling thread's network namespace, as `/proc` names it.
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// What identifies a namespace: the device and inode of its nsfs file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NsId {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

/// What tells the calling thread's network namespace from another, cheaply:
/// the cookie the kernel gives every network namespace (`SO_NETNS_COOKIE`,
/// Linux 5.14), read from a socket made on the thread; on older kernels, the
/// inode of its nsfs file. The nsfs file is avoided where possible because
/// the kernel builds an inode for a fresh namespace the first time anyone
/// opens or even stats it, which costs about a fifth of the namespace itself
/// (the benchmark measured about 55 µs against a floor of about 300 µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NsKey {
    Cookie(u64),
    Inode(NsId),
}

impl NsKey {
    /// The key of the calling thread's network namespace.
    pub(crate) fn of_this_thread() -> Result<Self, Error> {
        Self::from_cookie(netlink::netns_cookie())
    }

    /// The key of the calling thread's network namespace, read from
    /// `socket`, which the thread made there: one socket fewer to make.
    pub(crate) fn of_this_thread_by(socket: &impl AsFd) -> Result<Self, Error> {
        Self::from_cookie(netlink::netns_cookie_of(socket.as_fd()))
    }

    /// The key for a cookie just read, or, where the kernel has none, the
    /// inode of the calling thread's namespace.
    fn from_cookie(cookie: Result<u64, NetlinkError>) -> Result<Self, Error> {
        match cookie {
            Ok(cookie) => Ok(NsKey::Cookie(cookie)),
            Err(NetlinkError::Kernel(Errno::ENOPROTOOPT)) => {
                let metadata = std::fs::metadata(THREAD_NETNS).map_err(|source| Error::Proc {
                    step: "read the calling thread's network namespace",
                    path: THREAD_NETNS.into(),
                    source,
                })?;
                Ok(NsKey::Inode(NsId {
                    dev: metadata.dev(),
                    ino: metadata.ino(),
                }))
            }
            Err(source) => Err(Error::Netlink {
                step: "read the cookie of the calling thread's network namespace".into(),
                source,
            }),
        }
    }
}

impl NsKey {
    /// Whether `self` and `other` name different namespaces for certain:
    /// keys of different kinds cannot tell, so they never do.
    pub(crate) fn differs_from(self, other: NsKey) -> bool {
        match (self, other) {
            (NsKey::Cookie(a), NsKey::Cookie(b)) => a != b,
            (NsKey::Inode(a), NsKey::Inode(b)) => a != b,
            _ => false,
        }
    }
}

impl std::fmt::Display for NsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NsKey::Cookie(cookie) => write!(f, "cookie {cookie}"),
            NsKey::Inode(id) => write!(f, "inode {}", id.ino),
        }
    }
}

/// Moves the calling thread into a new network namespace and settles it;
/// returns the rtnetlink socket that brought its `lo` up.
///
/// The namespace lives as long as a thread or a file descriptor holds it.
pub(crate) fn unshare_fresh() -> Result<Rtnl, Error> {
    unshare(CloneFlags::CLONE_NEWNET).map_err(|source| Error::Unshare { source })?;
    settle_fresh()
}

/// The forwarding settings a new namespace copies from the host's initial
/// one (IPv4 always; IPv6 where `net.core.devconf_inherit_init_net` says
/// so), whose kernel default is 0. `net.ipv4.ip_forward` is
/// `net.ipv4.conf.all.forwarding` under another name.
const FORWARDING: [&str; 4] = [
    "/proc/sys/net/ipv4/conf/all/forwarding",
    "/proc/sys/net/ipv4/conf/default/forwarding",
    "/proc/sys/net/ipv6/conf/all/forwarding",
    "/proc/sys/net/ipv6/conf/default/forwarding",
];

/// Brings `lo` up in the calling thread's fresh namespace, and gives it the
/// kernel's default forwarding, whatever the host's is: on a host that
/// forwards (a router, a Docker host), a new namespace would forward too.
///
/// Which settings differ is read once per process, in the first fresh
/// namespace (which holds the host's values); after that, only those are
/// written, so a host with the defaults costs nothing more. Returns the
/// rtnetlink socket that brought `lo` up.
pub(crate) fn settle_fresh() -> Result<Rtnl, Error> {
    static INHERITED: OnceLock<Vec<&'static str>> = OnceLock::new();
    let rtnl = netlink::loopback_up()?;
    if fault::injected(Fault::ForwardingHost) {
        for file in FORWARDING {
            let _ = std::fs::write(file, "1");
        }
    }
    let inherited = INHERITED.get_or_init(|| {
        FORWARDING
            .into_iter()
            .filter(|file| std::fs::read_to_string(file).is_ok_and(|value| value.trim() != "0"))
            .collect()
    });
    for file in inherited {
        std::fs::write(file, "0").map_err(|source| Error::Sysctl {
            step: format!("reset {file} to the kernel's default, 0"),
            source,
        })?;
    }
    Ok(rtnl)
}

/// What is told of each namespace [`NetNs::new`] makes, and the key it
/// is known by: a layer above (the failure reports) registers here, and
/// cannot fail the call.
static WATCHER: OnceLock<fn(&NetNs, NsKey)> = OnceLock::new();

/// Has `watcher` told of every namespace [`NetNs::new`] makes from now on;
/// the first watcher registered stays.
pub(crate) fn watch_new_namespaces(watcher: fn(&NetNs, NsKey)) {
    let _ = WATCHER.set(watcher);
}

/// A handle to a network namespace.
///
/// A network namespace belongs to threads, not to processes: each thread is in
/// exactly one, and the kernel keeps a namespace alive while a thread is in it
/// or a file descriptor refers to it. A `NetNs` holds such a descriptor, so
/// the namespace lives at least as long as the handle.
///
/// The methods never move the calling thread, except [`NetNs::enter`], whose
/// guard moves it back.
///
/// # Example
///
/// ```
/// use netns_test_runtime::NetNs;
///
/// # fn main() -> Result<(), netns_test_runtime::Error> {
/// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
/// let ns = NetNs::new()?; // a fresh namespace with `lo` up
/// let inode = ns.run(|| {
///     std::net::TcpListener::bind("127.0.0.1:80").expect("port 80 is free in a fresh namespace");
///     NetNs::current().map(|here| here.inode())
/// })??;
/// assert_eq!(inode, ns.inode());
/// assert_ne!(NetNs::current()?.inode(), ns.inode());
/// # Ok(())
/// # }
/// ```
pub struct NetNs {
    fd: OwnedFd,
    pub(crate) id: NsId,
    /// What reports and captures call it ([`NetNs::named`]).
    name: Option<Arc<str>>,
    /// The rtnetlink socket of the topology operations, opened inside.
    pub(crate) rtnl: LazyRtnl,
    /// One that the kernel checks strictly, for dumps of one link's or
    /// another namespace's addresses.
    pub(crate) strict_rtnl: LazyRtnl,
    /// Whether the links made in it skip duplicate address detection yet.
    pub(crate) ipv6_settled: AtomicBool,
    /// The names of the network it is a host of: its threads and commands
    /// see them.
    pub(crate) names: Option<Arc<Names>>,
    /// Its own async runtime, made at the first `spawn_async`.
    #[cfg(feature = "tokio")]
    pub(crate) runtime: NsRuntime,
}

impl std::fmt::Debug for NetNs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("NetNs");
        if let Some(name) = &self.name {
            debug.field("name", name);
        }
        debug.field("inode", &self.id.ino).finish()
    }
}

/// The longest name [`NetNs::named`] takes: with an interface's name after
/// it, it still reads as one word in a report or a capture.
const NAME_MAX: usize = 32;

impl NetNs {
    /// The network namespace of the calling thread.
    ///
    /// # Errors
    ///
    /// [`Error::Proc`] when `/proc/thread-self/ns/net` cannot be opened.
    pub fn current() -> Result<NetNs, Error> {
        Self::open(Path::new(THREAD_NETNS))
    }

    fn open(path: &Path) -> Result<NetNs, Error> {
        let proc_error = |source| Error::Proc {
            step: "open a network namespace",
            path: path.into(),
            source,
        };
        // `File::open` opens with O_CLOEXEC.
        let file = File::open(path).map_err(proc_error)?;
        Self::of_file(file).map_err(proc_error)
    }

    /// The handle of the namespace file `file`.
    fn of_file(file: File) -> std::io::Result<NetNs> {
        let metadata = file.metadata()?;
        Ok(NetNs {
            fd: file.into(),
            id: NsId {
                dev: metadata.dev(),
                ino: metadata.ino(),
            },
            name: None,
            rtnl: LazyRtnl::default(),
            strict_rtnl: LazyRtnl::default(),
            ipv6_settled: AtomicBool::new(false),
            names: None,
            #[cfg(feature = "tokio")]
            runtime: NsRuntime::default(),
        })
    }

    /// The network namespace a socket was made in (`SIOCGSKNS`), which
    /// needs CAP_NET_ADMIN over it.
    pub(crate) fn of_socket(socket: &impl AsFd) -> Result<NetNs, Error> {
        // SAFETY: SIOCGSKNS takes no argument and returns a new descriptor
        // or -1; the socket is open for the call.
        let fd = unsafe { nix::libc::ioctl(socket.as_fd().as_raw_fd(), SIOCGSKNS as _) };
        if fd < 0 {
            return Err(Error::SocketNamespace {
                source: Errno::last(),
            });
        }
        // SAFETY: the kernel just returned `fd`, open and owned by no one else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Self::of_file(File::from(fd)).map_err(|source| Error::Proc {
            step: "read the namespace of a socket",
            path: "SIOCGSKNS".into(),
            source,
        })
    }

    /// Another handle to the same namespace.
    pub(crate) fn try_clone(&self) -> std::io::Result<NetNs> {
        Ok(NetNs {
            fd: self.fd.try_clone()?,
            id: self.id,
            name: self.name.clone(),
            rtnl: LazyRtnl::default(),
            strict_rtnl: LazyRtnl::default(),
            ipv6_settled: AtomicBool::new(false),
            names: self.names.clone(),
            #[cfg(feature = "tokio")]
            runtime: NsRuntime::default(),
        })
    }

    /// Creates a fresh network namespace with `lo` up, without moving the
    /// calling thread.
    ///
    /// The namespace is made on a short-lived thread, so this needs
    /// CAP_SYS_ADMIN in the calling thread's user namespace: root in thread
    /// mode, or any test body in helper or process mode.
    ///
    /// Inside a `#[netns_test]`, the first 32 namespaces the test makes are
    /// kept open until the test ends, even once their handles are dropped,
    /// so that a failure report can show them (and a capture see them).
    ///
    /// # Errors
    ///
    /// [`Error::Unshare`] without CAP_SYS_ADMIN; [`Error::Netlink`] when `lo`
    /// cannot be brought up.
    pub fn new() -> Result<NetNs, Error> {
        Self::make(None)
    }

    /// Creates a fresh network namespace with `lo` up, as [`NetNs::new`]
    /// does, that failure reports, packet captures (`router/eth0`) and
    /// `Debug` call by `name`. A test's own namespace is called `test`;
    /// the namespaces it makes with [`NetNs::new`] are `ns2`, `ns3`, in
    /// order.
    ///
    /// A name is 1 to 32 ASCII letters, digits, `-`, `_` and `.`; it is
    /// only a label, so two namespaces may share one, though a report is
    /// clearer when they do not.
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::NetNs;
    ///
    /// let router = NetNs::named("router")?;
    /// assert_eq!(router.name(), Some("router"));
    /// assert!(format!("{router:?}").contains("router"));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::BadName`] for a name outside those rules; otherwise as
    /// [`NetNs::new`].
    pub fn named(name: &str) -> Result<NetNs, Error> {
        let bad = |reason| Error::BadName {
            name: name.to_owned(),
            reason,
        };
        if name.is_empty() || name.len() > NAME_MAX {
            return Err(bad("it must be 1 to 32 characters long"));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if !name.chars().all(allowed) {
            return Err(bad(
                "it may hold only ASCII letters, digits, `-`, `_` and `.`",
            ));
        }
        Self::make(Some(name.into()))
    }

    /// What reports, captures and `Debug` call this namespace, where it was
    /// made by [`NetNs::named`].
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// A fresh namespace that is no namespace of the test's: no report
    /// shows it, no capture sees it (a wire's relay's).
    pub(crate) fn hidden() -> Result<NetNs, Error> {
        let (ns, _) = Self::unshared()?;
        Ok(ns)
    }

    fn make(name: Option<Arc<str>>) -> Result<NetNs, Error> {
        let (mut ns, key) = Self::unshared()?;
        ns.name = name;
        if let Some(watcher) = WATCHER.get() {
            watcher(&ns, key);
        }
        Ok(ns)
    }

    /// A fresh namespace with `lo` up, and its key, made on a thread.
    fn unshared() -> Result<(NetNs, NsKey), Error> {
        raise_descriptor_limit();
        thread::Builder::new()
            .name("netns-test-new".into())
            .spawn(|| {
                let rtnl = unshare_fresh()?;
                Ok::<_, Error>((NetNs::current()?, NsKey::of_this_thread_by(&rtnl)?))
            })
            .map_err(|source| Error::SpawnThread {
                step: "creating a network namespace",
                source,
            })?
            .join()
            .unwrap_or_else(|payload| panic::resume_unwind(payload))
    }

    /// The inode number of the namespace, as `ls -iL /proc/self/ns/net` or
    /// `ip netns identify` would show it.
    pub fn inode(&self) -> u64 {
        self.id.ino
    }

    /// Moves the calling thread into this namespace.
    pub(crate) fn join_here(&self) -> Result<(), Error> {
        setns(&self.fd, CloneFlags::CLONE_NEWNET).map_err(|source| Error::Setns {
            inode: self.id.ino,
            source,
        })
    }

    /// Moves the calling thread, for good, into this namespace and, for a
    /// host of a [`Network`](crate::Network), into the view of its names.
    pub(crate) fn move_here(&self) -> Result<(), Error> {
        self.join_here()?;
        match &self.names {
            Some(names) => names.enter(),
            None => Ok(()),
        }
    }

    /// Runs `f` on a new thread inside this namespace and returns its value.
    ///
    /// The closure may borrow from the caller. A panic in it is propagated
    /// with its payload unchanged. On a host of a
    /// [`Network`](crate::Network), the thread resolves the network's
    /// names.
    ///
    /// # Errors
    ///
    /// [`Error::SpawnThread`], [`Error::Setns`] or [`Error::Names`]; `f`
    /// has not run then.
    pub fn run<F, T>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        thread::scope(|scope| {
            let joined = thread::Builder::new()
                .name("netns-test-run".into())
                .spawn_scoped(scope, || {
                    self.move_here()?;
                    Ok(f())
                })
                .map_err(|source| Error::SpawnThread {
                    step: "NetNs::run",
                    source,
                })?
                .join();
            joined.unwrap_or_else(|payload| panic::resume_unwind(payload))
        })
    }

    /// Starts a thread inside this namespace (on a host of a
    /// [`Network`](crate::Network), one that resolves its names).
    ///
    /// It returns once the thread is inside the namespace, so an error is
    /// reported here rather than inside the thread.
    ///
    /// # Errors
    ///
    /// [`Error::SpawnThread`], [`Error::Setns`] or [`Error::Names`]; `f`
    /// does not run then.
    pub fn spawn<F, T>(&self, f: F) -> Result<JoinHandle<T>, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let ns = self.try_clone().map_err(|source| Error::Duplicate {
            step: "NetNs::spawn, to hold the namespace while its thread enters it",
            source,
        })?;
        let (entered, outcome) = mpsc::sync_channel(1);
        let handle = thread::Builder::new()
            .name("netns-test-spawn".into())
            .spawn(move || {
                let joined = ns.move_here();
                let failed = joined.is_err();
                // `spawn` waits for this message, so the receiver is there.
                let _ = entered.send(joined);
                drop(ns);
                if failed {
                    // `spawn` has returned the error and dropped this thread's
                    // handle; end the thread without running `f` or printing.
                    panic::resume_unwind(Box::new("netns-test: setns failed"));
                }
                f()
            })
            .map_err(|source| Error::SpawnThread {
                step: "NetNs::spawn",
                source,
            })?;
        match outcome.recv() {
            Ok(Ok(())) => Ok(handle),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(Error::ThreadLost {
                step: "NetNs::spawn",
            }),
        }
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Raises the soft limit of open descriptors to the hard one, once, before
/// the first namespace is made: each namespace a test holds is a
/// descriptor, and the common soft limit of 1,024 (kept low for
/// `select(2)`, which nothing here uses) would end a test with a thousand
/// at `EMFILE`. As Go's and Java's runtimes do at start.
fn raise_descriptor_limit() {
    static RAISED: std::sync::Once = std::sync::Once::new();
    RAISED.call_once(|| {
        // SAFETY: a zeroed `struct rlimit` is valid.
        let mut limit: nix::libc::rlimit = unsafe { std::mem::zeroed() };
        // SAFETY: getrlimit(2) writes one `struct rlimit`, which `limit` is.
        if unsafe { nix::libc::getrlimit(nix::libc::RLIMIT_NOFILE, &raw mut limit) } != 0 {
            return;
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            // SAFETY: setrlimit(2) reads one `struct rlimit`, which `limit` is.
            unsafe { nix::libc::setrlimit(nix::libc::RLIMIT_NOFILE, &raw const limit) };
        }
    });
}

/// A namespace's runtime, made at its first `NetNs::spawn_async`; its
/// tasks end when the handle that made it is dropped.
#[cfg(feature = "tokio")]
#[derive(Debug, Default)]
pub(crate) struct NsRuntime(pub(crate) OnceLock<Ended>);

/// A runtime that stops without waiting when dropped, as dropping it
/// inside an async test must (`Runtime`'s own drop panics there).
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub(crate) struct Ended(pub(crate) Option<tokio::runtime::Runtime>);

#[cfg(feature = "tokio")]
impl Drop for Ended {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
