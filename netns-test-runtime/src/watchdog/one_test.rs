//! In a process that runs one test (as each of cargo-nextest's does), the
//! watchdog's work is done without a fork: a fork of a test process costs
//! some 400 µs, more than the rest of what thread mode adds to a test.
//!
//! The running test's namespaces are in [`TABLE`], by inode. Handlers of the
//! signals that end a process and that it can catch (SIGTERM, SIGINT,
//! SIGHUP, SIGQUIT: what nextest sends at a timeout, before SIGKILL after a
//! grace, and what a terminal's Ctrl-C and `timeout` send), and of its exit,
//! kill every process in them, then end it.
//!
//! A SIGKILL cannot be caught: for it, a sentinel. It is a process, not a
//! thread, so it outlives the test process; but it is cloned sharing the
//! test process's memory and descriptor table (`CLONE_VM | CLONE_FILES`), so
//! cloning it copies nothing (some tens of µs), and it needs no messages:
//! it reads [`TABLE`] where the test process writes it, and the descriptor
//! table it shares keeps every namespace the test process held open until it
//! is done, so that no inode in the table is reused meanwhile. It waits for
//! the test process to end, on a pidfd, in its own session (a kill of the
//! test's process group does not reach it) with every signal blocked; then
//! kills every process in the namespaces of the table, and ends, which
//! closes the descriptors.
//!
//! Sharing memory, the sentinel must touch nothing another thread does. It
//! runs on a stack of its own, makes only system calls on its own buffers,
//! and reads the table; the one thing of the C library's it writes is
//! `errno`, in thread-local storage, which is why it is given the main
//! thread's, whose storage lasts as long as the process's memory: it writes
//! it only once the test process has ended (until then, its one system call
//! cannot fail), when nothing else reads it.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};

use nix::libc;

use super::sweep::kill_in;

/// The inodes of the running test's namespaces; 0 is a free entry.
pub(super) static TABLE: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];

/// Enters an inode into [`TABLE`]; the entry, or `None` where it is full.
pub(super) fn enter(inode: u64) -> Option<usize> {
    TABLE.iter().position(|entry| {
        entry
            .compare_exchange(0, inode, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    })
}

/// Frees an entry of [`TABLE`].
pub(super) fn leave(entry: usize) {
    TABLE[entry].store(0, Ordering::Release);
}

/// Guards the process's test: the signal handlers, the exit handler, and
/// the sentinel (where it can be started; the handlers stand alone
/// otherwise).
pub(super) fn guard() {
    handle_signals();
    start_sentinel();
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
    if TABLE.iter().all(|entry| entry.load(Ordering::Acquire) == 0) {
        return;
    }
    forbid_new_processes();
    sweep_table();
}

/// Kills every process in the namespaces of [`TABLE`], again until none is
/// found (a process may fork while it is found).
fn sweep_table() {
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

/// The main thread's thread pointer, read before `main` (0 where it was not,
/// or this architecture is not one the sentinel knows).
static MAIN_THREAD_POINTER: AtomicUsize = AtomicUsize::new(0);

/// Notes the calling thread's thread pointer as the main thread's: called
/// by the constructor that runs before `main`, on the main thread.
pub(crate) fn note_main_thread() {
    MAIN_THREAD_POINTER.store(thread_pointer(), Ordering::Relaxed);
}

/// The calling thread's thread pointer, as `CLONE_SETTLS` takes it.
#[cfg(target_arch = "x86_64")]
fn thread_pointer() -> usize {
    let pointer: usize;
    // SAFETY: on x86_64, the word at %fs:0 is the thread control block's
    // pointer to itself (glibc and musl alike), which is the thread pointer.
    unsafe {
        std::arch::asm!("mov {}, fs:0", out(reg) pointer, options(nostack, readonly, preserves_flags));
    }
    pointer
}

/// The calling thread's thread pointer, as `CLONE_SETTLS` takes it.
#[cfg(target_arch = "aarch64")]
fn thread_pointer() -> usize {
    let pointer: usize;
    // SAFETY: reads the thread pointer register, which every thread has.
    unsafe {
        std::arch::asm!("mrs {}, tpidr_el0", out(reg) pointer, options(nomem, nostack, preserves_flags));
    }
    pointer
}

/// Elsewhere, no sentinel.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn thread_pointer() -> usize {
    0
}

/// The sentinel's stack, guard page included.
const SENTINEL_STACK: usize = 256 * 1024;

/// Starts the sentinel, where the main thread's storage is known and the
/// kernel gives a pidfd; says so where it cannot.
fn start_sentinel() {
    let tls = MAIN_THREAD_POINTER.load(Ordering::Relaxed);
    if tls == 0 {
        return;
    }
    // SAFETY: pidfd_open(2) takes a pid and flags, and returns a new
    // descriptor (close-on-exec) or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    let Ok(pidfd) = RawFd::try_from(pidfd) else {
        return;
    };
    if pidfd < 0 {
        // Before Linux 5.3: the signal handlers stand alone.
        return;
    }
    // SAFETY: an anonymous private mapping, which nothing else refers to;
    // its lowest page becomes a guard page.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            SENTINEL_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        // SAFETY: `pidfd` was opened above and nothing else owns it.
        unsafe { libc::close(pidfd) };
        return;
    }
    // SAFETY: the lowest page of the mapping made above.
    unsafe { libc::mprotect(stack, 4096, libc::PROT_NONE) };
    // The sentinel starts with every signal blocked, this thread's mask
    // while it is cloned.
    // SAFETY: a zeroed sigset_t is valid, and filled below.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut before: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigfillset(3) on a local set; pthread_sigmask(3) on this
    // thread, restored right after the clone.
    unsafe {
        libc::sigfillset(&raw mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const all, &raw mut before);
    }
    // No exit signal: a child that sends none is no child to a wait for
    // any child (without `__WALL`), so thread mode's look for a body's
    // processes ([`crate::mode::reaper::has_children`]) does not see it. At
    // the test process's end it is reparented, and then sends SIGCHLD.
    let flags = libc::CLONE_VM | libc::CLONE_FILES | libc::CLONE_SETTLS;
    // The mapping is never unmapped, and the pidfd stays open, for the
    // process's life.
    // SAFETY: the child runs `sentinel` on the stack mapped above (its top
    // passed), with the main thread's thread pointer, touching only what
    // `sentinel` says.
    let cloned = unsafe {
        libc::clone(
            sentinel,
            stack.cast::<u8>().add(SENTINEL_STACK).cast(),
            flags,
            pidfd as usize as *mut libc::c_void,
            std::ptr::null_mut::<libc::pid_t>(),
            tls as *mut libc::c_void,
            std::ptr::null_mut::<libc::pid_t>(),
        )
    };
    // SAFETY: as above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &raw const before, std::ptr::null_mut()) };
    if cloned < 0 {
        // SAFETY: the mapping and descriptor made above, used by nothing.
        unsafe {
            libc::munmap(stack, SENTINEL_STACK);
            libc::close(pidfd);
        }
        eprintln!(
            "netns-test: cannot start the sentinel that ends a test's processes when its process is killed by SIGKILL ({}); other signals still end them",
            std::io::Error::last_os_error()
        );
    }
}

/// The sentinel: waits, in a session of its own, for the test process to
/// end, then kills every process in the namespaces of [`TABLE`].
extern "C" fn sentinel(pidfd: *mut libc::c_void) -> libc::c_int {
    let pidfd = pidfd as usize as RawFd;
    let mut polled = libc::pollfd {
        fd: pidfd,
        events: libc::POLLIN,
        revents: 0,
    };
    // setsid(2) cannot fail (a new process leads no group); ppoll(2)
    // without a timeout, every signal blocked, returns when the pidfd is
    // readable, at the test process's end.
    // SAFETY: raw system calls (`syscall(2)`, no C library wrapper that
    // writes thread state) on integers and on `polled`, on this stack.
    let ended = unsafe {
        libc::syscall(libc::SYS_setsid);
        libc::syscall(
            libc::SYS_ppoll,
            &raw mut polled,
            1,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<libc::sigset_t>(),
            0,
        )
    };
    if ended > 0 {
        sweep_table();
    }
    0
}
