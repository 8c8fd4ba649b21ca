//! Addresses.

use std::net::IpAddr;

use netlink_packet_route::AddressFamily;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};

use super::types::IpPrefix;
use crate::error::Error;
use crate::netlink::Request;
use crate::netns::NetNs;

/// Addresses.
impl NetNs {
    fn address_message(&self, link: &str, prefix: IpPrefix) -> Result<AddressMessage, Error> {
        let mut message = AddressMessage::default();
        message.header.family = family(prefix.address);
        message.header.prefix_len = prefix.len;
        message.header.scope = AddressScope::Universe;
        message.header.index = self.index(link)?;
        if prefix.address.is_ipv4() {
            message
                .attributes
                .push(AddressAttribute::Local(prefix.address));
        }
        message
            .attributes
            .push(AddressAttribute::Address(prefix.address));
        Ok(message)
    }

    /// Adds an address to a link, like `ip address add PREFIX dev LINK
    /// nodad`: usable at once.
    ///
    /// An IPv6 address gets no duplicate address detection (`IFA_F_NODAD`),
    /// which would keep it tentative, and `bind` to it failing with
    /// `AddrNotAvailable`, for about two seconds after its link is up; in a
    /// namespace the test made, nothing else can hold it. To have it, call
    /// [`NetNs::add_address_with_dad`]. The call returns once the kernel
    /// has installed the address (joined its solicited-node group, and put
    /// its local route in), so that the first neighbour solicitation for it
    /// is answered.
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::NetNs;
    ///
    /// let ns = NetNs::new()?;
    /// ns.add_veth("a0", &ns, "b0")?;
    /// ns.set_link_up("a0")?;
    /// ns.set_link_up("b0")?;
    /// ns.add_address("a0", "fd00::1/64".parse()?)?;
    /// // Usable at once: no duplicate address detection.
    /// let bound = ns.run(|| std::net::UdpSocket::bind("[fd00::1]:53").is_ok())?;
    /// assert!(bound);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`], e.g. `EEXIST` when the link has it already.
    pub fn add_address(&self, link: &str, prefix: IpPrefix) -> Result<(), Error> {
        let mut message = self.address_message(link, prefix)?;
        let index = message.header.index;
        if prefix.address.is_ipv6() {
            message.header.flags = AddressHeaderFlags::Nodad;
            message
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        self.request(
            format_args!("add address {prefix} to {link}"),
            RouteNetlinkMessage::NewAddress(message),
            Request::Create,
        )?;
        match prefix.address {
            // Usable as a source at once, but not yet joined to its
            // solicited-node group (see `ipv6.rs`).
            std::net::IpAddr::V6(address) => self.wait_until_installed(link, index, address),
            std::net::IpAddr::V4(_) => Ok(()),
        }
    }

    /// Adds an address as [`NetNs::add_address`] does, but with the kernel's
    /// duplicate address detection for IPv6, as `ip address add` does: the
    /// address stays tentative, unusable, until detection ends, about two
    /// seconds after its link is up (`net.ipv6.conf.LINK.dad_transmits`,
    /// `retrans_time_ms`).
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::NetNs;
    ///
    /// let ns = NetNs::new()?;
    /// ns.add_veth("a0", &ns, "b0")?;
    /// ns.add_address_with_dad("a0", "fd00::1/64".parse()?)?;
    /// assert_eq!(ns.link("a0")?.addresses.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`], e.g. `EEXIST` when the link has it already.
    pub fn add_address_with_dad(&self, link: &str, prefix: IpPrefix) -> Result<(), Error> {
        let message = self.address_message(link, prefix)?;
        if prefix.address.is_ipv6() {
            // Links made here skip detection (see `ipv6.rs`): this one
            // does not.
            let sysctl = format!("net.ipv6.conf.{}.accept_dad", link.replace('.', "/"));
            self.set_sysctl(&sysctl, "1")?;
        }
        self.request(
            format_args!("add address {prefix} to {link}"),
            RouteNetlinkMessage::NewAddress(message),
            Request::Create,
        )
        .map(drop)
    }

    /// Deletes an address from a link.
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::NetNs;
    ///
    /// let ns = NetNs::new()?;
    /// let prefix = "10.0.0.1/24".parse()?;
    /// ns.add_veth("a0", &ns, "b0")?;
    /// ns.add_address("a0", prefix)?;
    /// ns.delete_address("a0", prefix)?;
    /// assert!(ns.link("a0")?.addresses.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`], e.g. `EADDRNOTAVAIL` when the link has no such address.
    pub fn delete_address(&self, link: &str, prefix: IpPrefix) -> Result<(), Error> {
        let message = self.address_message(link, prefix)?;
        self.request(
            format_args!("delete address {prefix} from {link}"),
            RouteNetlinkMessage::DelAddress(message),
            Request::Ack,
        )
        .map(drop)
    }
}

pub(super) fn family(address: IpAddr) -> AddressFamily {
    if address.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}
