//! Wires: links between two namespaces whose conditions (delay, jitter,
//! loss, duplication, reordering, rate, partitions) can change at any time,
//! on every kernel, rootless included: no `netem`, no TUN, no `tc` program.
//!
//! A wire is two veth pairs through a hidden namespace of its own: `a0` in
//! one namespace is paired with a port in the hidden one, and so is `b0` in
//! the other. A relay thread moves the frames between the two ports, over
//! `AF_PACKET` sockets with `PACKET_VNET_HDR` (so that a segmentation
//! offload's super-frame crosses whole, with its checksum state), and
//! applies each direction's [`Conditions`] ([`decide`]). The hidden
//! namespace has no addresses and no IPv6, so it sends nothing of its own;
//! it is no namespace of the test's (reports and captures show the two
//! ends, not the relay). The relay runs on a thread of its own per wire,
//! not on the packet service's thread, so that a wire's timing never waits
//! on a capture's file; it ends, closing the hidden namespace (and with it
//! both veth pairs), when its test ends, or sooner when either end's
//! namespace ends (its port disappears with its veth pair).
//!
//! Where the kernel has `clsact`, `u32` and `mirred`, a perfect direction
//! does not go through the relay at all: a filter on its port redirects
//! each frame to the other port, in the kernel, with no copy; the relay
//! takes a direction only while it has conditions or a partition
//! ([`fast`]). Elsewhere the relay reads the ports themselves.
//!
//! Where a direction's conditions draw per packet (loss, duplication,
//! reordering), the sending end's TCP and generic segmentation offloads
//! are turned off ([`offload`]), so that each packet draws alone rather
//! than a super-frame of up to 45; they are turned back on when the
//! direction draws nothing again.

mod conditions;
mod decide;
mod fast;
mod offload;
mod relay;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

pub use conditions::Conditions;
pub(crate) use decide::Counters;

use crate::error::Error;
use crate::netns::NetNs;

/// How long a change of conditions waits for the relay to take it.
const APPLY_WITHIN: Duration = Duration::from_secs(5);

/// A link between two namespaces whose conditions can change at any time:
/// see [`NetNs::add_wire`].
///
/// Dropping a `Wire` leaves the link, and its conditions, in place until
/// its namespaces end.
#[derive(Debug)]
pub struct Wire {
    shared: Arc<Shared>,
    /// The ends' namespaces, to turn their offloads off and on. The handle
    /// holds them, not what the relay shares: the relay ends when they do.
    namespaces: [NetNs; 2],
}

/// What the handle and the relay share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The two ends' names, `a` first.
    pub(crate) ends: [String; 2],
    /// The test's seed.
    pub(crate) seed: u64,
    control: Mutex<Control>,
    /// The relay has taken a change, or ended.
    taken: Condvar,
    /// The relay still runs.
    alive: AtomicBool,
    /// The relay is to end: its test has.
    ending: AtomicBool,
    /// What crossed each way: from `a`, from `b`.
    pub(crate) counters: [Arc<Counters>; 2],
    /// Wakes the relay (an eventfd).
    wake: std::os::fd::OwnedFd,
    /// Whether each end's segmentation offloads are off now.
    offloads_off: [AtomicBool; 2],
    /// Changes made, and taken by the relay.
    generation: AtomicU64,
    /// The kernel's fast path, while the relay runs, where there is one.
    fast: Mutex<Option<fast::Fast>>,
    /// The frames the kernel forwarded from each end, as last read.
    forwarded: [AtomicU64; 2],
}

/// What a wire is set to, each way: from `a`, from `b`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Control {
    pub(crate) conditions: [Conditions; 2],
    pub(crate) partitioned: [bool; 2],
    /// The generation the relay has taken.
    pub(crate) taken: u64,
}

/// What is told of each wire made: a layer above (the failure reports)
/// registers here.
static WATCHER: std::sync::OnceLock<fn(&Arc<Shared>)> = std::sync::OnceLock::new();

/// Has `watcher` told of every wire made from now on; the first watcher
/// registered stays.
pub(crate) fn watch_new_wires(watcher: fn(&Arc<Shared>)) {
    let _ = WATCHER.set(watcher);
}

/// Tells the watcher of a wire just made.
fn tell_watcher(shared: &Arc<Shared>) {
    if let Some(watcher) = WATCHER.get() {
        watcher(shared);
    }
}

/// Wires.
impl NetNs {
    /// Makes a wire from `name` here to `peer_name` in `peer`: two Ethernet
    /// ends, as [`NetNs::add_veth`] makes, whose conditions
    /// ([`Wire::set_conditions`]) can change at any time, and which can be
    /// cut ([`Wire::partition`]) and healed while connections are open.
    /// The ends are down; give them addresses and bring them up as for any
    /// link. A new wire is perfect: where the kernel has `clsact`, `u32`
    /// and `mirred`, its frames then cross in the kernel, adding a few
    /// microseconds to a round trip; elsewhere its relay adds some tens of
    /// microseconds, and carries about half of what a veth pair does.
    ///
    /// Every draw is made from the test's [`seed`](crate::seed), so a
    /// failing test replays exactly with the seed its report prints.
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use std::time::Duration;
    /// use netns_test_runtime::{Conditions, NetNs};
    ///
    /// let (a, b) = (NetNs::new()?, NetNs::new()?);
    /// let wire = a.add_wire("a0", &b, "b0")?;
    /// wire.set_conditions(Conditions::new().delay(Duration::from_millis(40)).loss(0.02))?;
    /// wire.set_conditions_from("a0", Conditions::new().rate(1_000_000))?; // a0 -> b0 only
    /// wire.partition()?; // every packet dropped, both ways; the links stay up
    /// wire.heal()?; // back to the conditions set last
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`] as [`NetNs::add_veth`] (e.g. `EEXIST`);
    /// [`Error::Relay`] when the relay cannot open its sockets.
    pub fn add_wire(&self, name: &str, peer: &NetNs, peer_name: &str) -> Result<Wire, Error> {
        let shared = relay::start(self, name, peer, peer_name)?;
        let clone = |ns: &NetNs| {
            ns.try_clone().map_err(|source| Error::Duplicate {
                step: "keep a wire's namespaces",
                source,
            })
        };
        Ok(Wire {
            shared,
            namespaces: [clone(self)?, clone(peer)?],
        })
    }
}

impl Wire {
    /// Sets the conditions of both directions, from the next packet on.
    ///
    /// # Errors
    ///
    /// [`Error::BadConditions`] for a value out of range, naming it;
    /// [`Error::Relay`] when the wire's namespaces have ended.
    pub fn set_conditions(&self, conditions: Conditions) -> Result<(), Error> {
        self.change(
            "set conditions",
            |control| {
                control.conditions = [conditions; 2];
            },
            Some(&conditions),
        )
    }

    /// Sets the conditions of the packets that `end` sends (the other end
    /// receives), from the next packet on; the other direction keeps its.
    ///
    /// # Errors
    ///
    /// [`Error::NotAnEnd`] when `end` names neither end; otherwise as
    /// [`Wire::set_conditions`].
    pub fn set_conditions_from(&self, end: &str, conditions: Conditions) -> Result<(), Error> {
        let from = self.end(end)?;
        self.change(
            "set conditions",
            |control| {
                control.conditions[from] = conditions;
            },
            Some(&conditions),
        )
    }

    /// Cuts the wire both ways: every packet is dropped, and counted, while
    /// both links stay up, as when a cable is cut further along.
    ///
    /// # Errors
    ///
    /// [`Error::Relay`] when the wire's namespaces have ended.
    pub fn partition(&self) -> Result<(), Error> {
        self.change("partition", |control| control.partitioned = [true; 2], None)
    }

    /// Cuts the wire one way: the packets `end` sends are dropped.
    ///
    /// # Errors
    ///
    /// As [`Wire::set_conditions_from`].
    pub fn partition_from(&self, end: &str) -> Result<(), Error> {
        let from = self.end(end)?;
        self.change(
            "partition",
            |control| control.partitioned[from] = true,
            None,
        )
    }

    /// Ends every partition: the wire is back to the conditions set last.
    ///
    /// # Errors
    ///
    /// [`Error::Relay`] when the wire's namespaces have ended.
    pub fn heal(&self) -> Result<(), Error> {
        self.change("heal", |control| control.partitioned = [false; 2], None)
    }

    /// What has crossed from `end` so far.
    ///
    /// # Errors
    ///
    /// [`Error::NotAnEnd`] when `end` names neither end.
    pub fn counters_from(&self, end: &str) -> Result<WireCounters, Error> {
        Ok(self.shared.counters(self.end(end)?))
    }

    /// The index of end `name`.
    fn end(&self, name: &str) -> Result<usize, Error> {
        self.shared
            .ends
            .iter()
            .position(|end| end == name)
            .ok_or_else(|| Error::NotAnEnd {
                wire: self.shared.name(),
                end: name.to_owned(),
            })
    }

    /// Changes the control as `change` says, wakes the relay, and waits
    /// until it has taken the change: a packet sent after this returns
    /// meets the new conditions.
    fn change(
        &self,
        step: &str,
        change: impl FnOnce(&mut Control),
        checked: Option<&Conditions>,
    ) -> Result<(), Error> {
        let shared = &self.shared;
        let step = format!("{step} of wire {}", shared.name());
        if let Some(conditions) = checked {
            conditions.check(&step)?;
        }
        let wanted = {
            let mut control = shared
                .control
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            change(&mut control);
            let draws = control
                .conditions
                .map(|conditions| conditions.draws_per_packet());
            drop(control);
            for (end, draws) in draws.into_iter().enumerate() {
                self.offloads(end, !draws)?;
            }
            shared.generation.fetch_add(1, Ordering::AcqRel) + 1
        };
        relay::wake(&shared.wake);
        let control = shared
            .control
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (control, _) = shared
            .taken
            .wait_timeout_while(control, APPLY_WITHIN, |control| {
                control.taken < wanted && shared.alive.load(Ordering::Acquire)
            })
            .unwrap_or_else(PoisonError::into_inner);
        match control.taken >= wanted {
            true => Ok(()),
            false => Err(Error::Relay {
                step,
                reason: match shared.alive.load(Ordering::Acquire) {
                    true => {
                        "the relay did not take the change within 5s: is the machine overloaded?"
                    }
                    false => {
                        "the relay has ended: a namespace of the wire's ended, or a link of it was deleted"
                    }
                },
            }),
        }
    }

    /// Turns end `end`'s segmentation offloads on or off, where they are not
    /// so already.
    fn offloads(&self, end: usize, on: bool) -> Result<(), Error> {
        let shared = &self.shared;
        if shared.offloads_off[end].load(Ordering::Acquire) != on {
            return Ok(());
        }
        let name = &shared.ends[end];
        offload::set(&self.namespaces[end], name, on)?;
        shared.offloads_off[end].store(!on, Ordering::Release);
        Ok(())
    }
}

impl Shared {
    /// Ends the relay, with the test that made the wire: its hidden
    /// namespace goes, and both ends' veth pairs with it.
    pub(crate) fn end(&self) {
        self.ending.store(true, Ordering::Release);
        relay::wake(&self.wake);
    }

    /// `a0 <-> b0`.
    pub(crate) fn name(&self) -> String {
        format!("{} <-> {}", self.ends[0], self.ends[1])
    }

    /// The conditions and partitions now.
    pub(crate) fn control(&self) -> Control {
        *self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What has crossed from end `from` so far: what the relay counted,
    /// and the frames the kernel forwarded.
    pub(crate) fn counters(&self, from: usize) -> WireCounters {
        self.read_forwarded();
        let counters = &self.counters[from];
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        WireCounters {
            passed: read(&counters.passed) + read(&self.forwarded[from]),
            lost: read(&counters.lost),
            queue_full: read(&counters.queue_full),
            partitioned: read(&counters.partitioned),
            duplicated: read(&counters.duplicated),
            reordered: read(&counters.reordered),
        }
    }

    /// Reads the frames the kernel has forwarded, while the relay runs;
    /// after, or where the links are gone, they stay as last read.
    fn read_forwarded(&self) {
        let mut fast = self.fast.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(Ok(forwarded)) = fast.as_mut().map(fast::Fast::forwarded) {
            for (counter, forwarded) in self.forwarded.iter().zip(forwarded) {
                counter.store(forwarded, Ordering::Relaxed);
            }
        }
    }

    /// Whether the kernel has a fast path for this wire.
    fn has_fast_path(&self) -> bool {
        self.fast
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Has the kernel forward direction `from`, or the relay.
    fn switch(&self, from: usize, kernel: bool) -> Result<(), crate::error::NetlinkError> {
        let mut fast = self.fast.lock().unwrap_or_else(PoisonError::into_inner);
        match fast.as_mut() {
            Some(fast) => fast.switch(from, kernel),
            None => Ok(()),
        }
    }

    /// Reads the kernel's counts a last time and closes the fast path's
    /// socket, as the relay ends, so that the hidden namespace can go.
    fn close_fast_path(&self) {
        self.read_forwarded();
        *self.fast.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// What has crossed one direction of a wire ([`Wire::counters_from`]), in
/// frames as they cross the link: a segmentation offload's super-frame
/// (up to 64 KiB of TCP, while the direction draws nothing per packet)
/// counts once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct WireCounters {
    /// Frames sent on towards the other end, duplicates included: by the
    /// relay, and by the kernel while the direction is perfect (read from
    /// the hidden links' statistics: a frame the other end's veth then
    /// drops, as when it is down, counts too).
    pub passed: u64,
    /// Frames lost to [`Conditions::loss`].
    pub lost: u64,
    /// Frames dropped at the tail of a full [`Conditions::queue`].
    pub queue_full: u64,
    /// Frames dropped by a partition.
    pub partitioned: u64,
    /// Frames sent twice by [`Conditions::duplicate`].
    pub duplicated: u64,
    /// Frames sent ahead by [`Conditions::reorder`].
    pub reordered: u64,
}

impl fmt::Display for WireCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "passed {}, lost {}, queue full {}, partitioned {}, duplicated {}, reordered {}",
            self.passed,
            self.lost,
            self.queue_full,
            self.partitioned,
            self.duplicated,
            self.reordered
        )
    }
}
