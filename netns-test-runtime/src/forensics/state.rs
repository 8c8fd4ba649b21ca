//! What a network namespace looks like, gathered over netlink (rtnetlink
//! and sock_diag, never `ip` or `ss`) and written in a few lines, in the
//! spirit of `ip -br addr`, `ip route`, `ip neigh` and `ss -tuan`.

use std::collections::HashMap;
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteType,
};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};

use crate::error::Error;
use crate::netlink::{Replies, SockDiag};
use crate::netns::NetNs;
use crate::topology::{Link, OperState};

/// The sockets of a namespace, as sock_diag lists them, and a note for
/// those it could not decode.
#[derive(Debug, Default)]
pub(crate) struct Sockets {
    pub(crate) entries: Vec<SocketEntry>,
    pub(crate) not_decoded: Option<String>,
}

/// One TCP or UDP socket, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SocketEntry {
    pub(crate) protocol: &'static str,
    /// The kernel's TCP state (`include/net/tcp_states.h`); a UDP socket
    /// is ESTABLISHED when connected, CLOSE when not.
    pub(crate) state: u8,
    pub(crate) local: SocketAddr,
    pub(crate) remote: Option<SocketAddr>,
    pub(crate) recv_queue: u32,
    pub(crate) send_queue: u32,
}

impl SocketEntry {
    /// Whether `other` is the same socket, in another state.
    fn same_as(&self, other: &SocketEntry) -> bool {
        (self.protocol, self.local, self.remote) == (other.protocol, other.local, other.remote)
    }
}

/// Where sockets taken earlier than the rest of the state come from.
#[derive(Debug)]
pub(crate) enum Taken {
    /// A dump of the namespace's sockets.
    Dumped(Result<Sockets, Error>),
    /// The sockets this process held in the namespace: they stand in for
    /// the same sockets in the dump made now, and are added where they are
    /// gone from it.
    Held(Vec<SocketEntry>),
}

/// Writes the state of `ns`, under the heading `label`, indented for a
/// failure report, with its sockets as `taken` earlier where given. A part
/// that cannot be read says why, in its place.
pub(crate) fn write(out: &mut String, label: &str, ns: &NetNs, taken: Option<Taken>) {
    let _ = writeln!(out, "  {label}");
    let links = ns.links();
    let names: HashMap<u32, String> = match &links {
        Ok(links) => links
            .iter()
            .map(|l| (l.index, printable(&l.name)))
            .collect(),
        Err(_) => HashMap::new(),
    };
    let name = |index: u32| {
        names
            .get(&index)
            .cloned()
            .unwrap_or_else(|| format!("if{index}"))
    };
    section(
        out,
        "links",
        links.map(|links| links.iter().map(link).collect()),
    );
    section(out, "routes", routes(ns, &name));
    section(out, "neighbours", neighbours(ns, &name));
    let sockets = match taken {
        Some(Taken::Dumped(dumped)) => dumped,
        Some(Taken::Held(held)) => sockets(ns).map(|mut now| {
            for entry in held {
                match now.entries.iter_mut().find(|there| there.same_as(&entry)) {
                    Some(there) => *there = entry,
                    None => now.entries.push(entry),
                }
            }
            now
        }),
        None => sockets(ns),
    };
    let lines = sockets.map(|sockets| {
        let lines = sockets.entries.iter().map(socket_line);
        lines.chain(sockets.not_decoded).collect()
    });
    section(out, "sockets", lines);
}

/// Writes one part: its name, then one line per item.
fn section(out: &mut String, name: &str, lines: Result<Vec<String>, Error>) {
    let lines = match lines {
        Ok(lines) if lines.is_empty() => vec!["none".to_owned()],
        Ok(lines) => lines,
        Err(error) => vec![format!("unreadable: {error}")],
    };
    for (i, line) in lines.iter().enumerate() {
        let heading = if i == 0 { name } else { "" };
        let _ = writeln!(out, "    {heading:<11}{line}");
    }
}

fn link(link: &Link) -> String {
    let state = match (link.up, link.state) {
        (false, _) => "DOWN",
        (true, OperState::Up) => "UP",
        (true, OperState::Down) => "NO-CARRIER",
        (true, OperState::LowerLayerDown) => "LOWER-DOWN",
        (true, OperState::Unknown) => "UNKNOWN",
        (true, OperState::Other) => "OTHER",
    };
    let mut line = format!("{:<10} {state:<10} mtu {}", printable(&link.name), link.mtu);
    for address in &link.addresses {
        let _ = write!(line, " {address}");
    }
    line
}

/// The main table's unicast routes, without the IPv6 link-local ones the
/// kernel adds to every link.
fn routes(ns: &NetNs, name: &impl Fn(u32) -> String) -> Result<Vec<String>, Error> {
    let request = RouteNetlinkMessage::GetRoute(RouteMessage::default());
    dump(
        ns,
        format_args!("list routes"),
        request,
        |message| match message {
            RouteNetlinkMessage::NewRoute(route) => route_line(route, name),
            _ => None,
        },
    )
}

/// Dumps objects of `ns` with `request`, and writes the lines `line` makes
/// of those it keeps, then a line for those that could not be decoded.
fn dump(
    ns: &NetNs,
    step: std::fmt::Arguments<'_>,
    request: RouteNetlinkMessage,
    line: impl FnMut(RouteNetlinkMessage) -> Option<String>,
) -> Result<Vec<String>, Error> {
    let dumped = ns.dump(step, request)?;
    Ok(lines_of(dumped, line))
}

/// The lines `line` makes of the objects of a dump, then one that names
/// how many more could not be decoded, and why the first could not.
fn lines_of<M>(replies: Replies<M>, line: impl FnMut(M) -> Option<String>) -> Vec<String> {
    let not_decoded = not_decoded(&replies);
    let lines = replies.messages.into_iter().filter_map(line);
    lines.chain(not_decoded).collect()
}

/// A line that names how many objects of a dump could not be decoded, and
/// why the first could not.
fn not_decoded<M>(replies: &Replies<M>) -> Option<String> {
    let first = replies.undecodable.first()?;
    Some(format!(
        "({} could not be decoded: {})",
        replies.undecodable.len(),
        printable(&first.error)
    ))
}

/// `text` with its control characters escaped (`\u{1b}`, `\n`), so that a
/// name cannot drive the terminal a report is read on.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c.is_control() {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect()
}

fn route_line(route: RouteMessage, name: &impl Fn(u32) -> String) -> Option<String> {
    let header = route.header;
    let mut table = u32::from(header.table);
    let (mut destination, mut gateway, mut device, mut source) = (None, None, None, None);
    for attribute in route.attributes {
        match attribute {
            RouteAttribute::Table(id) => table = id,
            RouteAttribute::Destination(address) => destination = ip(address),
            RouteAttribute::Gateway(address) => gateway = ip(address),
            RouteAttribute::PrefSource(address) => source = ip(address),
            RouteAttribute::Oif(index) => device = Some(name(index)),
            _ => {}
        }
    }
    let link_local = matches!(destination, Some(IpAddr::V6(v6)) if v6.is_unicast_link_local());
    if table != u32::from(RouteHeader::RT_TABLE_MAIN)
        || header.kind != RouteType::Unicast
        || (link_local && header.protocol == RouteProtocol::Kernel)
    {
        return None;
    }
    let mut line = match destination {
        Some(address) => format!("{address}/{}", header.destination_prefix_length),
        None => "default".to_owned(),
    };
    if let Some(gateway) = gateway {
        let _ = write!(line, " via {gateway}");
    }
    if let Some(device) = device {
        let _ = write!(line, " dev {device}");
    }
    if let Some(source) = source {
        let _ = write!(line, " src {source}");
    }
    Some(line)
}

fn ip(address: RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(v4) => Some(v4.into()),
        RouteAddress::Inet6(v6) => Some(v6.into()),
        _ => None,
    }
}

/// The neighbour caches, without the entries that need no resolution.
fn neighbours(ns: &NetNs, name: &impl Fn(u32) -> String) -> Result<Vec<String>, Error> {
    let request = RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default());
    dump(
        ns,
        format_args!("list neighbours"),
        request,
        |message| match message {
            RouteNetlinkMessage::NewNeighbour(neighbour) => neighbour_line(neighbour, name),
            _ => None,
        },
    )
}

fn neighbour_line(neighbour: NeighbourMessage, name: &impl Fn(u32) -> String) -> Option<String> {
    let state = match neighbour.header.state {
        NeighbourState::Noarp | NeighbourState::None => return None,
        NeighbourState::Incomplete => "INCOMPLETE".to_owned(),
        NeighbourState::Reachable => "REACHABLE".to_owned(),
        NeighbourState::Stale => "STALE".to_owned(),
        NeighbourState::Delay => "DELAY".to_owned(),
        NeighbourState::Probe => "PROBE".to_owned(),
        NeighbourState::Failed => "FAILED".to_owned(),
        NeighbourState::Permanent => "PERMANENT".to_owned(),
        NeighbourState::Other(state) => format!("state {state:#x}"),
        other => format!("{other:?}"),
    };
    let mut destination = None;
    let mut lladdr = None;
    for attribute in neighbour.attributes {
        match attribute {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                destination = Some(IpAddr::from(v4));
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                destination = Some(IpAddr::from(v6));
            }
            NeighbourAttribute::LinkLocalAddress(bytes) => lladdr = Some(mac(&bytes)),
            _ => {}
        }
    }
    let mut line = format!("{} dev {}", destination?, name(neighbour.header.ifindex));
    if let Some(lladdr) = lladdr {
        let _ = write!(line, " lladdr {lladdr}");
    }
    let _ = write!(line, " {state}");
    Some(line)
}

fn mac(bytes: &[u8]) -> String {
    let hex: Vec<String> = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    hex.join(":")
}

/// TCP and UDP sockets of both families, as sock_diag lists them.
pub(crate) fn sockets(ns: &NetNs) -> Result<Sockets, Error> {
    let failed = |source| Error::Netlink {
        step: "list sockets (sock_diag)".into(),
        source,
    };
    let mut diag = ns.run(SockDiag::open)?.map_err(failed)?;
    let mut sockets = Sockets::default();
    for (protocol, proto_name) in [(IPPROTO_TCP, "tcp"), (IPPROTO_UDP, "udp")] {
        for family in [AF_INET, AF_INET6] {
            let socket_id = match family {
                AF_INET => SocketId::new_v4(),
                _ => SocketId::new_v6(),
            };
            let request = SockDiagMessage::InetRequest(InetRequest {
                family,
                protocol,
                extensions: ExtensionFlags::empty(),
                states: StateFlags::all(),
                socket_id,
            });
            let dumped = diag.dump(request).map_err(failed)?;
            sockets.not_decoded = sockets.not_decoded.or(not_decoded(&dumped));
            for answer in dumped.messages {
                if let SockDiagMessage::InetResponse(response) = answer {
                    let header = &response.header;
                    let id = &header.socket_id;
                    sockets.entries.push(SocketEntry {
                        protocol: proto_name,
                        state: header.state,
                        local: SocketAddr::new(id.source_address, id.source_port),
                        remote: (id.destination_port != 0)
                            .then(|| SocketAddr::new(id.destination_address, id.destination_port)),
                        recv_queue: header.recv_queue,
                        send_queue: header.send_queue,
                    });
                }
            }
        }
    }
    Ok(sockets)
}

fn socket_line(socket: &SocketEntry) -> String {
    let state = match (socket.protocol, socket.state) {
        ("udp", 7) => "UNCONN",
        (_, 1) => "ESTAB",
        (_, 2) => "SYN-SENT",
        (_, 3) => "SYN-RECV",
        (_, 4) => "FIN-WAIT-1",
        (_, 5) => "FIN-WAIT-2",
        (_, 6) => "TIME-WAIT",
        (_, 7) => "CLOSE",
        (_, 8) => "CLOSE-WAIT",
        (_, 9) => "LAST-ACK",
        (_, 10) => "LISTEN",
        (_, 11) => "CLOSING",
        _ => "UNKNOWN",
    };
    let mut line = format!("{} {state:<10} {}", socket.protocol, socket.local);
    if let Some(remote) = socket.remote {
        let _ = write!(line, " -> {remote}");
    }
    if state != "LISTEN" && (socket.recv_queue != 0 || socket.send_queue != 0) {
        let _ = write!(
            line,
            " (recv-q {}, send-q {})",
            socket.recv_queue, socket.send_queue
        );
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_read_like_ss() {
        let entry = |protocol, state, local: &str, remote: Option<&str>, queues: (u32, u32)| {
            socket_line(&SocketEntry {
                protocol,
                state,
                local: local.parse().unwrap(),
                remote: remote.map(|remote| remote.parse().unwrap()),
                recv_queue: queues.0,
                send_queue: queues.1,
            })
        };
        assert_eq!(
            entry("tcp", 1, "10.0.0.1:40000", Some("10.0.0.2:80"), (3, 0)),
            "tcp ESTAB      10.0.0.1:40000 -> 10.0.0.2:80 (recv-q 3, send-q 0)"
        );
        assert_eq!(
            entry("tcp", 10, "[::]:80", None, (0, 128)),
            "tcp LISTEN     [::]:80"
        );
        assert_eq!(
            entry("udp", 7, "[::]:80", None, (0, 0)),
            "udp UNCONN     [::]:80"
        );
    }
}
