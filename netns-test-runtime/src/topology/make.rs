//! Making links: dummies, bridges and veth pairs; attaching a link to a
//! bridge; setting a link's MAC address; deleting a link.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd};

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage,
};
use nix::errno::Errno;

use crate::error::{Error, NetlinkError};
use crate::netlink::Request;
use crate::netns::NetNs;

use super::observed::MacAddr;

/// Making links.
impl NetNs {
    fn add_link(
        &self,
        step: fmt::Arguments<'_>,
        name: &str,
        info: Vec<LinkInfo>,
    ) -> Result<(), Error> {
        self.settle_ipv6()?;
        let mut link = LinkMessage::default();
        link.attributes.push(LinkAttribute::IfName(name.to_owned()));
        link.attributes.push(LinkAttribute::LinkInfo(info));
        self.request(step, RouteNetlinkMessage::NewLink(link), Request::Create)
            .map(drop)
    }

    /// Adds a dummy link (`CONFIG_DUMMY`), down.
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::NetNs;
    ///
    /// let ns = NetNs::new()?;
    /// match ns.add_dummy("d0") {
    ///     Ok(()) => assert!(!ns.link("d0")?.up),
    ///     // Some kernels, this project's CI machine's among them, have no dummy driver.
    ///     Err(netns_test_runtime::Error::MissingDriver { .. }) => {}
    ///     Err(other) => return Err(other),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::MissingDriver`] when the kernel has no dummy driver, as some
    /// have not; [`Error::Netlink`] otherwise, e.g. `EEXIST`.
    pub fn add_dummy(&self, name: &str) -> Result<(), Error> {
        let info = vec![LinkInfo::Kind(InfoKind::Dummy)];
        match self.add_link(format_args!("add dummy {name}"), name, info) {
            Err(Error::Netlink {
                source: NetlinkError::Kernel(Errno::EOPNOTSUPP),
                ..
            }) => Err(Error::MissingDriver {
                step: format!("add dummy {name}"),
                kind: "dummy",
            }),
            other => other,
        }
    }

    /// Adds a bridge, down.
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::NetNs;
    ///
    /// let ns = NetNs::new()?;
    /// ns.add_bridge("br0")?;
    /// assert!(!ns.link("br0")?.up);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`], e.g. `EEXIST`.
    pub fn add_bridge(&self, name: &str) -> Result<(), Error> {
        self.add_link(
            format_args!("add bridge {name}"),
            name,
            vec![LinkInfo::Kind(InfoKind::Bridge)],
        )
    }

    /// Attaches a link to a bridge, like `ip link set LINK master BRIDGE`.
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::NetNs;
    ///
    /// let ns = NetNs::new()?;
    /// ns.add_bridge("br0")?;
    /// ns.add_veth("p0", &ns, "p1")?;
    /// ns.attach_to_bridge("p0", "br0")?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`], e.g. `ENODEV`.
    pub fn attach_to_bridge(&self, link: &str, bridge: &str) -> Result<(), Error> {
        let index = self.index(bridge)?;
        self.set_link(
            format_args!("attach {link} to bridge {bridge}"),
            link,
            |message| {
                message.attributes.push(LinkAttribute::Controller(index));
            },
        )
    }

    /// Adds a veth pair: `name` here, `peer_name` in `peer` (which may be
    /// this namespace too). Both ends start down.
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::NetNs;
    ///
    /// let (a, b) = (NetNs::new()?, NetNs::new()?);
    /// a.add_veth("a0", &b, "b0")?;
    /// a.add_address("a0", "10.0.0.1/24".parse()?)?;
    /// b.add_address("b0", "10.0.0.2/24".parse()?)?;
    /// a.set_link_up("a0")?;
    /// b.set_link_up("b0")?;
    /// let reached = b.run(|| std::net::TcpStream::connect("10.0.0.1:9").is_err())?;
    /// assert!(reached, "nothing listens on port 9: the connection is refused, not lost");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`], e.g. `add veth a0 <-> b0: File exists (EEXIST)`.
    pub fn add_veth(&self, name: &str, peer: &NetNs, peer_name: &str) -> Result<(), Error> {
        // The peer takes the defaults of the namespace it is made in.
        peer.settle_ipv6()?;
        let mut peer_link = LinkMessage::default();
        peer_link
            .attributes
            .push(LinkAttribute::IfName(peer_name.to_owned()));
        // The kernel reads this descriptor from this process's table while it
        // handles the request, which `request` waits for.
        peer_link
            .attributes
            .push(LinkAttribute::NetNsFd(peer.as_fd().as_raw_fd()));
        self.add_link(
            format_args!("add veth {name} <-> {peer_name}"),
            name,
            vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_link))),
            ],
        )
    }

    /// Sets a link's MAC address, like `ip link set LINK address MAC`; best
    /// done while the link is down, as some drivers refuse it otherwise.
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::{MacAddr, NetNs};
    ///
    /// let ns = NetNs::new()?;
    /// ns.add_veth("a0", &ns, "b0")?;
    /// let mac: MacAddr = "02:00:0a:00:01:01".parse()?;
    /// ns.set_mac("a0", mac)?;
    /// assert_eq!(ns.link("a0")?.mac, Some(mac));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`], e.g. `ENODEV`, or `EADDRNOTAVAIL` for a
    /// multicast address.
    pub fn set_mac(&self, name: &str, mac: MacAddr) -> Result<(), Error> {
        self.set_link(
            format_args!("set the MAC address of {name} to {mac}"),
            name,
            |message| {
                message
                    .attributes
                    .push(LinkAttribute::Address(mac.octets().to_vec()));
            },
        )
    }

    /// Deletes a link; deleting one end of a veth pair deletes both.
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::NetNs;
    ///
    /// let ns = NetNs::new()?;
    /// ns.add_veth("x0", &ns, "x1")?;
    /// ns.delete_link("x0")?; // and its peer with it
    /// assert_eq!(ns.links()?.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`], e.g. `ENODEV`.
    pub fn delete_link(&self, name: &str) -> Result<(), Error> {
        let mut link = LinkMessage::default();
        link.header.index = self.index(name)?;
        self.request(
            format_args!("delete link {name}"),
            RouteNetlinkMessage::DelLink(link),
            Request::Ack,
        )
        .map(drop)
    }
}
