//! Typed rtnetlink operations on a [`NetNs`]: links, veth pairs, bridges,
//! addresses and routes.
//!
//! Each operation may be called from any thread and acts on the handle's
//! namespace: the handle keeps a netlink socket opened inside the namespace,
//! and a netlink socket acts on the namespace of the thread that opened it.
//!
//! One file per object, as rtnetlink lays itself out: [`types`] (what the
//! operations take and give), [`link`] (reading links and their state),
//! [`make`] (making and deleting them), [`address`], [`route`],
//! [`sysctl`], [`nat`] (NAT and firewall, over nftables and ctnetlink),
//! and [`inspect`] (routes, neighbours, sockets, as
//! [`observed`] types them); this file holds the rtnetlink base every
//! operation uses.

mod address;
mod inspect;
mod ipv6;
mod link;
mod make;
mod nat;
mod network;
mod observed;
mod route;
mod sysctl;
mod types;
mod wire;

pub(crate) use inspect::{Listed, name_of};
pub use nat::{Connection, Nat, Tuple};
pub use network::{Interface, Network, NetworkBuilder, Node};
pub use observed::{MacAddr, Neighbour, NeighbourState, Protocol, Route, Socket, SocketState};
pub use types::{IpPrefix, Link, OperState, Via};
pub use wire::{Conditions, Wire, WireCounters};
pub(crate) use wire::{Shared as WireShared, watch_new_wires};

use std::fmt;

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use nix::errno::Errno;

use crate::error::{Error, NetlinkError};
use crate::netlink::{Replies, Request, Rtnl};
use crate::netns::NetNs;

impl NetNs {
    /// Sends one request to this namespace's rtnetlink, over the socket the
    /// handle keeps, which is opened on first use on a thread inside.
    pub(crate) fn request(
        &self,
        step: fmt::Arguments<'_>,
        message: RouteNetlinkMessage,
        kind: Request,
    ) -> Result<Vec<RouteNetlinkMessage>, Error> {
        self.with_rtnl(step, |rtnl| rtnl.request(message, kind))
    }

    /// Dumps all objects of a kind in this namespace: those decoded, and
    /// those that could not be.
    pub(crate) fn dump(
        &self,
        step: fmt::Arguments<'_>,
        message: RouteNetlinkMessage,
    ) -> Result<Replies<RouteNetlinkMessage>, Error> {
        self.with_rtnl(step, |rtnl| rtnl.dump(message))
    }

    /// Runs `f` on the rtnetlink socket the handle keeps, opened on first
    /// use on a thread inside; a failure names `step`.
    fn with_rtnl<T>(
        &self,
        step: fmt::Arguments<'_>,
        f: impl FnOnce(&mut Rtnl) -> Result<T, NetlinkError>,
    ) -> Result<T, Error> {
        let failed = |source| Error::Netlink {
            step: step.to_string(),
            source,
        };
        let open = || self.run(Rtnl::open)?.map_err(failed);
        self.rtnl.with(open, f)?.map_err(failed)
    }

    /// The index of the link named `name`.
    pub(super) fn index(&self, name: &str) -> Result<u32, Error> {
        let mut link = LinkMessage::default();
        link.attributes.push(LinkAttribute::IfName(name.to_owned()));
        let answers = self.request(
            format_args!("look up link {name}"),
            RouteNetlinkMessage::GetLink(link),
            Request::Ack,
        )?;
        answers
            .into_iter()
            .find_map(|answer| match answer {
                RouteNetlinkMessage::NewLink(link) => Some(link.header.index),
                _ => None,
            })
            .ok_or_else(|| Error::Netlink {
                step: format!("look up link {name}"),
                source: NetlinkError::Kernel(Errno::ENODEV),
            })
    }
}
