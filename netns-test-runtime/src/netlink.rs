//! A minimal rtnetlink client: one request, its replies, its acknowledgement.

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkFlags, LinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use nix::errno::Errno;

use crate::error::{Error, NetlinkError};

/// The loopback device's interface index, fixed by the kernel in every
/// network namespace (`LOOPBACK_IFINDEX` in `include/net/net_namespace.h`).
const LOOPBACK_IFINDEX: u32 = 1;

/// An rtnetlink socket of the calling thread's network namespace.
///
/// A netlink socket belongs to the namespace its creator was in, so the
/// socket keeps acting on that namespace wherever it is used from.
pub(crate) struct Rtnl {
    socket: Socket,
    sequence: u32,
}

impl Rtnl {
    /// Opens a socket in the calling thread's network namespace.
    pub(crate) fn open() -> Result<Self, NetlinkError> {
        let socket = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Socket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(NetlinkError::Socket)?;
        Ok(Rtnl {
            socket,
            sequence: 0,
        })
    }

    /// Sends one request and returns the messages that answer it: none for a
    /// plain request, the objects for a dump.
    pub(crate) fn request(
        &mut self,
        message: RouteNetlinkMessage,
        dump: bool,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.sequence = self.sequence.wrapping_add(1);
        let sequence = self.sequence;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { NLM_F_ACK };
        header.sequence_number = sequence;
        let mut request = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        request.finalize();
        let mut buffer = vec![0; request.buffer_len()];
        request.serialize(&mut buffer);
        self.socket.send(&buffer, 0).map_err(NetlinkError::Socket)?;

        let mut answers = Vec::new();
        loop {
            let (datagram, _) = self.socket.recv_from_full().map_err(NetlinkError::Socket)?;
            for reply in parse_datagram(&datagram)? {
                if reply.header.sequence_number != sequence {
                    return Err(NetlinkError::WrongSequence {
                        expected: sequence,
                        got: reply.header.sequence_number,
                    });
                }
                match reply.payload {
                    NetlinkPayload::Error(error) => match error.code {
                        None => return Ok(answers),
                        Some(code) => {
                            return Err(NetlinkError::Kernel(Errno::from_raw(-code.get())));
                        }
                    },
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::InnerMessage(message) => answers.push(message),
                    NetlinkPayload::Overrun(_) => {
                        return Err(NetlinkError::Malformed(
                            "the kernel reported an overrun".into(),
                        ));
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Splits one datagram into netlink messages, refusing any that is cut short.
fn parse_datagram(
    mut datagram: &[u8],
) -> Result<Vec<NetlinkMessage<RouteNetlinkMessage>>, NetlinkError> {
    let mut messages = Vec::new();
    while !datagram.is_empty() {
        let length = NetlinkBuffer::new_checked(datagram)
            .map_err(|error| NetlinkError::Malformed(error.to_string()))?
            .length() as usize;
        // Messages are padded to 4 bytes; the last one may omit its padding.
        let padded = length.next_multiple_of(4).min(datagram.len());
        let message = NetlinkMessage::deserialize(&datagram[..length])
            .map_err(|error| NetlinkError::Malformed(error.to_string()))?;
        messages.push(message);
        datagram = &datagram[padded..];
    }
    Ok(messages)
}

/// Brings `lo` up in the calling thread's network namespace.
pub(crate) fn loopback_up() -> Result<(), Error> {
    let netlink = |source| Error::Netlink {
        operation: "bring lo up".into(),
        source,
    };
    let mut rtnl = Rtnl::open().map_err(netlink)?;
    let mut link = LinkMessage::default();
    link.header.index = LOOPBACK_IFINDEX;
    link.header.flags = LinkFlags::Up;
    link.header.change_mask = LinkFlags::Up;
    rtnl.request(RouteNetlinkMessage::SetLink(link), false)
        .map_err(netlink)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ACK for sequence number 7: an `NLMSG_ERROR` with code 0, followed by
    /// the 16-byte header of the request it answers.
    const ACK: [u8; 36] = [
        36, 0, 0, 0, // length
        2, 0, // NLMSG_ERROR
        0, 0, // flags
        7, 0, 0, 0, // sequence number
        0, 0, 0, 0, // port
        0, 0, 0, 0, // error code 0: an ACK
        16, 0, 0, 0, 19, 0, 5, 0, 7, 0, 0, 0, 0, 0, 0, 0, // the request's header
    ];

    #[test]
    fn parses_an_ack() {
        let messages = parse_datagram(&ACK).expect("a well-formed ACK");
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].header.sequence_number, 7);
        assert!(matches!(&messages[0].payload, NetlinkPayload::Error(e) if e.code.is_none()));
    }

    #[test]
    fn refuses_a_reply_cut_short() {
        for cut in [3, 15, 20, 35] {
            assert!(
                matches!(parse_datagram(&ACK[..cut]), Err(NetlinkError::Malformed(_))),
                "a reply cut at {cut} bytes must be an error"
            );
        }
    }
}
