//! Links: listing them, and their state (up, down, MTU).

use std::fmt;
use std::time::{Duration, Instant};

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, State,
};
use netlink_packet_utils::nla::DefaultNla;
use nix::errno::Errno;

use super::observed::MacAddr;
use super::types::{IpPrefix, Link, OperState};
use crate::error::{Error, NetlinkError};
use crate::netlink::Request;
use crate::netns::NetNs;

/// How long [`NetNs::set_link_up`] waits for a link to pass packets.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// `IFLA_TARGET_NETNSID` (`linux/if_link.h`): which namespace, by its id
/// here, a request about a link means.
const IFLA_TARGET_NETNSID: u16 = 46;

/// What [`NetNs::set_link_up`] reads of a link.
#[derive(Debug, Clone, Copy)]
struct LinkState {
    /// It has carrier (`IFF_LOWER_UP`).
    carrier: bool,
    /// It passes packets: operationally up, or a link that reports no
    /// state, such as `lo`.
    ready: bool,
    /// A veth's peer: its index, and the id of its namespace if another.
    peer: Option<(u32, Option<i32>)>,
    /// It gets a link-local address at carrier, valid at once: IPv6 is on,
    /// the kernel makes its link-local, and duplicate address detection
    /// is off (see `ipv6.rs`).
    link_local: bool,
}

impl LinkState {
    fn of(link: &LinkMessage) -> LinkState {
        let (mut ready, mut veth, mut peer, mut nsid) = (true, false, None, None);
        let mut link_local = false;
        for attribute in &link.attributes {
            match attribute {
                LinkAttribute::OperState(state) => {
                    ready = matches!(state, State::Up | State::Unknown);
                }
                LinkAttribute::LinkInfo(infos) => {
                    veth = infos
                        .iter()
                        .any(|info| matches!(info, LinkInfo::Kind(InfoKind::Veth)));
                }
                LinkAttribute::Link(index) => peer = Some(*index),
                LinkAttribute::LinkNetNsId(id) => nsid = Some(*id),
                LinkAttribute::AfSpecUnspec(specs) => link_local = gets_link_local(specs),
                _ => {}
            }
        }
        LinkState {
            carrier: link.header.flags.contains(LinkFlags::LowerUp),
            ready,
            peer: peer.filter(|_| veth).map(|peer| (peer, nsid)),
            link_local,
        }
    }

    /// Whether the link passes packets, or waits for its carrier.
    fn ready_or_waiting(self) -> bool {
        self.ready || !self.carrier
    }
}

/// Whether a link whose IPv6 settings are `specs` gets a link-local
/// address that is valid at once: IPv6 on, an address generation mode that
/// makes one (not `none`, 1), and no duplicate address detection.
fn gets_link_local(specs: &[AfSpecUnspec]) -> bool {
    let inet6 = specs.iter().find_map(|spec| match spec {
        AfSpecUnspec::Inet6(inet6) => Some(inet6),
        _ => None,
    });
    let Some(inet6) = inet6 else {
        return false;
    };
    let mut gets = false;
    for setting in inet6 {
        match setting {
            AfSpecInet6::DevConf(conf) => {
                gets = conf.disable_ipv6 == 0 && conf.accept_dad == 0 && conf.addr_gen_mode != 1;
            }
            AfSpecInet6::AddrGenMode(1) => return false,
            _ => {}
        }
    }
    gets
}

/// Links.
impl NetNs {
    /// Lists the links of this namespace, with their addresses.
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::NetNs;
    ///
    /// let ns = NetNs::new()?;
    /// let links = ns.links()?;
    /// assert_eq!(links.len(), 1, "a fresh namespace has only lo");
    /// assert_eq!(links[0].name, "lo");
    /// assert!(links[0].up);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`] when a dump fails.
    pub fn links(&self) -> Result<Vec<Link>, Error> {
        let dumped = self.dump(
            format_args!("list links"),
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
        )?;
        // A link the client cannot decode in full (a name that is not
        // UTF-8, an attribute of a newer kernel) is read from its header
        // and the few attributes a `Link` holds.
        let undecodable = dumped
            .undecodable
            .iter()
            .filter(|undecodable| undecodable.kind == RTM_NEWLINK)
            .filter_map(|undecodable| raw_link(&undecodable.payload));
        let mut links: Vec<Link> = dumped
            .messages
            .into_iter()
            .filter_map(|message| match message {
                RouteNetlinkMessage::NewLink(link) => Some(link_of(link)),
                _ => None,
            })
            .chain(undecodable)
            .collect();
        links.sort_by_key(|link| link.index);
        // An address that cannot be decoded is left out of its link's.
        let addresses = self
            .dump(
                format_args!("list addresses"),
                RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            )?
            .messages;
        for message in addresses {
            let RouteNetlinkMessage::NewAddress(address) = message else {
                continue;
            };
            let local = address
                .attributes
                .iter()
                .find_map(|attribute| match attribute {
                    AddressAttribute::Local(ip) => Some(*ip),
                    _ => None,
                });
            let any = address
                .attributes
                .iter()
                .find_map(|attribute| match attribute {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                });
            let (Some(ip), Some(link)) = (
                local.or(any),
                links
                    .iter_mut()
                    .find(|link| link.index == address.header.index),
            ) else {
                continue;
            };
            link.addresses.push(IpPrefix {
                address: ip,
                len: address.header.prefix_len,
            });
        }
        Ok(links)
    }

    /// The link named `name`.
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::NetNs;
    ///
    /// let ns = NetNs::new()?;
    /// let lo = ns.link("lo")?;
    /// assert_eq!(lo.index, 1);
    /// assert!(lo.addresses.iter().any(|a| a.to_string() == "127.0.0.1/8"));
    /// assert!(ns.link("eth0").is_err());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`] with `ENODEV` when there is none.
    pub fn link(&self, name: &str) -> Result<Link, Error> {
        self.links()?
            .into_iter()
            .find(|link| link.name == name)
            .ok_or_else(|| Error::Netlink {
                step: format!("look up link {name}"),
                source: NetlinkError::Kernel(Errno::ENODEV),
            })
    }

    pub(super) fn set_link(
        &self,
        step: fmt::Arguments<'_>,
        name: &str,
        change: impl FnOnce(&mut LinkMessage),
    ) -> Result<(), Error> {
        let mut link = LinkMessage::default();
        link.header.index = self.index(name)?;
        change(&mut link);
        self.request(step, RouteNetlinkMessage::SetLink(link), Request::Ack)
            .map(drop)
    }

    /// Sets the link administratively up, like `ip link set NAME up`, and
    /// returns once it can pass packets.
    ///
    /// The kernel reports a link operationally up, and gives it its queue,
    /// only once its link-watch work has run, which may be a second later
    /// under load; until then the link drops packets (a TCP SYN is then
    /// resent after a second). So this waits until the link is
    /// operationally up, and, for the second end of a veth pair brought up,
    /// until both ends are, in whichever namespace the other is. A link with
    /// no carrier yet, such as one end of a veth pair whose peer is still
    /// down, cannot come up by itself: then it returns at once, and the call
    /// that brings the peer up waits for both.
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::NetNs;
    ///
    /// let ns = NetNs::new()?;
    /// use netns_test_runtime::OperState;
    ///
    /// ns.add_veth("a0", &ns, "b0")?;
    /// ns.set_link_up("a0")?; // returns at once: its peer is down, so no carrier
    /// ns.set_link_up("b0")?; // returns once both ends pass packets
    /// assert_eq!(ns.link("a0")?.state, OperState::Up);
    /// assert_eq!(ns.link("b0")?.state, OperState::Up);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`], e.g. `ENODEV` when there is no such link;
    /// [`Error::NotReady`] when the link is not up after 10 s.
    pub fn set_link_up(&self, name: &str) -> Result<(), Error> {
        let index = self.index(name)?;
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.header.flags = LinkFlags::Up;
        link.header.change_mask = LinkFlags::Up;
        self.request(
            format_args!("set link {name} up"),
            RouteNetlinkMessage::SetLink(link),
            Request::Ack,
        )?;
        self.wait_until_up(name, index)
    }

    /// Waits until link `index` passes packets, or cannot until its carrier
    /// comes; with its veth peer, wherever it is.
    fn wait_until_up(&self, name: &str, index: u32) -> Result<(), Error> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            let here = self.state_of(name, index, None)?;
            let ready = match here {
                LinkState { carrier: false, .. } => return Ok(()),
                LinkState { ready: false, .. } => false,
                _ if here.link_local && !self.link_local_valid(index, None)? => false,
                LinkState { peer: None, .. } => true,
                LinkState {
                    peer: Some((peer, nsid)),
                    ..
                } => {
                    let there = self.state_of(name, peer, nsid)?;
                    there.ready_or_waiting()
                        && !(there.carrier
                            && there.link_local
                            && !self.link_local_valid(peer, nsid)?)
                }
            };
            if ready {
                return Ok(());
            }
            if started.elapsed() >= READY_WITHIN {
                return Err(Error::NotReady {
                    step: format!("bring link {name} up"),
                    waited: READY_WITHIN,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// The state of link `index`: in this namespace, or in the one that
    /// `nsid` names here (`IFLA_TARGET_NETNSID`, Linux 4.20).
    fn state_of(&self, name: &str, index: u32, nsid: Option<i32>) -> Result<LinkState, Error> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        if let Some(nsid) = nsid {
            link.attributes.push(LinkAttribute::Other(DefaultNla::new(
                IFLA_TARGET_NETNSID,
                nsid.to_ne_bytes().to_vec(),
            )));
        }
        let answers = self.request(
            format_args!("read the state of link {name}"),
            RouteNetlinkMessage::GetLink(link),
            Request::Ack,
        )?;
        let link = answers
            .into_iter()
            .find_map(|answer| match answer {
                RouteNetlinkMessage::NewLink(link) => Some(link),
                _ => None,
            })
            .ok_or_else(|| Error::Netlink {
                step: format!("read the state of link {name}"),
                source: NetlinkError::Kernel(Errno::ENODEV),
            })?;
        Ok(LinkState::of(&link))
    }

    /// Sets the link administratively down, like `ip link set NAME down`.
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::NetNs;
    ///
    /// let ns = NetNs::new()?;
    /// ns.set_link_down("lo")?;
    /// assert!(!ns.link("lo")?.up);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`].
    pub fn set_link_down(&self, name: &str) -> Result<(), Error> {
        self.set_link(format_args!("set link {name} down"), name, |link| {
            link.header.flags = LinkFlags::empty();
            link.header.change_mask = LinkFlags::Up;
        })
    }

    /// Sets the link's MTU.
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::NetNs;
    ///
    /// let ns = NetNs::new()?;
    /// ns.add_veth("m0", &ns, "m1")?;
    /// ns.set_mtu("m0", 1280)?;
    /// assert_eq!(ns.link("m0")?.mtu, 1280);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`], e.g. `EINVAL` for an MTU the link does not allow.
    pub fn set_mtu(&self, name: &str, mtu: u32) -> Result<(), Error> {
        self.set_link(format_args!("set mtu {mtu} on {name}"), name, |link| {
            link.attributes.push(LinkAttribute::Mtu(mtu));
        })
    }
}

/// `RTM_NEWLINK` (`linux/rtnetlink.h`).
const RTM_NEWLINK: u16 = 16;

/// A link from the raw payload of an `RTM_NEWLINK` that does not decode in
/// full: its `ifinfomsg` header, then `IFLA_IFNAME` (read lossily),
/// `IFLA_ADDRESS`, `IFLA_MTU` and `IFLA_OPERSTATE` from its attributes.
fn raw_link(payload: &[u8]) -> Option<Link> {
    /// `struct ifinfomsg`: family, pad, type, index, flags, change.
    const HEADER: usize = 16;
    const IFLA_ADDRESS: u16 = 1;
    const IFLA_IFNAME: u16 = 3;
    const IFLA_MTU: u16 = 4;
    const IFLA_OPERSTATE: u16 = 16;
    let u32_at = |bytes: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    let index = u32_at(payload, 4)?;
    let flags = u32_at(payload, 8)?;
    let mut link = Link {
        name: format!("if{index}"),
        index,
        up: LinkFlags::from_bits_retain(flags).contains(LinkFlags::Up),
        state: OperState::Unknown,
        mtu: 0,
        mac: None,
        addresses: Vec::new(),
    };
    let mut attributes = payload.get(HEADER..)?;
    while attributes.len() >= 4 {
        let length = usize::from(u16::from_ne_bytes([attributes[0], attributes[1]]));
        let kind = u16::from_ne_bytes([attributes[2], attributes[3]]) & 0x3fff;
        let value = attributes.get(4..length)?;
        match kind {
            IFLA_IFNAME => {
                let name = value.split(|&byte| byte == 0).next().unwrap_or_default();
                link.name = String::from_utf8_lossy(name).into_owned();
            }
            IFLA_MTU => link.mtu = u32_at(value, 0)?,
            IFLA_ADDRESS => link.mac = MacAddr::from_bytes(value),
            IFLA_OPERSTATE => {
                link.state = match value.first() {
                    Some(6) => OperState::Up,
                    Some(2) => OperState::Down,
                    Some(5) => OperState::LowerLayerDown,
                    Some(0) => OperState::Unknown,
                    _ => OperState::Other,
                }
            }
            _ => {}
        }
        attributes = attributes.get(length.next_multiple_of(4).min(attributes.len())..)?;
    }
    Some(link)
}

fn link_of(message: LinkMessage) -> Link {
    let mut link = Link {
        name: String::new(),
        index: message.header.index,
        up: message.header.flags.contains(LinkFlags::Up),
        state: OperState::Unknown,
        mtu: 0,
        mac: None,
        addresses: Vec::new(),
    };
    for attribute in message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name = name,
            LinkAttribute::Mtu(mtu) => link.mtu = mtu,
            LinkAttribute::Address(bytes) => link.mac = MacAddr::from_bytes(&bytes),
            LinkAttribute::OperState(state) => {
                link.state = match state {
                    State::Up => OperState::Up,
                    State::Down => OperState::Down,
                    State::LowerLayerDown => OperState::LowerLayerDown,
                    State::Unknown => OperState::Unknown,
                    _ => OperState::Other,
                }
            }
            _ => {}
        }
    }
    link
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link whose name is not UTF-8 is read from its raw payload.
    #[test]
    fn a_link_that_does_not_decode_is_read_raw() {
        // Netlink's integers are in the host's byte order.
        let mut payload = vec![0, 0, 1, 0];
        payload.extend(2u32.to_ne_bytes()); // index 2
        payload.extend(1u32.to_ne_bytes()); // IFF_UP
        payload.extend(0u32.to_ne_bytes()); // change mask
        for (kind, value) in [
            (3u16, &b"a\xff\0"[..]),
            (4, &1500u32.to_ne_bytes()),
            (16, &[6]),
        ] {
            let length = 4 + value.len() as u16;
            payload.extend(length.to_ne_bytes());
            payload.extend(kind.to_ne_bytes());
            payload.extend(value);
            payload.resize(payload.len().next_multiple_of(4), 0);
        }
        let link = raw_link(&payload).expect("a link");
        assert_eq!(
            (
                link.name.as_str(),
                link.index,
                link.up,
                link.state,
                link.mtu
            ),
            ("a\u{fffd}", 2, true, OperState::Up, 1500)
        );
        assert!(raw_link(&payload[..10]).is_none(), "a header cut short");
    }
}
