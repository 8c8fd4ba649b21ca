//! NAT on a router's outside link, as RFC 4787 describes its behaviours,
//! built with nftables over netlink (no `nft` program), in every mode,
//! rootless included; and the router's connection tracking, read and
//! flushed over ctnetlink.
//!
//! All rules live in one table of family `ip`, `netns_test`, in five base
//! chains and one regular chain per outside link:
//!
//! - `postrouting` (nat, priority 100): what leaves the outside link is
//!   masqueraded, taking the link's address. Connection tracking keeps the
//!   inside port when it is free, and the same mapping toward every
//!   destination: endpoint-independent mapping. [`Nat::symmetric`] asks for
//!   a random port per connection (`NF_NAT_RANGE_PROTO_RANDOM_FULLY`):
//!   address-and-port-dependent mapping.
//! - `mappings` (filter, postrouting, priority 200, after the masquerade):
//!   for [`Nat::full_cone`] and [`Nat::address_restricted`], each UDP
//!   mapping, read from connection tracking, is recorded in the map
//!   `mapped_<link>` (public port to inside endpoint), and each address it
//!   sends to in the set `contacted_<link>`; their elements time out with
//!   the UDP timeout, refreshed by each datagram out.
//! - `prerouting` (nat, priority -100): what arrives on the outside link
//!   jumps to `ports_<link>`, which holds the forwarded ports' `dnat` rules
//!   ([`NetNs::forward_port`]); with hairpinning, so does what arrives from
//!   the inside for the outside link's address, marked so that
//!   `postrouting` gives it the outside link's address as its source on
//!   its way back in. Then a new UDP datagram for a recorded port (from a
//!   contacted address, for address-dependent filtering) is sent in to its
//!   inside endpoint, and so is one from the inside, with hairpinning.
//! - `forward` and `input` (filter, priority 0): the firewall. Replies
//!   (`ct state established,related`) and what was sent in (`ct status
//!   dnat`) pass; everything else from the outside link is dropped, before
//!   connection tracking confirms it, so an unsolicited packet leaves no
//!   entry. Without the sets, only replies from the exact remote endpoint a
//!   mapping was made toward pass: address-and-port-dependent filtering.
//!
//! Each change is one nftables transaction (`NFNL_MSG_BATCH_BEGIN` ...
//! `NFNL_MSG_BATCH_END`), applied whole or not at all ([`nftables`]).

mod conntrack;
mod expr;
mod nfnetlink;
mod nftables;
mod rules;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

pub use conntrack::{Connection, Tuple};

use crate::error::{Error, NetlinkError};
use crate::netns::NetNs;
use crate::topology::observed::Protocol;
use nftables::{Batch, Ct, Meta, REG_1, REG_2, Verdict};
use rules::*;

/// The table that holds every rule of netns-test.
const TABLE: &str = "netns_test";

/// The mark of a hairpinned packet, set where it is turned back in and
/// read where it is masqueraded.
const HAIRPIN_MARK: u32 = 0x6e61_7400;

/// `NF_CT_STATE_BIT(IP_CT_ESTABLISHED) | NF_CT_STATE_BIT(IP_CT_RELATED)`.
const ESTABLISHED_OR_RELATED: u32 = 0b110;

/// `IPS_SRC_NAT`: the connection's source was translated.
const SOURCE_NATTED: u32 = 1 << 4;

/// `IPS_DST_NAT`: the connection's destination was translated.
const DESTINATION_NATTED: u32 = 1 << 5;

/// A NAT behaviour, after RFC 4787: how a mapping is chosen, and who may
/// send through it. Options are builder methods.
///
/// ```
/// use std::time::Duration;
/// use netns_test_runtime::Nat;
///
/// let nat = Nat::port_restricted()
///     .hairpinning(true)
///     .udp_timeout(Duration::from_secs(30));
/// # let _ = nat;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nat {
    ports: Ports,
    filtering: Filtering,
    hairpinning: bool,
    udp_timeout: Option<Duration>,
}

/// Which public port a mapping takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ports {
    /// The inside port, when it is free.
    Preserved,
    /// A random port for an inside endpoint's first mapping, which its
    /// later connections reuse (UDP; TCP takes one per connection).
    RandomOnce,
    /// A random port per connection (APDM).
    RandomEach,
}

/// Who may send in through a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filtering {
    /// Anyone (EIF).
    EndpointIndependent,
    /// Any port of an address the inside endpoint sent to (ADF).
    AddressDependent,
    /// Only the endpoints it sent to (APDF).
    AddressAndPortDependent,
}

impl Nat {
    /// Endpoint-independent mapping with endpoint-independent filtering
    /// ("full cone"): one public port for an inside endpoint, whatever it
    /// sends to, and anyone may send to it through that port while the
    /// mapping lives. UDP only; TCP is port-restricted.
    pub fn full_cone() -> Nat {
        Nat {
            filtering: Filtering::EndpointIndependent,
            ..Nat::port_restricted()
        }
    }

    /// Endpoint-independent mapping with address-dependent filtering: any
    /// port of an address the inside endpoint sent to may answer through
    /// its mapping. UDP only; TCP is port-restricted.
    pub fn address_restricted() -> Nat {
        Nat {
            filtering: Filtering::AddressDependent,
            ..Nat::port_restricted()
        }
    }

    /// Endpoint-independent mapping with address-and-port-dependent
    /// filtering: one public port for an inside endpoint, whatever it
    /// sends to, and only the endpoints it sent to may answer. The inside
    /// port is kept when it is free (port preservation). Two peers behind
    /// such NATs can punch holes to each other.
    pub fn port_restricted() -> Nat {
        Nat {
            ports: Ports::Preserved,
            filtering: Filtering::AddressAndPortDependent,
            hairpinning: false,
            udp_timeout: None,
        }
    }

    /// Address-and-port-dependent mapping with address-and-port-dependent
    /// filtering: a new random public port for each remote endpoint, so
    /// that the port a rendezvous server sees is not the one a peer must
    /// send to; hole punching between two such NATs fails.
    pub fn symmetric() -> Nat {
        Nat {
            ports: Ports::RandomEach,
            ..Nat::port_restricted()
        }
    }

    /// A random public port for each inside endpoint, rather than its own
    /// port (port preservation, the default): the first UDP datagram it
    /// sends out takes a random port, and its later ones, to any
    /// destination, the same (the mapping stays endpoint-independent while
    /// it lives). TCP takes a random port per connection. A symmetric NAT
    /// takes random ports already.
    pub fn random_ports(self) -> Nat {
        let ports = match self.ports {
            Ports::RandomEach => Ports::RandomEach,
            _ => Ports::RandomOnce,
        };
        Nat { ports, ..self }
    }

    /// Whether an inside host may reach another through the outside link's
    /// address (off by default), as RFC 4787 asks: a forwarded port, with
    /// any behaviour, and a live UDP mapping, with a full cone. (An
    /// address-restricted NAT's filtering sees the public address as the
    /// source, which its inside endpoints never sent to, and a
    /// port-restricted or symmetric NAT's keeps no mapping apart from its
    /// connections: both keep a hairpinned datagram to a mapping out.)
    /// Such packets are turned back in, their source translated to the
    /// outside link's address, so that the replies come back through the
    /// router and the receiver sees its peer as the outside does.
    pub fn hairpinning(self, on: bool) -> Nat {
        Nat {
            hairpinning: on,
            ..self
        }
    }

    /// How long an idle UDP mapping lives: the router's
    /// `net.netfilter.nf_conntrack_udp_timeout` and
    /// `nf_conntrack_udp_timeout_stream` (the kernel's defaults are 30 and
    /// 120 seconds), whole seconds, at least one.
    pub fn udp_timeout(self, timeout: Duration) -> Nat {
        Nat {
            udp_timeout: Some(timeout),
            ..self
        }
    }
}

impl NetNs {
    /// Makes this namespace a NAT, and its firewall, on its outside link
    /// `link`: what leaves `link` takes `link`'s address, and what arrives
    /// on it unsolicited is dropped, for the namespace itself and for the
    /// inside alike, unless a port is forwarded ([`NetNs::forward_port`]).
    /// IPv4 only. The namespace must forward
    /// (`set_sysctl("net.ipv4.ip_forward", "1")`).
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::{Nat, NetNs};
    ///
    /// let router = NetNs::new()?;
    /// router.add_veth("wan0", &NetNs::new()?, "eth0")?;
    /// router.set_sysctl("net.ipv4.ip_forward", "1")?;
    /// router.add_nat("wan0", Nat::port_restricted())?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`] when `link` does not exist; [`Error::Nat`] when
    /// hairpinning is asked and `link` has no IPv4 address, or the timeout
    /// is under a second; [`Error::Nftables`] when the kernel refuses the
    /// rules; [`Error::Sysctl`] when the timeout cannot be set.
    pub fn add_nat(&self, link: &str, nat: Nat) -> Result<(), Error> {
        let step = format!("add a NAT on {link}");
        self.index(link).map_err(|error| restep(error, &step))?;
        let timeout = match nat.udp_timeout {
            Some(timeout) if timeout.as_secs() == 0 => {
                return Err(Error::Nat {
                    step,
                    reason: "the UDP timeout is under a second; the kernel counts whole seconds",
                });
            }
            timeout => timeout.map(|timeout| timeout.as_secs().to_string()),
        };
        let public = match nat.hairpinning {
            false => None,
            true => Some(self.ipv4_of(link, &step)?),
        };
        let ports = ports_chain(link);
        let mut batch = Batch::new();
        chains(&mut batch, &ports);
        batch.rule(
            TABLE,
            "prerouting",
            &format!("{link}: what arrives goes to the forwarded ports ({ports})"),
            [
                iif(link, true),
                vec![nftables::verdict(Verdict::Jump(&ports))],
            ]
            .concat(),
        );
        if let Some(public) = public {
            batch.rule(
                TABLE,
                "prerouting",
                &format!(
                    "{link}: hairpinning: from the inside to {}, to the forwarded ports",
                    public
                ),
                [
                    iif(link, false),
                    vec![
                        nftables::payload(1, 16, 4, REG_1),
                        nftables::cmp(REG_1, true, &public.octets()),
                        nftables::immediate(REG_1, &HAIRPIN_MARK.to_ne_bytes()),
                        nftables::set_meta(Meta::Mark, REG_1),
                        nftables::verdict(Verdict::Jump(&ports)),
                    ],
                ]
                .concat(),
            );
            batch.rule(
                TABLE,
                "postrouting",
                &format!("hairpinned: from {public}, so that replies come back through the router"),
                vec![
                    nftables::meta(Meta::Mark, REG_1),
                    nftables::cmp(REG_1, true, &HAIRPIN_MARK.to_ne_bytes()),
                    nftables::immediate(REG_2, &public.octets()),
                    nftables::snat(REG_2),
                ],
            );
        }
        if nat.ports == Ports::RandomOnce {
            keep_random_ports(&mut batch, link, nat);
        }
        let (flags, how) = match nat.ports {
            Ports::Preserved => (0, "keeping the inside port when free"),
            Ports::RandomOnce => (nftables::RANDOM_FULLY, "a random port"),
            Ports::RandomEach => (nftables::RANDOM_FULLY, "a random port per connection"),
        };
        batch.rule(
            TABLE,
            "postrouting",
            &format!("{link}: masquerade, {how}"),
            [oif(link), vec![nftables::masquerade(flags)]].concat(),
        );
        batch.rule(
            TABLE,
            "forward",
            "replies pass",
            ct_has(Ct::State, ESTABLISHED_OR_RELATED, Verdict::Accept),
        );
        batch.rule(
            TABLE,
            "forward",
            "what was sent in (dnat) passes",
            ct_has(Ct::Status, DESTINATION_NATTED, Verdict::Accept),
        );
        batch.rule(
            TABLE,
            "forward",
            &format!("{link}: the rest from outside is dropped"),
            [iif(link, true), vec![nftables::verdict(Verdict::Drop)]].concat(),
        );
        batch.rule(
            TABLE,
            "input",
            &format!("{link}: replies to the router pass"),
            [
                iif(link, true),
                ct_has(Ct::State, ESTABLISHED_OR_RELATED, Verdict::Accept),
            ]
            .concat(),
        );
        batch.rule(
            TABLE,
            "input",
            &format!("{link}: the rest to the router is dropped"),
            [iif(link, true), vec![nftables::verdict(Verdict::Drop)]].concat(),
        );
        if nat.filtering != Filtering::AddressAndPortDependent {
            filter_by_sets(&mut batch, link, nat, public);
        }
        self.commit(&step, batch)?;
        if let Some(seconds) = timeout {
            self.set_sysctl("net.netfilter.nf_conntrack_udp_timeout", &seconds)?;
            self.set_sysctl("net.netfilter.nf_conntrack_udp_timeout_stream", &seconds)?;
        }
        Ok(())
    }

    /// Forwards `port` of `protocol` arriving on the outside link `link` to
    /// `to` on the inside (and, with [hairpinning](Nat::hairpinning), the
    /// same port of `link`'s address reached from the inside). Call
    /// [`NetNs::add_nat`] on `link` first.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::{Nat, NetNs, Protocol};
    ///
    /// let router = NetNs::new()?;
    /// router.add_veth("wan0", &NetNs::new()?, "eth0")?;
    /// router.add_nat("wan0", Nat::port_restricted())?;
    /// router.forward_port("wan0", Protocol::Udp, 4000, "192.168.1.10:4000".parse()?)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`] when `link` does not exist; [`Error::Nat`] when
    /// `link` has no NAT; [`Error::Nftables`] when the kernel refuses the
    /// rule.
    pub fn forward_port(
        &self,
        link: &str,
        protocol: Protocol,
        port: u16,
        to: SocketAddrV4,
    ) -> Result<(), Error> {
        let step = format!("forward {protocol} port {port} of {link} to {to}");
        self.index(link).map_err(|error| restep(error, &step))?;
        let number = match protocol {
            Protocol::Tcp => 6u8,
            Protocol::Udp => 17,
        };
        let mut batch = Batch::new();
        batch.rule(
            TABLE,
            &ports_chain(link),
            &format!("{protocol} {port} to {to}"),
            vec![
                nftables::meta(Meta::L4proto, REG_1),
                nftables::cmp(REG_1, true, &[number]),
                nftables::payload(2, 2, 2, REG_1),
                nftables::cmp(REG_1, true, &port.to_be_bytes()),
                nftables::immediate(REG_1, &to.ip().octets()),
                nftables::immediate(REG_2, &to.port().to_be_bytes()),
                nftables::dnat(REG_1, REG_2),
            ],
        );
        match self.commit(&step, batch) {
            Err(Error::Nftables {
                source: NetlinkError::Kernel(nix::errno::Errno::ENOENT),
                ..
            }) => Err(Error::Nat {
                step,
                reason: "the link has no NAT; call add_nat on it first",
            }),
            done => done,
        }
    }

    /// Forgets every connection this namespace tracks, and so every NAT
    /// mapping, as a router's reboot would (ctnetlink's
    /// `IPCTNL_MSG_CT_DELETE` without a tuple), with the mappings that
    /// full-cone and address-restricted NATs, and random ports, record.
    /// The rules stay.
    ///
    /// # Errors
    ///
    /// [`Error::Nftables`] when the kernel refuses; [`Error::Netlink`]
    /// when the links cannot be listed.
    pub fn flush_conntrack(&self) -> Result<(), Error> {
        let step = "flush the connection tracking table";
        let links = self.links().map_err(|error| restep(error, step))?;
        let flushed = self.run(|| {
            nftables::ctnetlink(conntrack::DELETE, false)?;
            for link in &links {
                let sets = ["mapped", "contacted", "public"];
                for set in sets.map(|set| format!("{set}_{}", link.name)) {
                    let mut batch = Batch::new();
                    batch.flush_set(TABLE, &set);
                    match batch.send() {
                        // No such set, or no table: nothing recorded.
                        Err(NetlinkError::Kernel(nix::errno::Errno::ENOENT)) | Ok(()) => {}
                        Err(error) => return Err(error),
                    }
                }
            }
            Ok(())
        })?;
        flushed.map_err(|source| Error::Nftables {
            step: step.into(),
            source,
        })
    }

    /// For a failure report: this namespace's NAT rules, a line each (its
    /// chain, and what it does), read back from the kernel; `None` where it
    /// has none, or nftables cannot be read.
    pub(crate) fn nat_rules(&self) -> Option<Vec<String>> {
        let rules = self.run(|| nftables::rules(TABLE)).ok()?.ok()?;
        let lines = rules
            .into_iter()
            .map(|(chain, comment)| format!("{chain:<12} {comment}"));
        Some(lines.collect::<Vec<_>>()).filter(|lines| !lines.is_empty())
    }

    /// Applies `batch` in this namespace, as one transaction.
    fn commit(&self, step: &str, batch: Batch) -> Result<(), Error> {
        self.run(|| batch.send())?
            .map_err(|source| Error::Nftables {
                step: step.to_owned(),
                source,
            })
    }

    /// The first IPv4 address of `link`.
    fn ipv4_of(&self, link: &str, step: &str) -> Result<Ipv4Addr, Error> {
        self.link(link)?
            .addresses
            .iter()
            .find_map(|prefix| match prefix.address() {
                std::net::IpAddr::V4(address) => Some(address),
                std::net::IpAddr::V6(_) => None,
            })
            .ok_or_else(|| Error::Nat {
                step: step.to_owned(),
                reason: "hairpinning needs the link's IPv4 address; add it before add_nat",
            })
    }
}
