//! A link's segmentation offloads, on or off, over the ethtool ioctl
//! (`SIOCETHTOOL`), which works in any network namespace whose user
//! namespace the caller has `CAP_NET_ADMIN` in: no `ethtool` program.
//!
//! With TCP segmentation (TSO) and generic segmentation (GSO) on, TCP hands
//! a veth frames of up to 64 KiB, which a relay sees whole; with them off,
//! the kernel segments them before the veth does, so each packet is one
//! frame.

use std::os::fd::AsRawFd;

use nix::libc;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

use crate::error::Error;
use crate::netns::NetNs;

/// `SIOCETHTOOL` (`linux/sockios.h`).
const SIOCETHTOOL: libc::c_ulong = 0x8946;
/// `ETHTOOL_STSO` and `ETHTOOL_SGSO` (`linux/ethtool.h`): set TCP and
/// generic segmentation offload, with a `struct ethtool_value`.
const ETHTOOL_STSO: u32 = 0x1f;
const ETHTOOL_SGSO: u32 = 0x24;

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ifreq`, with `ifr_data`.
#[repr(C)]
struct IfreqData {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut EthtoolValue,
    _pad: [u8; 16],
}

/// Turns link `name`'s TCP and generic segmentation offloads on or off, in
/// `ns`.
pub(super) fn set(ns: &NetNs, name: &str, on: bool) -> Result<(), Error> {
    let step = format!(
        "turn the segmentation offloads of {name} {}",
        if on { "on" } else { "off" }
    );
    let failed = |source| Error::Relay {
        step: step.clone(),
        reason: match source {
            nix::errno::Errno::EPERM => "the ethtool ioctl needs CAP_NET_ADMIN over the namespace",
            _ => "the ethtool ioctl failed",
        },
    };
    ns.run(|| -> Result<(), nix::errno::Errno> {
        let socket = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        for cmd in [ETHTOOL_STSO, ETHTOOL_SGSO] {
            let mut value = EthtoolValue {
                cmd,
                data: u32::from(on),
            };
            let mut request = IfreqData {
                name: [0; libc::IFNAMSIZ],
                data: &raw mut value,
                _pad: [0; 16],
            };
            for (slot, &byte) in request.name.iter_mut().zip(name.as_bytes()) {
                *slot = byte as libc::c_char;
            }
            let request = &raw mut request;
            // SAFETY: SIOCETHTOOL reads `request` (a name shorter than
            // IFNAMSIZ, so NUL-terminated, and a pointer to `value`), and
            // reads and writes `value`; both live for the call.
            let done = unsafe { libc::ioctl(socket.as_raw_fd(), SIOCETHTOOL as _, request) };
            if done < 0 {
                return Err(nix::errno::Errno::last());
            }
        }
        Ok(())
    })?
    .map_err(failed)
}
