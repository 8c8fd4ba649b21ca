//! The network builder against real namespaces: addresses the same on
//! every build, dual-stack routing through a router, hole punching through
//! two home NATs over lossy, slow wires, a partition on a switch healed,
//! and the mistakes a declaration can hold.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use netns_test_runtime::{Conditions, Error, Nat, Network, Node, netns_test};
use netns_test_tests::hears;

/// A router between a client and a server.
fn client_router_server() -> Network {
    Network::builder()
        .router("router")
        .host("server")
        .link("router")
        .host("client")
        .link("router")
        .build()
        .unwrap()
}

/// Every interface of every node: its name, addresses and MAC address.
fn addresses_of(net: &Network) -> Vec<String> {
    let mut seen = Vec::new();
    for node in net.nodes() {
        for link in node.links().unwrap() {
            let mut addresses: Vec<String> = link.addresses.iter().map(|a| a.to_string()).collect();
            addresses.retain(|address| !address.starts_with("fe80"));
            let mac = link.mac.map(|mac| mac.to_string()).unwrap_or_default();
            seen.push(format!("{}/{} {mac} {addresses:?}", node.name(), link.name));
        }
    }
    seen
}

#[netns_test]
fn the_same_declaration_gets_the_same_addresses_and_macs() {
    let declare = || {
        Network::builder()
            .router("isp")
            .router("home")
            .nat(Nat::port_restricted())
            .uplink("isp")
            .switch("lan")
            .host("a")
            .link("lan")
            .host("b")
            .link("lan")
            .wire()
            .router("edge")
            .link("lan")
            .host("server")
            .link("isp")
            .build()
            .unwrap()
    };
    let (one, two) = (declare(), declare());
    let first = addresses_of(&one);
    assert_eq!(first, addresses_of(&two));
    assert!(
        first.contains(
            &"server/eth0 02:00:0a:00:02:02 [\"10.0.2.2/24\", \"fd00:0:2::2/64\"]".to_owned()
        ),
        "{first:#?}"
    );
    assert!(
        first
            .contains(&"b/eth0 02:00:0a:01:01:02 [\"10.1.1.2/24\", \"fd00:1:1::2/64\"]".to_owned()),
        "{first:#?}"
    );
    let server = one.host("server").unwrap();
    assert_eq!(server.ipv4(), Some("10.0.2.2".parse().unwrap()));
    assert_eq!(server.ipv6(), Some("fd00:0:2::2".parse().unwrap()));
    assert_eq!(server.router(), Some("isp"));
    assert_eq!(one.host("home").unwrap().router(), Some("isp"));
    assert_eq!(one.host("a").unwrap().router(), Some("edge"));
    assert_eq!(server.name(), "server");
}

/// Sends `hello` over TCP from `client` to `server`, at its IPv4 address,
/// then at its IPv6 address.
fn tcp(client: &Node, server: &Node) {
    let ipv4 = server.ipv4().unwrap().into();
    let ipv6 = server.ipv6().unwrap().into();
    for address in [SocketAddr::new(ipv4, 8080), SocketAddr::new(ipv6, 8080)] {
        hello(client, server, address);
    }
}

/// Sends `hello` over TCP from `client` to `server` at `address`.
fn hello(client: &Node, server: &Node, address: SocketAddr) {
    let listener = server.run(|| TcpListener::bind(address)).unwrap().unwrap();
    let sent = client
        .spawn(move || {
            let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
            stream.write_all(b"hello")
        })
        .unwrap();
    let (mut stream, _) = listener.accept().unwrap();
    let mut got = String::new();
    stream.read_to_string(&mut got).unwrap();
    sent.join().unwrap().unwrap();
    assert_eq!(got, "hello");
}

#[netns_test]
fn a_client_reaches_a_server_through_a_router_over_ipv4_and_ipv6() {
    let net = client_router_server();
    let (client, server) = (net.host("client").unwrap(), net.host("server").unwrap());
    tcp(client, server);
    assert_eq!(server.sysctl("net.ipv4.ip_forward").unwrap(), "0");
    let router = net.host("router").unwrap();
    assert_eq!(router.sysctl("net.ipv4.ip_forward").unwrap(), "1");
    assert_eq!(router.sysctl("net.ipv6.conf.all.forwarding").unwrap(), "1");
}

#[netns_test]
fn given_subnets_take_the_place_of_the_scheme() {
    let net = Network::builder()
        .switch("lan")
        .subnet("192.168.1.0/24".parse().unwrap())
        .router("gw")
        .link("lan")
        .host("laptop")
        .link("lan")
        .host("server")
        .link("gw")
        .subnet("203.0.113.0/29".parse().unwrap())
        .subnet("2001:db8::/64".parse().unwrap())
        .build()
        .unwrap();
    let (laptop, server) = (net.host("laptop").unwrap(), net.host("server").unwrap());
    assert_eq!(laptop.ipv4(), Some("192.168.1.2".parse().unwrap()));
    assert_eq!(laptop.ipv6(), Some("fd00:1:1::2".parse().unwrap()));
    assert_eq!(laptop.router(), Some("gw"));
    assert_eq!(server.ipv4(), Some("203.0.113.2".parse().unwrap()));
    assert_eq!(server.ipv6(), Some("2001:db8::2".parse().unwrap()));
    let gw = net.host("gw").unwrap();
    let to_server = gw.interface_to("server").unwrap();
    assert_eq!(
        to_server.ipv4,
        "203.0.113.1".parse::<std::net::Ipv4Addr>().unwrap()
    );
    let prefixes: Vec<String> = (gw.link(&to_server.name).unwrap().addresses.iter())
        .map(|prefix| prefix.to_string())
        .collect();
    assert!(
        prefixes.contains(&"203.0.113.1/29".to_owned()),
        "{prefixes:?}"
    );
    tcp(laptop, server);
}

/// A UDP socket bound in `node`, that waits `wait` for a datagram.
fn udp(node: &Node, address: SocketAddr, wait: Duration) -> UdpSocket {
    let socket = node.run(|| UdpSocket::bind(address)).unwrap().unwrap();
    socket.set_read_timeout(Some(wait)).unwrap();
    socket
}

/// What `socket` hears from `from` in time: an address, as the
/// rendezvous sends it.
fn told(socket: &UdpSocket, from: SocketAddr) -> Option<SocketAddr> {
    let mut buffer = [0; 64];
    let (len, source) = socket.recv_from(&mut buffer).ok()?;
    let text = std::str::from_utf8(&buffer[..len]).ok()?;
    (source == from).then(|| text.parse().ok())?
}

#[netns_test]
fn two_peers_behind_home_nats_punch_a_hole_over_slow_lossy_wires() {
    let slow = Conditions::new()
        .delay(Duration::from_millis(30))
        .loss(0.01);
    let net = Network::builder()
        .router("isp")
        .router("home1")
        .nat(Nat::port_restricted())
        .uplink("isp")
        .conditions(slow)
        .router("home2")
        .nat(Nat::port_restricted())
        .uplink("isp")
        .conditions(slow)
        .host("rendezvous")
        .link("isp")
        .host("alice")
        .link("home1")
        .host("bob")
        .link("home2")
        .conditions(slow)
        .build()
        .unwrap();
    let any = "0.0.0.0:6000".parse().unwrap();
    let wait = Duration::from_millis(250);
    let server_at = SocketAddr::new(net.host("rendezvous").unwrap().ipv4().unwrap().into(), 3478);
    let rendezvous = net.host("rendezvous").unwrap();
    let server = udp(rendezvous, server_at, wait);
    // The rendezvous answers each peer with where it sees the other, once
    // it has seen both.
    let serving = std::thread::spawn(move || {
        let mut seen: Vec<SocketAddr> = Vec::new();
        let mut buffer = [0; 64];
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let Ok((len, from)) = server.recv_from(&mut buffer) else {
                continue;
            };
            if &buffer[..len] == b"done" {
                break;
            }
            if !seen.contains(&from) {
                seen.push(from);
            }
            if let [one, two] = seen[..] {
                let other = if from == one { two } else { one };
                server.send_to(other.to_string().as_bytes(), from).unwrap();
            }
        }
    });
    let a = udp(net.host("alice").unwrap(), any, wait);
    let b = udp(net.host("bob").unwrap(), any, wait);
    let (mut b_for_a, mut a_for_b) = (None, None);
    for _ in 0..40 {
        if b_for_a.is_none() {
            a.send_to(b"who", server_at).unwrap();
        }
        if a_for_b.is_none() {
            b.send_to(b"who", server_at).unwrap();
        }
        b_for_a = b_for_a.or_else(|| told(&a, server_at));
        a_for_b = a_for_b.or_else(|| told(&b, server_at));
        if b_for_a.is_some() && a_for_b.is_some() {
            break;
        }
    }
    let (b_for_a, a_for_b) = (
        b_for_a.expect("alice is told"),
        a_for_b.expect("bob is told"),
    );
    assert_ne!(
        b_for_a.ip(),
        net.host("bob").unwrap().ipv4().unwrap(),
        "bob is seen through his NAT"
    );
    // Both keep sending until each has heard the other.
    let (mut a_heard, mut b_heard) = (false, false);
    for _ in 0..40 {
        a.send_to(b"from alice", b_for_a).unwrap();
        b.send_to(b"from bob", a_for_b).unwrap();
        a_heard |= hears(&a, b_for_a);
        b_heard |= hears(&b, a_for_b);
        if a_heard && b_heard {
            break;
        }
    }
    let _ = a.send_to(b"done", server_at);
    serving.join().unwrap();
    assert!(
        a_heard && b_heard,
        "alice heard bob: {a_heard}, bob heard alice: {b_heard}"
    );
}

#[netns_test]
fn a_node_partitioned_from_a_switch_is_cut_off_then_healed() {
    let mut declared = Network::builder().switch("lan");
    for node in ["n1", "n2", "n3"] {
        declared = declared.host(node).link("lan").wire();
    }
    let net = declared.build().unwrap();
    let wait = Duration::from_millis(300);
    let n1 = net.host("n1").unwrap();
    let n3 = net.host("n3").unwrap();
    let at = |node: &Node| SocketAddr::new(node.ipv4().unwrap().into(), 7000);
    let one = udp(n1, at(n1), wait);
    let others = [
        udp(net.host("n2").unwrap(), at(net.host("n2").unwrap()), wait),
        udp(n3, at(n3), wait),
    ];
    let reaches = |from: &UdpSocket, to: &UdpSocket| {
        let mut buffer = [0; 16];
        (0..5).any(|_| {
            from.send_to(b"ping", to.local_addr().unwrap()).unwrap();
            to.recv_from(&mut buffer).is_ok()
        })
    };
    assert!(
        others
            .iter()
            .all(|other| reaches(&one, other) && reaches(other, &one))
    );
    assert!(reaches(&others[0], &others[1]));
    net.wire("n1", "lan").unwrap().partition().unwrap();
    assert!(
        others
            .iter()
            .all(|other| !reaches(&one, other) && !reaches(other, &one))
    );
    assert!(
        reaches(&others[0], &others[1]),
        "the others still reach each other"
    );
    net.wire("lan", "n1").unwrap().heal().unwrap();
    assert!(
        others
            .iter()
            .all(|other| reaches(&one, other) && reaches(other, &one))
    );
}

/// The message of the error `build` returns for `declared`.
fn mistake(declared: netns_test_runtime::NetworkBuilder) -> String {
    match declared.build() {
        Err(error @ Error::Network { .. }) => {
            assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
            error.to_string()
        }
        other => panic!("expected Error::Network, got {other:?}"),
    }
}

#[netns_test]
fn mistakes_in_a_declaration_name_the_fix() {
    let unknown = mistake(
        Network::builder()
            .router("home1")
            .host("alice")
            .link("hom1"),
    );
    assert_eq!(
        unknown,
        "link alice to hom1: no host, router or switch of that name is declared; declare it (`.host`, `.router` or `.switch`) or fix the name"
    );
    let twice = mistake(Network::builder().host("a").router("a"));
    assert_eq!(
        twice,
        "declare router a: the name is taken already; give every host, router and switch a name of its own"
    );
    let nat = mistake(Network::builder().router("r").nat(Nat::full_cone()));
    assert!(nat.contains("declare it with `.uplink(...)`"), "{nat}");
    let uplink = mistake(Network::builder().router("r").host("h").uplink("r"));
    assert!(uplink.contains("only a router has an uplink"), "{uplink}");
    let with_subnet = |to: &str, subnet: &str| {
        let declared = Network::builder().router("r").switch("lan").host("h");
        mistake(declared.link(to).subnet(subnet.parse().unwrap()))
    };
    let small = with_subnet("r", "10.9.9.0/31");
    assert_eq!(
        small,
        "give the link h to r the subnet 10.9.9.0/31: the subnet is too small for the nodes on it; give a shorter prefix"
    );
    let on_switch = with_subnet("lan", "10.9.9.0/24");
    assert!(
        on_switch.contains("right after `.switch(...)`"),
        "{on_switch}"
    );
    let net = client_router_server();
    let missing = net.host("carol").unwrap_err().to_string();
    assert_eq!(
        missing,
        "look up host carol: no host, router or switch of that name was declared; check the name"
    );
    let plain = net.wire("client", "router").unwrap_err().to_string();
    assert!(plain.contains("declare it with `.wire()`"), "{plain}");
    let none = net.wire("client", "server").unwrap_err().to_string();
    assert!(none.contains("the two have no link"), "{none}");
}
