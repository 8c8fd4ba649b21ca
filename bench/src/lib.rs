//! The kernel's floor under every netns test, written directly against the
//! system calls: what the benchmark compares netns-test with.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::libc;
use nix::sched::{CloneFlags, unshare};

/// One thread that unshares its network namespace, brings `lo` up over
/// rtnetlink, and is joined: the kernel's cost of a fresh namespace.
pub fn floor_once() {
    std::thread::spawn(|| {
        unshare(CloneFlags::CLONE_NEWNET)
            .expect("unshare(CLONE_NEWNET): run the benchmark as root");
        loopback_up();
    })
    .join()
    .expect("the floor's thread");
}

/// `RTM_NEWLINK` for ifindex 1 (`lo`) with `IFF_UP`, acknowledged: the
/// request `ip link set lo up` sends, built by hand.
fn loopback_up() {
    // SAFETY: socket(2) takes no pointers; the result is checked below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    assert!(
        fd >= 0,
        "netlink socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut request = [0u8; 32];
    request[0..4].copy_from_slice(&32u32.to_ne_bytes()); // nlmsg_len
    request[4..6].copy_from_slice(&libc::RTM_NEWLINK.to_ne_bytes()); // nlmsg_type
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
    request[6..8].copy_from_slice(&flags.to_ne_bytes()); // nlmsg_flags
    request[8..12].copy_from_slice(&1u32.to_ne_bytes()); // nlmsg_seq
    request[20..24].copy_from_slice(&1i32.to_ne_bytes()); // ifi_index: lo
    request[24..28].copy_from_slice(&(libc::IFF_UP as u32).to_ne_bytes()); // ifi_flags
    request[28..32].copy_from_slice(&(libc::IFF_UP as u32).to_ne_bytes()); // ifi_change
    // SAFETY: `request` is valid for its length, and `socket` is open.
    let sent = unsafe {
        libc::send(
            socket.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
        )
    };
    assert_eq!(
        sent,
        32,
        "netlink send: {}",
        std::io::Error::last_os_error()
    );
    let mut reply = [0u8; 1024];
    // SAFETY: `reply` is valid for its length, and `socket` is open.
    let received = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            reply.as_mut_ptr().cast(),
            reply.len(),
            0,
        )
    };
    assert!(
        received >= 20,
        "netlink recv: {}",
        std::io::Error::last_os_error()
    );
    let kind = u16::from_ne_bytes([reply[4], reply[5]]);
    let error = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
    assert_eq!(
        (kind, error),
        (libc::NLMSG_ERROR as u16, 0),
        "lo up was refused"
    );
}

/// Whether this process may make namespaces on threads (root).
pub fn floor_available() -> bool {
    std::thread::spawn(|| unshare(CloneFlags::CLONE_NEWNET).is_ok())
        .join()
        .unwrap_or(false)
}
