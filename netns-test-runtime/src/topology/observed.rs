//! What the introspection operations give: routes, neighbours, sockets and
//! MAC addresses, typed, as `ip route`, `ip neigh` and `ss -tuan` show them.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use super::types::IpPrefix;
use crate::error::Error;

/// A link-layer (Ethernet) address, such as `02:00:00:00:00:01`.
///
/// ```
/// use netns_test_runtime::MacAddr;
///
/// let mac: MacAddr = "02:00:0a:00:00:01".parse()?;
/// assert_eq!(mac.octets(), [2, 0, 10, 0, 0, 1]);
/// assert_eq!(mac.to_string(), "02:00:0a:00:00:01");
/// # Ok::<(), netns_test_runtime::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr([u8; 6]);

impl MacAddr {
    /// The address of these six octets.
    pub const fn new(octets: [u8; 6]) -> MacAddr {
        MacAddr(octets)
    }

    /// Its six octets.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// The address in a netlink attribute, where it is six octets long.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<MacAddr> {
        <[u8; 6]>::try_from(bytes).ok().map(MacAddr)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = Error;

    fn from_str(text: &str) -> Result<MacAddr, Error> {
        let bad = || Error::BadMac {
            text: text.to_owned(),
        };
        let mut octets = [0u8; 6];
        let mut parts = text.split(':');
        for octet in &mut octets {
            let part = parts
                .next()
                .filter(|part| part.len() == 2)
                .ok_or_else(bad)?;
            *octet = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        match parts.next() {
            Some(_) => Err(bad()),
            None => Ok(MacAddr(octets)),
        }
    }
}

/// A route of the main table, as [`NetNs::routes`](crate::NetNs::routes)
/// lists it: unicast routes, those the kernel adds for an address too.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Route {
    /// What it reaches: `0.0.0.0/0` or `::/0` for a default route.
    pub destination: IpPrefix,
    /// The gateway it goes through, if any.
    pub gateway: Option<IpAddr>,
    /// The link it goes out of, if it names one.
    pub device: Option<String>,
    /// The source address it prefers, if it names one.
    pub source: Option<IpAddr>,
    /// Its metric (priority), if it has one.
    pub metric: Option<u32>,
    /// Whether the kernel added it, for an address on a link
    /// (`proto kernel`).
    pub by_kernel: bool,
}

impl Route {
    /// Whether it is a default route (`0.0.0.0/0` or `::/0`).
    pub fn is_default(&self) -> bool {
        self.destination.len() == 0
    }
}

impl fmt::Display for Route {
    /// As `ip route` shows it: `default via 10.0.0.1 dev eth0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.is_default() {
            true => f.write_str("default")?,
            false => write!(f, "{}", self.destination)?,
        }
        if let Some(gateway) = self.gateway {
            write!(f, " via {gateway}")?;
        }
        if let Some(device) = &self.device {
            write!(f, " dev {device}")?;
        }
        if let Some(source) = self.source {
            write!(f, " src {source}")?;
        }
        Ok(())
    }
}

/// The state of a neighbour entry (`NUD_*`, `linux/neighbour.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NeighbourState {
    /// Being resolved: a solicitation is out.
    Incomplete,
    /// Resolved and recently confirmed.
    Reachable,
    /// Resolved, not confirmed lately: confirmed again when next used.
    Stale,
    /// Waiting a moment before being confirmed again.
    Delay,
    /// Being confirmed again.
    Probe,
    /// Resolution failed.
    Failed,
    /// Set by hand, never expires.
    Permanent,
    /// Another state, by its number.
    Other(u16),
}

impl fmt::Display for NeighbourState {
    /// As `ip neigh` shows it: `REACHABLE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            NeighbourState::Incomplete => "INCOMPLETE",
            NeighbourState::Reachable => "REACHABLE",
            NeighbourState::Stale => "STALE",
            NeighbourState::Delay => "DELAY",
            NeighbourState::Probe => "PROBE",
            NeighbourState::Failed => "FAILED",
            NeighbourState::Permanent => "PERMANENT",
            NeighbourState::Other(state) => return write!(f, "state {state:#x}"),
        };
        f.write_str(name)
    }
}

/// An entry of a neighbour cache (ARP, or IPv6 neighbour discovery), as
/// [`NetNs::neighbours`](crate::NetNs::neighbours) lists them: those that
/// need resolution, not those of `lo` or of links without it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Neighbour {
    /// The neighbour's IP address.
    pub address: IpAddr,
    /// The link it is on.
    pub device: String,
    /// Its link-layer address, once resolved.
    pub mac: Option<MacAddr>,
    /// The entry's state.
    pub state: NeighbourState,
}

impl fmt::Display for Neighbour {
    /// As `ip neigh` shows it: `10.0.0.2 dev eth0 lladdr 02:.. REACHABLE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} dev {}", self.address, self.device)?;
        if let Some(mac) = self.mac {
            write!(f, " lladdr {mac}")?;
        }
        write!(f, " {}", self.state)
    }
}

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// The state of a socket, as `ss` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SocketState {
    /// A TCP socket waiting for connections.
    Listen,
    /// A connected TCP socket, or a UDP socket connected to one peer.
    Established,
    /// A UDP socket bound but not connected: it takes datagrams from
    /// anyone, as a UDP server's does.
    Unconnected,
    /// TCP: a connection being opened, from this side.
    SynSent,
    /// TCP: a connection being opened, from the other side.
    SynRecv,
    /// TCP: closing, from this side, waiting for the peer's FIN or ACK.
    FinWait1,
    /// TCP: closing, from this side, waiting for the peer's FIN.
    FinWait2,
    /// TCP: closed, waiting for late segments.
    TimeWait,
    /// TCP: closed.
    Close,
    /// TCP: the peer closed; this side has not.
    CloseWait,
    /// TCP: this side closed after the peer, waiting for the last ACK.
    LastAck,
    /// TCP: both sides closing at once.
    Closing,
    /// Another state, by its number (`include/net/tcp_states.h`).
    Other(u8),
}

impl SocketState {
    /// The state of a socket of `protocol` whose kernel state is `state`
    /// (`include/net/tcp_states.h`; a UDP socket is ESTABLISHED when
    /// connected, CLOSE when not).
    pub(crate) fn of(protocol: Protocol, state: u8) -> SocketState {
        match (protocol, state) {
            (Protocol::Udp, 7) => SocketState::Unconnected,
            (_, 1) => SocketState::Established,
            (_, 2) => SocketState::SynSent,
            (_, 3) => SocketState::SynRecv,
            (_, 4) => SocketState::FinWait1,
            (_, 5) => SocketState::FinWait2,
            (_, 6) => SocketState::TimeWait,
            (_, 7) => SocketState::Close,
            (_, 8) => SocketState::CloseWait,
            (_, 9) => SocketState::LastAck,
            (_, 10) => SocketState::Listen,
            (_, 11) => SocketState::Closing,
            (_, other) => SocketState::Other(other),
        }
    }
}

impl fmt::Display for SocketState {
    /// As `ss` shows it: `LISTEN`, `ESTAB`, `UNCONN`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SocketState::Listen => "LISTEN",
            SocketState::Established => "ESTAB",
            SocketState::Unconnected => "UNCONN",
            SocketState::SynSent => "SYN-SENT",
            SocketState::SynRecv => "SYN-RECV",
            SocketState::FinWait1 => "FIN-WAIT-1",
            SocketState::FinWait2 => "FIN-WAIT-2",
            SocketState::TimeWait => "TIME-WAIT",
            SocketState::Close => "CLOSE",
            SocketState::CloseWait => "CLOSE-WAIT",
            SocketState::LastAck => "LAST-ACK",
            SocketState::Closing => "CLOSING",
            SocketState::Other(_) => "UNKNOWN",
        })
    }
}

/// A TCP or UDP socket of a namespace, as
/// [`NetNs::sockets`](crate::NetNs::sockets) lists them, whichever process
/// holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Socket {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Its state.
    pub state: SocketState,
    /// The address it is bound to.
    pub local: SocketAddr,
    /// The peer it is connected to, if any.
    pub remote: Option<SocketAddr>,
    /// Bytes received and not yet read (for a listener: connections
    /// waiting to be accepted).
    pub recv_queue: u32,
    /// Bytes sent and not yet acknowledged (for a listener: its backlog).
    pub send_queue: u32,
}

impl Socket {
    /// Whether it takes what is sent to `port` of this namespace: a TCP
    /// socket listening, or an unconnected UDP socket, bound to `port`.
    pub fn serves(&self, protocol: Protocol, port: u16) -> bool {
        let state = match protocol {
            Protocol::Tcp => SocketState::Listen,
            Protocol::Udp => SocketState::Unconnected,
        };
        (self.protocol, self.state, self.local.port()) == (protocol, state, port)
    }
}

impl fmt::Display for Socket {
    /// As `ss -tuan` shows it: `tcp LISTEN 0.0.0.0:80`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.to_string();
        write!(f, "{} {state:<10} {}", self.protocol, self.local)?;
        if let Some(remote) = self.remote {
            write!(f, " -> {remote}")?;
        }
        if self.state != SocketState::Listen && (self.recv_queue != 0 || self.send_queue != 0) {
            write!(
                f,
                " (recv-q {}, send-q {})",
                self.recv_queue, self.send_queue
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_read_like_ss() {
        let socket = |protocol, state, local: &str, remote: Option<&str>, queues: (u32, u32)| {
            Socket {
                protocol,
                state: SocketState::of(protocol, state),
                local: local.parse().unwrap(),
                remote: remote.map(|remote| remote.parse().unwrap()),
                recv_queue: queues.0,
                send_queue: queues.1,
            }
            .to_string()
        };
        assert_eq!(
            socket(
                Protocol::Tcp,
                1,
                "10.0.0.1:40000",
                Some("10.0.0.2:80"),
                (3, 0)
            ),
            "tcp ESTAB      10.0.0.1:40000 -> 10.0.0.2:80 (recv-q 3, send-q 0)"
        );
        assert_eq!(
            socket(Protocol::Tcp, 10, "[::]:80", None, (0, 128)),
            "tcp LISTEN     [::]:80"
        );
        assert_eq!(
            socket(Protocol::Udp, 7, "[::]:80", None, (0, 0)),
            "udp UNCONN     [::]:80"
        );
    }

    #[test]
    fn mac_addresses() {
        let mac: MacAddr = "02:00:0a:ff:00:01".parse().unwrap();
        assert_eq!(mac.octets(), [2, 0, 10, 255, 0, 1]);
        assert_eq!(mac.to_string(), "02:00:0a:ff:00:01");
        for bad in [
            "",
            "02:00:0a:ff:00",
            "02:00:0a:ff:00:01:02",
            "2:0:a:ff:0:1",
            "xx:00:0a:ff:00:01",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }
}
