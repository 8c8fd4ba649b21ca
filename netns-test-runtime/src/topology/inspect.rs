//! Introspection: the routes, neighbours and sockets of a namespace, over
//! rtnetlink and sock_diag (never `ip` or `ss`), and a wait for a server to
//! listen. The failure reports show the same lists.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState as NudState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};

use super::observed::{MacAddr, Neighbour, NeighbourState, Protocol, Route, Socket, SocketState};
use super::types::IpPrefix;
use crate::error::Error;
use crate::netlink::{Replies, SockDiag};
use crate::netns::NetNs;

/// What a dump gave: the entries decoded, and how many could not be, with
/// why the first could not (a report names them; the public lists leave
/// them out).
#[derive(Debug)]
pub(crate) struct Listed<T> {
    pub(crate) entries: Vec<T>,
    pub(crate) undecodable: usize,
    pub(crate) first_error: Option<String>,
}

impl<T> Listed<T> {
    fn of<M>(replies: Replies<M>, entry: impl FnMut(M) -> Option<T>) -> Listed<T> {
        Listed {
            undecodable: replies.undecodable.len(),
            first_error: replies.undecodable.first().map(|first| first.error.clone()),
            entries: replies.messages.into_iter().filter_map(entry).collect(),
        }
    }

    fn add(&mut self, other: Listed<T>) {
        self.entries.extend(other.entries);
        self.undecodable += other.undecodable;
        self.first_error = self.first_error.take().or(other.first_error);
    }
}

/// How long [`NetNs::wait_for_listener`] waits between looks, at most.
const LOOK_EVERY_MAX: Duration = Duration::from_millis(20);

/// Introspection.
impl NetNs {
    /// The routes of the main table, as `ip route` and `ip -6 route` list
    /// them: unicast routes, those the kernel adds for an address too
    /// ([`Route::by_kernel`]).
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::NetNs;
    ///
    /// let (a, b) = (NetNs::new()?, NetNs::new()?);
    /// a.add_veth("a0", &b, "b0")?;
    /// a.add_address("a0", "10.0.0.1/24".parse()?)?;
    /// a.set_link_up("a0")?;
    /// a.add_default_route("10.0.0.2".parse().unwrap())?;
    /// let routes = a.routes()?;
    /// let default = routes.iter().find(|route| route.is_default()).unwrap();
    /// assert_eq!(default.to_string(), "default via 10.0.0.2 dev a0");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`] when the routes or links cannot be listed.
    pub fn routes(&self) -> Result<Vec<Route>, Error> {
        let names = self.link_names()?;
        Ok(self.routes_named(&|index| name_of(&names, index))?.entries)
    }

    /// The neighbour caches (ARP, and IPv6 neighbour discovery), as
    /// `ip neigh` lists them: the entries that need resolution.
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`] when the neighbours or links cannot be listed.
    pub fn neighbours(&self) -> Result<Vec<Neighbour>, Error> {
        let names = self.link_names()?;
        Ok(self
            .neighbours_named(&|index| name_of(&names, index))?
            .entries)
    }

    /// The TCP and UDP sockets of both families in this namespace, whoever
    /// holds them, as `ss -tuan` lists them, over sock_diag.
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::{NetNs, Protocol, SocketState};
    ///
    /// let ns = NetNs::new()?;
    /// let _listener = ns.run(|| std::net::TcpListener::bind("127.0.0.1:8080"))??;
    /// let sockets = ns.sockets()?;
    /// assert!(sockets.iter().any(|socket| socket.serves(Protocol::Tcp, 8080)));
    /// assert_eq!(sockets[0].state, SocketState::Listen);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`] when the sockets cannot be listed.
    pub fn sockets(&self) -> Result<Vec<Socket>, Error> {
        Ok(self.sockets_listed()?.entries)
    }

    /// Waits until a socket of this namespace serves `port` (a TCP socket
    /// listens on it, or a UDP socket is bound to it unconnected), for at
    /// most `timeout`, and returns it: a test waits so for a server it
    /// started, in any namespace and in any process, instead of sleeping
    /// or retrying a connect. It looks at once, then again after 1 ms,
    /// 2 ms, and so on up to every 20 ms.
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use std::time::Duration;
    /// use netns_test_runtime::{NetNs, Protocol};
    ///
    /// let server = NetNs::new()?;
    /// let running = server.spawn(|| {
    ///     let listener = std::net::TcpListener::bind("0.0.0.0:8080").unwrap();
    ///     listener.accept().map(drop)
    /// })?;
    /// let listening = server.wait_for_listener(Protocol::Tcp, 8080, Duration::from_secs(5))?;
    /// assert_eq!(listening.local.port(), 8080);
    /// server.run(|| std::net::TcpStream::connect("127.0.0.1:8080"))??;
    /// running.join().unwrap()?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::NoListener`] when none comes in time, naming the sockets
    /// the namespace has; [`Error::Netlink`] when they cannot be listed.
    pub fn wait_for_listener(
        &self,
        protocol: Protocol,
        port: u16,
        timeout: Duration,
    ) -> Result<Socket, Error> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            let sockets = self.sockets()?;
            if let Some(found) = sockets.iter().find(|socket| socket.serves(protocol, port)) {
                return Ok(found.clone());
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(Error::NoListener {
                    protocol,
                    port,
                    namespace: format!("{self:?}"),
                    waited,
                    sockets: sockets.iter().map(ToString::to_string).collect(),
                });
            }
            std::thread::sleep(pause.min(timeout - waited));
            pause = (pause * 2).min(LOOK_EVERY_MAX);
        }
    }

    /// The names of this namespace's links, by index.
    pub(crate) fn link_names(&self) -> Result<HashMap<u32, String>, Error> {
        let links = self.links()?;
        Ok(links
            .into_iter()
            .map(|link| (link.index, link.name))
            .collect())
    }

    /// [`NetNs::routes`], with links named by `name`, and those that could
    /// not be decoded counted.
    pub(crate) fn routes_named(
        &self,
        name: &impl Fn(u32) -> String,
    ) -> Result<Listed<Route>, Error> {
        let request = RouteNetlinkMessage::GetRoute(RouteMessage::default());
        let dumped = self.dump(format_args!("list routes"), request)?;
        Ok(Listed::of(dumped, |message| match message {
            RouteNetlinkMessage::NewRoute(route) => route_of(route, name),
            _ => None,
        }))
    }

    /// [`NetNs::neighbours`], with links named by `name`, and those that
    /// could not be decoded counted.
    pub(crate) fn neighbours_named(
        &self,
        name: &impl Fn(u32) -> String,
    ) -> Result<Listed<Neighbour>, Error> {
        let request = RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default());
        let dumped = self.dump(format_args!("list neighbours"), request)?;
        Ok(Listed::of(dumped, |message| match message {
            RouteNetlinkMessage::NewNeighbour(neighbour) => neighbour_of(neighbour, name),
            _ => None,
        }))
    }

    /// [`NetNs::sockets`], and those that could not be decoded counted.
    pub(crate) fn sockets_listed(&self) -> Result<Listed<Socket>, Error> {
        let failed = |source| Error::Netlink {
            step: "list sockets (sock_diag)".into(),
            source,
        };
        let mut diag = self.run(SockDiag::open)?.map_err(failed)?;
        let mut listed = Listed {
            entries: Vec::new(),
            undecodable: 0,
            first_error: None,
        };
        for (number, protocol) in [(IPPROTO_TCP, Protocol::Tcp), (IPPROTO_UDP, Protocol::Udp)] {
            for family in [AF_INET, AF_INET6] {
                let socket_id = match family {
                    AF_INET => SocketId::new_v4(),
                    _ => SocketId::new_v6(),
                };
                let request = SockDiagMessage::InetRequest(InetRequest {
                    family,
                    protocol: number,
                    extensions: ExtensionFlags::empty(),
                    states: StateFlags::all(),
                    socket_id,
                });
                let dumped = diag.dump(request).map_err(failed)?;
                listed.add(Listed::of(dumped, |answer| socket_of(answer, protocol)));
            }
        }
        Ok(listed)
    }
}

/// The name of link `index`, or `if<index>` where it has none.
pub(crate) fn name_of(names: &HashMap<u32, String>, index: u32) -> String {
    names
        .get(&index)
        .cloned()
        .unwrap_or_else(|| format!("if{index}"))
}

/// A unicast route of the main table.
fn route_of(route: RouteMessage, name: &impl Fn(u32) -> String) -> Option<Route> {
    let header = route.header;
    let mut table = u32::from(header.table);
    let (mut destination, mut gateway, mut device, mut source, mut metric) =
        (None, None, None, None, None);
    for attribute in route.attributes {
        match attribute {
            RouteAttribute::Table(id) => table = id,
            RouteAttribute::Destination(address) => destination = ip(address),
            RouteAttribute::Gateway(address) => gateway = ip(address),
            RouteAttribute::PrefSource(address) => source = ip(address),
            RouteAttribute::Oif(index) => device = Some(name(index)),
            RouteAttribute::Priority(priority) => metric = Some(priority),
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) || header.kind != RouteType::Unicast {
        return None;
    }
    let unspecified = match header.address_family {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let destination = IpPrefix::new(
        destination.unwrap_or(unspecified),
        header.destination_prefix_length,
    )
    .ok()?;
    Some(Route {
        destination,
        gateway,
        device,
        source,
        metric,
        by_kernel: header.protocol == RouteProtocol::Kernel,
    })
}

fn ip(address: RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(v4) => Some(v4.into()),
        RouteAddress::Inet6(v6) => Some(v6.into()),
        _ => None,
    }
}

/// An entry that needs resolution.
fn neighbour_of(neighbour: NeighbourMessage, name: &impl Fn(u32) -> String) -> Option<Neighbour> {
    let state = match neighbour.header.state {
        NudState::Noarp | NudState::None => return None,
        NudState::Incomplete => NeighbourState::Incomplete,
        NudState::Reachable => NeighbourState::Reachable,
        NudState::Stale => NeighbourState::Stale,
        NudState::Delay => NeighbourState::Delay,
        NudState::Probe => NeighbourState::Probe,
        NudState::Failed => NeighbourState::Failed,
        NudState::Permanent => NeighbourState::Permanent,
        other => NeighbourState::Other(u16::from(other)),
    };
    let mut address = None;
    let mut mac = None;
    for attribute in neighbour.attributes {
        match attribute {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                address = Some(IpAddr::from(v4));
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                address = Some(IpAddr::from(v6));
            }
            NeighbourAttribute::LinkLocalAddress(bytes) => mac = MacAddr::from_bytes(&bytes),
            _ => {}
        }
    }
    Some(Neighbour {
        address: address?,
        device: name(neighbour.header.ifindex),
        mac,
        state,
    })
}

fn socket_of(answer: SockDiagMessage, protocol: Protocol) -> Option<Socket> {
    let SockDiagMessage::InetResponse(response) = answer else {
        return None;
    };
    let header = &response.header;
    let id = &header.socket_id;
    Some(Socket {
        protocol,
        state: SocketState::of(protocol, header.state),
        local: SocketAddr::new(id.source_address, id.source_port),
        remote: (id.destination_port != 0)
            .then(|| SocketAddr::new(id.destination_address, id.destination_port)),
        recv_queue: header.recv_queue,
        send_queue: header.send_queue,
    })
}
