//! What kind of I/O error each [`Error`] is, for callers that handle
//! `std::io::Error`s: `?` converts one into the other.

use std::io;

use nix::errno::Errno;

use super::{CaptureDirProblem, Error, NetlinkError};

impl Error {
    /// The [`io::ErrorKind`] that fits this error best, as the conversion
    /// into [`io::Error`] gives it: a missing link or route is
    /// [`NotFound`](io::ErrorKind::NotFound), a refused privilege
    /// [`PermissionDenied`](io::ErrorKind::PermissionDenied), a link that
    /// exists already [`AlreadyExists`](io::ErrorKind::AlreadyExists), a
    /// timeout [`TimedOut`](io::ErrorKind::TimedOut), a kernel without a
    /// driver [`Unsupported`](io::ErrorKind::Unsupported), a bad name or
    /// value [`InvalidInput`](io::ErrorKind::InvalidInput).
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use std::io;
    /// use netns_test_runtime::NetNs;
    ///
    /// let ns = NetNs::new()?;
    /// let missing = ns.set_link_up("eth9").unwrap_err();
    /// assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    /// # Ok(())
    /// # }
    /// ```
    pub fn kind(&self) -> io::ErrorKind {
        use io::ErrorKind as Kind;
        match self {
            Error::Unshare { source }
            | Error::Shortage { source, .. }
            | Error::Setns { source, .. }
            | Error::SocketNamespace { source }
            | Error::Redirect { source }
            | Error::Mount { source, .. }
            | Error::Names { source, .. }
            | Error::Pipe { source, .. } => errno_kind(*source),
            Error::Netlink { source, .. } | Error::Nftables { source, .. } => match source {
                NetlinkError::Kernel(errno) => errno_kind(*errno),
                NetlinkError::Socket(error) => error.kind(),
                NetlinkError::Malformed(_) | NetlinkError::WrongSequence { .. } => {
                    Kind::InvalidData
                }
            },
            Error::Proc { source, .. }
            | Error::Capture { source, .. }
            | Error::SpawnThread { source, .. }
            | Error::Duplicate { source, .. }
            | Error::Child { source, .. }
            | Error::AsyncRuntime { source }
            | Error::Sysctl { source, .. } => source.kind(),
            Error::CaptureDir { problem, .. } => match problem {
                CaptureDirProblem::Io { source, .. } => errno_kind(*source),
                _ => Kind::PermissionDenied,
            },
            Error::TimedOut { .. } | Error::NotReady { .. } | Error::NoListener { .. } => {
                Kind::TimedOut
            }
            Error::MissingDriver { .. } | Error::Unavailable(_) => Kind::Unsupported,
            Error::BadEnv { .. }
            | Error::BadPrefix { .. }
            | Error::BadName { .. }
            | Error::BadMac { .. }
            | Error::BadConditions { .. }
            | Error::NotAnEnd { .. }
            | Error::BadSysctl { .. }
            | Error::Nat { .. }
            | Error::Network { .. } => Kind::InvalidInput,
            Error::Malformed { .. } => Kind::InvalidData,
            Error::AsyncRuntimePanicked { .. } => Kind::OutOfMemory,
            Error::NotIsolated { .. }
            | Error::EndedInHarnessNs
            | Error::RegisteredTwice { .. }
            | Error::ThreadLost { .. }
            | Error::ChildEnded(_)
            | Error::HelpersLost
            | Error::TaskCancelled
            | Error::TestNotRegistered { .. }
            | Error::InChild { .. }
            | Error::Relay { .. } => Kind::Other,
        }
    }
}

/// The kind of an error number: as the standard library reads it, but a
/// missing device (a link) or process (a route) is `NotFound` too.
fn errno_kind(errno: Errno) -> io::ErrorKind {
    match errno {
        Errno::ENODEV | Errno::ESRCH | Errno::ENXIO | Errno::EADDRNOTAVAIL => {
            io::ErrorKind::NotFound
        }
        Errno::EOPNOTSUPP => io::ErrorKind::Unsupported,
        errno => io::Error::from(errno).kind(),
    }
}

/// `?` in code that returns [`io::Result`]: the error keeps its message and
/// its sources, under the [`kind`](Error::kind) that fits it.
///
/// ```
/// use std::io;
/// use netns_test_runtime::NetNs;
///
/// fn two_namespaces() -> io::Result<(NetNs, NetNs)> {
///     Ok((NetNs::new()?, NetNs::new()?))
/// }
/// # if netns_test_runtime::diagnose().thread_mode() { two_namespaces().unwrap(); }
/// ```
impl From<Error> for io::Error {
    fn from(error: Error) -> io::Error {
        io::Error::new(error.kind(), error)
    }
}
