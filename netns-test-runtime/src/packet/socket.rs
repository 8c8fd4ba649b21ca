//! An `AF_PACKET` socket ([`packet(7)`]) in the calling thread's network
//! namespace: every frame on every interface there, `lo` included, each
//! with its kernel timestamp and its link-layer address.
//!
//! [`packet(7)`]: https://man7.org/linux/man-pages/man7/packet.7.html

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, LinkAddr, MsgFlags, SockFlag, SockProtocol, SockType,
    recvmsg, setsockopt, socket, sockopt,
};
use nix::sys::time::TimeSpec;

use super::service;

/// `PACKET_OUTGOING` (`linux/if_packet.h`): a frame this host sent.
const PACKET_OUTGOING: u8 = 4;
/// `ARPHRD_LOOPBACK` (`linux/if_arp.h`).
pub(crate) const ARPHRD_LOOPBACK: u16 = 772;

/// An `AF_PACKET` socket of type `SOCK_RAW` for every protocol
/// (`ETH_P_ALL`), close-on-exec and non-blocking.
#[derive(Debug)]
pub(crate) struct Socket {
    fd: OwnedFd,
}

/// What [`Socket::receive`] read: a frame's length, when the kernel saw
/// it, and where.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame {
    /// Its whole length, which may exceed what the buffer took.
    pub(crate) length: usize,
    /// The kernel's timestamp (`SO_TIMESTAMPNS`), since the Unix epoch.
    pub(crate) timestamp: Duration,
    /// The interface's index in the socket's namespace.
    pub(crate) ifindex: u32,
    /// The interface's `ARPHRD_*` type.
    pub(crate) hatype: u16,
    /// Whether this host sent it (`PACKET_OUTGOING`).
    pub(crate) outgoing: bool,
}

impl Socket {
    /// Opens a packet socket in the calling thread's network namespace,
    /// unbound: it sees every interface there. Asks for kernel timestamps,
    /// and for an 8 MiB receive buffer (`SO_RCVBUFFORCE` with
    /// `CAP_NET_ADMIN`; otherwise `SO_RCVBUF`, up to `net.core.rmem_max`).
    ///
    /// # Errors
    ///
    /// `socket(2)`'s or `setsockopt(2)`'s errno: `EPERM` without
    /// `CAP_NET_RAW` over the namespace.
    pub(crate) fn open() -> Result<Socket, Errno> {
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::EthAll,
        )?;
        setsockopt(&fd, sockopt::ReceiveTimestampns, &true)?;
        // Forced where the process may (CAP_NET_ADMIN over the initial
        // namespace); elsewhere (a user namespace: helper and process modes,
        // rootless) as large as `net.core.rmem_max` allows, rather than the
        // default, which a burst on a loaded machine outruns.
        if setsockopt(&fd, sockopt::RcvBufForce, &(8 << 20)).is_err() {
            let _ = setsockopt(&fd, sockopt::RcvBuf, &(8 << 20));
        }
        Ok(Socket { fd })
    }

    /// Reads the next frame into `buffer`, cut to its length; `None` when
    /// none is waiting (`EAGAIN`). A frame without an address is skipped.
    ///
    /// # Errors
    ///
    /// `recvmsg(2)`'s errno, but for `EAGAIN` and `EINTR`.
    pub(crate) fn receive(&self, buffer: &mut [u8]) -> Result<Option<Frame>, Errno> {
        loop {
            let mut control = nix::cmsg_space!(TimeSpec);
            let mut iov = [IoSliceMut::new(buffer)];
            let received = recvmsg::<LinkAddr>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut control),
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
            );
            let message = match received {
                Ok(message) => message,
                Err(Errno::EAGAIN) => return Ok(None),
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(errno),
            };
            let Some(address) = message.address else {
                continue;
            };
            let timestamp = message
                .cmsgs()
                .ok()
                .and_then(|mut cmsgs| {
                    cmsgs.find_map(|cmsg| match cmsg {
                        ControlMessageOwned::ScmTimestampns(time) => {
                            Some(Duration::new(time.tv_sec() as u64, time.tv_nsec() as u32))
                        }
                        _ => None,
                    })
                })
                .unwrap_or_else(now);
            return Ok(Some(Frame {
                length: message.bytes,
                timestamp,
                ifindex: address.ifindex() as u32,
                hatype: address.hatype(),
                outgoing: address.pkttype() == PACKET_OUTGOING,
            }));
        }
    }

    /// How many frames the kernel dropped for this socket since the last
    /// call, its buffer being full (`PACKET_STATISTICS`).
    pub(crate) fn kernel_drops(&self) -> u64 {
        let mut stats = nix::libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        let mut length = std::mem::size_of_val(&stats) as nix::libc::socklen_t;
        // SAFETY: `stats` and `length` are valid for writes, and `length`
        // is the size of `stats`, which is what PACKET_STATISTICS writes
        // for a socket without a TPACKET_V3 ring.
        let got = unsafe {
            nix::libc::getsockopt(
                self.fd.as_raw_fd(),
                nix::libc::SOL_PACKET,
                nix::libc::PACKET_STATISTICS,
                (&raw mut stats).cast(),
                &raw mut length,
            )
        };
        match got {
            0 => u64::from(stats.tp_drops),
            _ => 0,
        }
    }

    /// Closes the socket on the packet service's closers, so that the
    /// caller does not wait for the kernel's grace period (see
    /// [`service`]); where the service does not run, here.
    pub(crate) fn close_later(self) {
        service::close_later(self.fd);
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The time now, as the kernel's timestamps give it.
pub(crate) fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
