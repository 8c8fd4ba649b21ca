//! NAT routers by RFC 4787 behaviour, against real namespaces: each
//! behaviour classified the way RFC 5780 tests do, hole punching through a
//! rendezvous server, forwarded ports, the firewall, hairpinning, a flush
//! of connection tracking, and a NAT behind a NAT.
//!
//! The world: one `internet` namespace whose bridge `br0` holds the
//! servers' addresses (203.0.113.10 and .11); each site is a router
//! (`wan0` 203.0.113.n on the bridge, `lan0` 192.168.1.1) and a host behind
//! it (`eth0` 192.168.1.10).

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Duration;

use netns_test_runtime::{Error, Nat, NetNs, Protocol, netns_test};
use netns_test_tests::{hears, run_fixtures};

/// How long a datagram that is let through takes at most to arrive.
const ARRIVAL: Duration = Duration::from_millis(300);

/// The `internet` namespace, its bridge up with the servers' addresses.
fn internet() -> NetNs {
    let internet = NetNs::named("internet").unwrap();
    internet.add_bridge("br0").unwrap();
    internet.set_link_up("br0").unwrap();
    for address in ["203.0.113.10/24", "203.0.113.11/24"] {
        internet
            .add_address("br0", address.parse().unwrap())
            .unwrap();
    }
    internet
}

/// A router and the host behind it.
struct Site {
    router: NetNs,
    host: NetNs,
}

/// Site `n`: its router's `wan0` is 203.0.113.n on the internet's bridge,
/// with `nat` on it.
fn site(internet: &NetNs, n: u8, nat: Nat) -> Site {
    let router = NetNs::named(&format!("router-{n}")).unwrap();
    let host = NetNs::named(&format!("host-{n}")).unwrap();
    let port = format!("port{n}");
    router.add_veth("wan0", internet, &port).unwrap();
    internet.attach_to_bridge(&port, "br0").unwrap();
    internet.set_link_up(&port).unwrap();
    router
        .add_address("wan0", format!("203.0.113.{n}/24").parse().unwrap())
        .unwrap();
    router.set_link_up("wan0").unwrap();
    inside(&router, &host);
    router.add_nat("wan0", nat).unwrap();
    Site { router, host }
}

/// Joins `host` (192.168.1.10) to `router` (`lan0`, 192.168.1.1), its
/// default gateway, and has the router forward.
fn inside(router: &NetNs, host: &NetNs) {
    pair(
        (host, "eth0", "192.168.1.10/24"),
        (router, "lan0", "192.168.1.1/24"),
    );
    host.add_default_route("192.168.1.1".parse().unwrap())
        .unwrap();
    router.set_sysctl("net.ipv4.ip_forward", "1").unwrap();
}

/// A veth pair between two namespaces, each end with its address, up.
fn pair(a: (&NetNs, &str, &str), b: (&NetNs, &str, &str)) {
    a.0.add_veth(a.1, b.0, b.1).unwrap();
    for (ns, link, prefix) in [a, b] {
        ns.add_address(link, prefix.parse().unwrap()).unwrap();
        ns.set_link_up(link).unwrap();
    }
}

/// A UDP socket bound in `ns`, with a read timeout.
fn udp(ns: &NetNs, address: &str) -> UdpSocket {
    let socket = ns.run(|| UdpSocket::bind(address)).unwrap().expect("bind");
    socket.set_read_timeout(Some(ARRIVAL)).unwrap();
    socket
}

/// Where `server` sees a datagram from `client` come from.
fn seen_by(client: &UdpSocket, server: &UdpSocket) -> SocketAddr {
    client
        .send_to(b"where am I?", server.local_addr().unwrap())
        .unwrap();
    let mut buffer = [0; 64];
    server.recv_from(&mut buffer).expect("the server hears").1
}

/// Whether a datagram `from` sends to `to` reaches `at`, and from where.
fn arrives(from: &UdpSocket, to: SocketAddr, at: &UdpSocket) -> Option<SocketAddr> {
    from.send_to(b"knock", to).unwrap();
    let mut buffer = [0; 64];
    at.recv_from(&mut buffer).ok().map(|(_, source)| source)
}

/// The behaviour of `nat`, as RFC 5780 tests it: mapping (`EIM`, `APDM`)
/// and filtering (`EIF`, `ADF`, `APDF`); and whether the public port is
/// the inside one (`preserved`) or not (`random`).
fn classify(nat: Nat) -> (&'static str, &'static str, &'static str) {
    let internet = internet();
    let site = site(&internet, 1, nat);
    let servers: Vec<UdpSocket> = ["203.0.113.10", "203.0.113.11"]
        .iter()
        .flat_map(|address| [3478, 3479].map(|port| format!("{address}:{port}")))
        .map(|address| udp(&internet, &address))
        .collect();

    let client = udp(&site.host, "0.0.0.0:5000");
    let mapped: Vec<SocketAddr> = servers
        .iter()
        .map(|server| seen_by(&client, server))
        .collect();
    assert!(
        mapped
            .iter()
            .all(|seen| seen.ip().to_string() == "203.0.113.1"),
        "{mapped:?}"
    );
    let mapping = match mapped.iter().all(|seen| *seen == mapped[0]) {
        true => "EIM",
        false => "APDM",
    };
    let ports = match mapped[0].port() {
        5000 => "preserved",
        _ => "random",
    };

    // From a port that has sent to the first server's first port only.
    let client = udp(&site.host, "0.0.0.0:5001");
    let mapped = seen_by(&client, &servers[0]);
    assert!(arrives(&servers[0], mapped, &client).is_some(), "no reply");
    let other_port = arrives(&servers[1], mapped, &client).is_some();
    let other_address = arrives(&servers[2], mapped, &client).is_some();
    let filtering = match (other_port, other_address) {
        (true, true) => "EIF",
        (true, false) => "ADF",
        (false, false) => "APDF",
        (false, true) => "another address but not another port",
    };
    (mapping, filtering, ports)
}

#[netns_test]
fn full_cone_classifies_as_eim_and_eif() {
    assert_eq!(classify(Nat::full_cone()), ("EIM", "EIF", "preserved"));
}

#[netns_test]
fn address_restricted_classifies_as_eim_and_adf() {
    assert_eq!(
        classify(Nat::address_restricted()),
        ("EIM", "ADF", "preserved")
    );
}

#[netns_test]
fn port_restricted_classifies_as_eim_and_apdf() {
    assert_eq!(
        classify(Nat::port_restricted()),
        ("EIM", "APDF", "preserved")
    );
}

#[netns_test]
fn symmetric_classifies_as_apdm_and_apdf() {
    assert_eq!(classify(Nat::symmetric()), ("APDM", "APDF", "random"));
}

#[netns_test]
fn random_ports_keep_the_mapping_endpoint_independent() {
    let nat = Nat::port_restricted().random_ports();
    assert_eq!(classify(nat), ("EIM", "APDF", "random"));
}

#[netns_test]
fn a_full_cone_with_random_ports_is_still_a_full_cone() {
    let nat = Nat::full_cone().random_ports();
    assert_eq!(classify(nat), ("EIM", "EIF", "random"));
}

/// Whether two peers, behind sites 1 and 2 with `nat` each, reach each
/// other by hole punching: a rendezvous server tells each the other's
/// public endpoint, then both send.
fn hole_punch(nat: Nat) -> bool {
    let internet = internet();
    let (one, two) = (site(&internet, 1, nat), site(&internet, 2, nat));
    let rendezvous = udp(&internet, "203.0.113.10:3478");
    let a = udp(&one.host, "0.0.0.0:6000");
    let b = udp(&two.host, "0.0.0.0:6000");
    let public_a = seen_by(&a, &rendezvous);
    let public_b = seen_by(&b, &rendezvous);
    let mut buffer = [0; 64];
    let mut told = |peer: &UdpSocket, other: SocketAddr, to: SocketAddr| {
        rendezvous
            .send_to(other.to_string().as_bytes(), to)
            .unwrap();
        let (len, _) = peer.recv_from(&mut buffer).expect("the rendezvous answers");
        std::str::from_utf8(&buffer[..len])
            .unwrap()
            .parse::<SocketAddr>()
            .unwrap()
    };
    let b_for_a = told(&a, public_b, public_a);
    let a_for_b = told(&b, public_a, public_b);
    // Each hears the other in the same round once both NATs are open: the
    // second at the latest.
    (0..3).any(|_| {
        a.send_to(b"from a", b_for_a).unwrap();
        b.send_to(b"from b", a_for_b).unwrap();
        hears(&a, b_for_a) & hears(&b, a_for_b)
    })
}

#[netns_test]
fn hole_punching_succeeds_between_port_restricted_nats() {
    assert!(hole_punch(Nat::port_restricted()));
}

#[netns_test]
fn hole_punching_fails_between_symmetric_nats() {
    assert!(!hole_punch(Nat::symmetric()));
}

/// Site 1 with `nat`, UDP port 4000 forwarded to the host, which serves
/// it: the internet, the site, and the service's socket.
fn serving(nat: Nat) -> (NetNs, Site, UdpSocket) {
    let internet = internet();
    let site = site(&internet, 1, nat);
    site.router
        .forward_port(
            "wan0",
            Protocol::Udp,
            4000,
            "192.168.1.10:4000".parse().unwrap(),
        )
        .unwrap();
    let service = udp(&site.host, "0.0.0.0:4000");
    (internet, site, service)
}

#[netns_test]
fn a_forwarded_port_lets_the_outside_in_and_nothing_else_leaves_a_trace() {
    let (internet, site, service) = serving(Nat::port_restricted());
    let outside = udp(&internet, "203.0.113.10:7000");
    let public: SocketAddr = "203.0.113.1:4000".parse().unwrap();
    assert_eq!(
        arrives(&outside, public, &service),
        Some(outside.local_addr().unwrap()),
        "the forwarded port keeps the sender's address"
    );
    let client_of_service = outside.local_addr().unwrap();
    assert_eq!(arrives(&service, client_of_service, &outside), Some(public));

    // Unsolicited: to a port not forwarded, on which the host listens.
    let host = udp(&site.host, "0.0.0.0:5000");
    let stranger = udp(&internet, "203.0.113.11:7001");
    let host_public: SocketAddr = "203.0.113.1:5000".parse().unwrap();
    assert_eq!(arrives(&stranger, host_public, &host), None);
    let tracked = site.router.conntrack().unwrap();
    assert!(
        tracked
            .iter()
            .any(|connection| connection.original.source.to_string() == "203.0.113.10:7000"),
        "the forwarded connection is tracked: {tracked:?}"
    );
    assert!(
        !tracked
            .iter()
            .any(|connection| connection.original.source.ip().octets() == [203, 0, 113, 11]),
        "the dropped datagram left an entry: {tracked:?}"
    );
    // The same ports, punched from the inside, work.
    assert_eq!(seen_by(&host, &stranger), host_public);
    assert_eq!(
        arrives(&stranger, host_public, &host),
        Some(stranger.local_addr().unwrap())
    );
}

#[netns_test]
fn a_forwarded_tcp_port_lets_a_connection_in_to_another_port() {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    let internet = internet();
    let site = site(&internet, 1, Nat::port_restricted());
    let to = "192.168.1.10:8080".parse().unwrap();
    site.router
        .forward_port("wan0", Protocol::Tcp, 80, to)
        .unwrap();
    let listener = site
        .host
        .run(|| TcpListener::bind("0.0.0.0:8080"))
        .unwrap()
        .unwrap();
    let mut client = internet
        .run(|| TcpStream::connect("203.0.113.1:80"))
        .unwrap()
        .expect("the forwarded port lets the connection in");
    let (mut server, from) = listener.accept().unwrap();
    assert_eq!(from.ip().to_string(), "203.0.113.10");
    client.write_all(b"ping").unwrap();
    let mut buffer = [0; 4];
    server.read_exact(&mut buffer).unwrap();
    assert_eq!(&buffer, b"ping");
    // A port not forwarded: the SYN is dropped, so the connect times out.
    let refused = internet
        .run(|| TcpStream::connect_timeout(&"203.0.113.1:81".parse().unwrap(), ARRIVAL))
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::TimedOut);
}

/// Whether the host behind a router with `hairpinning` reaches its own
/// forwarded port through the router's public address.
fn hairpin(hairpinning: bool) -> bool {
    let (_internet, site, service) = serving(Nat::port_restricted().hairpinning(hairpinning));
    let client = udp(&site.host, "0.0.0.0:5000");
    let public: SocketAddr = "203.0.113.1:4000".parse().unwrap();
    let Some(from) = arrives(&client, public, &service) else {
        return false;
    };
    assert_eq!(
        from,
        "203.0.113.1:5000".parse().unwrap(),
        "seen as the outside sees it, to come back through the router"
    );
    assert_eq!(arrives(&service, from, &client), Some(public));
    true
}

#[netns_test]
fn hairpinning_works_when_on_and_not_when_off() {
    assert!(hairpin(true));
    assert!(!hairpin(false));
}

/// Whether an inside endpoint reaches another's live UDP mapping, behind a
/// router with `nat`: `a` has sent out (so has a mapping), `b` sends to
/// it; `a` answers `b` at the endpoint it saw.
fn hairpin_to_a_mapping(nat: Nat) -> bool {
    let internet = internet();
    let site = site(&internet, 1, nat);
    let server = udp(&internet, "203.0.113.10:3478");
    let a = udp(&site.host, "0.0.0.0:5000");
    let b = udp(&site.host, "0.0.0.0:5001");
    let a_public = seen_by(&a, &server);
    let b_public = seen_by(&b, &server);
    let Some(from) = arrives(&b, a_public, &a) else {
        return false;
    };
    assert_eq!(from, b_public, "b is seen at its public endpoint");
    assert_eq!(arrives(&a, from, &b), Some(a_public));
    true
}

#[netns_test]
fn hairpinning_reaches_a_live_mapping_of_a_full_cone() {
    assert!(hairpin_to_a_mapping(Nat::full_cone().hairpinning(true)));
    assert!(!hairpin_to_a_mapping(Nat::full_cone()));
    // `a` never sent to the public address, so its filter keeps `b` out.
    let restricted = Nat::address_restricted().hairpinning(true);
    assert!(!hairpin_to_a_mapping(restricted));
}

/// Whether the server that was let in through a mapping of a router with
/// `nat` is still let in after the router flushes its connection tracking.
fn let_in_after_a_flush(nat: Nat) -> bool {
    let internet = internet();
    let site = site(&internet, 1, nat);
    let server = udp(&internet, "203.0.113.10:3478");
    let client = udp(&site.host, "0.0.0.0:5000");
    let mapped = seen_by(&client, &server);
    assert!(arrives(&server, mapped, &client).is_some());
    assert!(!site.router.conntrack().unwrap().is_empty());
    site.router.flush_conntrack().unwrap();
    assert_eq!(site.router.conntrack().unwrap(), []);
    arrives(&server, mapped, &client).is_some()
}

#[netns_test]
fn a_flush_forgets_the_mappings() {
    assert!(!let_in_after_a_flush(Nat::port_restricted()));
    assert!(!let_in_after_a_flush(Nat::full_cone()));
}

#[netns_test]
fn a_nat_behind_a_nat_carrier_grade_works() {
    let internet = internet();
    let carrier = NetNs::named("carrier").unwrap();
    carrier.add_veth("wan0", &internet, "port1").unwrap();
    internet.attach_to_bridge("port1", "br0").unwrap();
    internet.set_link_up("port1").unwrap();
    carrier
        .add_address("wan0", "203.0.113.1/24".parse().unwrap())
        .unwrap();
    carrier.set_link_up("wan0").unwrap();
    let home = NetNs::named("home").unwrap();
    pair(
        (&home, "wan0", "100.64.0.2/10"),
        (&carrier, "lan0", "100.64.0.1/10"),
    );
    home.add_default_route("100.64.0.1".parse().unwrap())
        .unwrap();
    carrier.set_sysctl("net.ipv4.ip_forward", "1").unwrap();
    carrier.add_nat("wan0", Nat::port_restricted()).unwrap();
    let host = NetNs::named("host").unwrap();
    inside(&home, &host);
    home.add_nat("wan0", Nat::port_restricted()).unwrap();

    let server = udp(&internet, "203.0.113.10:3478");
    let other = udp(&internet, "203.0.113.10:3479");
    let client = udp(&host, "0.0.0.0:5000");
    let mapped = seen_by(&client, &server);
    assert_eq!(mapped.ip().to_string(), "203.0.113.1");
    assert_eq!(
        arrives(&server, mapped, &client),
        Some(server.local_addr().unwrap())
    );
    assert_eq!(arrives(&other, mapped, &client), None);
    let carrier_sees: Vec<SocketAddrV4> = carrier
        .conntrack()
        .unwrap()
        .iter()
        .map(|connection| connection.original.source)
        .collect();
    assert!(
        carrier_sees
            .iter()
            .all(|source| source.ip().octets()[0] == 100),
        "the carrier sees the home router's address only: {carrier_sees:?}"
    );
}

#[netns_test]
fn bad_input_names_the_step() {
    let router = NetNs::named("router").unwrap();
    let error = router.add_nat("wan9", Nat::port_restricted()).unwrap_err();
    assert!(
        matches!(&error, Error::Netlink { step, .. } if step.starts_with("add a NAT on wan9")),
        "{error}"
    );
    assert_eq!(error.kind(), std::io::ErrorKind::NotFound);

    let outside = NetNs::named("outside").unwrap();
    router.add_veth("wan0", &outside, "out0").unwrap();
    let error = router
        .forward_port(
            "wan0",
            Protocol::Tcp,
            80,
            "192.168.1.10:80".parse().unwrap(),
        )
        .unwrap_err();
    assert!(matches!(error, Error::Nat { .. }), "{error}");
    assert!(error.to_string().contains("add_nat"), "{error}");

    let error = router
        .add_nat("wan0", Nat::port_restricted().hairpinning(true))
        .unwrap_err();
    assert!(error.to_string().contains("IPv4 address"), "{error}");
    let error = router
        .add_nat(
            "wan0",
            Nat::port_restricted().udp_timeout(Duration::from_millis(10)),
        )
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}

#[netns_test]
fn the_udp_timeout_is_the_routers_conntrack_timeout() {
    let router = NetNs::named("router").unwrap();
    let outside = NetNs::named("outside").unwrap();
    router.add_veth("wan0", &outside, "out0").unwrap();
    router
        .add_nat(
            "wan0",
            Nat::port_restricted().udp_timeout(Duration::from_secs(7)),
        )
        .unwrap();
    assert_eq!(
        router
            .sysctl("net.netfilter.nf_conntrack_udp_timeout")
            .unwrap(),
        "7"
    );
    assert_eq!(
        router
            .sysctl("net.netfilter.nf_conntrack_udp_timeout_stream")
            .unwrap(),
        "7"
    );
}

/// A failure report shows a router's NAT rules and its tracked connections.
#[test]
fn a_failure_report_shows_the_nat_and_its_connections() {
    let name = "fixture::fails_behind_a_nat";
    let report = run_fixtures(name, &["--ignored", "--exact"], &[]);
    assert_eq!(report.status(name), "FAILED", "{}", report.output);
    let output = report.failure_output(name);
    for line in [
        "  router-1: made by NetNs::named",
        "    nat        prerouting   wan0: what arrives goes to the forwarded ports (ports_wan0)",
        "               postrouting  wan0: masquerade, keeping the inside port when free",
        "               ports_wan0   udp 4000 to 192.168.1.10:4000",
        "               forward      wan0: the rest from outside is dropped",
        "    conntrack  udp 192.168.1.10:5000 > 203.0.113.10:3478, reply 203.0.113.10:3478 > 203.0.113.1:5000",
    ] {
        assert!(output.contains(line), "{line:?} is not in:\n{output}");
    }
}

mod fixture {
    use super::*;

    /// Sends out through a NAT, then fails, to show the report.
    #[netns_test]
    #[ignore = "fixture"]
    fn fails_behind_a_nat() {
        let (internet, site, _service) = serving(Nat::port_restricted());
        let server = udp(&internet, "203.0.113.10:3478");
        let client = udp(&site.host, "0.0.0.0:5000");
        seen_by(&client, &server);
        panic!("fails to show the report");
    }
}

#[netns_test]
fn two_outside_links_each_take_a_nat_in_the_same_table() {
    let router = NetNs::named("router").unwrap();
    let outside = NetNs::named("outside").unwrap();
    router.add_veth("wan0", &outside, "out0").unwrap();
    router.add_veth("wan1", &outside, "out1").unwrap();
    router.add_nat("wan0", Nat::full_cone()).unwrap();
    router.add_nat("wan1", Nat::symmetric()).unwrap();
    // Again on the same link: the table, chains and sets are kept.
    router.add_nat("wan1", Nat::symmetric()).unwrap();
    router.add_nat("wan0", Nat::full_cone()).unwrap();
    let to = "192.168.1.10:53".parse().unwrap();
    router.forward_port("wan1", Protocol::Udp, 53, to).unwrap();
}

#[netns_test]
fn a_mapping_ends_after_the_udp_timeout() {
    for nat in [Nat::port_restricted(), Nat::full_cone()] {
        let internet = internet();
        let site = site(&internet, 1, nat.udp_timeout(Duration::from_secs(1)));
        let server = udp(&internet, "203.0.113.10:3478");
        let client = udp(&site.host, "0.0.0.0:5000");
        let mapped = seen_by(&client, &server);
        assert!(arrives(&server, mapped, &client).is_some(), "{nat:?}");
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(arrives(&server, mapped, &client), None, "{nat:?}");
    }
}
