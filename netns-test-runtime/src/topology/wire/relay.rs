//! The relay of a wire: its hidden namespace, its two ports there, and the
//! thread that moves frames between them through each direction's
//! [`Direction`]. The relay ends when its test does ([`Shared::end`]), or
//! when a port fails (an end's namespace ended first).

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Instant;

use nix::errno::Errno;
use nix::libc;
use nix::poll::{PollFd, PollFlags};
use nix::sys::time::TimeSpec;

use super::decide::{Direction, Draws, VNET_HDR, fnv};
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
    let opened = hidden.run(|| -> Result<[Port; 2], Errno> {
        Ok([Port::open(indexes[0])?, Port::open(indexes[1])?])
    })?;
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

/// Wakes the relay, to take a change.
pub(super) fn wake(wake: &OwnedFd) {
    let _ = nix::unistd::write(wake, &1u64.to_ne_bytes());
}

/// The relay's loop: until a port fails (its end's namespace ended).
///
/// While frames keep coming, it reads again at once; it waits in `ppoll`
/// only once a pass over both ports found none.
fn relay_frames(shared: &Shared, ports: [Port; 2]) {
    set_timer_slack();
    let wire = fnv(shared.name().as_bytes());
    let mut directions = [0, 1].map(|from| {
        Direction::new(
            Draws::new(shared.seed, wire, from as u64),
            Arc::clone(&shared.counters[from]),
        )
    });
    let mut taken = 0;
    let mut frames = Frames::new(BATCH, FRAME_MAX);
    let mut at_once = Vec::new();
    let mut busy = false;
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
            control.taken = generation;
            taken = generation;
            drop(control);
            shared.taken.notify_all();
        }
        if !busy && !wait(shared, &ports, &directions) {
            break 'relay;
        }
        busy = false;
        for from in 0..2 {
            let (to, direction) = (1 - from, &mut directions[from]);
            match ports[from].receive(&mut frames) {
                Ok(0) => continue,
                Ok(_) => busy = true,
                Err(_) => break 'relay,
            }
            if direction.straight() {
                direction.passed(ports[to].send_all(&mut frames));
                continue;
            }
            for frame in frames.iter() {
                direction.admit(frame.to_vec(), Instant::now(), &mut at_once);
                for frame in at_once.drain(..) {
                    if ports[to].send(&frame).is_ok() {
                        direction.passed(1);
                    }
                }
            }
        }
        let now = Instant::now();
        for (from, direction) in directions.iter_mut().enumerate() {
            while let Some(frame) = direction.pop_due(now) {
                if ports[1 - from].send(&frame).is_ok() {
                    direction.passed(1);
                }
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
    for port in ports {
        port.close_later();
    }
}

/// Waits until a port has a frame, a frame in flight is due, or the relay
/// is woken; `false` when a port has failed.
fn wait(shared: &Shared, ports: &[Port; 2], directions: &[Direction; 2]) -> bool {
    let next = directions.iter().filter_map(Direction::next_due).min();
    let timeout =
        next.map(|next| TimeSpec::from_duration(next.saturating_duration_since(Instant::now())));
    let mut fds = [
        PollFd::new(ports[0].as_fd(), PollFlags::POLLIN),
        PollFd::new(ports[1].as_fd(), PollFlags::POLLIN),
        PollFd::new(shared.wake.as_fd(), PollFlags::POLLIN),
    ];
    match nix::poll::ppoll(&mut fds, timeout, None) {
        Ok(_) | Err(Errno::EINTR) => {}
        Err(_) => return false,
    }
    let failed = PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL;
    let revents = fds.map(|fd| fd.revents().unwrap_or(PollFlags::empty()));
    if revents[..2]
        .iter()
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
