//! Network topologies built from namespaces, veth pairs, addresses and
//! routes. Every address here exists only inside namespaces the test made.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream, UdpSocket};

use netns_test_runtime::{IpPrefix, NetNs, Via, netns_test};

fn prefix(text: &str) -> IpPrefix {
    text.parse().expect("a prefix")
}

/// Joins `a` and `b` with a veth pair and gives each end an address.
fn link(a: &NetNs, a_end: (&str, &str), b: &NetNs, b_end: (&str, &str)) {
    a.add_veth(a_end.0, b, b_end.0).expect("add the veth pair");
    a.add_address(a_end.0, prefix(a_end.1))
        .expect("address a's end");
    b.add_address(b_end.0, prefix(b_end.1))
        .expect("address b's end");
    a.set_link_up(a_end.0).expect("a's end up");
    b.set_link_up(b_end.0).expect("b's end up");
}

/// Two hosts on one link: a TCP server in the test's namespace, a client in
/// another.
#[netns_test]
fn tcp_across_a_veth_pair(server_ns: &NetNs) {
    let client_ns = NetNs::new().unwrap();
    link(
        server_ns,
        ("srv0", "10.10.0.1/24"),
        &client_ns,
        ("cli0", "10.10.0.2/24"),
    );
    let listener = TcpListener::bind("10.10.0.1:80").unwrap();
    // `spawn` starts a thread inside the client's namespace; the server
    // answers from this thread meanwhile.
    let reply = client_ns
        .spawn(|| -> std::io::Result<String> {
            let mut stream = TcpStream::connect("10.10.0.1:80")?;
            stream.write_all(b"GET /")?;
            stream.shutdown(std::net::Shutdown::Write)?;
            let mut reply = String::new();
            stream.read_to_string(&mut reply)?;
            Ok(reply)
        })
        .unwrap();
    let (mut stream, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip(), "10.10.0.2".parse::<IpAddr>().unwrap());
    let mut request = String::new();
    stream.read_to_string(&mut request).unwrap();
    stream
        .write_all(format!("you said {request}").as_bytes())
        .unwrap();
    drop(stream);
    assert_eq!(reply.join().unwrap().unwrap(), "you said GET /");
}

/// Joins `router` to `client` (10.20.1.0/24: `rc0`, `c0`) and to `server`
/// (10.20.2.0/24: `rs0`, `s0`).
fn between(router: &NetNs, client: &NetNs, server: &NetNs) {
    link(
        router,
        ("rc0", "10.20.1.1/24"),
        client,
        ("c0", "10.20.1.2/24"),
    );
    link(
        router,
        ("rs0", "10.20.2.1/24"),
        server,
        ("s0", "10.20.2.2/24"),
    );
}

/// Client (10.20.1.0/24) -> router -> server (10.20.2.0/24): the router
/// forwards only once `net.ipv4.ip_forward` is on.
#[netns_test]
fn through_a_router(router: &NetNs) {
    let (client, server) = (NetNs::new().unwrap(), NetNs::new().unwrap());
    between(router, &client, &server);
    client
        .add_default_route("10.20.1.1".parse().unwrap())
        .unwrap();
    server
        .add_route(
            prefix("10.20.1.0/24"),
            Via::Gateway("10.20.2.1".parse().unwrap()),
        )
        .unwrap();
    let listener = server
        .run(|| TcpListener::bind("10.20.2.2:8080"))
        .unwrap()
        .unwrap();
    let connect = || {
        client.run(|| {
            TcpStream::connect_timeout(
                &"10.20.2.2:8080".parse().unwrap(),
                std::time::Duration::from_millis(300),
            )
        })
    };

    assert_eq!(router.sysctl("net.ipv4.ip_forward").unwrap(), "0");
    assert!(
        connect().unwrap().is_err(),
        "a router that does not forward let a packet through"
    );

    router.set_sysctl("net.ipv4.ip_forward", "1").unwrap();
    let mut stream = connect().unwrap().expect("connect through the router");
    let (mut accepted, peer) = listener.accept().unwrap();
    assert_eq!(
        peer.ip(),
        "10.20.1.2".parse::<IpAddr>().unwrap(),
        "no NAT: the client's own address"
    );
    stream.write_all(b"routed").unwrap();
    let mut buffer = [0; 6];
    accepted.read_exact(&mut buffer).unwrap();
    assert_eq!(&buffer, b"routed");
}

/// The same, in IPv6 and IPv4 at once (dual-stack): a router made a moment
/// ago forwards the first packet of each family. netns-test makes a
/// namespace's links without duplicate address detection, and
/// `set_link_up` and `add_address` return once their addresses are ready,
/// so no packet waits on the kernel's neighbour discovery.
#[netns_test]
fn dual_stack_through_a_router(router: &NetNs) {
    let (client, server) = (
        NetNs::named("client").unwrap(),
        NetNs::named("server").unwrap(),
    );
    between(router, &client, &server);
    for (ns, end, address) in [
        (router, "rc0", "fd00:1::1/64"),
        (&client, "c0", "fd00:1::2/64"),
        (router, "rs0", "fd00:2::1/64"),
        (&server, "s0", "fd00:2::2/64"),
    ] {
        ns.add_address(end, prefix(address)).unwrap();
    }
    router.set_sysctl("net.ipv4.ip_forward", "1").unwrap();
    router
        .set_sysctl("net.ipv6.conf.all.forwarding", "1")
        .unwrap();
    for gateway in ["10.20.1.1", "fd00:1::1"] {
        client.add_default_route(gateway.parse().unwrap()).unwrap();
    }
    for gateway in ["10.20.2.1", "fd00:2::1"] {
        server.add_default_route(gateway.parse().unwrap()).unwrap();
    }
    for (listen, connect) in [
        ("10.20.2.2:8080", "10.20.2.2:8080"),
        ("[fd00:2::2]:8080", "[fd00:2::2]:8080"),
    ] {
        let listener = server.run(|| TcpListener::bind(listen)).unwrap().unwrap();
        let mut stream = client
            .run(|| TcpStream::connect(connect))
            .unwrap()
            .expect("connect through the router");
        let (mut accepted, _) = listener.accept().unwrap();
        stream.write_all(b"routed").unwrap();
        let mut buffer = [0; 6];
        accepted.read_exact(&mut buffer).unwrap();
        assert_eq!(&buffer, b"routed");
    }
}

/// A UDP datagram larger than the link's MTU is fragmented by the sender and
/// reassembled by the receiver, and one larger than IPv4 allows is refused.
#[netns_test]
fn udp_larger_than_the_mtu(sender: &NetNs) {
    let receiver = NetNs::new().unwrap();
    link(
        sender,
        ("u0", "10.30.0.1/24"),
        &receiver,
        ("u1", "10.30.0.2/24"),
    );
    sender.set_mtu("u0", 1280).unwrap();
    receiver.set_mtu("u1", 1280).unwrap();
    let socket = receiver
        .run(|| UdpSocket::bind("10.30.0.2:9000"))
        .unwrap()
        .unwrap();
    let reassembled_before = reassembled(&receiver);

    let payload: Vec<u8> = (0..4000u32).map(|i| i as u8).collect();
    let client = UdpSocket::bind("10.30.0.1:0").unwrap();
    assert_eq!(
        client.send_to(&payload, "10.30.0.2:9000").unwrap(),
        payload.len()
    );
    let mut buffer = vec![0; 8192];
    let (n, _) = socket.recv_from(&mut buffer).unwrap();
    assert_eq!(&buffer[..n], &payload[..], "the datagram arrives whole");
    assert!(
        reassembled(&receiver) > reassembled_before,
        "it crossed the link in fragments"
    );

    let too_big = vec![0; 65_508]; // 65,535 - 20 (IPv4) - 8 (UDP) = 65,507
    let error = client.send_to(&too_big, "10.30.0.2:9000").unwrap_err();
    assert_eq!(error.raw_os_error(), Some(90), "EMSGSIZE: {error}");
}

/// The `ReasmOKs` counter of `ns`: datagrams it reassembled from fragments.
fn reassembled(ns: &NetNs) -> u64 {
    let snmp = ns
        .run(|| std::fs::read_to_string("/proc/thread-self/net/snmp"))
        .unwrap()
        .unwrap();
    let mut ip_lines = snmp.lines().filter(|line| line.starts_with("Ip:"));
    let (names, values) = (ip_lines.next().unwrap(), ip_lines.next().unwrap());
    let index = names
        .split_whitespace()
        .position(|name| name == "ReasmOKs")
        .unwrap();
    values
        .split_whitespace()
        .nth(index)
        .unwrap()
        .parse()
        .unwrap()
}
