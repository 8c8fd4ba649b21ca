//! In thread mode, what a body starts ends even when the test process is
//! killed.
//!
//! A body's processes are the test process's own children there (or its
//! adopted orphans: it is a subreaper), and a killed process kills nothing.
//! So the first thread-mode test of a process starts a watchdog: a process
//! of its own session (a `kill` of the test's process group does not reach
//! it), forked twice so that it is nobody's child here, holding nothing of
//! the test process but one end of a socket pair and a pidfd of it.
//!
//! While a test runs, the watchdog holds a descriptor of each of its network
//! namespaces, in a slot of its own: the rtnetlink socket that brought `lo`
//! up in the test's own, and the namespaces the test made that its evidence
//! keeps open anyway. Each is sent over the socket pair as it is made; the
//! watchdog is not woken for it (a wakeup per test would cost the test more
//! than the message), but reads what came every 20 ms, and at the end: a
//! descriptor in flight is held by the socket meanwhile. A slot is reused
//! by a later test, which closes what it held, so between tests the
//! watchdog may hold an ended test's namespace a little longer, but never
//! more namespaces than tests run at once. When the test process ends,
//! whatever the cause, the watchdog kills every process in a namespace it
//! holds, and ends. Holding the namespaces keeps their inode numbers from
//! being reused meanwhile, so it never mistakes another namespace for one
//! of them.
//!
//! The watchdog is forked from a threaded process and never execs, so all
//! it does is async-signal-safe: system calls on fixed buffers.
//!
//! A process that runs one test (as under cargo-nextest, which starts a
//! process per test) would pay for the watchdog's fork in every test; there
//! signal handlers and a sentinel that shares the process's memory do its
//! work instead ([`one_test`]).

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, OnceLock, PoisonError};

use nix::errno::Errno;
use nix::libc;
use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, sendmsg, socketpair,
};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, fork, getpid};

use sweep::{close, kill_in, namespace_of};

mod one_test;
mod sweep;

pub(crate) use one_test::note_main_thread;

/// How many descriptors the watchdog holds at most: the namespaces of the
/// tests running at once, 33 each at most (its own and the 32 its evidence
/// keeps). Past that a test's namespaces are not watched.
const SLOTS: usize = 4096;

/// A message: hold the descriptor that comes with it in a slot, closing
/// what the slot held.
const HOLD: u32 = 1;

/// How long a message is: what to do, and the slot.
const MESSAGE: usize = 8;

/// How often the watchdog reads what it was sent.
const READ_EVERY_MS: i32 = 20;

/// The test process's end of the watchdog's socket, and the free slots.
struct Watchdog {
    socket: OwnedFd,
    slots: Mutex<Slots>,
}

struct Slots {
    next: u32,
    free: Vec<u32>,
}

/// What guards this process's tests.
enum Guard {
    /// A watchdog process (a process that runs several tests).
    Watchdog(Watchdog),
    /// Signal handlers and a sentinel (a process that runs one test).
    Signals,
}

static GUARD: OnceLock<Option<Guard>> = OnceLock::new();

/// What the watchdog, or the table, holds for a running test, until dropped.
#[derive(Debug)]
pub(crate) enum Slot {
    /// A slot of the watchdog's.
    Sent(u32),
    /// An entry of the table of a process that runs one test.
    Table(usize),
}

/// Starts what guards this process's tests, once: the watchdog, or, in a
/// process that runs `one_test`, the signal handlers. Where the watchdog
/// cannot start, says so once, and tests run without one.
pub(crate) fn start(one_test: bool) {
    GUARD.get_or_init(|| {
        if one_test {
            one_test::guard();
            return Some(Guard::Signals);
        }
        match spawn() {
            Ok(watchdog) => Some(Guard::Watchdog(watchdog)),
            Err(errno) => {
                eprintln!(
                    "netns-test: cannot start the watchdog that ends a thread-mode test's processes when the test process is killed ({errno}); they end with each test as usual"
                );
                None
            }
        }
    });
}

/// Has the watchdog hold `fd` while a test runs: a socket made in the
/// test's namespace, or a namespace's file, whose inode `inode` reads (for
/// the table of a process that runs one test). `None` where nothing guards
/// this process's tests (helper and process modes have a reaper instead),
/// or it is full.
pub(crate) fn watch(fd: BorrowedFd<'_>, inode: impl FnOnce() -> Option<u64>) -> Option<Slot> {
    let watchdog = match GUARD.get()?.as_ref()? {
        Guard::Watchdog(watchdog) => watchdog,
        Guard::Signals => {
            return one_test::enter(inode()?).map(Slot::Table);
        }
    };
    let slot = {
        let mut slots = watchdog
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match slots.free.pop() {
            Some(slot) => slot,
            None if (slots.next as usize) < SLOTS => {
                slots.next += 1;
                slots.next - 1
            }
            None => return None,
        }
    };
    let mut message = [0u8; MESSAGE];
    message[..4].copy_from_slice(&HOLD.to_ne_bytes());
    message[4..].copy_from_slice(&slot.to_ne_bytes());
    let fds = [fd.as_raw_fd()];
    let rights = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(&message)];
    // The socket's buffer holds what comes in 20 ms many times over; where
    // it is full, this waits for the watchdog's next read.
    let sent = sendmsg::<()>(
        watchdog.socket.as_raw_fd(),
        &iov,
        &rights,
        MsgFlags::MSG_NOSIGNAL,
        None,
    );
    // Where the watchdog is gone, nothing is watched any more.
    sent.is_ok().then_some(Slot::Sent(slot))
}

impl Drop for Slot {
    /// The test has ended: the slot is free for a later test, which closes
    /// what it held.
    fn drop(&mut self) {
        match (self, GUARD.get().and_then(Option::as_ref)) {
            (Slot::Sent(slot), Some(Guard::Watchdog(watchdog))) => watchdog
                .slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .free
                .push(*slot),
            (Slot::Table(entry), _) => one_test::leave(*entry),
            _ => {}
        }
    }
}

/// Forks the watchdog, twice, and returns this process's end of its socket.
fn spawn() -> Result<Watchdog, Errno> {
    // A stream: a sequenced packet socket queues only
    // `net.unix.max_dgram_qlen` messages (10 by default) before the sender
    // waits. Each message carries a descriptor, so none is read together
    // with the next.
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    let parent = getpid().as_raw();
    // SAFETY: pidfd_open(2) takes a pid and flags, and returns a new
    // descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, parent, 0) };
    // Without pidfds (before Linux 5.3), the end of the socket tells.
    let pidfd = RawFd::try_from(pidfd).unwrap_or(-1);
    // SAFETY: the child runs only async-signal-safe code (system calls on
    // fixed buffers in `intermediate` and `watch_over`) until it exits.
    let forked = unsafe { fork() };
    match forked {
        Ok(ForkResult::Child) => intermediate(theirs.as_raw_fd(), pidfd),
        Ok(ForkResult::Parent { child }) => {
            if pidfd >= 0 {
                // SAFETY: `pidfd` is a descriptor this process just opened
                // and nothing else owns.
                drop(unsafe { OwnedFd::from_raw_fd(pidfd) });
            }
            drop(theirs);
            // The intermediate exits at once, once it has forked.
            while waitpid(child, None) == Err(Errno::EINTR) {}
            Ok(Watchdog {
                socket: ours,
                slots: Mutex::new(Slots {
                    next: 0,
                    free: Vec::new(),
                }),
            })
        }
        Err(errno) => {
            if pidfd >= 0 {
                // SAFETY: as above.
                drop(unsafe { OwnedFd::from_raw_fd(pidfd) });
            }
            Err(errno)
        }
    }
}

/// In the first child: forks the watchdog, and exits, so that the watchdog
/// is no child of the test process (whose children are a body's).
fn intermediate(socket: RawFd, pidfd: RawFd) -> ! {
    // SAFETY: this process has one thread; the grandchild runs only
    // async-signal-safe code, as this one does.
    if let Ok(ForkResult::Child) = unsafe { fork() } {
        watch_over(socket, pidfd);
    }
    // SAFETY: _exit(2) ends the process without running anything of the
    // test process's (atexit handlers, destructors).
    unsafe { libc::_exit(0) }
}

/// The watchdog: holds the namespaces it is sent until the test process
/// ends, then kills every process in them, and exits.
fn watch_over(socket: RawFd, pidfd: RawFd) -> ! {
    // SAFETY: system calls on integers and on static strings: its own
    // session, no signal that would end it before it acts, and no
    // directory held.
    unsafe {
        libc::setsid();
        for signal in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGPIPE,
        ] {
            libc::signal(signal, libc::SIG_IGN);
        }
        libc::chdir(c"/".as_ptr());
    }
    // Nothing of the test process open but these two: its stdout above
    // all, which whoever reads the test's output waits on.
    keep_only(socket.min(pidfd), socket.max(pidfd));
    let mut held = [-1 as RawFd; SLOTS];
    loop {
        // The test process's end, or the end of the socket where there is
        // no pidfd (before Linux 5.3).
        let mut polled = match pidfd >= 0 {
            true => libc::pollfd {
                fd: pidfd,
                events: libc::POLLIN,
                revents: 0,
            },
            false => libc::pollfd {
                fd: socket,
                events: libc::POLLRDHUP,
                revents: 0,
            },
        };
        // SAFETY: `polled` is one pollfd structure.
        let ended = unsafe { libc::poll(&raw mut polled, 1, READ_EVERY_MS) } > 0;
        loop {
            match receive(socket) {
                Received::Hold(slot, fd) => match held.get_mut(slot as usize) {
                    Some(held) => {
                        close(*held);
                        *held = fd;
                    }
                    None => close(fd),
                },
                Received::Nothing => {}
                Received::NoMore => break,
            }
        }
        if ended {
            break;
        }
    }
    let mut inodes = [0u64; SLOTS];
    let mut count = 0;
    for &fd in held.iter().filter(|&&fd| fd >= 0) {
        if let Some(inode) = namespace_of(fd) {
            inodes[count] = inode;
            count += 1;
        }
    }
    if count > 0 {
        // A process may fork while it is found: again, until none is left.
        for _ in 0..64 {
            if kill_in(&inodes[..count]) == 0 {
                break;
            }
        }
    }
    // SAFETY: _exit(2) ends the process, running nothing of the test
    // process's.
    unsafe { libc::_exit(0) }
}

/// Closes every descriptor but `low` and `high` (`low` may be -1: none).
fn keep_only(low: RawFd, high: RawFd) {
    let close_range = |first: RawFd, last: libc::c_uint| {
        // SAFETY: close_range(2) closes descriptors of this process; the
        // two kept are outside the range.
        unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    };
    let below = |fd: RawFd| libc::c_uint::try_from(fd - 1).ok();
    if let Some(last) = below(low.max(0)).filter(|_| low > 0) {
        close_range(0, last);
    }
    if low >= 0 && high > low + 1 {
        if let Some(last) = below(high) {
            close_range(low + 1, last);
        }
    }
    close_range(high + 1, libc::c_uint::MAX);
}

enum Received {
    /// Hold this descriptor in the slot.
    Hold(u32, RawFd),
    /// A message that says nothing this watchdog knows.
    Nothing,
    /// Nothing more to read now, or ever.
    NoMore,
}

/// Receives one message, and the descriptor it carries, without waiting.
fn receive(socket: RawFd) -> Received {
    let mut message = [0u8; MESSAGE];
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: message.as_mut_ptr().cast(),
        iov_len: message.len(),
    };
    // SAFETY: a zeroed msghdr is valid; its pointers are set below.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = &raw mut iov;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `header` points at `iov`, `message` and `control`, which live
    // for the call.
    let received = unsafe {
        libc::recvmsg(
            socket,
            &raw mut header,
            libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT,
        )
    };
    if received <= 0 {
        return Received::NoMore;
    }
    let mut fd = -1;
    // SAFETY: the kernel filled `control` with `msg_controllen` bytes of
    // control messages, which CMSG_FIRSTHDR and CMSG_DATA walk.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&raw const header);
        if !cmsg.is_null()
            && (*cmsg).cmsg_level == libc::SOL_SOCKET
            && (*cmsg).cmsg_type == libc::SCM_RIGHTS
        {
            fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
        }
    }
    let word = |at: usize| {
        u32::from_ne_bytes([
            message[at],
            message[at + 1],
            message[at + 2],
            message[at + 3],
        ])
    };
    match (received as usize, word(0), fd) {
        (MESSAGE, HOLD, fd) if fd >= 0 => Received::Hold(word(4), fd),
        (_, _, fd) => {
            close(fd);
            Received::Nothing
        }
    }
}
