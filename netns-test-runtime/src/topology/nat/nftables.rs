//! A small nfnetlink encoder: nftables batches and ctnetlink requests, built
//! by hand because no `netlink-packet-netfilter` with nftables messages
//! fits this workspace's `netlink-packet-core` 0.7.
//!
//! The numbers are the kernel's uapi: `linux/netfilter/nfnetlink.h`,
//! `nf_tables.h`, `nf_nat.h`, `nfnetlink_conntrack.h`. Integers in
//! attributes are big-endian, except the values of registers compared with
//! conntrack state and status, which are in host order.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR,
};
use netlink_packet_utils::nla::NLA_F_NESTED;
use netlink_sys::Socket;
use netlink_sys::SocketAddr;
use netlink_sys::protocols::NETLINK_NETFILTER;
use nix::errno::Errno;

use crate::error::NetlinkError;

/// `NFNL_MSG_BATCH_BEGIN`.
const BATCH_BEGIN: u16 = 0x10;
/// `NFNL_MSG_BATCH_END`.
const BATCH_END: u16 = 0x11;
/// `NFNL_SUBSYS_NFTABLES`.
const SUBSYS_NFTABLES: u16 = 10;
/// `NFNL_SUBSYS_CTNETLINK`.
pub(super) const SUBSYS_CTNETLINK: u16 = 1;
/// `NFPROTO_IPV4`, also `AF_INET`.
pub(super) const FAMILY_IPV4: u8 = 2;

/// `NFT_MSG_NEWTABLE`.
const NEWTABLE: u16 = 0;
/// `NFT_MSG_NEWCHAIN`.
const NEWCHAIN: u16 = 3;
/// `NFT_MSG_NEWRULE`.
const NEWRULE: u16 = 6;
/// `NFT_MSG_GETRULE`.
const GETRULE: u16 = 7;
/// `NFT_MSG_NEWSET`.
const NEWSET: u16 = 9;
/// `NFT_MSG_DELSETELEM`.
const DELSETELEM: u16 = 14;

/// The sequence numbers of requests: fresh for each message, across sockets.
static SEQUENCE: AtomicU32 = AtomicU32::new(1);

/// One netlink attribute: a value, or attributes nested in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Attr {
    /// A value, as the kernel reads it.
    Bytes(u16, Vec<u8>),
    /// Nested attributes (`NLA_F_NESTED` is set on the wire).
    Nested(u16, Vec<Attr>),
}

impl Attr {
    /// A NUL-terminated string.
    pub(super) fn string(kind: u16, text: &str) -> Attr {
        let mut bytes = text.as_bytes().to_vec();
        bytes.push(0);
        Attr::Bytes(kind, bytes)
    }

    /// A big-endian 32-bit integer.
    pub(super) fn u32(kind: u16, value: u32) -> Attr {
        Attr::Bytes(kind, value.to_be_bytes().to_vec())
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        let kind = match self {
            Attr::Bytes(kind, bytes) => {
                out.extend_from_slice(bytes);
                *kind
            }
            Attr::Nested(kind, attrs) => {
                for attr in attrs {
                    attr.encode(out);
                }
                *kind | NLA_F_NESTED
            }
        };
        let len = u16::try_from(out.len() - start).expect("an attribute under 64 KiB");
        out[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        out[start + 2..start + 4].copy_from_slice(&kind.to_ne_bytes());
        pad(out);
    }
}

/// Pads `out` to the next multiple of four bytes (`NLA_ALIGN`, `NLMSG_ALIGN`).
fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(4), 0);
}

/// Appends one nfnetlink message: the netlink header, `struct nfgenmsg`
/// (family, version 0, resource id) and the attributes. Returns its
/// sequence number.
fn message(
    out: &mut Vec<u8>,
    kind: u16,
    flags: u16,
    family: u8,
    resource: u16,
    attrs: &[Attr],
) -> u32 {
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&sequence.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&[family, 0]);
    out.extend_from_slice(&resource.to_be_bytes());
    for attr in attrs {
        attr.encode(out);
    }
    let len = u32::try_from(out.len() - start).expect("a message under 4 GiB");
    out[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    sequence
}

/// One nftables transaction: every change in it takes effect together, or
/// none does.
#[derive(Debug)]
pub(super) struct Batch {
    bytes: Vec<u8>,
    /// The sequence numbers of the messages, each acknowledged.
    sequences: Vec<u32>,
}

impl Batch {
    /// A batch begun: `NFNL_MSG_BATCH_BEGIN` for the nftables subsystem.
    pub(super) fn new() -> Batch {
        let mut bytes = Vec::new();
        let begin = message(
            &mut bytes,
            BATCH_BEGIN,
            NLM_F_REQUEST,
            0,
            SUBSYS_NFTABLES,
            &[],
        );
        Batch {
            bytes,
            sequences: vec![begin],
        }
    }

    fn push(&mut self, kind: u16, flags: u16, attrs: &[Attr]) {
        let sequence = message(
            &mut self.bytes,
            SUBSYS_NFTABLES << 8 | kind,
            NLM_F_REQUEST | NLM_F_ACK | flags,
            FAMILY_IPV4,
            0,
            attrs,
        );
        self.sequences.push(sequence);
    }

    /// Adds table `name` (family ip), or keeps it if it exists.
    pub(super) fn table(&mut self, name: &str) {
        self.push(
            NEWTABLE,
            NLM_F_CREATE,
            &[Attr::string(NFTA_TABLE_NAME, name)],
        );
    }

    /// Adds a chain, or keeps it if it exists: a base chain of `hook` (a
    /// chain type, a hook number and a priority), or a regular chain.
    pub(super) fn chain(&mut self, table: &str, name: &str, hook: Option<Hook>) {
        let mut attrs = vec![
            Attr::string(NFTA_CHAIN_TABLE, table),
            Attr::string(NFTA_CHAIN_NAME, name),
        ];
        if let Some(hook) = hook {
            attrs.push(Attr::Nested(
                NFTA_CHAIN_HOOK,
                vec![
                    Attr::u32(NFTA_HOOK_HOOKNUM, hook.number),
                    Attr::Bytes(NFTA_HOOK_PRIORITY, hook.priority.to_be_bytes().to_vec()),
                ],
            ));
            attrs.push(Attr::string(NFTA_CHAIN_TYPE, hook.kind));
        }
        self.push(NEWCHAIN, NLM_F_CREATE, &attrs);
    }

    /// Appends a rule of `expressions` to a chain, with `comment` in its
    /// user data as nft keeps a comment (`NFTNL_UDATA_RULE_COMMENT`, type
    /// 0, then a length, then the text with its NUL), for reports to read
    /// back from the kernel.
    pub(super) fn rule(&mut self, table: &str, chain: &str, comment: &str, expressions: Vec<Attr>) {
        self.push(
            NEWRULE,
            NLM_F_CREATE | NLM_F_APPEND,
            &[
                Attr::string(NFTA_RULE_TABLE, table),
                Attr::string(NFTA_RULE_CHAIN, chain),
                Attr::Nested(NFTA_RULE_EXPRESSIONS, expressions),
                Attr::Bytes(NFTA_RULE_USERDATA, user_data(comment)),
            ],
        );
    }

    /// Adds a set whose elements time out after `timeout` and which rules
    /// may update (`NFT_SET_TIMEOUT | NFT_SET_EVAL`): keys of `key_len`
    /// bytes, and, for a map, values of `data_len` bytes.
    pub(super) fn set(
        &mut self,
        table: &str,
        name: &str,
        key_len: u32,
        data_len: Option<u32>,
        timeout: Duration,
    ) {
        // NFT_SET_MAP 0x8, NFT_SET_TIMEOUT 0x10, NFT_SET_EVAL 0x20.
        let flags = 0x30 | if data_len.is_some() { 0x8 } else { 0 };
        let milliseconds = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let mut attrs = vec![
            Attr::string(NFTA_SET_TABLE, table),
            Attr::string(NFTA_SET_NAME, name),
            Attr::u32(NFTA_SET_FLAGS, flags),
            Attr::u32(NFTA_SET_KEY_LEN, key_len),
            Attr::u32(NFTA_SET_ID, SEQUENCE.fetch_add(1, Ordering::Relaxed)),
            Attr::Bytes(NFTA_SET_TIMEOUT, milliseconds.to_be_bytes().to_vec()),
        ];
        if let Some(data_len) = data_len {
            // A value map (not a verdict map), of an opaque type.
            attrs.push(Attr::u32(NFTA_SET_DATA_TYPE, 0));
            attrs.push(Attr::u32(NFTA_SET_DATA_LEN, data_len));
        }
        self.push(NEWSET, NLM_F_CREATE, &attrs);
    }

    /// Deletes every element of a set (`NFT_MSG_DELSETELEM` without a list
    /// of elements).
    pub(super) fn flush_set(&mut self, table: &str, name: &str) {
        // NFTA_SET_ELEM_LIST_TABLE 1, NFTA_SET_ELEM_LIST_SET 2.
        self.push(
            DELSETELEM,
            0,
            &[Attr::string(1, table), Attr::string(2, name)],
        );
    }

    /// The batch ended with `NFNL_MSG_BATCH_END`: its bytes, and the
    /// sequence numbers that are acknowledged.
    fn finish(mut self) -> (Vec<u8>, Vec<u32>) {
        message(
            &mut self.bytes,
            BATCH_END,
            NLM_F_REQUEST,
            0,
            SUBSYS_NFTABLES,
            &[],
        );
        (self.bytes, self.sequences)
    }

    /// Sends the batch on a netfilter socket opened in the calling thread's
    /// namespace, and waits for every message's acknowledgement; the first
    /// refusal fails it, and the kernel then applies none of it.
    pub(super) fn send(self) -> Result<(), NetlinkError> {
        let (bytes, sequences) = self.finish();
        let socket = open()?;
        socket.send(&bytes, 0).map_err(NetlinkError::Socket)?;
        // The batch's begin is acknowledged only when the commit fails.
        let mut waiting: Vec<u32> = sequences[1..].to_vec();
        while !waiting.is_empty() {
            let (datagram, _) = socket.recv_from_full().map_err(NetlinkError::Socket)?;
            for reply in replies(&datagram)? {
                if !sequences.contains(&reply.sequence) {
                    return Err(NetlinkError::WrongSequence {
                        expected: waiting[0],
                        got: reply.sequence,
                    });
                }
                if reply.kind == NLMSG_ERROR {
                    acknowledged(reply.payload)?;
                    waiting.retain(|sequence| *sequence != reply.sequence);
                }
            }
        }
        Ok(())
    }
}

/// A base chain's hook.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hook {
    /// `filter` or `nat`.
    pub(super) kind: &'static str,
    /// `NF_INET_PRE_ROUTING` (0) .. `NF_INET_POST_ROUTING` (4).
    pub(super) number: u32,
    /// The order among the hook's chains: lower first.
    pub(super) priority: i32,
}

/// Opens a netfilter netlink socket in the calling thread's namespace.
fn open() -> Result<Socket, NetlinkError> {
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
fn exchange(kind: u16, dump: bool, attrs: &[Attr]) -> Result<Vec<Vec<u8>>, NetlinkError> {
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
fn user_data(comment: &str) -> Vec<u8> {
    let text = &comment.as_bytes()[..comment.len().min(253)];
    let mut bytes = vec![0, u8::try_from(text.len() + 1).expect("at most 254")];
    bytes.extend_from_slice(text);
    bytes.push(0);
    bytes
}

/// One netlink message of a datagram.
struct Reply<'a> {
    kind: u16,
    sequence: u32,
    payload: &'a [u8],
}

/// The messages of one datagram.
fn replies(datagram: &[u8]) -> Result<Vec<Reply<'_>>, NetlinkError> {
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
fn acknowledged(payload: &[u8]) -> Result<(), NetlinkError> {
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

// Attributes of tables, chains and rules (`enum nft_*_attributes`).
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DATA_TYPE: u16 = 6;
const NFTA_SET_DATA_LEN: u16 = 7;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_TIMEOUT: u16 = 11;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

/// The first 16-byte register, `NFT_REG_1`.
pub(super) const REG_1: u32 = 1;
/// The second, `NFT_REG_2`.
pub(super) const REG_2: u32 = 2;
/// The 32-bit register `n` (`NFT_REG32_00` + n): a concatenation's fields
/// fill consecutive ones.
pub(super) const fn reg32(n: u32) -> u32 {
    8 + n
}
/// The verdict register, `NFT_REG_VERDICT`.
const REG_VERDICT: u32 = 0;

/// One expression of a rule.
fn expression(name: &str, data: Vec<Attr>) -> Attr {
    Attr::Nested(
        NFTA_LIST_ELEM,
        vec![
            Attr::string(NFTA_EXPR_NAME, name),
            Attr::Nested(NFTA_EXPR_DATA, data),
        ],
    )
}

/// Meta keys (`enum nft_meta_keys`).
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub(super) enum Meta {
    /// `NFT_META_MARK`.
    Mark = 3,
    /// `NFT_META_IIFNAME`.
    Iifname = 6,
    /// `NFT_META_OIFNAME`.
    Oifname = 7,
    /// `NFT_META_L4PROTO`.
    L4proto = 16,
}

/// Loads a meta key into `register`.
pub(super) fn meta(key: Meta, register: u32) -> Attr {
    // NFTA_META_DREG 1, NFTA_META_KEY 2.
    expression(
        "meta",
        vec![Attr::u32(1, register), Attr::u32(2, key as u32)],
    )
}

/// Sets a meta key from `register`.
pub(super) fn set_meta(key: Meta, register: u32) -> Attr {
    // NFTA_META_KEY 2, NFTA_META_SREG 3.
    expression(
        "meta",
        vec![Attr::u32(2, key as u32), Attr::u32(3, register)],
    )
}

/// Compares `register` with `value`: equal (`NFT_CMP_EQ`) or not (`NFT_CMP_NEQ`).
pub(super) fn cmp(register: u32, equal: bool, value: &[u8]) -> Attr {
    // NFTA_CMP_SREG 1, NFTA_CMP_OP 2, NFTA_CMP_DATA 3.
    expression(
        "cmp",
        vec![
            Attr::u32(1, register),
            Attr::u32(2, if equal { 0 } else { 1 }),
            Attr::Nested(3, vec![Attr::Bytes(NFTA_DATA_VALUE, value.to_vec())]),
        ],
    )
}

/// Loads `len` bytes at `offset` of the network (1) or transport (2)
/// header into `register`.
pub(super) fn payload(base: u32, offset: u32, len: u32, register: u32) -> Attr {
    // NFTA_PAYLOAD_DREG 1, _BASE 2, _OFFSET 3, _LEN 4.
    expression(
        "payload",
        vec![
            Attr::u32(1, register),
            Attr::u32(2, base),
            Attr::u32(3, offset),
            Attr::u32(4, len),
        ],
    )
}

/// Conntrack keys (`enum nft_ct_keys`).
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub(super) enum Ct {
    /// `NFT_CT_STATE`: a bit per state, `NF_CT_STATE_BIT`.
    State = 0,
    /// `NFT_CT_STATUS`: `enum ip_conntrack_status`.
    Status = 2,
    /// `NFT_CT_PROTO_SRC`: a direction's source port.
    ProtoSrc = 11,
    /// `NFT_CT_PROTO_DST`: a direction's destination port.
    ProtoDst = 12,
    /// `NFT_CT_SRC_IP`: a direction's IPv4 source.
    SrcIp = 19,
    /// `NFT_CT_DST_IP`: a direction's IPv4 destination.
    DstIp = 20,
}

/// A direction of a connection (`IP_CT_DIR_ORIGINAL` 0, `IP_CT_DIR_REPLY` 1).
#[derive(Debug, Clone, Copy)]
pub(super) enum Direction {
    /// As its first packet went.
    Original = 0,
    /// As its replies go.
    Reply = 1,
}

/// Loads a conntrack key of one direction into `register`.
pub(super) fn ct_of(key: Ct, direction: Direction, register: u32) -> Attr {
    // NFTA_CT_DREG 1, NFTA_CT_KEY 2, NFTA_CT_DIRECTION 3 (u8).
    expression(
        "ct",
        vec![
            Attr::u32(1, register),
            Attr::u32(2, key as u32),
            Attr::Bytes(3, vec![direction as u8]),
        ],
    )
}

/// Adds the key in `key` (and, for a map, the value in `data`) to `set`,
/// or refreshes its timeout (`NFT_DYNSET_OP_UPDATE`).
pub(super) fn update(set: &str, key: u32, data: Option<u32>) -> Attr {
    // NFTA_DYNSET_SET_NAME 1, _OP 3, _SREG_KEY 4, _SREG_DATA 5.
    let mut attrs = vec![Attr::string(1, set), Attr::u32(3, 1), Attr::u32(4, key)];
    attrs.extend(data.map(|data| Attr::u32(5, data)));
    expression("dynset", attrs)
}

/// Matches when the key in `key` is in `set`; for a map, loads its value
/// into `data`.
pub(super) fn lookup(set: &str, key: u32, data: Option<u32>) -> Attr {
    // NFTA_LOOKUP_SET 1, _SREG 2, _DREG 3.
    let mut attrs = vec![Attr::string(1, set), Attr::u32(2, key)];
    attrs.extend(data.map(|data| Attr::u32(3, data)));
    expression("lookup", attrs)
}

/// Loads a conntrack key into `register`.
pub(super) fn ct(key: Ct, register: u32) -> Attr {
    // NFTA_CT_DREG 1, NFTA_CT_KEY 2.
    expression("ct", vec![Attr::u32(1, register), Attr::u32(2, key as u32)])
}

/// `register = register & mask` over `mask.len()` bytes.
pub(super) fn and(register: u32, mask: &[u8]) -> Attr {
    // NFTA_BITWISE_SREG 1, _DREG 2, _LEN 3, _MASK 4, _XOR 5.
    let len = u32::try_from(mask.len()).expect("a short mask");
    expression(
        "bitwise",
        vec![
            Attr::u32(1, register),
            Attr::u32(2, register),
            Attr::u32(3, len),
            Attr::Nested(4, vec![Attr::Bytes(NFTA_DATA_VALUE, mask.to_vec())]),
            Attr::Nested(5, vec![Attr::Bytes(NFTA_DATA_VALUE, vec![0; mask.len()])]),
        ],
    )
}

/// Loads `value` into `register`.
pub(super) fn immediate(register: u32, value: &[u8]) -> Attr {
    // NFTA_IMMEDIATE_DREG 1, NFTA_IMMEDIATE_DATA 2.
    expression(
        "immediate",
        vec![
            Attr::u32(1, register),
            Attr::Nested(2, vec![Attr::Bytes(NFTA_DATA_VALUE, value.to_vec())]),
        ],
    )
}

/// A verdict.
#[derive(Debug, Clone, Copy)]
pub(super) enum Verdict<'a> {
    /// `NF_ACCEPT`.
    Accept,
    /// `NF_DROP`.
    Drop,
    /// `NFT_JUMP` to a chain.
    Jump(&'a str),
}

/// Ends the rule with `verdict`.
pub(super) fn verdict(verdict: Verdict<'_>) -> Attr {
    let mut data = Vec::new();
    match verdict {
        Verdict::Accept => data.push(Attr::u32(NFTA_VERDICT_CODE, 1)),
        Verdict::Drop => data.push(Attr::u32(NFTA_VERDICT_CODE, 0)),
        Verdict::Jump(chain) => {
            // NFT_JUMP is -3.
            data.push(Attr::Bytes(
                NFTA_VERDICT_CODE,
                (-3i32).to_be_bytes().to_vec(),
            ));
            data.push(Attr::string(NFTA_VERDICT_CHAIN, chain));
        }
    }
    expression(
        "immediate",
        vec![
            Attr::u32(1, REG_VERDICT),
            Attr::Nested(2, vec![Attr::Nested(NFTA_DATA_VERDICT, data)]),
        ],
    )
}

/// `NF_NAT_RANGE_PROTO_RANDOM_FULLY`: a random source port per connection.
pub(super) const RANDOM_FULLY: u32 = 1 << 4;

/// Masquerade: the source address becomes the outgoing link's, with
/// `flags` (`NF_NAT_RANGE_*`).
pub(super) fn masquerade(flags: u32) -> Attr {
    // NFTA_MASQ_FLAGS 1.
    let data = match flags {
        0 => Vec::new(),
        flags => vec![Attr::u32(1, flags)],
    };
    expression("masq", data)
}

/// Masquerade to the port in `port` (`NFTA_MASQ_REG_PROTO_MIN` 2).
pub(super) fn masquerade_to(port: u32) -> Attr {
    expression("masq", vec![Attr::u32(2, port)])
}

/// Destination NAT (IPv4) to the address in `address` and the port in `port`.
pub(super) fn dnat(address: u32, port: u32) -> Attr {
    nat(1, address, Some(port))
}

/// Source NAT (IPv4) to the address in `address`, keeping the port when it
/// is free.
pub(super) fn snat(address: u32) -> Attr {
    nat(0, address, None)
}

/// NAT of `kind` (`NFT_NAT_SNAT` 0, `NFT_NAT_DNAT` 1).
fn nat(kind: u32, address: u32, port: Option<u32>) -> Attr {
    // NFTA_NAT_TYPE 1, _FAMILY 2, _REG_ADDR_MIN 3, _REG_PROTO_MIN 5.
    let mut attrs = vec![
        Attr::u32(1, kind),
        Attr::u32(2, u32::from(FAMILY_IPV4)),
        Attr::u32(3, address),
    ];
    attrs.extend(port.map(|port| Attr::u32(5, port)));
    expression("nat", attrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_message_is_encoded_as_the_kernel_reads_it() {
        let mut bytes = Vec::new();
        let sequence = message(
            &mut bytes,
            SUBSYS_NFTABLES << 8 | NEWTABLE,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
            FAMILY_IPV4,
            0,
            &[Attr::string(NFTA_TABLE_NAME, "nat")],
        );
        let mut expected = Vec::new();
        expected.extend_from_slice(&28u32.to_ne_bytes()); // nlmsg_len
        expected.extend_from_slice(&0x0a00u16.to_ne_bytes()); // NFT_MSG_NEWTABLE
        expected.extend_from_slice(&0x0405u16.to_ne_bytes()); // REQUEST|ACK|CREATE
        expected.extend_from_slice(&sequence.to_ne_bytes());
        expected.extend_from_slice(&0u32.to_ne_bytes()); // port id
        expected.extend_from_slice(&[2, 0, 0, 0]); // nfgenmsg: ip, v0, res_id 0
        expected.extend_from_slice(&8u16.to_ne_bytes()); // nla_len
        expected.extend_from_slice(&1u16.to_ne_bytes()); // NFTA_TABLE_NAME
        expected.extend_from_slice(b"nat\0");
        assert_eq!(bytes, expected);
    }

    #[test]
    fn a_nested_attribute_is_flagged_and_padded() {
        let mut bytes = Vec::new();
        Attr::Nested(4, vec![Attr::Bytes(1, vec![6])]).encode(&mut bytes);
        let mut expected = Vec::new();
        expected.extend_from_slice(&12u16.to_ne_bytes());
        expected.extend_from_slice(&0x8004u16.to_ne_bytes());
        expected.extend_from_slice(&5u16.to_ne_bytes());
        expected.extend_from_slice(&1u16.to_ne_bytes());
        expected.extend_from_slice(&[6, 0, 0, 0]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn a_conntrack_flush_is_a_delete_without_a_tuple() {
        let mut bytes = Vec::new();
        let sequence = message(
            &mut bytes,
            SUBSYS_CTNETLINK << 8 | 2,
            NLM_F_REQUEST | NLM_F_ACK,
            FAMILY_IPV4,
            0,
            &[],
        );
        let mut expected = Vec::new();
        expected.extend_from_slice(&20u32.to_ne_bytes());
        expected.extend_from_slice(&0x0102u16.to_ne_bytes()); // IPCTNL_MSG_CT_DELETE
        expected.extend_from_slice(&0x0005u16.to_ne_bytes()); // REQUEST|ACK
        expected.extend_from_slice(&sequence.to_ne_bytes());
        expected.extend_from_slice(&0u32.to_ne_bytes());
        expected.extend_from_slice(&[2, 0, 0, 0]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn a_comment_is_user_data_as_nft_writes_it() {
        assert_eq!(user_data("ok"), [0, 3, b'o', b'k', 0]);
        assert_eq!(user_data(&"x".repeat(300)).len(), 2 + 253 + 1);
    }

    #[test]
    fn a_batch_begins_and_ends_for_nftables() {
        let batch = Batch::new();
        let (bytes, sequences) = batch.finish();
        assert_eq!(sequences.len(), 1);
        assert_eq!(bytes.len(), 40);
        assert_eq!(&bytes[4..6], &0x10u16.to_ne_bytes());
        assert_eq!(&bytes[16..20], &[0, 0, 0, 10]); // res_id NFNL_SUBSYS_NFTABLES
        assert_eq!(&bytes[24..26], &0x11u16.to_ne_bytes());
    }
}
