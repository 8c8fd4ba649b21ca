//! Building a declared network: checking it, numbering its segments, then
//! making namespaces, links, addresses, routes and NATs, in that order.
//!
//! Segment `(n, m)` is `10.n.m.0/24` and `fd00:n:m::/64`: `n` is 0 for a
//! link between two nodes (`m` counts those links in declaration order)
//! and 1 for a switch (`m` counts the switches). On a link, the node linked
//! to is `.1` and the node declaring the link `.2`; on a switch, the nodes
//! are `.1`, `.2`, … in the order their links are declared. An interface's
//! MAC address is `02:00:0a:n:m:h` for the address `10.n.m.h`. A subnet
//! given for a segment takes the place of its `10.n.m.0/24` or
//! `fd00:n:m::/64`, the numbers staying.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use std::sync::Arc;

use crate::error::Error;
use crate::names::Names;
use crate::netns::NetNs;

use super::super::{IpPrefix, MacAddr, Via};
use super::{Built, Interface, Network, NetworkBuilder, Node, Role};

/// A link, checked: its ends, its segment, each end's number on it.
#[derive(Debug)]
struct Planned {
    /// The declaring node, then the node linked to.
    ends: [usize; 2],
    segment: (u8, u8),
    hosts: [u8; 2],
    uplink: bool,
}

/// The subnets given for segments; the others follow the scheme above.
#[derive(Debug, Default)]
struct Subnets(Vec<((u8, u8), IpPrefix)>);

impl Subnets {
    /// The IPv4 and IPv6 subnets of `segment`.
    fn of(&self, segment: (u8, u8)) -> Result<[IpPrefix; 2], Error> {
        let (n, m) = segment;
        let given = |v4: bool| {
            (self.0.iter())
                .find(|(at, subnet)| *at == segment && subnet.address().is_ipv4() == v4)
                .map(|(_, subnet)| *subnet)
        };
        let v6 = Ipv6Addr::new(0xfd00, n.into(), m.into(), 0, 0, 0, 0, 0);
        let v4 = match given(true) {
            Some(subnet) => subnet,
            None => IpPrefix::new(Ipv4Addr::new(10, n, m, 0).into(), 24)?,
        };
        let v6 = match given(false) {
            Some(subnet) => subnet,
            None => IpPrefix::new(v6.into(), 64)?,
        };
        Ok([v4, v6])
    }

    /// Host `h`'s addresses on `segment`, with their subnet's length.
    fn host(&self, segment: (u8, u8), h: u8) -> Result<[IpPrefix; 2], Error> {
        let [v4, v6] = self.of(segment)?;
        Ok([numbered(v4, h)?, numbered(v6, h)?])
    }

    /// Host `h`'s IPv4 and IPv6 addresses on `segment`.
    fn addresses(&self, segment: (u8, u8), h: u8) -> Result<(Ipv4Addr, Ipv6Addr), Error> {
        let [v4, v6] = self.host(segment, h)?.map(|prefix| prefix.address());
        let v4 = match v4 {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
        };
        let v6 = match v6 {
            IpAddr::V6(v6) => v6,
            IpAddr::V4(_) => Ipv6Addr::UNSPECIFIED,
        };
        Ok((v4, v6))
    }
}

/// Address number `h` of `subnet` (0 is the subnet itself).
fn numbered(subnet: IpPrefix, h: u8) -> Result<IpPrefix, Error> {
    let address = match subnet.address() {
        IpAddr::V4(address) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(subnet.len()))
                .unwrap_or(0);
            Ipv4Addr::from((u32::from(address) & mask) | u32::from(h)).into()
        }
        IpAddr::V6(address) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(subnet.len()))
                .unwrap_or(0);
            Ipv6Addr::from((u128::from(address) & mask) | u128::from(h)).into()
        }
    };
    IpPrefix::new(address, subnet.len())
}

/// Whether `subnet` holds the numbers 1 to `most`, and a broadcast
/// address above them.
fn holds(subnet: IpPrefix, most: u8) -> bool {
    let bits = if subnet.address().is_ipv4() { 32 } else { 128 };
    let free = bits - u32::from(subnet.len());
    free >= 8 || (1u32 << free) > u32::from(most) + 1
}

/// Checks the declaration and numbers its segments.
fn plan(declared: &NetworkBuilder) -> Result<(Vec<Planned>, Subnets), Error> {
    let nodes = &declared.nodes;
    let role = |index: usize| nodes[index].role;
    let switches: Vec<usize> = (0..nodes.len())
        .filter(|&index| role(index) == Role::Switch)
        .collect();
    let mut planned = Vec::new();
    let (mut links, mut members) = (0u8, vec![0u8; nodes.len()]);
    for link in &declared.links {
        let from = &nodes[link.from].name;
        let fail = |reason| Error::Network {
            step: format!("link {from} to {}", link.to),
            reason,
        };
        let to = nodes.iter().position(|node| node.name == link.to).ok_or_else(|| {
            fail("no host, router or switch of that name is declared; declare it (`.host`, `.router` or `.switch`) or fix the name")
        })?;
        let too_many = || fail("a network has at most 254 links between nodes, and 254 switches");
        let (segment, hosts) = match (role(link.from), role(to)) {
            _ if to == link.from => return Err(fail("a node cannot link to itself")),
            (Role::Switch, Role::Switch) => {
                return Err(fail(
                    "two switches cannot be linked; put a router between them",
                ));
            }
            (Role::Switch, _) | (_, Role::Switch) => {
                let (switch, member) = match role(to) {
                    Role::Switch => (to, link.from),
                    _ => (link.from, to),
                };
                let count = &mut members[switch];
                *count = count
                    .checked_add(1)
                    .filter(|&h| h < 255)
                    .ok_or_else(too_many)?;
                let m = switches.iter().position(|&s| s == switch).unwrap_or(0) + 1;
                let m = u8::try_from(m)
                    .ok()
                    .filter(|&m| m < 255)
                    .ok_or_else(too_many)?;
                let hosts = if member == link.from {
                    [*count, 0]
                } else {
                    [0, *count]
                };
                ((1, m), hosts)
            }
            _ => {
                links = links
                    .checked_add(1)
                    .filter(|&m| m < 255)
                    .ok_or_else(too_many)?;
                ((0, links), [2, 1])
            }
        };
        planned.push(Planned {
            ends: [link.from, to],
            segment,
            hosts,
            uplink: link.uplink,
        });
    }
    for (index, node) in nodes.iter().enumerate() {
        let uplinked = planned
            .iter()
            .any(|link| link.uplink && link.ends[0] == index);
        if node.nat.is_some() && !uplinked {
            return Err(Error::Network {
                step: format!("add a NAT on router {}", node.name),
                reason: "the router has no uplink; declare it with `.uplink(...)`",
            });
        }
    }
    let mut subnets = Subnets::default();
    let mut give = |segment, most: u8, given: &[IpPrefix], owner: &str| {
        for (i, subnet) in given.iter().enumerate() {
            let fail = |reason| Error::Network {
                step: format!("give {owner} the subnet {subnet}"),
                reason,
            };
            let family = subnet.address().is_ipv4();
            if (given[..i].iter()).any(|other| other.address().is_ipv4() == family) {
                return Err(fail(
                    "it has a subnet of that family already; give one a family",
                ));
            }
            if !holds(*subnet, most) {
                return Err(fail(
                    "the subnet is too small for the nodes on it; give a shorter prefix",
                ));
            }
            subnets.0.push((segment, *subnet));
        }
        Ok(())
    };
    for (link, made) in declared.links.iter().zip(&planned) {
        let owner = format!("the link {} to {}", nodes[link.from].name, link.to);
        if !link.subnets.is_empty() && made.segment.0 == 1 {
            return Err(Error::Network {
                step: format!("give {owner} a subnet"),
                reason: "a link to a switch is on the switch's subnet; call `.subnet` right after `.switch(...)`",
            });
        }
        give(made.segment, 2, &link.subnets, &owner)?;
    }
    for (m, &switch) in switches.iter().enumerate() {
        let node = &nodes[switch];
        let m = u8::try_from(m + 1).unwrap_or(u8::MAX);
        let owner = format!("switch {}", node.name);
        give((1, m), members[switch], &node.subnets, &owner)?;
    }
    Ok((planned, subnets))
}

/// The network being made: its namespaces and their interfaces so far.
struct Making<'a> {
    declared: &'a NetworkBuilder,
    planned: Vec<Planned>,
    subnets: Subnets,
    nodes: Vec<Node>,
    /// Each node's links made so far, for interface names.
    counts: Vec<usize>,
}

impl Making<'_> {
    fn role(&self, index: usize) -> Role {
        self.declared.nodes[index].role
    }

    fn name(&self, index: usize) -> &str {
        &self.declared.nodes[index].name
    }

    /// The next interface name of a node.
    fn next_name(&mut self, index: usize) -> String {
        let count = &mut self.counts[index];
        *count += 1;
        format!("eth{}", *count - 1)
    }

    /// Makes link `index`, its addresses and MAC addresses, and brings it up.
    fn link(&mut self, index: usize) -> Result<Option<crate::Wire>, Error> {
        let planned = &self.planned[index];
        let whole: &NetworkBuilder = self.declared;
        let declared = &whole.links[index];
        let (ends, segment, hosts) = (planned.ends, planned.segment, planned.hosts);
        let names = [self.next_name(ends[0]), self.next_name(ends[1])];
        let [a, b] = ends.map(|end| &self.nodes[end].ns);
        let wire = match declared.wire {
            true => {
                let wire = a.add_wire(&names[0], b, &names[1])?;
                if let Some(conditions) = declared.conditions {
                    wire.set_conditions(conditions)?;
                }
                Some(wire)
            }
            false => {
                a.add_veth(&names[0], b, &names[1])?;
                None
            }
        };
        // A switch's port faces the member's number on the segment.
        let facing = hosts[0].max(hosts[1]);
        for side in 0..2 {
            let (ns, name) = (&self.nodes[ends[side]].ns, &names[side]);
            let (n, m) = segment;
            match self.role(ends[side]) {
                Role::Switch => {
                    ns.set_mac(name, MacAddr::new([2, 0, 11, n, m, facing]))?;
                    ns.attach_to_bridge(name, "br0")?;
                    ns.set_link_up(name)?;
                }
                _ => {
                    let h = hosts[side];
                    let (v4, v6) = self.subnets.addresses(segment, h)?;
                    let mac = MacAddr::new([2, 0, 10, n, m, h]);
                    ns.set_mac(name, mac)?;
                    ns.set_link_up(name)?;
                    for prefix in self.subnets.host(segment, h)? {
                        ns.add_address(name, prefix)?;
                    }
                    let peer = self.name(ends[1 - side]).to_owned();
                    self.nodes[ends[side]].interfaces.push(Interface {
                        name: name.clone(),
                        peer,
                        ipv4: v4,
                        ipv6: v6,
                        mac,
                    });
                }
            }
        }
        Ok(wire)
    }

    /// The address of router `router` on the segment of link `index`.
    fn address_on(&self, router: usize, index: usize) -> Result<(Ipv4Addr, Ipv6Addr), Error> {
        let planned = &self.planned[index];
        let segment = planned.segment;
        match planned.ends.iter().position(|&end| end == router) {
            Some(side) => self.subnets.addresses(segment, planned.hosts[side]),
            // On a switch, the router's own link to it.
            None => self
                .planned
                .iter()
                .find(|link| link.segment == segment && link.ends.contains(&router))
                .map(|link| {
                    let side = usize::from(link.ends[1] == router);
                    self.subnets.addresses(segment, link.hosts[side])
                })
                .unwrap_or(Ok((Ipv4Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED))),
        }
    }

    /// The router that link `index` leads `node` to, if any: the node at
    /// its other end, or the first other router on its switch.
    fn gateway(&self, node: usize, index: usize) -> Option<usize> {
        let planned = &self.planned[index];
        let other = planned.ends[usize::from(planned.ends[0] == node)];
        let router = match self.role(other) {
            Role::Router => other,
            Role::Host => return None,
            Role::Switch => self
                .planned
                .iter()
                .filter(|link| link.segment == planned.segment)
                .flat_map(|link| link.ends)
                .find(|&end| end != node && self.role(end) == Role::Router)?,
        };
        Some(router)
    }

    /// The router a router's uplink leads to, and the link.
    fn parent(&self, router: usize) -> Option<(usize, usize)> {
        let index = self
            .planned
            .iter()
            .position(|link| link.uplink && link.ends[0] == router)?;
        self.gateway(router, index).map(|parent| (parent, index))
    }

    /// The segments behind `router` (all but its uplink's, and its
    /// children's), each with whether its IPv4 is seen from outside.
    fn inside(&self, router: usize, v4: bool, depth: usize, out: &mut Vec<((u8, u8), bool)>) {
        let v4 = v4 && self.declared.nodes[router].nat.is_none();
        for link in &self.planned {
            if link.ends.contains(&router) && !(link.uplink && link.ends[0] == router) {
                out.push((link.segment, v4));
            }
        }
        for child in 0..self.nodes.len() {
            let below = self.role(child) == Role::Router
                && self
                    .parent(child)
                    .is_some_and(|(parent, _)| parent == router);
            if below && depth < self.nodes.len() {
                self.inside(child, v4, depth + 1, out);
            }
        }
    }

    /// Default routes and, on routers, routes to what is behind the
    /// routers below them.
    fn routes(&mut self, index: usize) -> Result<(), Error> {
        let ns = &self.nodes[index].ns;
        let way_out = match self.role(index) {
            Role::Switch => return Ok(()),
            Role::Host => (0..self.planned.len())
                .filter(|&link| self.planned[link].ends.contains(&index))
                .find_map(|link| self.gateway(index, link).map(|router| (router, link))),
            Role::Router => self.parent(index),
        };
        if let Some((router, link)) = way_out {
            let (v4, v6) = self.address_on(router, link)?;
            ns.add_default_route(v4.into())?;
            ns.add_default_route(v6.into())?;
            self.nodes[index].router = Some(self.name(router).to_owned());
        }
        let ns = &self.nodes[index].ns;
        let direct: Vec<(u8, u8)> = (self.planned.iter())
            .filter(|link| link.ends.contains(&index))
            .map(|link| link.segment)
            .collect();
        for child in 0..self.nodes.len() {
            let Some((parent, link)) = self.parent(child) else {
                continue;
            };
            if parent != index || self.role(child) != Role::Router {
                continue;
            }
            let (v4, v6) = self.address_on(child, link)?;
            let mut behind = Vec::new();
            self.inside(child, true, 0, &mut behind);
            behind.sort_unstable();
            behind.dedup();
            for (segment, seen) in behind {
                if direct.contains(&segment) {
                    continue;
                }
                let [net4, net6] = self.subnets.of(segment)?;
                if seen {
                    ns.add_route(net4, Via::Gateway(v4.into()))?;
                }
                ns.add_route(net6, Via::Gateway(v6.into()))?;
            }
        }
        Ok(())
    }
}

/// Makes the network `declared` declares.
pub(super) fn make(declared: NetworkBuilder) -> Result<Network, Error> {
    let (planned, subnets) = plan(&declared)?;
    let mut nodes = Vec::new();
    for node in &declared.nodes {
        let ns = NetNs::named(&node.name)?;
        match node.role {
            Role::Router => {
                ns.set_sysctl("net.ipv4.ip_forward", "1")?;
                ns.set_sysctl("net.ipv6.conf.all.forwarding", "1")?;
            }
            Role::Switch => {
                ns.add_bridge("br0")?;
                let index = u8::try_from(nodes.len()).unwrap_or(u8::MAX);
                ns.set_mac("br0", MacAddr::new([2, 0, 11, 255, 0, index]))?;
                ns.set_link_up("br0")?;
            }
            Role::Host => {}
        }
        nodes.push(Node {
            ns,
            interfaces: Vec::new(),
            router: None,
        });
    }
    let count = nodes.len();
    let mut making = Making {
        declared: &declared,
        planned,
        subnets,
        nodes,
        counts: vec![0; count],
    };
    let mut links = Vec::new();
    for index in 0..making.planned.len() {
        let wire = making.link(index)?;
        links.push(Built {
            ends: making.planned[index].ends,
            wire,
        });
    }
    for index in 0..count {
        making.routes(index)?;
    }
    for (index, node) in declared.nodes.iter().enumerate() {
        let (Some(nat), Some((_, link))) = (node.nat, making.parent_link(index)) else {
            continue;
        };
        let name = making.nodes[index].interfaces[link].name.clone();
        making.nodes[index].ns.add_nat(&name, nat)?;
    }
    let mut nodes = making.nodes;
    let names = names_of(&nodes, declared.nameserver.as_deref())?;
    for node in &mut nodes {
        node.ns.names = Some(Arc::clone(&names));
    }
    Ok(Network { nodes, links })
}

/// The names of the network: each node with an address, by its first
/// interface's; the DNS server, if one is named.
fn names_of(nodes: &[Node], nameserver: Option<&str>) -> Result<Arc<Names>, Error> {
    let hosts: Vec<(&str, Vec<IpAddr>)> = (nodes.iter())
        .filter_map(|node| {
            let end = node.interfaces.first()?;
            Some((node.name(), vec![end.ipv4.into(), end.ipv6.into()]))
        })
        .collect();
    let nameserver = match nameserver {
        None => None,
        Some(name) => {
            let server = (nodes.iter()).find(|node| node.name() == name);
            let address = server.and_then(Node::ipv4).ok_or_else(|| Error::Network {
                step: format!("name {name} the network's DNS server"),
                reason: "no host or router of that name with an address is declared; declare it, linked to the network",
            })?;
            Some(address.into())
        }
    };
    Ok(Arc::new(Names::new(&hosts, nameserver)))
}

impl Making<'_> {
    /// A router's uplink: the link, and the position of its interface
    /// among the router's.
    fn parent_link(&self, router: usize) -> Option<(usize, usize)> {
        let index = self
            .planned
            .iter()
            .position(|link| link.uplink && link.ends[0] == router)?;
        let position = (self.planned[..index].iter())
            .filter(|link| link.ends.contains(&router))
            .count();
        Some((index, position))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(text: &str) -> IpPrefix {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_follow_the_segment_and_host() {
        let subnets = Subnets::default();
        let (v4, v6) = subnets.addresses((1, 3), 2).unwrap();
        assert_eq!(v4, Ipv4Addr::new(10, 1, 3, 2));
        assert_eq!(v6, "fd00:1:3::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            subnets.of((0, 7)).unwrap(),
            [prefix("10.0.7.0/24"), prefix("fd00:0:7::/64")]
        );
    }

    #[test]
    fn a_given_subnet_keeps_the_numbers() {
        let subnets = Subnets(vec![((0, 1), prefix("192.168.7.9/28"))]);
        let host = subnets.host((0, 1), 2).unwrap();
        assert_eq!(host, [prefix("192.168.7.2/28"), prefix("fd00:0:1::2/64")]);
        assert_eq!(subnets.host((0, 2), 1).unwrap()[0], prefix("10.0.2.1/24"));
    }

    #[test]
    fn a_subnet_holds_its_numbers_and_a_broadcast_address() {
        assert!(holds(prefix("10.0.0.0/30"), 2));
        assert!(!holds(prefix("10.0.0.0/31"), 2));
        assert!(!holds(prefix("10.0.0.0/30"), 3));
        assert!(holds(prefix("10.0.0.0/24"), 254));
        assert!(holds(prefix("fd00::/120"), 254));
        assert!(!holds(prefix("fd00::/126"), 3));
    }
}
