//! The packet service: one thread per process that waits on the packet
//! sockets of its clients and calls each client when its sockets are
//! readable, and a pool of closer threads for the sockets they are done
//! with.
//!
//! Nothing here exists until a client asks for it: no thread, no pipe.
//! [`start`] runs on a thread outside every test's namespace, before a
//! body, so that none of these threads counts among a test's. Closing a
//! packet socket waits for an RCU grace period (`synchronize_net()` in the
//! kernel's `packet_release`, unconditionally, some 15 ms), which no test
//! should wait for: [`close_later`] hands it to the closers. Closes on
//! several threads share grace periods, so the pool keeps up with tests
//! that finish every millisecond, and the queue to it is bounded, so that
//! pending closes hold a bounded number of descriptors.
//!
//! # Clients
//!
//! A client is one kind of work (the capture; later, a link relay), a
//! [`Client`] trait object, added once with [`add`], which hands back a
//! [`Mailbox`] for its own messages. At every wakeup the thread asks each
//! client which descriptors to wait on ([`Client::interest`], each with a
//! token of the client's choosing, and a deadline if it wants to be called
//! by then: the capture holds packets a few milliseconds to write them in
//! time order), polls them all with its wake-up pipe, and calls each client
//! with the tokens that are readable ([`Client::serve`]). The client owns
//! its descriptors and names them afresh each time, so none is polled after
//! its owner closed it and nothing has to be unregistered; its messages
//! wait in its own channel, typed by the client, so that the service knows
//! nothing of any client's work. A trait object rather than an enum of the
//! kinds: a new kind is added beside the others, touching neither this
//! file nor theirs, and a wakeup makes one virtual call per kind, not per
//! packet.
//!
//! The thread is fair and never stuck as long as each client reads at
//! most [`BATCH`] frames from each descriptor per call, and takes its
//! messages each time: a flood on one descriptor delays no other, and no
//! message, by more than one wakeup.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::{pipe2, read, write};

use crate::error::Error;

/// The most frames a client reads from one descriptor per call.
pub(crate) const BATCH: usize = 64;
/// The threads that close packet sockets, and how many sockets may wait
/// for them: beyond that, whoever closes one waits.
const CLOSERS: usize = 32;
const PENDING_CLOSES: usize = 64;
/// What errors name the thread by.
const STEP: &str = "reading packets";

/// One kind of work the packet thread does.
pub(crate) trait Client: Send {
    /// Names the descriptors to wait on, and when to be called at the
    /// latest, in `wait`.
    fn interest<'a>(&'a self, wait: &mut Wait<'a>);

    /// Called at every wakeup of the thread (its deadline, if it gave one,
    /// may have passed), with the tokens of this
    /// client's readable descriptors (a token once per descriptor), or
    /// the errno of a poll that failed: then nothing can be waited for.
    /// Reads at most [`BATCH`] frames from each descriptor, and takes
    /// its messages.
    fn serve(&mut self, ready: Result<&[u64], Errno>);
}

/// What the thread waits for, as its clients name it.
#[derive(Debug)]
pub(crate) struct Wait<'a> {
    fds: Vec<PollFd<'a>>,
    tokens: Vec<u64>,
    deadline: Option<Instant>,
}

impl<'a> Wait<'a> {
    /// Waits for `fd` to be readable; the client is told `token`.
    pub(crate) fn readable(&mut self, fd: BorrowedFd<'a>, token: u64) {
        self.fds.push(PollFd::new(fd, PollFlags::POLLIN));
        self.tokens.push(token);
    }

    /// Calls the client by `deadline`, whether anything is readable or not.
    pub(crate) fn by(&mut self, deadline: Instant) {
        self.deadline = Some(self.deadline.map_or(deadline, |d| d.min(deadline)));
    }

    /// How long to wait, rounded up to a millisecond.
    fn timeout(&self) -> PollTimeout {
        let Some(deadline) = self.deadline else {
            return PollTimeout::NONE;
        };
        let left = deadline.saturating_duration_since(Instant::now());
        u32::try_from(left.as_micros().div_ceil(1000))
            .ok()
            .and_then(|millis| PollTimeout::try_from(millis).ok())
            .unwrap_or(PollTimeout::MAX)
    }
}

/// The way to a client's messages: each one sent wakes the thread.
#[derive(Debug)]
pub(crate) struct Mailbox<M> {
    to: Sender<M>,
}

impl<M> Mailbox<M> {
    /// Sends `message` to the client, and wakes the thread.
    ///
    /// # Errors
    ///
    /// [`Error::ThreadLost`] when the thread is gone.
    pub(crate) fn send(&self, message: M) -> Result<(), Error> {
        self.to.send(message).map_err(|_| lost())?;
        wake()
    }
}

/// The process's packet thread: where to send it clients, and how to wake
/// it; and the queue to the closers.
struct Service {
    clients: Sender<Box<dyn Client>>,
    wake: OwnedFd,
    closing: SyncSender<OwnedFd>,
}

static SERVICE: OnceLock<Service> = OnceLock::new();

fn lost() -> Error {
    Error::ThreadLost { step: STEP }
}

/// Starts the packet thread and its closers, once per process. Called
/// outside every test's namespace, before a body: the threads run, and are
/// named, when it returns.
///
/// # Errors
///
/// [`Error::SpawnThread`], or the pipe that wakes the thread could not be
/// made.
pub(crate) fn start() -> Result<(), Error> {
    static STARTING: Mutex<()> = Mutex::new(());
    let _starting = STARTING.lock().unwrap_or_else(PoisonError::into_inner);
    if SERVICE.get().is_some() {
        return Ok(());
    }
    let (wake_r, wake) =
        pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(|errno| Error::Capture {
            step: "make the packet thread's wake-up pipe",
            source: errno.into(),
        })?;
    let (clients, added) = mpsc::channel();
    let (closing, to_close) = mpsc::sync_channel::<OwnedFd>(PENDING_CLOSES);
    let to_close = Arc::new(Mutex::new(to_close));
    let (started, ready) = mpsc::sync_channel(CLOSERS + 1);
    let spawn = |name: &str, stack: usize, body: Box<dyn FnOnce() + Send>| {
        let started = started.clone();
        thread::Builder::new()
            .name(name.into())
            .stack_size(stack)
            .spawn(move || {
                let _ = started.send(());
                body();
            })
            .map_err(|source| Error::SpawnThread { step: STEP, source })
    };
    for _ in 0..CLOSERS {
        let to_close = Arc::clone(&to_close);
        spawn(
            "netns-test-close",
            64 << 10,
            Box::new(move || {
                loop {
                    let next = to_close
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .recv();
                    // Closed with the queue unlocked: the other closers
                    // close theirs meanwhile, in the same grace period.
                    match next {
                        Ok(socket) => drop(socket),
                        Err(_) => return,
                    }
                }
            }),
        )?;
    }
    spawn(
        "netns-test-packet",
        2 << 20,
        Box::new(move || run(&added, &wake_r)),
    )?;
    // All run, and are named, before any test's body starts.
    for _ in 0..=CLOSERS {
        let _ = ready.recv();
    }
    let _ = SERVICE.set(Service {
        clients,
        wake,
        closing,
    });
    Ok(())
}

/// Adds a client, made of the receiving end of its messages; returns the
/// sending end. [`start`] must have run.
///
/// # Errors
///
/// [`Error::ThreadLost`] when the thread does not run.
pub(crate) fn add<M, C>(client: impl FnOnce(Receiver<M>) -> C) -> Result<Mailbox<M>, Error>
where
    C: Client + 'static,
{
    let service = SERVICE.get().ok_or_else(lost)?;
    let (to, messages) = mpsc::channel();
    service
        .clients
        .send(Box::new(client(messages)))
        .map_err(|_| lost())?;
    wake()?;
    Ok(Mailbox { to })
}

fn wake() -> Result<(), Error> {
    let service = SERVICE.get().ok_or_else(lost)?;
    let _ = write(&service.wake, &[0]);
    Ok(())
}

/// Closes `fd` on a closer, waiting while as many closes as the queue
/// holds are pending; here, where the closers do not run.
pub(crate) fn close_later(fd: OwnedFd) {
    match SERVICE.get() {
        Some(service) => {
            if let Err(mpsc::SendError(fd)) = service.closing.send(fd) {
                drop(fd);
            }
        }
        None => drop(fd),
    }
}

/// The packet thread: waits, then serves every client, forever.
fn run(added: &Receiver<Box<dyn Client>>, wake: &OwnedFd) {
    let mut clients: Vec<Box<dyn Client>> = Vec::new();
    loop {
        let (ready, polled) = {
            let mut wait = Wait {
                fds: vec![PollFd::new(wake.as_fd(), PollFlags::POLLIN)],
                tokens: vec![0],
                deadline: None,
            };
            let mut ends = Vec::with_capacity(clients.len());
            for client in &clients {
                client.interest(&mut wait);
                ends.push(wait.fds.len());
            }
            let timeout = wait.timeout();
            let polled = match poll(&mut wait.fds, timeout) {
                Err(Errno::EINTR) => Ok(0),
                polled => polled,
            };
            let readable: Vec<bool> = wait
                .fds
                .iter()
                .map(|fd| fd.any().unwrap_or(false))
                .collect();
            let mut start = 1;
            let ready: Vec<Vec<u64>> = ends
                .into_iter()
                .map(|end| {
                    let tokens = (start..end)
                        .filter(|&i| readable[i])
                        .map(|i| wait.tokens[i]);
                    start = end;
                    tokens.collect()
                })
                .collect();
            (ready, polled)
        };
        let mut drained = [0u8; 64];
        while read(wake, &mut drained).is_ok_and(|read| read > 0) {}
        // After the pipe is drained: a client or message sent since then
        // wakes the thread again.
        clients.extend(added.try_iter());
        for (index, client) in clients.iter_mut().enumerate() {
            let ready = ready.get(index).map_or(&[][..], Vec::as_slice);
            client.serve(polled.map(|_| ready));
        }
    }
}
