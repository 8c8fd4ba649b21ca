//! A port of a wire's relay: an `AF_PACKET` socket bound to one interface,
//! which reads the frames that arrive on it and sends frames out of it,
//! each with its `struct virtio_net_hdr` (`PACKET_VNET_HDR`), so that a
//! segmentation offload's super-frame crosses whole, with the state of its
//! checksum offload.
//!
//! The socket is made with protocol 0, which receives nothing, and only
//! then bound with `ETH_P_ALL`: it never queues a frame of another
//! interface. It ignores the frames it sends itself
//! (`PACKET_IGNORE_OUTGOING`).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::service;

/// `ETH_P_ALL` (`linux/if_ether.h`), in network byte order as `bind` and
/// `socket` take it.
const ETH_P_ALL: u16 = 0x0003;
/// `PACKET_IGNORE_OUTGOING` (`linux/if_packet.h`, Linux 4.20).
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// The receive buffer asked for: room for some 500 super-frames.
const RECEIVE_BUFFER: libc::c_int = 32 << 20;

/// A relay's port.
#[derive(Debug)]
pub(crate) struct Port {
    fd: OwnedFd,
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
        address.sll_protocol = ETH_P_ALL.to_be();
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
        Ok(Port { fd })
    }

    /// Reads the next frame, its virtio header first, into `buffer`;
    /// returns its whole length, which may exceed the buffer's, or `None`
    /// when none is waiting.
    ///
    /// # Errors
    ///
    /// `recv(2)`'s errno, but for `EAGAIN` and `EINTR`: `ENETDOWN` once the
    /// interface is gone.
    pub(crate) fn receive(&self, buffer: &mut [u8]) -> Result<Option<usize>, Errno> {
        loop {
            // SAFETY: recv(2) writes at most `buffer.len()` bytes into it.
            let length = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            match usize::try_from(length) {
                Ok(length) => return Ok(Some(length)),
                Err(_) => match Errno::last() {
                    Errno::EAGAIN => return Ok(None),
                    Errno::EINTR => continue,
                    errno => return Err(errno),
                },
            }
        }
    }

    /// Sends `frame`, its virtio header first, out of the port's interface.
    ///
    /// # Errors
    ///
    /// `send(2)`'s errno: `ENOBUFS` when the peer's backlog is full (the
    /// frame is lost, as on a congested link).
    pub(crate) fn send(&self, frame: &[u8]) -> Result<(), Errno> {
        loop {
            // SAFETY: send(2) reads `frame.len()` bytes of `frame`.
            let sent = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            match sent {
                0.. => return Ok(()),
                _ => match Errno::last() {
                    Errno::EINTR => continue,
                    // The socket's send buffer is full: wait for room, as
                    // a sender on a link waits, rather than lose the frame.
                    Errno::EAGAIN => {
                        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLOUT)];
                        if poll(&mut fds, PollTimeout::from(100u8)) != Ok(1) {
                            return Err(Errno::EAGAIN);
                        }
                    }
                    errno => return Err(errno),
                },
            }
        }
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
