//! What the topology operations take and give.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::observed::MacAddr;
use crate::error::Error;

/// An IP address with a prefix length, such as `10.0.0.1/24` or `fd00::1/64`.
///
/// ```
/// use netns_test_runtime::IpPrefix;
///
/// let prefix: IpPrefix = "10.0.0.1/24".parse()?;
/// assert_eq!(prefix.len(), 24);
/// assert_eq!(prefix.to_string(), "10.0.0.1/24");
/// assert!("10.0.0.1/33".parse::<IpPrefix>().is_err());
/// # Ok::<(), netns_test_runtime::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    pub(super) address: IpAddr,
    pub(super) len: u8,
}

impl IpPrefix {
    /// A prefix of `len` bits of `address`.
    ///
    /// # Errors
    ///
    /// [`Error::BadPrefix`] when `len` exceeds the address's bits.
    pub fn new(address: IpAddr, len: u8) -> Result<Self, Error> {
        let bits = if address.is_ipv4() { 32 } else { 128 };
        if len > bits {
            return Err(Error::BadPrefix {
                text: format!("{address}/{len}"),
                reason: if bits == 32 {
                    "an IPv4 prefix is at most 32 bits"
                } else {
                    "an IPv6 prefix is at most 128 bits"
                },
            });
        }
        Ok(IpPrefix { address, len })
    }

    /// The address.
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// The prefix length in bits.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        self.len
    }
}

impl FromStr for IpPrefix {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let bad = |reason| Error::BadPrefix {
            text: text.to_owned(),
            reason,
        };
        let (address, len) = text.split_once('/').ok_or_else(|| bad("no `/length`"))?;
        let address = address.parse().map_err(|_| bad("not an IP address"))?;
        let len = len.parse().map_err(|_| bad("the length is not a number"))?;
        IpPrefix::new(address, len)
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.len)
    }
}

/// The operational state of a link (RFC 2863), as `ip link` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OperState {
    /// Carrier is up: it can pass packets.
    Up,
    /// Down.
    Down,
    /// Down because a lower layer is, e.g. a veth whose peer is down.
    LowerLayerDown,
    /// The driver does not say, as for `lo`.
    Unknown,
    /// Some other state: dormant, testing, not present.
    Other,
}

/// A network interface, as [`NetNs::links`](crate::NetNs::links) lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Link {
    /// Its name, e.g. `lo`.
    pub name: String,
    /// Its interface index.
    pub index: u32,
    /// Whether it is administratively up (`IFF_UP`).
    pub up: bool,
    /// Its operational state.
    pub state: OperState,
    /// Its MTU.
    pub mtu: u32,
    /// Its link-layer address, where it has an Ethernet one (`lo`'s is
    /// all zeros; a tunnel has none).
    pub mac: Option<MacAddr>,
    /// Its addresses.
    pub addresses: Vec<IpPrefix>,
}

/// Where a route sends packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via<'a> {
    /// Through a gateway on a directly connected network.
    Gateway(IpAddr),
    /// Out of a device, to hosts directly on its link.
    Device(&'a str),
}

impl fmt::Display for Via<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Via::Gateway(gateway) => write!(f, "via {gateway}"),
            Via::Device(device) => write!(f, "dev {device}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let prefix: IpPrefix = "fd00::1/64".parse().unwrap();
        assert_eq!(
            (prefix.address(), prefix.len()),
            ("fd00::1".parse().unwrap(), 64)
        );
        assert_eq!(prefix.to_string(), "fd00::1/64");
        for bad in [
            "10.0.0.1",
            "10.0.0.1/33",
            "fd00::1/129",
            "x/24",
            "10.0.0.1/y",
        ] {
            assert!(
                matches!(bad.parse::<IpPrefix>(), Err(Error::BadPrefix { .. })),
                "{bad}"
            );
        }
    }
}
