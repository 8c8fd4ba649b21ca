//! A destructive body changes nothing on the host: it sets `lo` down,
//! deletes lo's addresses, adds and removes routes and links, and sets net
//! sysctls, all inside its own namespace.

use netns_test_runtime::{IpPrefix, NetNs, Via, netns_test};
use netns_test_tests::links_and_addresses;

/// The sysctls the hostile body writes.
const SYSCTLS: [(&str, &str); 4] = [
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv4.tcp_syncookies", "0"),
    ("net.core.somaxconn", "7"),
];

fn prefix(text: &str) -> IpPrefix {
    text.parse().expect("a prefix")
}

#[netns_test]
fn wrecks_its_own_network(ns: &NetNs) {
    ns.delete_address("lo", prefix("127.0.0.1/8")).unwrap();
    ns.delete_address("lo", prefix("::1/128")).unwrap();
    ns.set_link_down("lo").unwrap();
    let lo = ns.link("lo").unwrap();
    assert!(!lo.up && lo.addresses.is_empty(), "{lo:?}");
    // The body's namespace is really broken: it has no loopback at all.
    let refused = std::net::TcpStream::connect("127.0.0.1:1").unwrap_err();
    assert_eq!(
        refused.kind(),
        std::io::ErrorKind::NetworkUnreachable,
        "{refused}"
    );

    ns.add_veth("h0", ns, "h1").unwrap();
    ns.add_bridge("hbr0").unwrap();
    ns.add_address("h0", prefix("10.66.0.1/24")).unwrap();
    ns.set_link_up("h0").unwrap();
    ns.add_route(
        prefix("10.67.0.0/16"),
        Via::Gateway("10.66.0.2".parse().unwrap()),
    )
    .unwrap();
    ns.add_default_route("10.66.0.2".parse().unwrap()).unwrap();
    ns.delete_route(
        prefix("10.67.0.0/16"),
        Via::Gateway("10.66.0.2".parse().unwrap()),
    )
    .unwrap();
    ns.delete_link("hbr0").unwrap();

    for (name, value) in SYSCTLS {
        ns.set_sysctl(name, value).unwrap();
        assert_eq!(ns.sysctl(name).unwrap(), value);
    }
}

/// The host's sysctls, read from the harness thread, which is on the host.
fn host_sysctls() -> Vec<String> {
    SYSCTLS
        .iter()
        .map(|(name, _)| {
            let path = format!("/proc/sys/{}", name.replace('.', "/"));
            std::fs::read_to_string(path).expect("read a host sysctl")
        })
        .collect()
}

#[test]
fn the_host_is_untouched() {
    let (links, sysctls) = (links_and_addresses(), host_sysctls());
    wrecks_its_own_network();
    assert_eq!(links_and_addresses(), links);
    assert_eq!(host_sysctls(), sysctls);
    // And the host's loopback still works.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind on the host's lo");
    std::net::TcpStream::connect(listener.local_addr().unwrap()).expect("connect on the host's lo");
}
