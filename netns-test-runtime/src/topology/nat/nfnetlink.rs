//! The netfilter netlink socket: sending an nftables batch or a ctnetlink
//! request in the calling thread's namespace, and reading what answers it.

use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR};
use netlink_sys::protocols::NETLINK_NETFILTER;
use netlink_sys::{Socket, SocketAddr};
use nix::errno::Errno;

use super::nftables::*;
use crate::error::NetlinkError;

/// Opens a netfilter netlink socket in the calling thread's namespace.
pub(super) fn open() -> Result<Socket, NetlinkError> {
    let socket = Socket::new(NETLINK_NETFILTER).map_err(NetlinkError::Socket)?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(NetlinkError::Socket)?;
    Ok(socket)
}

/// Sends one ctnetlink request and returns the payloads of the messages
/// that answer it (after their `struct nfgenmsg`), until the acknowledgement
/// or, for a dump, `NLMSG_DONE`.
pub(super) fn ctnetlink(kind: u16, dump: bool) -> Result<Vec<Vec<u8>>, NetlinkError> {
    exchange(SUBSYS_CTNETLINK << 8 | kind, dump, &[])
}

/// The chain and comment of each rule of `table` (`NFT_MSG_GETRULE`,
/// dumped), in the kernel's order.
pub(super) fn rules(table: &str) -> Result<Vec<(String, String)>, NetlinkError> {
    let replies = exchange(
        SUBSYS_NFTABLES << 8 | GETRULE,
        true,
        &[Attr::string(NFTA_RULE_TABLE, table)],
    )?;
    let text = |bytes: &[u8]| {
        let text = bytes.split(|byte| *byte == 0).next().unwrap_or_default();
        String::from_utf8_lossy(text).into_owned()
    };
    Ok(replies
        .iter()
        .map(|payload| {
            let (mut chain, mut comment) = (String::new(), String::new());
            for (kind, value) in attributes(payload) {
                match kind {
                    NFTA_RULE_CHAIN => chain = text(value),
                    NFTA_RULE_USERDATA => comment = text(value.get(2..).unwrap_or_default()),
                    _ => {}
                }
            }
            (chain, comment)
        })
        .collect())
}

/// Sends one netfilter request and returns the payloads of the messages
/// that answer it (after their `struct nfgenmsg`), until the acknowledgement
/// or, for a dump, `NLMSG_DONE`.
pub(super) fn exchange(
    kind: u16,
    dump: bool,
    attrs: &[Attr],
) -> Result<Vec<Vec<u8>>, NetlinkError> {
    let mut bytes = Vec::new();
    let flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { NLM_F_ACK };
    let sequence = message(&mut bytes, kind, flags, FAMILY_IPV4, 0, attrs);
    let socket = open()?;
    socket.send(&bytes, 0).map_err(NetlinkError::Socket)?;
    let mut answers = Vec::new();
    loop {
        let (datagram, _) = socket.recv_from_full().map_err(NetlinkError::Socket)?;
        for reply in replies(&datagram)? {
            if reply.sequence != sequence {
                return Err(NetlinkError::WrongSequence {
                    expected: sequence,
                    got: reply.sequence,
                });
            }
            match reply.kind {
                NLMSG_ERROR => {
                    acknowledged(reply.payload)?;
                    return Ok(answers);
                }
                NLMSG_DONE => return Ok(answers),
                _ => answers.push(reply.payload.get(4..).unwrap_or_default().to_vec()),
            }
        }
    }
}

/// A rule's user data holding `comment`, as nft writes it.
pub(super) fn user_data(comment: &str) -> Vec<u8> {
    let text = &comment.as_bytes()[..comment.len().min(253)];
    let mut bytes = vec![0, u8::try_from(text.len() + 1).expect("at most 254")];
    bytes.extend_from_slice(text);
    bytes.push(0);
    bytes
}

/// One netlink message of a datagram.
pub(super) struct Reply<'a> {
    pub(super) kind: u16,
    pub(super) sequence: u32,
    pub(super) payload: &'a [u8],
}

/// The messages of one datagram.
pub(super) fn replies(datagram: &[u8]) -> Result<Vec<Reply<'_>>, NetlinkError> {
    let mut found = Vec::new();
    let mut rest = datagram;
    while rest.len() >= 16 {
        let len = u32::from_ne_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        if len < 16 || len > rest.len() {
            return Err(NetlinkError::Malformed(format!(
                "a netlink message of {len} bytes in a datagram of {}",
                rest.len()
            )));
        }
        found.push(Reply {
            kind: u16::from_ne_bytes(rest[4..6].try_into().expect("2 bytes")),
            sequence: u32::from_ne_bytes(rest[8..12].try_into().expect("4 bytes")),
            payload: &rest[16..len],
        });
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];
    }
    Ok(found)
}

/// An `NLMSG_ERROR` payload: an acknowledgement (code 0) or a refusal.
pub(super) fn acknowledged(payload: &[u8]) -> Result<(), NetlinkError> {
    let code = payload
        .get(0..4)
        .map(|code| i32::from_ne_bytes(code.try_into().expect("4 bytes")))
        .ok_or_else(|| NetlinkError::Malformed("an NLMSG_ERROR without a code".into()))?;
    match code {
        0 => Ok(()),
        code => Err(NetlinkError::Kernel(Errno::from_raw(-code))),
    }
}

/// The attributes of a message or of a nested attribute, by type (the
/// `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER` bits cleared).
pub(super) fn attributes(mut bytes: &[u8]) -> Vec<(u16, &[u8])> {
    let mut found = Vec::new();
    while bytes.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([bytes[0], bytes[1]]));
        if len < 4 || len > bytes.len() {
            break;
        }
        let kind = u16::from_ne_bytes([bytes[2], bytes[3]]) & 0x3fff;
        found.push((kind, &bytes[4..len]));
        bytes = &bytes[len.next_multiple_of(4).min(bytes.len())..];
    }
    found
}
