//! Routes.

use std::net::IpAddr;

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};

use super::address::family;
use super::types::{IpPrefix, Via};
use crate::error::Error;
use crate::netlink::Request;
use crate::netns::NetNs;

/// Routes.
impl NetNs {
    fn route_message(&self, destination: IpPrefix, via: Via<'_>) -> Result<RouteMessage, Error> {
        let mut message = RouteMessage::default();
        message.header.address_family = family(destination.address);
        message.header.destination_prefix_length = destination.len;
        message.header.table = RouteHeader::RT_TABLE_MAIN;
        message.header.protocol = RouteProtocol::Static;
        message.header.kind = RouteType::Unicast;
        if destination.len > 0 {
            message
                .attributes
                .push(RouteAttribute::Destination(route_address(
                    destination.address,
                )));
        }
        match via {
            Via::Gateway(gateway) => {
                message.header.scope = RouteScope::Universe;
                message
                    .attributes
                    .push(RouteAttribute::Gateway(route_address(gateway)));
            }
            Via::Device(device) => {
                message.header.scope = RouteScope::Link;
                message
                    .attributes
                    .push(RouteAttribute::Oif(self.index(device)?));
            }
        }
        Ok(message)
    }

    /// Adds a route to `destination`, like `ip route add DESTINATION via GW`
    /// or `... dev DEVICE`. A destination of length 0 (`0.0.0.0/0`, `::/0`)
    /// is the default route.
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::NetNs;
    ///
    /// let ns = NetNs::new()?;
    /// use netns_test_runtime::Via;
    ///
    /// ns.add_veth("a0", &ns, "b0")?;
    /// ns.add_address("a0", "10.0.0.1/24".parse()?)?;
    /// ns.set_link_up("a0")?;
    /// ns.set_link_up("b0")?;
    /// ns.add_route("10.9.0.0/16".parse()?, Via::Gateway("10.0.0.2".parse().unwrap()))?;
    /// ns.add_route("10.8.0.0/16".parse()?, Via::Device("a0"))?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`], e.g. `ENETUNREACH` for a gateway on no connected
    /// network, or `EEXIST`.
    pub fn add_route(&self, destination: IpPrefix, via: Via<'_>) -> Result<(), Error> {
        let message = self.route_message(destination, via)?;
        self.request(
            format_args!("add route {destination} {via}"),
            RouteNetlinkMessage::NewRoute(message),
            Request::Create,
        )
        .map(drop)
    }

    /// Adds the default route through `gateway`, for the gateway's family.
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::NetNs;
    ///
    /// let ns = NetNs::new()?;
    /// ns.add_veth("a0", &ns, "b0")?;
    /// ns.add_address("a0", "10.0.0.1/24".parse()?)?;
    /// ns.set_link_up("a0")?;
    /// ns.set_link_up("b0")?;
    /// ns.add_default_route("10.0.0.2".parse().unwrap())?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`NetNs::add_route`].
    pub fn add_default_route(&self, gateway: IpAddr) -> Result<(), Error> {
        let any = if gateway.is_ipv4() {
            IpAddr::from([0, 0, 0, 0])
        } else {
            IpAddr::from([0u16; 8])
        };
        self.add_route(
            IpPrefix {
                address: any,
                len: 0,
            },
            Via::Gateway(gateway),
        )
    }

    /// Deletes a route that [`NetNs::add_route`] would add.
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::NetNs;
    ///
    /// let ns = NetNs::new()?;
    /// use netns_test_runtime::Via;
    ///
    /// ns.add_veth("a0", &ns, "b0")?;
    /// ns.add_address("a0", "10.0.0.1/24".parse()?)?;
    /// ns.set_link_up("a0")?;
    /// ns.set_link_up("b0")?;
    /// let via = Via::Gateway("10.0.0.2".parse().unwrap());
    /// ns.add_route("10.9.0.0/16".parse()?, via)?;
    /// ns.delete_route("10.9.0.0/16".parse()?, via)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`], e.g. `ESRCH` when there is no such route.
    pub fn delete_route(&self, destination: IpPrefix, via: Via<'_>) -> Result<(), Error> {
        let message = self.route_message(destination, via)?;
        self.request(
            format_args!("delete route {destination} {via}"),
            RouteNetlinkMessage::DelRoute(message),
            Request::Ack,
        )
        .map(drop)
    }
}

fn route_address(address: IpAddr) -> RouteAddress {
    match address {
        IpAddr::V4(v4) => RouteAddress::Inet(v4),
        IpAddr::V6(v6) => RouteAddress::Inet6(v6),
    }
}
