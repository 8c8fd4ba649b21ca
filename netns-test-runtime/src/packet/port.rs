//! A port of a wire's relay: an `AF_PACKET` socket bound to one interface,
//! which reads the frames that arrive on it and sends frames out of it,
//! each with its `struct virtio_net_hdr` (`PACKET_VNET_HDR`), so that a
//! segmentation offload's super-frame crosses whole, with the state of its
//! checksum offload. Frames are read and sent a batch at a time
//! ([`Frames`], `recvmmsg(2)` and `sendmmsg(2)`): one system call per batch,
//! not per frame.
//!
//! The socket is made with protocol 0, which receives nothing, and only
//! then bound with `ETH_P_ALL`: it never queues a frame of another
//! interface. It ignores the frames it sends itself
//! (`PACKET_IGNORE_OUTGOING`). A port that only sends
//! ([`Port::open_to_send`]) is bound with one protocol rather than all: it
//! is no tap on the interface, which would see every frame.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::service;

/// `ETH_P_ALL` (`linux/if_ether.h`), in network byte order as `bind` and
/// `socket` take it.
const ETH_P_ALL: u16 = 0x0003;
/// `ETH_P_802_EX1` (`linux/if_ether.h`): IEEE's ethertype for local
/// experiments, which a port that only sends is bound with.
const ETH_P_802_EX1: u16 = 0x88B5;
/// `PACKET_IGNORE_OUTGOING` (`linux/if_packet.h`, Linux 4.20).
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// The receive buffer asked for: room for some 500 super-frames.
const RECEIVE_BUFFER: libc::c_int = 32 << 20;

/// A relay's port.
#[derive(Debug)]
pub(crate) struct Port {
    fd: OwnedFd,
    /// Where a port that only sends addresses each frame: its interface,
    /// with `ETH_P_ALL`, so that the kernel reads the frame's protocol
    /// from its Ethernet header (the protocol it is bound with would be
    /// taken for the frame's, and a segmentation offload's super-frame of
    /// it dropped). `None` for a port that reads: it sends as bound.
    to: Option<libc::sockaddr_ll>,
}

impl Port {
    /// Opens a port on interface `ifindex` of the calling thread's network
    /// namespace, non-blocking and close-on-exec.
    ///
    /// # Errors
    ///
    /// `socket(2)`'s, `setsockopt(2)`'s or `bind(2)`'s errno: `EPERM`
    /// without `CAP_NET_RAW` over the namespace.
    pub(crate) fn open(ifindex: u32) -> Result<Port, Errno> {
        Port::bound(ifindex, ETH_P_ALL, false)
    }

    /// Opens a port on interface `ifindex` to send out of: it is no tap,
    /// and receives only frames of ethertype `ETH_P_802_EX1` (none, where
    /// a filter takes every frame the interface receives first). Bound
    /// with a protocol rather than none, it fails (`POLLERR`, `ENETDOWN`)
    /// when the interface goes.
    ///
    /// # Errors
    ///
    /// As [`Port::open`].
    pub(crate) fn open_to_send(ifindex: u32) -> Result<Port, Errno> {
        Port::bound(ifindex, ETH_P_802_EX1, true)
    }

    /// Opens a port on interface `ifindex` bound with `protocol`, which
    /// addresses what it sends, or not.
    fn bound(ifindex: u32, protocol: u16, addressed: bool) -> Result<Port, Errno> {
        // SAFETY: socket(2) takes integers and returns a new descriptor or -1.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: the descriptor was just made, and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let set = |level, option, value: libc::c_int| -> Result<(), Errno> {
            // SAFETY: setsockopt(2) reads one int, which `value` is.
            let done = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    level,
                    option,
                    (&raw const value).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if done < 0 { Err(Errno::last()) } else { Ok(()) }
        };
        set(libc::SOL_PACKET, libc::PACKET_VNET_HDR, 1)?;
        set(libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)?;
        // As large a buffer as the process may have: with CAP_NET_ADMIN
        // over the initial namespace, forced; otherwise up to rmem_max.
        if set(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RECEIVE_BUFFER).is_err() {
            let _ = set(libc::SOL_SOCKET, libc::SO_RCVBUF, RECEIVE_BUFFER);
        }
        if set(libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, RECEIVE_BUFFER).is_err() {
            let _ = set(libc::SOL_SOCKET, libc::SO_SNDBUF, RECEIVE_BUFFER);
        }
        // SAFETY: a zeroed sockaddr_ll is valid; its fields are set below.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as libc::c_ushort;
        address.sll_protocol = protocol.to_be();
        address.sll_ifindex = ifindex as libc::c_int;
        // SAFETY: bind(2) reads `address`, whose size is passed.
        let bound = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const address).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if bound < 0 {
            return Err(Errno::last());
        }
        address.sll_protocol = ETH_P_ALL.to_be();
        Ok(Port {
            fd,
            to: addressed.then_some(address),
        })
    }

    /// Reads the frames waiting, as many as `frames` holds, each with its
    /// virtio header first, in one `recvmmsg(2)`; returns how many were
    /// read, 0 when none was waiting.
    ///
    /// # Errors
    ///
    /// `recvmmsg(2)`'s errno, but for `EAGAIN` and `EINTR`: `ENETDOWN` once
    /// the interface is gone.
    pub(crate) fn receive(&self, frames: &mut Frames) -> Result<usize, Errno> {
        frames.lengths.clear();
        let count = frames.slots();
        frames.prepare(count, true);
        loop {
            // `frames.headers` holds `count` message headers, each naming one
            // iovec over a distinct slot of `frames`' buffer, and no address
            // or control buffer. SAFETY: recvmmsg(2) writes at most each
            // iovec's length into its slot, and each header's `msg_len`,
            // `msg_flags` and `msg_namelen`.
            let read = unsafe {
                libc::recvmmsg(
                    self.fd.as_raw_fd(),
                    frames.headers.as_mut_ptr(),
                    count as libc::c_uint,
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                    std::ptr::null_mut(),
                )
            };
            match usize::try_from(read) {
                Ok(read) => {
                    let slot = frames.slot;
                    let lengths = frames.headers[..read]
                        .iter()
                        .map(|header| (header.msg_len as usize).min(slot));
                    frames.lengths.extend(lengths);
                    return Ok(read);
                }
                Err(_) => match Errno::last() {
                    Errno::EAGAIN => return Ok(0),
                    Errno::EINTR => continue,
                    errno => return Err(errno),
                },
            }
        }
    }

    /// Sends the frames `frames` holds, each with its virtio header first,
    /// out of the port's interface, in as few `sendmmsg(2)` calls as it
    /// takes; returns how many were sent. A frame the kernel refuses
    /// (`ENOBUFS` when the peer's backlog is full, as on a congested link)
    /// is lost, and the next ones are still sent.
    pub(crate) fn send_all(&self, frames: &mut Frames) -> usize {
        let count = frames.lengths.len();
        frames.prepare(count, false);
        if let Some(to) = &self.to {
            for header in &mut frames.headers {
                header.msg_hdr.msg_name = (&raw const *to).cast_mut().cast();
                header.msg_hdr.msg_namelen =
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            }
        }
        let mut sent = 0;
        let mut next = 0;
        while next < count {
            // `frames.headers[next..count]` are message headers, each naming
            // one iovec over a frame in `frames`' buffer, and no address or
            // `self.to`, all of which outlive the call. SAFETY: sendmmsg(2)
            // only reads them, and writes each header's `msg_len`.
            let done = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    frames.headers[next..].as_mut_ptr(),
                    (count - next) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            match usize::try_from(done) {
                Ok(done) => {
                    sent += done;
                    next += done.max(1);
                }
                Err(_) => match Errno::last() {
                    Errno::EINTR => {}
                    // The socket's send buffer is full: wait for room, as
                    // a sender on a link waits, rather than lose the frame.
                    Errno::EAGAIN if self.wait_for_room() => {}
                    _ => next += 1,
                },
            }
        }
        sent
    }

    /// Sends `frame`, its virtio header first, out of the port's interface.
    ///
    /// # Errors
    ///
    /// `send(2)`'s errno: `ENOBUFS` when the peer's backlog is full (the
    /// frame is lost, as on a congested link).
    pub(crate) fn send(&self, frame: &[u8]) -> Result<(), Errno> {
        loop {
            let (to, to_len) = match &self.to {
                Some(to) => (
                    (&raw const *to).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                ),
                None => (std::ptr::null(), 0),
            };
            // SAFETY: sendto(2) reads `frame.len()` bytes of `frame`, and
            // `to_len` bytes of `to` where it is not null (`self.to`).
            let sent = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    libc::MSG_DONTWAIT,
                    to,
                    to_len,
                )
            };
            match sent {
                0.. => return Ok(()),
                _ => match Errno::last() {
                    Errno::EINTR => continue,
                    // The socket's send buffer is full: wait for room, as
                    // a sender on a link waits, rather than lose the frame.
                    Errno::EAGAIN if self.wait_for_room() => continue,
                    errno => return Err(errno),
                },
            }
        }
    }

    /// Waits up to 100 ms for room in the send buffer; whether there is.
    fn wait_for_room(&self) -> bool {
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLOUT)];
        poll(&mut fds, PollTimeout::from(100u8)) == Ok(1)
    }

    /// Closes the port on the packet service's closers, so that the relay
    /// does not wait for the kernel's grace period.
    pub(crate) fn close_later(self) {
        service::close_later(self.fd);
    }
}

impl AsFd for Port {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Frames read from a port or to send out of one, a batch at a time: each
/// in a slot of its own of one buffer.
pub(crate) struct Frames {
    buffer: Vec<u8>,
    /// A slot's size: the largest frame, virtio header included.
    slot: usize,
    /// The lengths of the frames held, one per slot from the first.
    lengths: Vec<usize>,
    /// The iovecs and message headers handed to the kernel, over `buffer`;
    /// made anew for every call, so that they never point elsewhere.
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

impl Frames {
    /// Room for `slots` frames of up to `slot` bytes each.
    pub(crate) fn new(slots: usize, slot: usize) -> Frames {
        Frames {
            buffer: vec![0; slots * slot],
            slot,
            lengths: Vec::with_capacity(slots),
            iovecs: Vec::with_capacity(slots),
            headers: Vec::with_capacity(slots),
        }
    }

    /// How many frames it has room for.
    fn slots(&self) -> usize {
        self.buffer.len() / self.slot
    }

    /// The frames held, in the order they were read.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.buffer
            .chunks(self.slot)
            .zip(&self.lengths)
            .map(|(slot, &length)| &slot[..length])
    }

    /// Makes the message headers for the first `count` slots, each with one
    /// iovec from the slot's start: over the `whole` slot, to read into it,
    /// or over the frame it holds, to send it.
    fn prepare(&mut self, count: usize, whole: bool) {
        let (slot, start) = (self.slot, self.buffer.as_mut_ptr());
        self.iovecs.clear();
        self.iovecs.extend((0..count).map(|index| {
            libc::iovec {
                // Within the buffer, as `count` is at most `slots()`.
                iov_base: start.wrapping_add(index * slot).cast(),
                iov_len: match whole {
                    true => slot,
                    false => self
                        .lengths
                        .get(index)
                        .map_or(0, |&length| length.min(slot)),
                },
            }
        }));
        self.headers.clear();
        for iovec in &mut self.iovecs {
            // SAFETY: a zeroed msghdr (no address, no control) is valid.
            let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
            header.msg_hdr.msg_iov = iovec;
            header.msg_hdr.msg_iovlen = 1;
            self.headers.push(header);
        }
    }
}

impl std::fmt::Debug for Frames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frames")
            .field("slots", &self.slots())
            .field("slot", &self.slot)
            .field("held", &self.lengths.len())
            .finish()
    }
}
