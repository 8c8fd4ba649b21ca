//! A network declared in a few lines: hosts, routers and switches, the
//! links between them, NAT on a router's uplink; built with the public
//! topology verbs alone ([`build`] makes it).

mod build;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Deref;

use crate::error::Error;
use crate::netns::NetNs;

use super::{Conditions, IpPrefix, MacAddr, Nat, Wire};

/// What a declared node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Host,
    Router,
    Switch,
}

impl Role {
    fn word(self) -> &'static str {
        match self {
            Role::Host => "host",
            Role::Router => "router",
            Role::Switch => "switch",
        }
    }
}

/// A node as declared.
#[derive(Debug)]
struct Declared {
    name: String,
    role: Role,
    nat: Option<Nat>,
    /// The subnets given for a switch's segment.
    subnets: Vec<IpPrefix>,
}

/// A link as declared, from the node declared before it.
#[derive(Debug)]
struct DeclaredLink {
    from: usize,
    to: String,
    uplink: bool,
    wire: bool,
    conditions: Option<Conditions>,
    /// The subnets given for the link's segment.
    subnets: Vec<IpPrefix>,
}

/// The declaration of a [`Network`]: call [`Network::builder`], declare
/// nodes with [`host`](NetworkBuilder::host),
/// [`router`](NetworkBuilder::router) and
/// [`switch`](NetworkBuilder::switch), each followed by its links, then
/// [`build`](NetworkBuilder::build). A mistake in the declaration is kept
/// and returned by `build`.
#[derive(Debug, Default)]
#[must_use = "a declaration makes nothing until `build` is called"]
pub struct NetworkBuilder {
    nodes: Vec<Declared>,
    links: Vec<DeclaredLink>,
    /// The host whose DNS server resolves what the hosts file does not.
    nameserver: Option<String>,
    problem: Option<Error>,
}

impl NetworkBuilder {
    /// Keeps the first mistake, for `build` to return.
    fn fail(&mut self, step: String, reason: &'static str) {
        if self.problem.is_none() {
            self.problem = Some(Error::Network { step, reason });
        }
    }

    fn node(mut self, name: &str, role: Role) -> Self {
        if self.nodes.iter().any(|node| node.name == name) {
            self.fail(
                format!("declare {} {name}", role.word()),
                "the name is taken already; give every host, router and switch a name of its own",
            );
        }
        self.nodes.push(Declared {
            name: name.to_owned(),
            role,
            nat: None,
            subnets: Vec::new(),
        });
        self
    }

    /// Declares a host: a namespace named `name` that does not forward.
    /// It gets a default route, in both families, to the first router it
    /// links to (directly or on a switch).
    pub fn host(self, name: &str) -> Self {
        self.node(name, Role::Host)
    }

    /// Declares a router: a namespace named `name` that forwards IPv4
    /// and IPv6. Its [`uplink`](NetworkBuilder::uplink) is its way out,
    /// where its default route and its [`nat`](NetworkBuilder::nat) go.
    pub fn router(self, name: &str) -> Self {
        self.node(name, Role::Router)
    }

    /// Declares a switch: a bridge in a namespace of its own, named
    /// `name`; the nodes linked to it share one subnet.
    pub fn switch(self, name: &str) -> Self {
        self.node(name, Role::Switch)
    }

    fn add_link(mut self, to: &str, uplink: bool) -> Self {
        let verb = if uplink { "uplink" } else { "link" };
        let Some(from) = self.nodes.len().checked_sub(1) else {
            self.fail(
                format!("{verb} to {to}"),
                "no node to link from; declare a host, router or switch first",
            );
            return self;
        };
        if uplink {
            let node = &self.nodes[from];
            if node.role != Role::Router {
                let step = format!("uplink {} {} to {to}", node.role.word(), node.name);
                self.fail(step, "only a router has an uplink; call `.link` instead");
            } else if self
                .links
                .iter()
                .any(|link| link.from == from && link.uplink)
            {
                let step = format!("uplink router {} to {to}", node.name);
                self.fail(step, "a router has one uplink; call `.link` for the others");
            }
        }
        self.links.push(DeclaredLink {
            from,
            to: to.to_owned(),
            uplink,
            wire: false,
            conditions: None,
            subnets: Vec::new(),
        });
        self
    }

    /// Links the node declared last to `to`, declared before or after it,
    /// with a veth pair (a [`wire`](NetworkBuilder::wire) when asked).
    pub fn link(self, to: &str) -> Self {
        self.add_link(to, false)
    }

    /// Links the router declared last to `to` as its uplink: its default
    /// route goes there, and its NAT, if it has one.
    pub fn uplink(self, to: &str) -> Self {
        self.add_link(to, true)
    }

    /// Makes the router declared last a NAT on its uplink
    /// ([`NetNs::add_nat`]), for IPv4; IPv6 is routed through it, as
    /// homes route it, with no NAT.
    pub fn nat(mut self, nat: Nat) -> Self {
        match self.nodes.last_mut() {
            Some(node) if node.role == Role::Router => node.nat = Some(nat),
            Some(node) => {
                let step = format!("add a NAT on {} {}", node.role.word(), node.name);
                self.fail(step, "only a router has a NAT; declare it with `.router`");
            }
            None => self.fail(
                "add a NAT".to_owned(),
                "no router to put it on; declare one with `.router` first",
            ),
        }
        self
    }

    /// Names the host whose DNS server (on port 53 of its first IPv4
    /// address, run by the test) resolves the names the network's hosts
    /// file does not list. Without one, such a name fails at once.
    pub fn nameserver(mut self, host: &str) -> Self {
        self.nameserver = Some(host.to_owned());
        self
    }

    /// The link declared last, if it is the last node's.
    fn last_link(&mut self, step: &str) -> Option<&mut DeclaredLink> {
        let last = self.nodes.len().checked_sub(1);
        match self.links.last() {
            Some(link) if Some(link.from) == last => self.links.last_mut(),
            _ => {
                self.fail(
                    step.to_owned(),
                    "the node declared last has no link yet; call `.link` or `.uplink` first",
                );
                None
            }
        }
    }

    /// Makes the link declared last a [`Wire`], whose conditions can
    /// change, and which can be partitioned, mid-test
    /// ([`Network::wire`]); perfect until told otherwise.
    pub fn wire(mut self) -> Self {
        if let Some(link) = self.last_link("make a link a wire") {
            link.wire = true;
        }
        self
    }

    /// Makes the link declared last a [`Wire`] with these conditions,
    /// both ways.
    pub fn conditions(mut self, conditions: Conditions) -> Self {
        if let Some(link) = self.last_link("set a link's conditions") {
            link.wire = true;
            link.conditions = Some(conditions);
        }
        self
    }

    /// Gives the segment of the switch declared last, or else of the link
    /// declared last, this subnet in its family, in place of the one the
    /// declaration's order gives it: the nodes on it keep their numbers
    /// (`.1`, `.2`, …) in it, e.g. `192.168.1.0/24` makes a link's ends
    /// `192.168.1.1/24` and `192.168.1.2/24`. One subnet a family.
    pub fn subnet(mut self, subnet: IpPrefix) -> Self {
        let step = format!("give a segment the subnet {subnet}");
        match self.nodes.last_mut() {
            Some(node) if node.role == Role::Switch => node.subnets.push(subnet),
            _ => {
                if let Some(link) = self.last_link(&step) {
                    link.subnets.push(subnet);
                }
            }
        }
        self
    }

    /// Makes every namespace, link, address and route, and returns once
    /// all of them are ready: links up, IPv6 addresses usable at once.
    ///
    /// # Errors
    ///
    /// [`Error::Network`] for a mistake in the declaration: a name
    /// declared twice, a link to a name never declared, a NAT on a router
    /// without an uplink, a subnet too small for its nodes. [`Error::BadName`] for a name that cannot name
    /// a namespace ([`NetNs::named`]). Otherwise what the topology verbs
    /// return, e.g. [`Error::Unshare`] without CAP_SYS_ADMIN.
    pub fn build(self) -> Result<Network, Error> {
        if let Some(problem) = self.problem {
            return Err(problem);
        }
        build::make(self)
    }
}

/// One end of a link, on a [`Node`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Interface {
    /// Its name, `eth0`, `eth1`, … in the order of the node's links.
    pub name: String,
    /// The node at the other end.
    pub peer: String,
    /// Its IPv4 address (on a `/24` unless a subnet was given).
    pub ipv4: Ipv4Addr,
    /// Its IPv6 address (on a `/64` unless a subnet was given).
    pub ipv6: Ipv6Addr,
    /// Its MAC address.
    pub mac: MacAddr,
}

/// A host, router or switch of a [`Network`]: its namespace (which it
/// derefs to), its interfaces and addresses, and its router.
#[derive(Debug)]
pub struct Node {
    ns: NetNs,
    interfaces: Vec<Interface>,
    router: Option<String>,
}

impl Node {
    /// The namespace, named after the node.
    pub fn ns(&self) -> &NetNs {
        &self.ns
    }

    /// Its name, as declared.
    pub fn name(&self) -> &str {
        self.ns.name().unwrap_or_default()
    }

    /// Its interfaces, in the order of its links (none for a switch,
    /// whose ports carry no address).
    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    /// Its interface toward `peer`, if it has a link to it.
    pub fn interface_to(&self, peer: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|end| end.peer == peer)
    }

    /// The IPv4 address of its first interface.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.interfaces.first().map(|end| end.ipv4)
    }

    /// The IPv6 address of its first interface.
    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        self.interfaces.first().map(|end| end.ipv6)
    }

    /// The router its default routes go to, if it has one.
    pub fn router(&self) -> Option<&str> {
        self.router.as_deref()
    }
}

impl Deref for Node {
    type Target = NetNs;

    fn deref(&self) -> &NetNs {
        &self.ns
    }
}

/// A link as built.
#[derive(Debug)]
struct Built {
    ends: [usize; 2],
    wire: Option<Wire>,
}

/// A network of namespaces, made by [`Network::builder`]; see
/// `docs/network.md` for its addresses and routes.
///
/// ```
/// # fn main() -> Result<(), netns_test_runtime::Error> {
/// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
/// use netns_test_runtime::Network;
///
/// let net = Network::builder()
///     .router("gw")
///     .host("server").link("gw")
///     .host("client").link("gw").wire()
///     .build()?;
/// let server = net.host("server")?;
/// assert_eq!(server.ipv4(), Some("10.0.1.2".parse().unwrap()));
/// assert_eq!(server.router(), Some("gw"));
/// net.wire("client", "gw")?.partition()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Network {
    nodes: Vec<Node>,
    links: Vec<Built>,
}

impl Network {
    /// Starts a declaration.
    pub fn builder() -> NetworkBuilder {
        NetworkBuilder::default()
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.name() == name)
    }

    /// The host, router or switch named `name`.
    ///
    /// # Errors
    ///
    /// [`Error::Network`] when no node has that name.
    pub fn host(&self, name: &str) -> Result<&Node, Error> {
        match self.index(name) {
            Some(index) => Ok(&self.nodes[index]),
            None => Err(Error::Network {
                step: format!("look up host {name}"),
                reason: "no host, router or switch of that name was declared; check the name",
            }),
        }
    }

    /// Every node, in the order declared.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The wire between `a` and `b`, either way round, to change its
    /// conditions, or partition it, mid-test.
    ///
    /// # Errors
    ///
    /// [`Error::Network`] when either is not declared, when they have no
    /// link, or when their link is a plain veth pair.
    pub fn wire(&self, a: &str, b: &str) -> Result<&Wire, Error> {
        let step = || format!("look up the wire between {a} and {b}");
        let fail = |reason| Error::Network {
            step: step(),
            reason,
        };
        let (Some(a), Some(b)) = (self.index(a), self.index(b)) else {
            return Err(fail(
                "no host, router or switch of that name was declared; check the names",
            ));
        };
        let link = self
            .links
            .iter()
            .find(|link| link.ends == [a, b] || link.ends == [b, a])
            .ok_or_else(|| fail("the two have no link; declare one with `.link`"))?;
        link.wire.as_ref().ok_or_else(|| {
            fail("their link is a plain veth pair; declare it with `.wire()` or `.conditions(...)`")
        })
    }
}
