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
//! process per test) would pay for the watchdog's fork in every test, some
//! 400 µs. There, handlers of the signals that end a process and that a
//! process can catch (SIGTERM, SIGINT, SIGHUP, SIGQUIT: what nextest sends
//! at a timeout, before SIGKILL after a grace, and what a terminal's Ctrl-C
//! and `timeout` send) do the watchdog's work in the process itself, from a
//! table of its test's namespaces, then end it by the same signal. A
//! SIGKILL cannot be caught: such a process killed so leaves what its test
//! started.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use nix::errno::Errno;
use nix::libc;
use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, sendmsg, socketpair,
};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, fork, getpid};

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
    /// Signal handlers, and [`TABLE`] (a process that runs one test).
    Signals,
}

static GUARD: OnceLock<Option<Guard>> = OnceLock::new();

/// The inodes of the running tests' namespaces, for the signal handlers;
/// 0 is a free entry.
static TABLE: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];

/// What the watchdog, or the table, holds for a running test, until dropped.
#[derive(Debug)]
pub(crate) enum Slot {
    /// A slot of the watchdog's.
    Sent(u32),
    /// An entry of [`TABLE`].
    Table(usize),
}

/// Starts what guards this process's tests, once: the watchdog, or, in a
/// process that runs `one_test`, the signal handlers. Where the watchdog
/// cannot start, says so once, and tests run without one.
pub(crate) fn start(one_test: bool) {
    GUARD.get_or_init(|| {
        if one_test {
            handle_signals();
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
            let inode = inode()?;
            let free = TABLE.iter().position(|entry| {
                entry
                    .compare_exchange(0, inode, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })?;
            return Some(Slot::Table(free));
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
            (Slot::Table(entry), _) => TABLE[*entry].store(0, Ordering::Release),
            _ => {}
        }
    }
}

/// The signals that end a process and that it can catch.
const ENDING: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];

/// Handles each of [`ENDING`] whose action is the default one (a handler
/// someone else installed is left in place), and the process's exit: a body
/// that timed out runs on, and may start processes after its test was
/// cleaned up.
fn handle_signals() {
    HANDLER.store(std::process::id() as i32, Ordering::Relaxed);
    // SAFETY: `kill_at_exit` is an `extern "C" fn()` that does not unwind,
    // as atexit(3) requires.
    unsafe { libc::atexit(kill_at_exit) };
    for signal in ENDING {
        // SAFETY: a zeroed sigaction is valid; sigaction(2) with a null new
        // action only reads the current one into `current`.
        let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let read = unsafe { libc::sigaction(signal, std::ptr::null(), &raw mut current) };
        if read != 0 || current.sa_sigaction != libc::SIG_DFL {
            continue;
        }
        // SAFETY: a zeroed sigaction is valid; the handler is an
        // `extern "C" fn(c_int)` that only makes system calls on its own
        // stack's buffers.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = kill_then_end as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&raw mut action.sa_mask);
            libc::sigaction(signal, &raw const action, std::ptr::null_mut());
        }
    }
}

/// The process exits: kills every process in the namespaces of [`TABLE`],
/// which holds those of tests still running (a body that timed out).
extern "C" fn kill_at_exit() {
    kill_in_table();
}

/// A signal that ends the process: kills every process in the namespaces
/// of [`TABLE`], then ends the process by the same signal.
extern "C" fn kill_then_end(signal: libc::c_int) {
    kill_in_table();
    // SAFETY: signal(2) back to the default action, and the signal itself:
    // system calls on integers.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

/// The process that installed the handlers: a process a body forks has
/// them too (and a copy of the table), and its exit, or a signal to it, is
/// its own.
static HANDLER: AtomicI32 = AtomicI32::new(0);

/// Kills every process in the namespaces of [`TABLE`], again until none is
/// found, in the process that installed the handlers: async-signal-safe.
fn kill_in_table() {
    // SAFETY: getpid(2) takes nothing and cannot fail.
    if unsafe { libc::getpid() } != HANDLER.load(Ordering::Relaxed) {
        return;
    }
    let mut inodes = [0u64; 64];
    let mut count = 0;
    for entry in &TABLE {
        let inode = entry.load(Ordering::Acquire);
        if inode != 0 {
            inodes[count] = inode;
            count += 1;
        }
    }
    if count == 0 {
        return;
    }
    forbid_new_processes();
    for _ in 0..64 {
        if kill_in(&inodes[..count]) == 0 {
            break;
        }
    }
}

/// Forbids every thread of this process to start a process or a thread
/// (a seccomp filter, on all threads at once): a body that runs on past its
/// timeout cannot start one more while the processes of its namespaces are
/// killed and the process ends. Async-signal-safe.
fn forbid_new_processes() {
    /// BPF: load the word at offset `k`; jump if equal to `k`; return `k`.
    const LOAD: u16 = 0x20;
    const JUMP_IF_EQUAL: u16 = 0x15;
    const RETURN: u16 = 0x06;
    #[cfg(target_arch = "x86_64")]
    const STARTS: [libc::c_long; 4] = [
        libc::SYS_clone,
        libc::SYS_clone3,
        libc::SYS_fork,
        libc::SYS_vfork,
    ];
    #[cfg(not(target_arch = "x86_64"))]
    const STARTS: [libc::c_long; 2] = [libc::SYS_clone, libc::SYS_clone3];
    let step = |code, jt, k| libc::sock_filter { code, jt, jf: 0, k };
    let mut program = [step(0, 0, 0); STARTS.len() + 3];
    // `seccomp_data.nr`, at offset 0.
    program[0] = step(LOAD, 0, 0);
    for (i, &number) in STARTS.iter().enumerate() {
        // To the last instruction, which refuses.
        let to_refuse = (STARTS.len() - i) as u8;
        program[1 + i] = step(JUMP_IF_EQUAL, to_refuse, number as u32);
    }
    program[STARTS.len() + 1] = step(RETURN, 0, libc::SECCOMP_RET_ALLOW);
    program[STARTS.len() + 2] = step(RETURN, 0, libc::SECCOMP_RET_ERRNO | libc::EAGAIN as u32);
    let filter = libc::sock_fprog {
        len: program.len() as libc::c_ushort,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: prctl(2) and seccomp(2) with integers and a pointer to
    // `filter`, which points at `program`; both live for the calls. A
    // refusal (an older kernel) leaves the process as it was.
    unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_TSYNC,
            &raw const filter,
        );
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

/// The decimal digits of `n`, right-aligned, and how many there are.
fn decimal(mut n: u32) -> ([u8; 10], usize) {
    let mut digits = [0u8; 10];
    let mut count = 0;
    loop {
        digits[9 - count] = b'0' + (n % 10) as u8;
        count += 1;
        n /= 10;
        if n == 0 {
            return (digits, count);
        }
    }
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

fn close(fd: RawFd) {
    if fd >= 0 {
        // SAFETY: `fd` is a descriptor the watchdog received and owns.
        unsafe { libc::close(fd) };
    }
}

/// The inode of the namespace `fd` is of: a namespace's own file, or a
/// socket made in it (through `SIOCGSKNS`).
fn namespace_of(fd: RawFd) -> Option<u64> {
    // SAFETY: a zeroed stat is valid; fstat(2) fills it.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `stat` is valid for writes.
    if unsafe { libc::fstat(fd, &raw mut stat) } != 0 {
        return None;
    }
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Some(stat.st_ino);
    }
    /// `SIOCGSKNS` (`linux/sockios.h`).
    const SIOCGSKNS: libc::c_ulong = 0x894C;
    // SAFETY: SIOCGSKNS takes no argument and returns a new descriptor.
    let ns = unsafe { libc::ioctl(fd, SIOCGSKNS as _) };
    if ns < 0 {
        return None;
    }
    // SAFETY: as above, for the namespace's descriptor.
    let found = unsafe { libc::fstat(ns, &raw mut stat) } == 0;
    close(ns);
    found.then_some(stat.st_ino)
}

/// Kills every process whose network namespace is one of `inodes`; returns
/// how many it found.
fn kill_in(inodes: &[u64]) -> usize {
    // SAFETY: open(2) on a NUL-terminated path.
    let proc = unsafe {
        libc::open(
            c"/proc".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if proc < 0 {
        return 0;
    }
    let mut killed = 0;
    let mut entries = [0u8; 8192];
    loop {
        // SAFETY: getdents64(2) fills at most `entries.len()` bytes.
        let length = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                proc,
                entries.as_mut_ptr(),
                entries.len(),
            )
        };
        if length <= 0 {
            break;
        }
        let mut at = 0;
        while at + 19 < length as usize {
            // struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2),
            // d_type (1), then the NUL-terminated name.
            let record = usize::from(u16::from_ne_bytes([entries[at + 16], entries[at + 17]]));
            if record == 0 {
                break;
            }
            let name = &entries[at + 19..(at + record).min(length as usize)];
            if let Some(pid) = pid_of(name) {
                if namespace_of_process(pid).is_some_and(|ns| inodes.contains(&ns)) {
                    // SAFETY: kill(2) with a pid and a signal.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    killed += 1;
                }
            }
            at += record;
        }
    }
    close(proc);
    killed
}

/// The pid a `/proc` entry's NUL-terminated name is, if it is one.
fn pid_of(name: &[u8]) -> Option<i32> {
    let mut pid: i32 = 0;
    let mut digits = 0;
    for &byte in name.iter().take_while(|&&byte| byte != 0) {
        if !byte.is_ascii_digit() {
            return None;
        }
        pid = pid.checked_mul(10)?.checked_add(i32::from(byte - b'0'))?;
        digits += 1;
    }
    (digits > 0).then_some(pid)
}

/// The inode of process `pid`'s network namespace, from the text of its
/// `/proc/<pid>/ns/net` link, `net:[<inode>]`.
fn namespace_of_process(pid: i32) -> Option<u64> {
    let mut path = [0u8; 40];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        path[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(b"/proc/");
    let (digits, length) = decimal(pid.unsigned_abs());
    put(&digits[10 - length..]);
    put(b"/ns/net\0");
    let mut link = [0u8; 32];
    // SAFETY: `path` is NUL-terminated; readlink(2) writes at most
    // `link.len()` bytes.
    let length =
        unsafe { libc::readlink(path.as_ptr().cast(), link.as_mut_ptr().cast(), link.len()) };
    let text = link.get(..usize::try_from(length).ok()?)?;
    let inode = text.strip_prefix(b"net:[")?.strip_suffix(b"]")?;
    let mut value: u64 = 0;
    for &byte in inode {
        if !byte.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(byte - b'0'))?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_names_and_links() {
        assert_eq!(pid_of(b"1234\0rest"), Some(1234));
        assert_eq!(pid_of(b"self\0"), None);
        assert_eq!(pid_of(b"\0"), None);
        let here = crate::procfs::netns_of_process(std::process::id() as i32);
        assert_eq!(namespace_of_process(std::process::id() as i32), here);
    }
}
