//! Every typed rtnetlink operation on `NetNs`, and its errors, against real
//! namespaces.

use std::net::IpAddr;

use netns_test_runtime::{Error, IpPrefix, NetNs, OperState, Via, netns_test};
use netns_test_tests::ip;

fn prefix(text: &str) -> IpPrefix {
    text.parse().expect("a prefix")
}

fn addr(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

/// Runs `ip` inside `ns`.
fn ip_in(ns: &NetNs, args: &[&str]) -> String {
    ns.run(|| ip(args)).expect("run ip in the namespace")
}

#[netns_test]
fn lists_loopback(ns: &NetNs) {
    let links = ns.links().unwrap();
    assert_eq!(links.len(), 1, "{links:?}");
    let lo = &links[0];
    assert_eq!(
        (lo.name.as_str(), lo.index, lo.up, lo.mtu),
        ("lo", 1, true, 65536)
    );
    assert_eq!(lo.state, OperState::Unknown);
    assert!(lo.addresses.contains(&prefix("127.0.0.1/8")), "{lo:?}");
    assert!(lo.addresses.contains(&prefix("::1/128")), "{lo:?}");
    assert_eq!(ns.link("lo").unwrap(), *lo);
}

#[netns_test]
fn veth_pair_into_another_namespace(a: &NetNs) {
    let b = NetNs::new().unwrap();
    a.add_veth("a0", &b, "b0").unwrap();
    let a0 = a.link("a0").unwrap();
    let b0 = b.link("b0").unwrap();
    assert!(!a0.up && !b0.up);
    assert!(
        a.link("b0").is_err() && b.link("a0").is_err(),
        "each end is in its own namespace"
    );

    a.set_link_up("a0").unwrap();
    assert!(a.link("a0").unwrap().up);
    // With the peer down, there is no carrier.
    assert_ne!(a.link("a0").unwrap().state, OperState::Up);
    b.set_link_up("b0").unwrap();
    // Bringing up the second end returns once both ends pass packets, each
    // in its own namespace: no waiting is left to the caller.
    assert_eq!(b.link("b0").unwrap().state, OperState::Up);
    assert_eq!(a.link("a0").unwrap().state, OperState::Up);
    a.set_link_down("a0").unwrap();
    assert!(!a.link("a0").unwrap().up);

    a.set_mtu("a0", 1280).unwrap();
    assert_eq!(a.link("a0").unwrap().mtu, 1280);

    // Deleting one end deletes both.
    a.delete_link("a0").unwrap();
    assert!(a.link("a0").is_err());
    assert_eq!(b.links().unwrap().len(), 1);
}

#[netns_test]
fn veth_pair_within_one_namespace(ns: &NetNs) {
    ns.add_veth("x0", ns, "x1").unwrap();
    let mut names: Vec<String> = ns
        .links()
        .unwrap()
        .into_iter()
        .map(|link| link.name)
        .collect();
    names.sort();
    assert_eq!(names, ["lo", "x0", "x1"]);
}

#[netns_test]
fn addresses_are_added_listed_and_deleted(ns: &NetNs) {
    ns.add_veth("v0", ns, "v1").unwrap();
    ns.add_address("v0", prefix("10.1.0.1/24")).unwrap();
    ns.add_address("v0", prefix("fd00:1::1/64")).unwrap();
    let addresses = ns.link("v0").unwrap().addresses;
    assert!(addresses.contains(&prefix("10.1.0.1/24")), "{addresses:?}");
    assert!(addresses.contains(&prefix("fd00:1::1/64")), "{addresses:?}");
    assert!(ip_in(ns, &["-o", "address", "show", "dev", "v0"]).contains("inet 10.1.0.1/24"));

    ns.delete_address("v0", prefix("10.1.0.1/24")).unwrap();
    ns.delete_address("v0", prefix("fd00:1::1/64")).unwrap();
    let addresses = ns.link("v0").unwrap().addresses;
    assert!(
        !addresses.iter().any(|p| p.address() == addr("10.1.0.1")),
        "{addresses:?}"
    );
    assert!(
        !addresses.iter().any(|p| p.address() == addr("fd00:1::1")),
        "{addresses:?}"
    );
}

#[netns_test]
fn routes_via_gateway_device_and_default(ns: &NetNs) {
    ns.add_veth("r0", ns, "r1").unwrap();
    ns.set_link_up("r0").unwrap();
    ns.set_link_up("r1").unwrap();
    ns.add_address("r0", prefix("10.2.0.1/24")).unwrap();

    ns.add_route(prefix("10.3.0.0/16"), Via::Gateway(addr("10.2.0.254")))
        .unwrap();
    ns.add_route(prefix("10.4.0.0/16"), Via::Device("r0"))
        .unwrap();
    ns.add_default_route(addr("10.2.0.254")).unwrap();
    let routes = ip_in(ns, &["route", "show"]);
    assert!(
        routes.contains("10.3.0.0/16 via 10.2.0.254 dev r0"),
        "{routes}"
    );
    assert!(routes.contains("10.4.0.0/16 dev r0"), "{routes}");
    assert!(routes.contains("default via 10.2.0.254 dev r0"), "{routes}");

    ns.delete_route(prefix("10.3.0.0/16"), Via::Gateway(addr("10.2.0.254")))
        .unwrap();
    ns.delete_route(prefix("10.4.0.0/16"), Via::Device("r0"))
        .unwrap();
    ns.delete_route(prefix("0.0.0.0/0"), Via::Gateway(addr("10.2.0.254")))
        .unwrap();
    let routes = ip_in(ns, &["route", "show"]);
    assert!(
        !routes.contains("10.3.0.0") && !routes.contains("10.4.0.0"),
        "{routes}"
    );
    assert!(!routes.contains("default"), "{routes}");

    // IPv6, with `nodad`-free addresses: a route needs no usable address.
    ns.add_address("r0", prefix("fd00:2::1/64")).unwrap();
    ns.add_route(prefix("fd00:3::/48"), Via::Gateway(addr("fd00:2::fe")))
        .unwrap();
    let routes = ip_in(ns, &["-6", "route", "show"]);
    assert!(
        routes.contains("fd00:3::/48 via fd00:2::fe dev r0"),
        "{routes}"
    );
}

#[netns_test]
fn bridges_take_links(ns: &NetNs) {
    ns.add_bridge("br0").unwrap();
    ns.add_veth("p0", ns, "p1").unwrap();
    ns.attach_to_bridge("p0", "br0").unwrap();
    let shown = ip_in(ns, &["-o", "link", "show", "dev", "p0"]);
    assert!(shown.contains("master br0"), "{shown}");
    ns.set_link_up("br0").unwrap();
    assert!(ns.link("br0").unwrap().up);
}

/// This machine has no dummy driver; elsewhere the link is made.
#[netns_test]
fn dummy_links_or_a_clear_missing_driver_error(ns: &NetNs) {
    match ns.add_dummy("d0") {
        Ok(()) => assert_eq!(ns.link("d0").unwrap().name, "d0"),
        Err(error @ Error::MissingDriver { kind: "dummy", .. }) => {
            let message = error.to_string();
            assert!(
                message.starts_with("add dummy d0: the kernel has no `dummy` driver"),
                "{message}"
            );
            assert!(message.contains("modprobe dummy"), "{message}");
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[netns_test]
fn errors_name_the_operation_the_object_and_the_errno(a: &NetNs) {
    let b = NetNs::new().unwrap();
    a.add_veth("a0", &b, "b0").unwrap();
    let exists = a.add_veth("a0", &b, "b0").unwrap_err();
    assert_eq!(
        exists.to_string(),
        "add veth a0 <-> b0: File exists (EEXIST)"
    );

    let missing = a.set_link_up("nope0").unwrap_err();
    assert_eq!(
        missing.to_string(),
        "look up link nope0: No such device (ENODEV)"
    );
    assert!(a.link("nope0").is_err());

    let not_there = a.delete_address("a0", prefix("10.9.9.9/24")).unwrap_err();
    assert!(
        not_there
            .to_string()
            .starts_with("delete address 10.9.9.9/24 from a0: "),
        "{not_there}"
    );
    let unreachable = a
        .add_route(prefix("10.5.0.0/16"), Via::Gateway(addr("10.6.0.1")))
        .unwrap_err();
    assert_eq!(
        unreachable.to_string(),
        "add route 10.5.0.0/16 via 10.6.0.1: Network is unreachable (ENETUNREACH)"
    );
    let mtu = a.set_mtu("a0", 10).unwrap_err();
    assert_eq!(
        mtu.to_string(),
        "set mtu 10 on a0: Invalid argument (EINVAL)"
    );
    assert!(matches!(
        a.sysctl("kernel.hostname"),
        Err(Error::BadSysctl { .. })
    ));
    let refused = a
        .set_sysctl("net.ipv4.ip_forward", "not a number")
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .starts_with("write net.ipv4.ip_forward = not a number: "),
        "{refused}"
    );
}

/// `?` works in `io::Result` code, and each error keeps its message under
/// the kind that fits it.
#[netns_test]
fn errors_convert_into_io_errors_of_the_right_kind(a: &NetNs) -> std::io::Result<()> {
    use std::io::ErrorKind;
    let b = NetNs::new()?;
    a.add_veth("a0", &b, "b0")?;
    let kinds = [
        (a.add_veth("a0", &b, "b0"), ErrorKind::AlreadyExists),
        (a.set_link_up("nope0"), ErrorKind::NotFound),
        (a.delete_link("nope0"), ErrorKind::NotFound),
        (
            a.delete_address("a0", prefix("10.9.9.9/24")),
            ErrorKind::NotFound,
        ),
        (
            a.delete_route(prefix("10.5.0.0/16"), Via::Device("a0")),
            ErrorKind::NotFound,
        ),
        (a.set_mtu("a0", 10), ErrorKind::InvalidInput),
        (
            a.sysctl("kernel.hostname").map(drop),
            ErrorKind::InvalidInput,
        ),
        (
            a.sysctl("net.ipv4.no_such_sysctl").map(drop),
            ErrorKind::NotFound,
        ),
    ];
    for (result, kind) in kinds {
        let error = result.expect_err("the call fails");
        let message = error.to_string();
        let converted = std::io::Error::from(error);
        assert_eq!(converted.kind(), kind, "{message}");
        assert_eq!(converted.to_string(), message);
        let inner = converted.get_ref().expect("the error inside");
        assert!(inner.is::<Error>(), "{inner:?}");
    }
    Ok(())
}

#[netns_test]
fn sysctls_belong_to_the_namespace(ns: &NetNs) {
    let other = NetNs::new().unwrap();
    assert_eq!(ns.sysctl("net.ipv4.ip_forward").unwrap(), "0");
    ns.set_sysctl("net.ipv4.ip_forward", "1").unwrap();
    assert_eq!(ns.sysctl("net.ipv4.ip_forward").unwrap(), "1");
    assert_eq!(other.sysctl("net.ipv4.ip_forward").unwrap(), "0");
    // A `/` stands for a `.` in an interface name, as in sysctl(8).
    ns.add_veth("v0.5", ns, "v1").unwrap();
    ns.set_sysctl("net.ipv4.conf.v0/5.forwarding", "1").unwrap();
    assert_eq!(ns.sysctl("net.ipv4.conf.v0/5.forwarding").unwrap(), "1");
    // And from this thread, which is in `ns`.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        "1\n"
    );
}

/// Both ends of a veth pair in one namespace are up when the call returns.
#[netns_test]
fn a_veth_pair_is_ready_when_set_link_up_returns(ns: &NetNs) {
    ns.add_veth("r0", ns, "r1").unwrap();
    ns.set_link_up("r0").unwrap();
    ns.set_link_up("r1").unwrap();
    for end in ["r0", "r1"] {
        assert_eq!(ns.link(end).unwrap().state, OperState::Up, "{end}");
    }
}

/// An IPv6 address is usable as soon as `add_address` returns; with the
/// kernel's duplicate address detection, it is not yet.
#[netns_test]
fn ipv6_addresses_are_usable_at_once(a: &NetNs) {
    let b = NetNs::new().unwrap();
    a.add_veth("v0", &b, "v1").unwrap();
    a.set_link_up("v0").unwrap();
    b.set_link_up("v1").unwrap();
    a.add_address("v0", "fd00:6::1/64".parse().unwrap())
        .unwrap();
    std::net::UdpSocket::bind("[fd00:6::1]:0").expect("usable at once");
    a.add_address_with_dad("v0", "fd00:6::2/64".parse().unwrap())
        .unwrap();
    let tentative = std::net::UdpSocket::bind("[fd00:6::2]:0").expect_err("tentative");
    assert_eq!(tentative.kind(), std::io::ErrorKind::AddrNotAvailable);
}

/// Routes, neighbours and MAC addresses, typed, as `ip` shows them.
#[netns_test]
fn routes_neighbours_and_macs_are_typed(a: &NetNs) {
    use netns_test_runtime::NeighbourState;
    let b = NetNs::named("b").unwrap();
    a.add_veth("a0", &b, "b0").unwrap();
    a.add_address("a0", prefix("10.0.0.1/24")).unwrap();
    b.add_address("b0", prefix("10.0.0.2/24")).unwrap();
    a.set_link_up("a0").unwrap();
    b.set_link_up("b0").unwrap();
    a.add_default_route(addr("10.0.0.2")).unwrap();
    a.add_route(prefix("10.7.0.0/16"), Via::Device("a0"))
        .unwrap();

    let routes = a.routes().unwrap();
    let shown: Vec<String> = routes
        .iter()
        .filter(|route| route.destination.address().is_ipv4())
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        shown,
        [
            "default via 10.0.0.2 dev a0",
            "10.0.0.0/24 dev a0 src 10.0.0.1",
            "10.7.0.0/16 dev a0",
        ],
        "{routes:?}"
    );
    let connected = routes
        .iter()
        .find(|route| route.destination == prefix("10.0.0.0/24"))
        .unwrap();
    assert!(connected.by_kernel && !connected.is_default());
    assert!(
        routes
            .iter()
            .any(|route| route.is_default() && !route.by_kernel)
    );

    let b0 = b.link("b0").unwrap().mac.expect("a veth has a MAC address");
    assert_ne!(b0, a.link("a0").unwrap().mac.unwrap());
    assert_eq!(
        a.link("lo").unwrap().mac.map(|mac| mac.octets()),
        Some([0; 6])
    );
    assert!(a.neighbours().unwrap().is_empty(), "nothing resolved yet");
    let socket = std::net::UdpSocket::bind("10.0.0.1:0").unwrap();
    socket.send_to(b"hello", "10.0.0.2:9").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let neighbour = loop {
        let found = a
            .neighbours()
            .unwrap()
            .into_iter()
            .find(|n| n.mac.is_some());
        if let Some(found) = found {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "10.0.0.2 never resolved"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert_eq!(
        (neighbour.address, neighbour.device.as_str(), neighbour.mac),
        (addr("10.0.0.2"), "a0", Some(b0))
    );
    assert!(
        matches!(
            neighbour.state,
            NeighbourState::Reachable | NeighbourState::Stale | NeighbourState::Delay
        ),
        "{neighbour}"
    );
    assert_eq!(
        neighbour.to_string(),
        format!("10.0.0.2 dev a0 lladdr {b0} {}", neighbour.state)
    );
}

/// The sockets of a namespace, whoever holds them; none of another's.
#[netns_test]
fn sockets_are_listed_per_namespace(a: &NetNs) {
    use netns_test_runtime::{Protocol, SocketState};
    use std::net::{TcpListener, TcpStream, UdpSocket};
    let b = NetNs::new().unwrap();
    let (listener, client, udp) = b
        .run(|| {
            let listener = TcpListener::bind("127.0.0.1:7000").unwrap();
            let client = TcpStream::connect("127.0.0.1:7000").unwrap();
            (listener, client, UdpSocket::bind("[::]:5353").unwrap())
        })
        .unwrap();
    let _server = listener.accept().unwrap();
    let sockets = b.sockets().unwrap();
    let states = |protocol, port| -> Vec<SocketState> {
        sockets
            .iter()
            .filter(|socket| socket.protocol == protocol && socket.local.port() == port)
            .map(|socket| socket.state)
            .collect()
    };
    assert_eq!(
        states(Protocol::Tcp, 7000),
        [SocketState::Listen, SocketState::Established],
        "{sockets:?}"
    );
    assert_eq!(states(Protocol::Udp, 5353), [SocketState::Unconnected]);
    let connected = sockets
        .iter()
        .find(|socket| socket.local == client.local_addr().unwrap())
        .expect("the client's socket");
    assert_eq!(connected.remote, Some(listener.local_addr().unwrap()));
    assert!(sockets.iter().any(|s| s.serves(Protocol::Udp, 5353)));
    assert!(!sockets.iter().any(|s| s.serves(Protocol::Tcp, 5353)));
    assert!(a.sockets().unwrap().is_empty(), "{:?}", a.sockets());
    drop(udp);
}

/// A test waits for a server it started, a thread or a program, in another
/// namespace; a wait that ends without one names what was there.
#[netns_test]
fn wait_for_listener_waits_for_a_server(a: &NetNs) {
    use netns_test_runtime::Protocol;
    use std::time::{Duration, Instant};
    let b = NetNs::new().unwrap();
    let late = b
        .spawn(|| {
            std::thread::sleep(Duration::from_millis(200));
            let listener = std::net::TcpListener::bind("0.0.0.0:8080").unwrap();
            listener.accept().map(drop)
        })
        .unwrap();
    let start = Instant::now();
    let found = b
        .wait_for_listener(Protocol::Tcp, 8080, Duration::from_secs(20))
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(found.local, "0.0.0.0:8080".parse().unwrap());
    b.run(|| std::net::TcpStream::connect("127.0.0.1:8080"))
        .unwrap()
        .expect("connect to the server found");
    late.join().unwrap().unwrap();

    let mut program = b
        .run(|| {
            std::process::Command::new("python3")
                .args([
                    "-c",
                    "import socket,time\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\ns.bind(('::',5300))\ntime.sleep(60)",
                ])
                .spawn()
        })
        .unwrap()
        .expect("start python3");
    let found = b.wait_for_listener(Protocol::Udp, 5300, Duration::from_secs(20));
    let _ = program.kill();
    let _ = program.wait();
    assert_eq!(found.unwrap().local.port(), 5300);

    let _other = a
        .run(|| std::net::TcpListener::bind("127.0.0.1:9000"))
        .unwrap();
    let _udp = b
        .run(|| std::net::UdpSocket::bind("127.0.0.1:9000"))
        .unwrap();
    let missing = b
        .wait_for_listener(Protocol::Tcp, 9000, Duration::from_millis(50))
        .unwrap_err();
    assert!(matches!(missing, Error::NoListener { .. }), "{missing}");
    let message = missing.to_string();
    assert!(
        message.starts_with("no tcp socket served port 9000 in NetNs { inode: "),
        "{message}"
    );
    assert!(message.contains("its sockets: "), "{message}");
    assert!(
        message.contains("udp UNCONN     127.0.0.1:9000"),
        "{message}"
    );
    assert_eq!(
        std::io::Error::from(missing).kind(),
        std::io::ErrorKind::TimedOut
    );
}

/// The multicast groups the links of `ns` have joined, as
/// `/proc/net/igmp6` lists them.
fn solicited_node_groups(ns: &NetNs) -> String {
    ns.run(|| std::fs::read_to_string("/proc/thread-self/net/igmp6"))
        .unwrap()
        .expect("read igmp6")
}

/// The solicited-node multicast group of `address`, as `igmp6` writes it.
fn solicited_node_group(address: std::net::Ipv6Addr) -> String {
    let [.., a, b, c] = address.octets();
    format!("ff0200000000000000000001ff{a:02x}{b:02x}{c:02x}")
}

/// How many times the IPv6 router test builds its network afresh.
const ROUTER_ROUNDS: usize = 200;

/// IPv6 through a router made a moment ago works at once, 200 times over:
/// when the calls return, no address is tentative (a router solicits its
/// neighbours from its link-local address, and sends nothing while it is
/// tentative), every address has joined its solicited-node group (a
/// neighbour solicitation that comes before is dropped, and retried a
/// second later), and a datagram goes through and back.
#[netns_test]
fn ipv6_through_a_router_made_a_moment_ago() {
    for round in 0..ROUTER_ROUNDS {
        let client = NetNs::named("client").unwrap();
        let router = NetNs::named("router").unwrap();
        let server = NetNs::named("server").unwrap();
        router
            .set_sysctl("net.ipv6.conf.all.forwarding", "1")
            .unwrap();
        client.add_veth("c0", &router, "r0").unwrap();
        router.add_veth("r1", &server, "s0").unwrap();
        for (ns, link) in [
            (&client, "c0"),
            (&router, "r0"),
            (&router, "r1"),
            (&server, "s0"),
        ] {
            ns.set_link_up(link).unwrap();
        }
        for (ns, link, address) in [
            (&client, "c0", "fd00:1::2/64"),
            (&router, "r0", "fd00:1::1/64"),
            (&router, "r1", "fd00:2::1/64"),
            (&server, "s0", "fd00:2::2/64"),
        ] {
            ns.add_address(link, prefix(address)).unwrap();
            // At once: a solicitation may come the moment the call returns.
            let groups = solicited_node_groups(ns);
            let IpAddr::V6(v6) = prefix(address).address() else {
                unreachable!("an IPv6 prefix")
            };
            assert!(
                groups.contains(&solicited_node_group(v6)),
                "round {round}: {address} has not joined its group when add_address returns:\n{groups}"
            );
        }
        client.add_default_route(addr("fd00:1::1")).unwrap();
        server.add_default_route(addr("fd00:2::1")).unwrap();

        for ns in [&client, &router, &server] {
            let addresses = ip_in(ns, &["-6", "-o", "address", "show"]);
            assert!(
                !addresses.contains("tentative"),
                "round {round}: {ns:?}:\n{addresses}"
            );
            let link_locals = addresses.matches("scope link").count();
            let links = if std::ptr::eq(ns, &router) { 2 } else { 1 };
            assert_eq!(link_locals, links, "round {round}: {ns:?}:\n{addresses}");
            let groups = solicited_node_groups(ns);
            for link in ns.links().unwrap() {
                for address in &link.addresses {
                    let IpAddr::V6(v6) = address.address() else {
                        continue;
                    };
                    if v6.is_loopback() {
                        continue;
                    }
                    let group = solicited_node_group(v6);
                    assert!(
                        groups.contains(&group),
                        "round {round}: {ns:?} {v6} has not joined {group}:\n{groups}"
                    );
                }
            }
        }

        let echo = server
            .run(|| std::net::UdpSocket::bind("[fd00:2::2]:7"))
            .unwrap()
            .unwrap();
        let asked = client
            .run(|| {
                let socket = std::net::UdpSocket::bind("[fd00:1::2]:0").unwrap();
                socket.send_to(b"ping", "[fd00:2::2]:7").unwrap();
                socket
            })
            .unwrap();
        echo.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut buffer = [0u8; 8];
        let (length, from) = echo.recv_from(&mut buffer).expect("through the router");
        echo.send_to(&buffer[..length], from).unwrap();
        asked
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        asked.recv(&mut buffer).expect("and back");
    }
}
