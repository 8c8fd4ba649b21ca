//! IPv6 as ready as IPv4 when the calls return.
//!
//! Two delays of the kernel's hold the first packets over a fresh link, for
//! a second or two, unless they are waited out:
//!
//! - A link-local address is made when its link gets carrier, and stays
//!   tentative for up to a second of router-solicitation delay and a second
//!   of duplicate address detection (DAD). A router sends its neighbour
//!   solicitations for forwarded packets from its link-local address, and
//!   sends none while it is tentative: the packet waits a second, and the
//!   next. Every namespace that gets links is therefore set not to detect
//!   duplicates on the links made in it (`net.ipv6.conf.default.accept_dad
//!   = 0`, before the first link: a link takes the defaults of the
//!   namespace it is made in), and [`NetNs::set_link_up`] waits until the
//!   link-local addresses of both ends of a veth pair are valid.
//! - An address added without DAD is usable as a source at once, but the
//!   kernel finishes installing it later, on a work queue: it joins the
//!   address's solicited-node multicast group, then inserts its local
//!   route. A neighbour solicitation that arrives before the join is
//!   dropped, and retried a second later (`retrans_time_ms`); a packet that
//!   arrives before the route is dropped. [`NetNs::add_address`] waits
//!   until the address's local route is in (0.15 ms median, a few ms under
//!   load).
//!
//! Duplicate address detection is only ever useful against another host's
//! address, and a test's namespaces hold only the test's own; a test that
//! wants it still has [`NetNs::add_address_with_dad`], which turns it back
//! on for its link.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_packet_utils::nla::DefaultNla;

use crate::error::Error;
use crate::netlink::{Request, Rtnl};
use crate::netns::NetNs;

/// How long an address's installation is waited for.
const INSTALLED_WITHIN: Duration = Duration::from_secs(10);
/// `IFA_TARGET_NETNSID` (`linux/if_addr.h`).
const IFA_TARGET_NETNSID: u16 = 10;

impl NetNs {
    /// Sets the links made from now on in this namespace to skip duplicate
    /// address detection, once per handle.
    pub(super) fn settle_ipv6(&self) -> Result<(), Error> {
        if self.ipv6_settled.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        match self.set_sysctl("net.ipv6.conf.default.accept_dad", "0") {
            // A kernel without IPv6 has no such file: nothing to settle.
            Err(Error::Sysctl { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(())
            }
            other => other,
        }
    }

    /// Waits until `address`, just added to link `index` (`link`), is
    /// installed: its local route is in, which the kernel inserts after
    /// joining its solicited-node group.
    pub(super) fn wait_until_installed(
        &self,
        link: &str,
        index: u32,
        address: Ipv6Addr,
    ) -> Result<(), Error> {
        let started = Instant::now();
        let mut pause = Duration::from_micros(100);
        loop {
            if self.is_local(index, address) {
                return Ok(());
            }
            if started.elapsed() >= INSTALLED_WITHIN {
                return Err(Error::NotReady {
                    step: format!("install address {address} on {link}"),
                    waited: INSTALLED_WITHIN,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Whether the route to `address` out of link `index` is local.
    fn is_local(&self, index: u32, address: Ipv6Addr) -> bool {
        let mut route = RouteMessage::default();
        route.header.address_family = AddressFamily::Inet6;
        route.header.destination_prefix_length = 128;
        route
            .attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet6(address)));
        if address.is_unicast_link_local() {
            route.attributes.push(RouteAttribute::Oif(index));
        }
        let answers = self.request(
            format_args!("look up the route to {address}"),
            RouteNetlinkMessage::GetRoute(route),
            Request::Ack,
        );
        answers.is_ok_and(|answers| {
            answers.iter().any(|answer| {
                matches!(answer, RouteNetlinkMessage::NewRoute(route) if route.header.kind == RouteType::Local)
            })
        })
    }

    /// Whether link `index`, here or in the namespace `nsid` names here,
    /// has a valid link-local address: one that is neither tentative nor
    /// failed.
    pub(super) fn link_local_valid(&self, index: u32, nsid: Option<i32>) -> Result<bool, Error> {
        let failed = |source| Error::Netlink {
            step: "read the link-local address of a link".into(),
            source,
        };
        let mut message = AddressMessage::default();
        message.header.family = AddressFamily::Inet6;
        message.header.index = index;
        if let Some(nsid) = nsid {
            message
                .attributes
                .push(AddressAttribute::Other(DefaultNla::new(
                    IFA_TARGET_NETNSID,
                    nsid.to_ne_bytes().to_vec(),
                )));
        }
        // One socket per handle, opened once on a thread inside, as the
        // topology operations' own: `set_link_up` looks every millisecond
        // or so while it waits.
        let open = || self.run(Rtnl::open_strict)?.map_err(failed);
        let dumped = self
            .strict_rtnl
            .with(open, |strict| {
                strict.dump(RouteNetlinkMessage::GetAddress(message))
            })?
            .map_err(failed)?;
        Ok(dumped.messages.iter().any(|answer| {
            let RouteNetlinkMessage::NewAddress(address) = answer else {
                return false;
            };
            let link_local = address.attributes.iter().any(|attribute| {
                matches!(attribute, AddressAttribute::Address(IpAddr::V6(v6)) if v6.is_unicast_link_local())
            });
            let mut pending = address
                .header
                .flags
                .intersects(AddressHeaderFlags::Tentative | AddressHeaderFlags::Dadfailed);
            for attribute in &address.attributes {
                if let AddressAttribute::Flags(flags) = attribute {
                    pending |= flags.intersects(AddressFlags::Tentative | AddressFlags::Dadfailed);
                }
            }
            address.header.index == index && link_local && !pending
        }))
    }
}
