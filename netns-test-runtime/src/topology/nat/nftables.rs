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

use netlink_packet_core::{NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST, NLMSG_ERROR};
use netlink_packet_utils::nla::NLA_F_NESTED;

use crate::error::NetlinkError;

pub(super) use super::expr::*;
pub(super) use super::nfnetlink::*;

/// `NFNL_MSG_BATCH_BEGIN`.
pub(super) const BATCH_BEGIN: u16 = 0x10;
/// `NFNL_MSG_BATCH_END`.
pub(super) const BATCH_END: u16 = 0x11;
/// `NFNL_SUBSYS_NFTABLES`.
pub(super) const SUBSYS_NFTABLES: u16 = 10;
/// `NFNL_SUBSYS_CTNETLINK`.
pub(super) const SUBSYS_CTNETLINK: u16 = 1;
/// `NFPROTO_IPV4`, also `AF_INET`.
pub(super) const FAMILY_IPV4: u8 = 2;

/// `NFT_MSG_NEWTABLE`.
pub(super) const NEWTABLE: u16 = 0;
/// `NFT_MSG_NEWCHAIN`.
pub(super) const NEWCHAIN: u16 = 3;
/// `NFT_MSG_NEWRULE`.
pub(super) const NEWRULE: u16 = 6;
/// `NFT_MSG_GETRULE`.
pub(super) const GETRULE: u16 = 7;
/// `NFT_MSG_NEWSET`.
pub(super) const NEWSET: u16 = 9;
/// `NFT_MSG_DELSETELEM`.
pub(super) const DELSETELEM: u16 = 14;

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
pub(super) fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(4), 0);
}

/// Appends one nfnetlink message: the netlink header, `struct nfgenmsg`
/// (family, version 0, resource id) and the attributes. Returns its
/// sequence number.
pub(super) fn message(
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

// Attributes of tables, chains and rules (`enum nft_*_attributes`).
pub(super) const NFTA_TABLE_NAME: u16 = 1;
pub(super) const NFTA_CHAIN_TABLE: u16 = 1;
pub(super) const NFTA_CHAIN_NAME: u16 = 3;
pub(super) const NFTA_CHAIN_HOOK: u16 = 4;
pub(super) const NFTA_CHAIN_TYPE: u16 = 7;
pub(super) const NFTA_HOOK_HOOKNUM: u16 = 1;
pub(super) const NFTA_HOOK_PRIORITY: u16 = 2;
pub(super) const NFTA_RULE_TABLE: u16 = 1;
pub(super) const NFTA_RULE_CHAIN: u16 = 2;
pub(super) const NFTA_RULE_EXPRESSIONS: u16 = 4;
pub(super) const NFTA_RULE_USERDATA: u16 = 7;
pub(super) const NFTA_SET_TABLE: u16 = 1;
pub(super) const NFTA_SET_NAME: u16 = 2;
pub(super) const NFTA_SET_FLAGS: u16 = 3;
pub(super) const NFTA_SET_KEY_LEN: u16 = 5;
pub(super) const NFTA_SET_DATA_TYPE: u16 = 6;
pub(super) const NFTA_SET_DATA_LEN: u16 = 7;
pub(super) const NFTA_SET_ID: u16 = 10;
pub(super) const NFTA_SET_TIMEOUT: u16 = 11;
pub(super) const NFTA_LIST_ELEM: u16 = 1;
pub(super) const NFTA_EXPR_NAME: u16 = 1;
pub(super) const NFTA_EXPR_DATA: u16 = 2;
pub(super) const NFTA_DATA_VALUE: u16 = 1;
pub(super) const NFTA_DATA_VERDICT: u16 = 2;
pub(super) const NFTA_VERDICT_CODE: u16 = 1;
pub(super) const NFTA_VERDICT_CHAIN: u16 = 2;

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
