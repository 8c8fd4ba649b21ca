//! The TCP and UDP sockets this process holds in a test's namespaces, read
//! from its own descriptors: what unwinding a panic is about to close.
//!
//! A dump over sock_diag walks the kernel's global TCP hash, a few
//! milliseconds on a large machine, which a test that catches panics would
//! pay at its first; reading this process's descriptors costs a few system
//! calls per socket.

use std::net::SocketAddr;
use std::os::fd::RawFd;

use nix::libc;
use nix::sys::socket::{SockaddrStorage, getpeername, getsockname};

use crate::netlink::SO_NETNS_COOKIE;
use crate::topology::{Protocol, Socket, SocketState};

/// The TCP and UDP sockets this process holds in the namespaces whose
/// cookies (`SO_NETNS_COOKIE`) are `namespaces`, each with the index of its
/// namespace there.
pub(crate) fn held_sockets(namespaces: &[u64]) -> Vec<(usize, Socket)> {
    let Ok(descriptors) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    descriptors
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<RawFd>().ok())
        .filter_map(|fd| {
            let cookie = option::<u64>(fd, libc::SOL_SOCKET, SO_NETNS_COOKIE)?;
            let index = namespaces.iter().position(|&ns| ns == cookie)?;
            Some((index, entry_of(fd)?))
        })
        .collect()
}

/// The socket `fd` as the report shows it, if it is a TCP or UDP one.
fn entry_of(fd: RawFd) -> Option<Socket> {
    let protocol = match option::<libc::c_int>(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL)? {
        libc::IPPROTO_TCP => Protocol::Tcp,
        libc::IPPROTO_UDP => Protocol::Udp,
        _ => return None,
    };
    let address = |storage: SockaddrStorage| -> Option<SocketAddr> {
        match (storage.as_sockaddr_in(), storage.as_sockaddr_in6()) {
            (Some(v4), _) => Some(SocketAddr::from(std::net::SocketAddrV4::from(*v4))),
            (_, Some(v6)) => Some(SocketAddr::from(std::net::SocketAddrV6::from(*v6))),
            _ => None,
        }
    };
    let local = address(getsockname::<SockaddrStorage>(fd).ok()?)?;
    let remote = getpeername::<SockaddrStorage>(fd).ok().and_then(address);
    let (state, queues) = match protocol {
        Protocol::Tcp => {
            let info = option::<libc::tcp_info>(fd, libc::IPPROTO_TCP, libc::TCP_INFO)?;
            // As `ss` shows a listener: its accept queue and its backlog.
            let queues = match info.tcpi_state {
                10 => (info.tcpi_unacked, info.tcpi_sacked),
                _ => queues(fd),
            };
            (info.tcpi_state, queues)
        }
        // TCP_ESTABLISHED when connected, TCP_CLOSE when not, as sock_diag
        // says of a UDP socket.
        _ => (if remote.is_some() { 1 } else { 7 }, queues(fd)),
    };
    Some(Socket {
        protocol,
        state: SocketState::of(protocol, state),
        local,
        remote,
        recv_queue: queues.0,
        send_queue: queues.1,
    })
}

/// What waits in `fd`'s receive and send queues (`SIOCINQ`, `SIOCOUTQ`).
fn queues(fd: RawFd) -> (u32, u32) {
    let queue = |request: libc::c_ulong| {
        let mut bytes: libc::c_int = 0;
        // SAFETY: SIOCINQ and SIOCOUTQ write one int, which `bytes` is.
        let done = unsafe { libc::ioctl(fd, request as _, &raw mut bytes) };
        if done == 0 {
            u32::try_from(bytes).unwrap_or(0)
        } else {
            0
        }
    };
    (queue(libc::FIONREAD as _), queue(libc::TIOCOUTQ as _))
}

/// A socket option of `fd` of type `T`, which the kernel fills: an integer
/// or a plain C structure.
fn option<T: Copy>(fd: RawFd, level: libc::c_int, name: libc::c_int) -> Option<T> {
    let mut value = std::mem::MaybeUninit::<T>::zeroed();
    let mut length = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is valid for `length` bytes of writes; a descriptor
    // that is no socket, or closed meanwhile, makes the call fail.
    let done = unsafe { libc::getsockopt(fd, level, name, value.as_mut_ptr().cast(), &mut length) };
    // SAFETY: the value was zeroed, so even a shorter answer leaves it
    // initialised; `T` is an integer or a C structure of integers.
    (done == 0).then(|| unsafe { value.assume_init() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::netns_cookie;

    /// The sockets this process holds in its namespace are found, as the
    /// report shows them; those of another namespace are not.
    #[test]
    fn finds_the_sockets_this_process_holds() {
        let here = netns_cookie().expect("this namespace's cookie");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("its address").port();
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let held = held_sockets(&[here + 1, here]);
        let find = |address: SocketAddr, protocol| {
            held.iter()
                .find(|(_, entry)| entry.local == address && entry.protocol == protocol)
                .unwrap_or_else(|| panic!("{address} is not in {held:?}"))
                .clone()
        };
        let (index, listening) = find(listener.local_addr().unwrap(), Protocol::Tcp);
        assert_eq!(
            (index, listening.state, listening.remote),
            (1, SocketState::Listen, None)
        );
        let (_, connected) = find(client.local_addr().unwrap(), Protocol::Tcp);
        assert_eq!(connected.state, SocketState::Established);
        assert_eq!(connected.remote, Some(listener.local_addr().unwrap()));
        let (_, unconnected) = find(udp.local_addr().unwrap(), Protocol::Udp);
        assert_eq!(
            (unconnected.state, unconnected.remote),
            (SocketState::Unconnected, None)
        );
        assert!(held_sockets(&[here + 1]).is_empty());
    }
}
