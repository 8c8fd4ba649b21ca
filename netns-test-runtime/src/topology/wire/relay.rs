//! The relay of a wire: its hidden namespace, its two ports there, and the
//! thread that moves frames between them through each direction's
//! [`Direction`]. The relay ends when its test does ([`Shared::end`]), or
//! when a port fails (an end's namespace ended first).

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::poll::{PollFd, PollFlags};
use nix::sys::time::TimeSpec;

use super::decide::{Direction, Draws, VNET_HDR, fnv};
use super::fast::Fast;
use super::{Control, Shared};
use crate::error::Error;
use crate::netns::NetNs;
use crate::packet::port::{Frames, Port};

/// The most frames read from one port at once: a flood one way delays the
/// other way by one batch at most.
const BATCH: usize = 16;
/// The largest frame a port reads: a segmentation offload's super-frame
/// (64 KiB of IP packet and its Ethernet header), after its virtio header.
const FRAME_MAX: usize = VNET_HDR + 14 + 65_535 + 4;
/// The ports' names in the hidden namespace.
const PORTS: [&str; 2] = ["a", "b"];
/// How long a perfect direction must have sent the relay nothing before
/// the kernel takes it back: a frame still on its way to the relay would
/// be overtaken by the next, were the kernel to forward that one.
const QUIET: Duration = Duration::from_millis(1);

/// Makes the wire's hidden namespace, its two veth pairs and its ports, and
/// starts the relay.
pub(super) fn start(
    a: &NetNs,
    name: &str,
    b: &NetNs,
    peer_name: &str,
) -> Result<Arc<Shared>, Error> {
    let step = format!("add wire {name} <-> {peer_name}");
    let hidden = NetNs::hidden()?;
    // The ports send nothing of their own: no IPv6 (no router or neighbour
    // solicitation, no MLD), and no address.
    hidden.set_sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
    a.add_veth(name, &hidden, PORTS[0])?;
    if let Err(error) = b.add_veth(peer_name, &hidden, PORTS[1]) {
        let _ = a.delete_link(name);
        return Err(error);
    }
    let mut indexes = [0; 2];
    for (index, port) in indexes.iter_mut().zip(PORTS) {
        let _ = hidden.set_sysctl(&format!("net.ipv6.conf.{port}.disable_ipv6"), "1");
        // A port's MTU bounds the frames its end may send: the largest,
        // so that the ends' own MTUs decide, as on a veth pair.
        let _ = hidden.set_mtu(port, 65_535);
        hidden.set_link_up(port)?;
        *index = hidden.link(port)?.index;
    }
    let fast = Fast::open(&hidden, indexes)?;
    let opened = hidden.run(|| Ports::open(indexes, fast.as_ref()))?;
    let ports = opened.map_err(|errno| Error::Relay {
        step: step.clone(),
        reason: match errno {
            Errno::EPERM => "an AF_PACKET socket needs CAP_NET_RAW over the namespace",
            _ => "an AF_PACKET socket on the wire's ports could not be opened",
        },
    })?;
    // SAFETY: eventfd(2) takes integers and returns a new descriptor or -1.
    let wake = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if wake < 0 {
        return Err(Error::Relay {
            step,
            reason: "an eventfd to wake the relay could not be made",
        });
    }
    // SAFETY: the descriptor was just made, and nothing else owns it.
    let wake = unsafe { OwnedFd::from_raw_fd(wake) };
    let shared = Arc::new(Shared {
        ends: [name.to_owned(), peer_name.to_owned()],
        seed: crate::seed::current(),
        control: Mutex::new(Control::default()),
        taken: Condvar::new(),
        alive: AtomicBool::new(true),
        ending: AtomicBool::new(false),
        counters: [Arc::default(), Arc::default()],
        wake,
        offloads_off: [AtomicBool::new(false), AtomicBool::new(false)],
        generation: AtomicU64::new(0),
        fast: Mutex::new(fast),
        forwarded: [AtomicU64::new(0), AtomicU64::new(0)],
    });
    let relay = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("netns-test-wire".into())
        .spawn(move || {
            // In the hidden namespace, so that the relay is no thread of a
            // test's namespace; where it cannot enter, it stays where it
            // was made, which changes nothing of what it does.
            let _ = hidden.join_here();
            drop(hidden);
            relay_frames(&relay, ports);
        })
        .map_err(|source| Error::SpawnThread {
            step: "relaying a wire's frames",
            source,
        })?;
    super::tell_watcher(&shared);
    Ok(shared)
}

/// Where the relay reads each direction's frames, and where it sends them.
#[derive(Debug)]
struct Ports {
    /// Where the frames from `a`, and from `b`, are read: the taps `ra1`
    /// and `rb1` where the kernel has a fast path, else the ports.
    read: [Port; 2],
    /// Ports `a` and `b` that only send, where the relay does not read
    /// them; `None` where it does, and sends through `read`.
    send: Option<[Port; 2]>,
}

impl Ports {
    /// Opens the ports, in the hidden namespace: on the taps that `fast`
    /// names, or on the ports (`indexes`) where there is no fast path.
    fn open(indexes: [u32; 2], fast: Option<&Fast>) -> Result<Ports, Errno> {
        Ok(match fast {
            Some(fast) => Ports {
                read: [Port::open(fast.reads[0])?, Port::open(fast.reads[1])?],
                send: Some([
                    Port::open_to_send(indexes[0])?,
                    Port::open_to_send(indexes[1])?,
                ]),
            },
            None => Ports {
                read: [Port::open(indexes[0])?, Port::open(indexes[1])?],
                send: None,
            },
        })
    }

    /// The port to send out of towards end `to`.
    fn to(&self, to: usize) -> &Port {
        match &self.send {
            Some(send) => &send[to],
            None => &self.read[to],
        }
    }

    /// Closes them all, on the packet service's closers.
    fn close_later(self) {
        let send = self.send.into_iter().flatten();
        for port in self.read.into_iter().chain(send) {
            port.close_later();
        }
    }
}

/// Wakes the relay, to take a change.
pub(super) fn wake(wake: &OwnedFd) {
    let _ = nix::unistd::write(wake, &1u64.to_ne_bytes());
}

/// The relay's loop: until a port fails (its end's namespace ended).
///
/// While frames keep coming, it reads again at once; it waits in `ppoll`
/// only once a pass over both ports found none. Where the kernel has a fast
/// path, a direction goes through the relay only while it is not perfect:
/// a change that makes it imperfect switches it to the relay before the
/// change is taken; once it is perfect again and nothing of it is in
/// flight, it switches back to the kernel.
fn relay_frames(shared: &Shared, ports: Ports) {
    set_timer_slack();
    let wire = fnv(shared.name().as_bytes());
    let mut directions = [0, 1].map(|from| {
        Direction::new(
            Draws::new(shared.seed, wire, from as u64),
            Arc::clone(&shared.counters[from]),
        )
    });
    // Whether the kernel forwards each direction now: a wire starts
    // perfect, so wherever there is a fast path.
    let fast = shared.has_fast_path();
    let mut kernel = [fast; 2];
    let mut taken = 0;
    let mut frames = Frames::new(BATCH, FRAME_MAX);
    let mut at_once = Vec::new();
    let mut busy = false;
    // When the relay last read a frame from each end.
    let mut last_read = [None; 2];
    'relay: loop {
        if shared.ending.load(Ordering::Acquire) {
            break 'relay;
        }
        let generation = shared.generation.load(Ordering::Acquire);
        if generation != taken {
            let mut control = shared
                .control
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (direction, (conditions, partitioned)) in directions
                .iter_mut()
                .zip(control.conditions.into_iter().zip(control.partitioned))
            {
                direction.set(conditions);
                direction.partitioned = partitioned;
            }
            // Before the change is taken: the next frame meets it.
            let now = Instant::now();
            for (from, direction) in directions.iter().enumerate() {
                let wanted = to_kernel(kernel[from], direction, last_read[from], now);
                if fast && wanted != kernel[from] {
                    if shared.switch(from, wanted).is_err() {
                        break 'relay;
                    }
                    kernel[from] = wanted;
                }
            }
            control.taken = generation;
            taken = generation;
            drop(control);
            shared.taken.notify_all();
        }
        // When each direction the relay forwards goes back to the kernel.
        let back = [0, 1].map(|from| {
            let perfect = fast && !kernel[from] && directions[from].straight();
            perfect.then(|| last_read[from].map_or_else(Instant::now, |at: Instant| at + QUIET))
        });
        if !busy && !wait(shared, &ports, &directions, back) {
            break 'relay;
        }
        busy = false;
        for (from, direction) in directions.iter_mut().enumerate() {
            let to = ports.to(1 - from);
            match ports.read[from].receive(&mut frames) {
                Ok(0) => continue,
                Ok(_) => busy = true,
                Err(_) => break 'relay,
            }
            last_read[from] = Some(Instant::now());
            if direction.straight() {
                direction.passed(to.send_all(&mut frames));
                continue;
            }
            for frame in frames.iter() {
                direction.admit(frame.to_vec(), Instant::now(), &mut at_once);
                for frame in at_once.drain(..) {
                    if to.send(&frame).is_ok() {
                        direction.passed(1);
                    }
                }
            }
        }
        let now = Instant::now();
        for (from, direction) in directions.iter_mut().enumerate() {
            while let Some(frame) = direction.pop_due(now) {
                if ports.to(1 - from).send(&frame).is_ok() {
                    direction.passed(1);
                }
            }
            if fast && !kernel[from] && to_kernel(false, direction, last_read[from], now) {
                if shared.switch(from, true).is_err() {
                    break 'relay;
                }
                kernel[from] = true;
            }
        }
    }
    shared.alive.store(false, Ordering::Release);
    let _lock = shared
        .control
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    shared.taken.notify_all();
    drop(_lock);
    shared.close_fast_path();
    ports.close_later();
}

/// Whether the kernel is to forward `direction` (forwarded by the kernel
/// now, or not), whose last frame the relay read at `last_read`: while it
/// is perfect, and, to take it back from the relay, once nothing of it is
/// in flight and nothing came for [`QUIET`], so that nothing is overtaken.
/// A flood that never pauses stays with the relay.
fn to_kernel(
    kernel: bool,
    direction: &Direction,
    last_read: Option<Instant>,
    now: Instant,
) -> bool {
    let quiet = last_read.is_none_or(|at| now >= at + QUIET);
    direction.straight() && (kernel || quiet)
}

/// Waits until a port has a frame, a frame in flight is due, a direction
/// goes `back` to the kernel, or the relay is woken; `false` when a port
/// has failed.
fn wait(
    shared: &Shared,
    ports: &Ports,
    directions: &[Direction; 2],
    back: [Option<Instant>; 2],
) -> bool {
    let due = directions.iter().filter_map(Direction::next_due);
    let next = due.chain(back.into_iter().flatten()).min();
    let timeout =
        next.map(|next| TimeSpec::from_duration(next.saturating_duration_since(Instant::now())));
    // The ports that only send are watched for their failure alone.
    let mut fds: Vec<PollFd> = [&ports.read[0], &ports.read[1]]
        .into_iter()
        .map(|port| PollFd::new(port.as_fd(), PollFlags::POLLIN))
        .chain(std::iter::once(PollFd::new(
            shared.wake.as_fd(),
            PollFlags::POLLIN,
        )))
        .chain(
            ports
                .send
                .iter()
                .flatten()
                .map(|port| PollFd::new(port.as_fd(), PollFlags::empty())),
        )
        .collect();
    match nix::poll::ppoll(&mut fds, timeout, None) {
        Ok(_) | Err(Errno::EINTR) => {}
        Err(_) => return false,
    }
    let failed = PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL;
    let revents: Vec<PollFlags> = fds
        .iter()
        .map(|fd| fd.revents().unwrap_or(PollFlags::empty()))
        .collect();
    let ports_failed = revents[..2].iter().chain(&revents[3..]);
    if ports_failed
        .into_iter()
        .any(|revents| revents.intersects(failed))
    {
        return false;
    }
    if revents[2].contains(PollFlags::POLLIN) {
        let mut drained = [0u8; 8];
        let _ = nix::unistd::read(&shared.wake, &mut drained);
    }
    true
}

/// Asks for wakeups within a microsecond of their deadline, not the 50 µs
/// a thread's timers may otherwise be late by.
fn set_timer_slack() {
    // SAFETY: prctl(2) with PR_SET_TIMERSLACK takes an integer.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0) };
}
