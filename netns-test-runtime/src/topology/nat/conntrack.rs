//! The connections a namespace tracks, as ctnetlink lists them.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use super::nftables::{self, attributes};
use crate::error::Error;
use crate::netns::NetNs;

/// `IPCTNL_MSG_CT_GET`.
const GET: u16 = 1;
/// `IPCTNL_MSG_CT_DELETE`.
pub(super) const DELETE: u16 = 2;

/// One tracked connection (IPv4): the tuple of its original direction, and
/// the one its replies carry, which differ where it is NATed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Connection {
    /// The IP protocol number: 6 for TCP, 17 for UDP, 1 for ICMP.
    pub protocol: u8,
    /// As the first packet was sent.
    pub original: Tuple,
    /// As a reply is sent: from the original's (translated) destination to
    /// its (translated) source.
    pub reply: Tuple,
}

/// A source and a destination; the port is 0 where the protocol has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tuple {
    /// The source.
    pub source: SocketAddrV4,
    /// The destination.
    pub destination: SocketAddrV4,
}

/// As a failure report shows it: `udp 192.168.1.10:5000 > 203.0.113.10:3478,
/// reply 203.0.113.10:3478 > 203.0.113.1:5000`.
impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let protocol = match self.protocol {
            1 => "icmp".to_owned(),
            6 => "tcp".to_owned(),
            17 => "udp".to_owned(),
            other => format!("proto {other}"),
        };
        write!(f, "{protocol} {}, reply {}", self.original, self.reply)
    }
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} > {}", self.source, self.destination)
    }
}

impl NetNs {
    /// The IPv4 connections this namespace tracks (`conntrack -L`), read
    /// over ctnetlink. An entry appears once its first packet has passed
    /// every hook; a packet dropped on its way leaves none.
    ///
    /// # Errors
    ///
    /// [`Error::Nftables`] when the kernel refuses the dump.
    pub fn conntrack(&self) -> Result<Vec<Connection>, Error> {
        let answers = self
            .run(|| nftables::ctnetlink(GET, true))?
            .map_err(|source| Error::Nftables {
                step: "list tracked connections".into(),
                source,
            })?;
        Ok(answers
            .iter()
            .filter_map(|payload| connection(payload))
            .collect())
    }
}

/// A connection from a `IPCTNL_MSG_CT_NEW` payload (after `nfgenmsg`).
fn connection(payload: &[u8]) -> Option<Connection> {
    let mut original = None;
    let mut reply = None;
    let mut protocol = 0;
    for (kind, value) in attributes(payload) {
        // CTA_TUPLE_ORIG 1, CTA_TUPLE_REPLY 2.
        match kind {
            1 => original = tuple(value, &mut protocol),
            2 => reply = tuple(value, &mut protocol),
            _ => {}
        }
    }
    Some(Connection {
        protocol,
        original: original?,
        reply: reply?,
    })
}

/// A tuple: `CTA_TUPLE_IP` (`CTA_IP_V4_SRC` 1, `_DST` 2) and
/// `CTA_TUPLE_PROTO` (`CTA_PROTO_NUM` 1, `_SRC_PORT` 2, `_DST_PORT` 3).
fn tuple(bytes: &[u8], protocol: &mut u8) -> Option<Tuple> {
    let (mut source, mut destination) = (None, None);
    let (mut source_port, mut destination_port) = (0, 0);
    for (kind, value) in attributes(bytes) {
        match kind {
            1 => {
                for (kind, value) in attributes(value) {
                    let address = <[u8; 4]>::try_from(value).ok().map(Ipv4Addr::from);
                    match kind {
                        1 => source = address,
                        2 => destination = address,
                        _ => {}
                    }
                }
            }
            2 => {
                for (kind, value) in attributes(value) {
                    let port = <[u8; 2]>::try_from(value).map(u16::from_be_bytes);
                    match kind {
                        1 => *protocol = value.first().copied().unwrap_or_default(),
                        2 => source_port = port.unwrap_or_default(),
                        3 => destination_port = port.unwrap_or_default(),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(Tuple {
        source: SocketAddrV4::new(source?, source_port),
        destination: SocketAddrV4::new(destination?, destination_port),
    })
}
