//! The rules and sets a NAT is made of: its chains, the sets that record
//! each mapping for the behaviours that let others in through it, and the
//! expressions its rules share.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::nftables::{self, Batch, Ct, Hook, Meta, REG_1, Verdict};
use super::*;

/// The table, its base chains, and the regular chain `ports`, each kept if
/// it exists.
pub(super) fn chains(batch: &mut Batch, ports: &str) {
    batch.table(TABLE);
    let hooks = [
        ("prerouting", "nat", 0, -100),
        ("input", "filter", 1, 0),
        ("forward", "filter", 2, 0),
        ("postrouting", "nat", 4, 100),
        ("mappings", "filter", 4, 200),
    ];
    for (name, kind, number, priority) in hooks {
        batch.chain(
            TABLE,
            name,
            Some(Hook {
                kind,
                number,
                priority,
            }),
        );
    }
    batch.chain(TABLE, ports, None);
}

/// The kernel's default `nf_conntrack_udp_timeout`, and so the default life
/// of a mapping in the sets of endpoint-independent and address-dependent
/// filtering.
pub(super) const UDP_TIMEOUT: Duration = Duration::from_secs(30);

/// Endpoint-independent or address-dependent filtering of UDP: each
/// mapping the postrouting chain sees go out (a masqueraded connection) is
/// recorded in the map `mapped_<link>` (public port to inside address and
/// port), and for address-dependent filtering each address it is sent to
/// in the set `contacted_<link>` (public port and remote address); a new
/// datagram arriving on `link` for a recorded port (from a recorded
/// address) is sent in to the inside endpoint. Each element lives as long
/// as the UDP timeout, refreshed by every datagram out.
pub(super) fn filter_by_sets(batch: &mut Batch, link: &str, nat: Nat, public: Option<Ipv4Addr>) {
    use nftables::{Direction, reg32};
    let timeout = nat.udp_timeout.unwrap_or(UDP_TIMEOUT);
    let mapped = format!("mapped_{link}");
    let contacted = format!("contacted_{link}");
    let by_address = nat.filtering == Filtering::AddressDependent;
    // Port . address: each field in a 32-bit register of its own.
    batch.set(TABLE, &mapped, 2, Some(8), timeout);
    if by_address {
        batch.set(TABLE, &contacted, 8, None, timeout);
    }
    let mut record = [
        masqueraded_udp_out(link),
        vec![
            nftables::ct_of(Ct::ProtoDst, Direction::Reply, reg32(0)),
            nftables::ct_of(Ct::SrcIp, Direction::Original, reg32(1)),
            nftables::ct_of(Ct::ProtoSrc, Direction::Original, reg32(2)),
            nftables::update(&mapped, reg32(0), Some(reg32(1))),
        ],
    ]
    .concat();
    if by_address {
        record.extend([
            nftables::ct_of(Ct::DstIp, Direction::Original, reg32(1)),
            nftables::update(&contacted, reg32(0), None),
        ]);
    }
    let kind = match by_address {
        true => "address-restricted",
        false => "full cone",
    };
    batch.rule(
        TABLE,
        "mappings",
        &format!("{link}: each UDP mapping is recorded ({kind})"),
        record,
    );
    // The source the filtering sees: the packet's, or, hairpinned, the
    // public address its source is translated to.
    let admit = |arriving: Vec<nftables::Attr>, source: nftables::Attr| {
        let mut admit = [
            arriving,
            udp().to_vec(),
            vec![nftables::payload(2, 2, 2, reg32(0))],
        ]
        .concat();
        if by_address {
            admit.extend([source, nftables::lookup(&contacted, reg32(0), None)]);
        }
        admit.extend([
            nftables::lookup(&mapped, reg32(0), Some(reg32(1))),
            nftables::dnat(reg32(1), reg32(2)),
        ]);
        admit
    };
    let from = match by_address {
        true => "from an address it sent to",
        false => "from anyone",
    };
    batch.rule(
        TABLE,
        "prerouting",
        &format!("{link}: a new UDP datagram for a live mapping, {from}, goes in"),
        admit(iif(link, true), nftables::payload(1, 12, 4, reg32(1))),
    );
    if let Some(public) = public {
        let hairpinned = [
            iif(link, false),
            vec![
                nftables::payload(1, 16, 4, REG_1),
                nftables::cmp(REG_1, true, &public.octets()),
            ],
        ]
        .concat();
        batch.rule(
            TABLE,
            "prerouting",
            &format!("{link}: hairpinning: the same, from the inside to {public}"),
            admit(hairpinned, nftables::immediate(reg32(1), &public.octets())),
        );
    }
}

/// Random but endpoint-independent ports for UDP: each inside endpoint's
/// public port is recorded in the map `public_<link>` (inside address and
/// port to public port) by the `mappings` chain, and its later datagrams
/// out are masqueraded to that port; the first takes a random one.
pub(super) fn keep_random_ports(batch: &mut Batch, link: &str, nat: Nat) {
    use nftables::{Direction, reg32};
    let public = format!("public_{link}");
    batch.set(
        TABLE,
        &public,
        8,
        Some(2),
        nat.udp_timeout.unwrap_or(UDP_TIMEOUT),
    );
    batch.rule(
        TABLE,
        "postrouting",
        &format!("{link}: an inside endpoint keeps its random port ({public})"),
        [
            oif(link),
            udp().to_vec(),
            vec![
                nftables::payload(1, 12, 4, reg32(0)),
                nftables::payload(2, 0, 2, reg32(1)),
                nftables::lookup(&public, reg32(0), Some(reg32(2))),
                nftables::masquerade_to(reg32(2)),
            ],
        ]
        .concat(),
    );
    batch.rule(
        TABLE,
        "mappings",
        &format!("{link}: each inside endpoint's random port is recorded"),
        [
            masqueraded_udp_out(link),
            vec![
                nftables::ct_of(Ct::SrcIp, Direction::Original, reg32(0)),
                nftables::ct_of(Ct::ProtoSrc, Direction::Original, reg32(1)),
                nftables::ct_of(Ct::ProtoDst, Direction::Reply, reg32(2)),
                nftables::update(&public, reg32(0), Some(reg32(2))),
            ],
        ]
        .concat(),
    );
}

/// The regular chain of the ports forwarded on `link`.
pub(super) fn ports_chain(link: &str) -> String {
    format!("ports_{link}")
}

/// A link name as `meta iifname` and `oifname` load it: `IFNAMSIZ` bytes.
pub(super) fn ifname(link: &str) -> [u8; 16] {
    let mut name = [0; 16];
    let len = link.len().min(15);
    name[..len].copy_from_slice(&link.as_bytes()[..len]);
    name
}

/// `iifname == link` (or `!=`).
pub(super) fn iif(link: &str, equal: bool) -> Vec<nftables::Attr> {
    vec![
        nftables::meta(Meta::Iifname, REG_1),
        nftables::cmp(REG_1, equal, &ifname(link)),
    ]
}

/// `meta l4proto udp`.
pub(super) fn udp() -> [nftables::Attr; 2] {
    [
        nftables::meta(Meta::L4proto, REG_1),
        nftables::cmp(REG_1, true, &[17]),
    ]
}

/// A UDP datagram leaving `link` on a connection that was masqueraded.
pub(super) fn masqueraded_udp_out(link: &str) -> Vec<nftables::Attr> {
    [
        oif(link),
        udp().to_vec(),
        vec![
            nftables::ct(Ct::Status, REG_1),
            nftables::and(REG_1, &SOURCE_NATTED.to_ne_bytes()),
            nftables::cmp(REG_1, false, &0u32.to_ne_bytes()),
        ],
    ]
    .concat()
}

/// `oifname == link`.
pub(super) fn oif(link: &str) -> Vec<nftables::Attr> {
    vec![
        nftables::meta(Meta::Oifname, REG_1),
        nftables::cmp(REG_1, true, &ifname(link)),
    ]
}

/// `ct <key> & bits != 0 <verdict>`.
pub(super) fn ct_has(key: Ct, bits: u32, verdict: Verdict<'_>) -> Vec<nftables::Attr> {
    vec![
        nftables::ct(key, REG_1),
        nftables::and(REG_1, &bits.to_ne_bytes()),
        nftables::cmp(REG_1, false, &0u32.to_ne_bytes()),
        nftables::verdict(verdict),
    ]
}

/// `error`, its step replaced by `step` when it is a netlink error.
pub(super) fn restep(error: Error, step: &str) -> Error {
    match error {
        Error::Netlink {
            step: inner,
            source,
        } => Error::Netlink {
            step: format!("{step}: {inner}"),
            source,
        },
        error => error,
    }
}
