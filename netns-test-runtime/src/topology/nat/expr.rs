//! nftables expressions (`enum nft_*_attributes` of each expression): the
//! registers, and the builders of the expressions the NAT's rules use.

use super::nftables::*;

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
pub(super) const REG_VERDICT: u32 = 0;

/// One expression of a rule.
pub(super) fn expression(name: &str, data: Vec<Attr>) -> Attr {
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
pub(super) fn nat(kind: u32, address: u32, port: Option<u32>) -> Attr {
    // NFTA_NAT_TYPE 1, _FAMILY 2, _REG_ADDR_MIN 3, _REG_PROTO_MIN 5.
    let mut attrs = vec![
        Attr::u32(1, kind),
        Attr::u32(2, u32::from(FAMILY_IPV4)),
        Attr::u32(3, address),
    ];
    attrs.extend(port.map(|port| Attr::u32(5, port)));
    expression("nat", attrs)
}
