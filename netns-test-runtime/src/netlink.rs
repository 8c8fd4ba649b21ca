//! A minimal netlink client: one request, its replies, its acknowledgement,
//! for rtnetlink and sock_diag alike; the socket a [`crate::NetNs`] keeps;
//! and the cookie that tells namespaces apart.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Mutex, PoisonError};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkBuffer,
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkFlags, LinkMessage};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::Socket;
use netlink_sys::SocketAddr;
use netlink_sys::protocols::{NETLINK_ROUTE, NETLINK_SOCK_DIAG};
use nix::errno::Errno;

use crate::error::{Error, NetlinkError};

/// The loopback device's interface index, fixed by the kernel in every
/// network namespace (`LOOPBACK_IFINDEX` in `include/net/net_namespace.h`).
const LOOPBACK_IFINDEX: u32 = 1;

/// A netlink socket of the calling thread's network namespace, speaking
/// the messages `M` of one netlink family.
///
/// A netlink socket belongs to the namespace its creator was in, so the
/// socket keeps acting on that namespace wherever it is used from.
pub(crate) struct Netlink<M> {
    socket: Socket,
    sequence: u32,
    messages: PhantomData<fn(M) -> M>,
}

/// An rtnetlink socket.
pub(crate) type Rtnl = Netlink<RouteNetlinkMessage>;

/// A sock_diag socket.
pub(crate) type SockDiag = Netlink<SockDiagMessage>;

impl Rtnl {
    /// Opens an rtnetlink socket in the calling thread's network namespace.
    pub(crate) fn open() -> Result<Self, NetlinkError> {
        Netlink::open_protocol(NETLINK_ROUTE)
    }
}

impl Rtnl {
    /// Opens an rtnetlink socket in the calling thread's network namespace
    /// whose requests the kernel checks strictly (`NETLINK_GET_STRICT_CHK`,
    /// Linux 4.20): only such a socket may dump another namespace's
    /// addresses (`IFA_TARGET_NETNSID`), and have the dump filtered by link.
    pub(crate) fn open_strict() -> Result<Self, NetlinkError> {
        let rtnl = Self::open()?;
        rtnl.socket
            .set_netlink_get_strict_chk(true)
            .map_err(NetlinkError::Socket)?;
        Ok(rtnl)
    }
}

impl SockDiag {
    /// Opens a sock_diag socket in the calling thread's network namespace.
    pub(crate) fn open() -> Result<Self, NetlinkError> {
        Netlink::open_protocol(NETLINK_SOCK_DIAG)
    }
}

impl<M> Netlink<M>
where
    M: NetlinkSerializable + NetlinkDeserializable + Debug,
{
    fn open_protocol(protocol: isize) -> Result<Self, NetlinkError> {
        let socket = Socket::new(protocol).map_err(NetlinkError::Socket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(NetlinkError::Socket)?;
        Ok(Netlink {
            socket,
            sequence: 0,
            messages: PhantomData,
        })
    }

    /// Sends one request and returns the messages that answer it: none for a
    /// change, the objects for a get. A reply that cannot be decoded fails
    /// the request.
    pub(crate) fn request(&mut self, message: M, kind: Request) -> Result<Vec<M>, NetlinkError> {
        let replies = self.exchange(message, kind)?;
        match replies.undecodable.into_iter().next() {
            Some(undecodable) => Err(NetlinkError::Malformed(undecodable.error)),
            None => Ok(replies.messages),
        }
    }

    /// Dumps all objects of a kind: those decoded, and those that could not be.
    pub(crate) fn dump(&mut self, message: M) -> Result<Replies<M>, NetlinkError> {
        self.exchange(message, Request::Dump)
    }

    fn exchange(&mut self, message: M, kind: Request) -> Result<Replies<M>, NetlinkError> {
        self.sequence = self.sequence.wrapping_add(1);
        let sequence = self.sequence;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST
            | match kind {
                Request::Dump => NLM_F_DUMP,
                Request::Ack => NLM_F_ACK,
                Request::Create => NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                Request::Replace => NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            };
        header.sequence_number = sequence;
        let mut request = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        request.finalize();
        let mut buffer = vec![0; request.buffer_len()];
        request.serialize(&mut buffer);
        self.socket.send(&buffer, 0).map_err(NetlinkError::Socket)?;

        let mut answers = Replies {
            messages: Vec::new(),
            undecodable: Vec::new(),
        };
        loop {
            let (datagram, _) = self.socket.recv_from_full().map_err(NetlinkError::Socket)?;
            if take_replies(&datagram, sequence, &mut answers)? {
                return Ok(answers);
            }
        }
    }
}

/// The answers to a dump.
#[derive(Debug)]
pub(crate) struct Replies<M> {
    /// The objects decoded.
    pub(crate) messages: Vec<M>,
    /// Those that could not be, as the kernel sent them.
    pub(crate) undecodable: Vec<Undecodable>,
}

/// A reply whose netlink header is sound but whose payload this client
/// cannot decode (an attribute it does not know the form of, a name that is
/// not UTF-8): kept raw, so that one such object does not hide the others.
#[derive(Debug)]
pub(crate) struct Undecodable {
    /// Its netlink message type, e.g. `RTM_NEWLINK`.
    pub(crate) kind: u16,
    /// Its payload.
    pub(crate) payload: Vec<u8>,
    /// Why it could not be decoded.
    pub(crate) error: String,
}

/// Reads the replies in one datagram to the request `sequence`, collecting
/// the objects; returns whether the request is answered in full.
fn take_replies<M: NetlinkDeserializable + Debug>(
    datagram: &[u8],
    sequence: u32,
    answers: &mut Replies<M>,
) -> Result<bool, NetlinkError> {
    for reply in parse_datagram(datagram)? {
        let got = match &reply {
            Parsed::Message(message) => message.header.sequence_number,
            Parsed::Undecodable { sequence, .. } => *sequence,
        };
        if got != sequence {
            return Err(NetlinkError::WrongSequence {
                expected: sequence,
                got,
            });
        }
        let reply = match reply {
            Parsed::Message(message) => message,
            Parsed::Undecodable { undecodable, .. } => {
                answers.undecodable.push(undecodable);
                continue;
            }
        };
        match reply.payload {
            NetlinkPayload::Error(error) => {
                return match error.code {
                    None => Ok(true),
                    Some(code) => Err(NetlinkError::Kernel(Errno::from_raw(-code.get()))),
                };
            }
            NetlinkPayload::Done(_) => return Ok(true),
            NetlinkPayload::InnerMessage(message) => answers.messages.push(message),
            NetlinkPayload::Overrun(_) => {
                return Err(NetlinkError::Malformed(
                    "the kernel reported an overrun".into(),
                ));
            }
            _ => {}
        }
    }
    Ok(false)
}

/// What a request asks of the kernel.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Request {
    /// All objects of a kind, ended by `NLMSG_DONE`.
    Dump,
    /// A change, or a get, acknowledged.
    Ack,
    /// A new object, which must not exist yet.
    Create,
    /// An object made, or put in place of the one of the same key.
    Replace,
}

impl<M> AsFd for Netlink<M> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl<M> Debug for Netlink<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink")
            .field("sequence", &self.sequence)
            .finish_non_exhaustive()
    }
}

/// An rtnetlink socket opened on first use, as a `NetNs` keeps one for its
/// topology operations. A socket whose state is unknown after a failure is
/// dropped, and the next use opens a fresh one.
#[derive(Debug, Default)]
pub(crate) struct LazyRtnl(Mutex<Option<Rtnl>>);

impl LazyRtnl {
    /// Runs `f` on the socket, opening it with `open` first when there is
    /// none. Fails with `open`'s error when it cannot be opened.
    pub(crate) fn with<T, E>(
        &self,
        open: impl FnOnce() -> Result<Rtnl, E>,
        f: impl FnOnce(&mut Rtnl) -> Result<T, NetlinkError>,
    ) -> Result<Result<T, NetlinkError>, E> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let rtnl = match &mut *slot {
            Some(rtnl) => rtnl,
            None => slot.insert(open()?),
        };
        let result = f(rtnl);
        if matches!(
            result,
            Err(NetlinkError::Socket(_)
                | NetlinkError::Malformed(_)
                | NetlinkError::WrongSequence { .. })
        ) {
            *slot = None;
        }
        Ok(result)
    }
}

/// One message of a datagram.
#[derive(Debug)]
enum Parsed<M> {
    Message(NetlinkMessage<M>),
    /// An object whose payload could not be decoded, for `sequence`.
    Undecodable {
        sequence: u32,
        undecodable: Undecodable,
    },
}

/// The first netlink message type that carries a family's own payload:
/// those below are netlink's own (`NLMSG_NOOP`, `NLMSG_ERROR`,
/// `NLMSG_DONE`, `NLMSG_OVERRUN`), which must always decode.
const NLMSG_MIN_TYPE: u16 = 16;

/// Splits one datagram into netlink messages, refusing any that is cut
/// short; an object whose payload cannot be decoded is kept raw.
fn parse_datagram<M: NetlinkDeserializable + Debug>(
    mut datagram: &[u8],
) -> Result<Vec<Parsed<M>>, NetlinkError> {
    let mut messages = Vec::new();
    while !datagram.is_empty() {
        let buffer = NetlinkBuffer::new_checked(datagram)
            .map_err(|error| NetlinkError::Malformed(error.to_string()))?;
        let (length, kind, sequence) = (
            buffer.length() as usize,
            buffer.message_type(),
            buffer.sequence_number(),
        );
        // Messages are padded to 4 bytes; the last one may omit its padding.
        let padded = length.next_multiple_of(4).min(datagram.len());
        let message = &datagram[..length];
        messages.push(match NetlinkMessage::deserialize(message) {
            Ok(message) => Parsed::Message(message),
            Err(error) if kind >= NLMSG_MIN_TYPE => Parsed::Undecodable {
                sequence,
                undecodable: Undecodable {
                    kind,
                    payload: buffer.payload().to_vec(),
                    error: error.to_string(),
                },
            },
            Err(error) => return Err(NetlinkError::Malformed(error.to_string())),
        });
        datagram = &datagram[padded..];
    }
    Ok(messages)
}

/// The cookie of the calling thread's network namespace (`SO_NETNS_COOKIE`),
/// unique among all namespaces since boot.
pub(crate) fn netns_cookie() -> Result<u64, NetlinkError> {
    let socket = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Socket)?;
    netns_cookie_of(socket.as_fd())
}

/// The cookie of the network namespace `socket` was made in.
pub(crate) fn netns_cookie_of(socket: BorrowedFd<'_>) -> Result<u64, NetlinkError> {
    let mut cookie = 0u64;
    let mut len = std::mem::size_of::<u64>() as nix::libc::socklen_t;
    // SAFETY: `cookie` and `len` are valid for writes, `len` holds the size
    // of `cookie`, and the socket is open while borrowed.
    let done = unsafe {
        nix::libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            nix::libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&raw mut cookie).cast(),
            &mut len,
        )
    };
    if done != 0 {
        return Err(NetlinkError::Kernel(Errno::last()));
    }
    Ok(cookie)
}

/// `SO_NETNS_COOKIE` (Linux 5.14), from `asm/socket.h`; libc does not
/// export it for every target.
#[cfg(target_arch = "sparc64")]
pub(crate) const SO_NETNS_COOKIE: nix::libc::c_int = 0x0050;
#[cfg(not(target_arch = "sparc64"))]
pub(crate) const SO_NETNS_COOKIE: nix::libc::c_int = 71;

/// Brings `lo` up in the calling thread's network namespace, and returns
/// the socket that did it.
pub(crate) fn loopback_up() -> Result<Rtnl, Error> {
    let netlink = |source| Error::Netlink {
        step: "bring lo up".into(),
        source,
    };
    let mut rtnl = Rtnl::open().map_err(netlink)?;
    let mut link = LinkMessage::default();
    link.header.index = LOOPBACK_IFINDEX;
    link.header.flags = LinkFlags::Up;
    link.header.change_mask = LinkFlags::Up;
    rtnl.request(RouteNetlinkMessage::SetLink(link), Request::Ack)
        .map_err(netlink)?;
    Ok(rtnl)
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

    fn replies() -> Replies<RouteNetlinkMessage> {
        Replies {
            messages: Vec::new(),
            undecodable: Vec::new(),
        }
    }

    /// An `RTM_NEWLINK` for sequence number 7 whose name attribute is not
    /// UTF-8: a link header (index 2) and `IFLA_IFNAME` "a\xff".
    const LINK_WITH_A_BAD_NAME: [u8; 40] = [
        40, 0, 0, 0, // length
        16, 0, // RTM_NEWLINK
        2, 0, // NLM_F_MULTI
        7, 0, 0, 0, // sequence number
        0, 0, 0, 0, // port
        0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // ifinfomsg: index 2
        7, 0, 3, 0, b'a', 0xff, 0, 0, // IFLA_IFNAME, padded
    ];

    /// An object that cannot be decoded is kept, raw, and hides nothing.
    #[test]
    fn an_undecodable_object_is_kept_raw() {
        let mut datagram = LINK_WITH_A_BAD_NAME.to_vec();
        datagram.extend_from_slice(&ACK);
        let mut answers = replies();
        assert!(take_replies(&datagram, 7, &mut answers).expect("the dump"));
        assert!(answers.messages.is_empty());
        let [undecodable] = answers.undecodable.as_slice() else {
            panic!("{answers:?}");
        };
        assert_eq!(undecodable.kind, 16);
        assert_eq!(undecodable.payload, &LINK_WITH_A_BAD_NAME[16..]);
    }

    #[test]
    fn parses_an_ack() {
        let messages = parse_datagram::<RouteNetlinkMessage>(&ACK).expect("a well-formed ACK");
        assert_eq!(messages.len(), 1);
        let Parsed::Message(message) = &messages[0] else {
            panic!("the ACK was not decoded: {messages:?}");
        };
        assert_eq!(message.header.sequence_number, 7);
        assert!(matches!(&message.payload, NetlinkPayload::Error(e) if e.code.is_none()));
    }

    #[test]
    fn an_ack_ends_the_request() {
        let mut answers = replies();
        assert!(take_replies(&ACK, 7, &mut answers).expect("the ACK"));
        assert!(answers.messages.is_empty());
    }

    #[test]
    fn a_reply_to_another_request_is_an_error() {
        let mut answers = replies();
        assert!(matches!(
            take_replies(&ACK, 8, &mut answers),
            Err(NetlinkError::WrongSequence {
                expected: 8,
                got: 7
            })
        ));
    }

    #[test]
    fn a_nack_carries_the_errno() {
        let mut nack = ACK;
        nack[16..20].copy_from_slice(&(-17_i32).to_le_bytes());
        let error = take_replies(&nack, 7, &mut replies()).expect_err("a NACK");
        assert!(matches!(error, NetlinkError::Kernel(Errno::EEXIST)));
        assert_eq!(error.to_string(), "File exists (EEXIST)");
    }

    #[test]
    fn refuses_a_reply_cut_short() {
        for cut in [3, 15, 20, 35] {
            assert!(
                matches!(
                    parse_datagram::<RouteNetlinkMessage>(&ACK[..cut]),
                    Err(NetlinkError::Malformed(_))
                ),
                "a reply cut at {cut} bytes must be an error"
            );
        }
    }
}
