//! The setup time of a NAT router: a router between two namespaces, with
//! and without its NAT (one nftables transaction, and one more for a
//! forwarded port), made one after another in the same run.

use std::time::{Duration, Instant};

use netns_test_runtime::{Nat, NetNs, Protocol};

/// Routers of each kind.
const ROUTERS: usize = 20;

/// Makes a router (`wan0` 203.0.113.1 to an outside namespace, `lan0`
/// 192.168.1.1 to an inside one), forwarding, with `nat` on `wan0` and a
/// forwarded port where given; returns how long it took, and the
/// namespaces, which are closed untimed.
fn router(nat: Option<Nat>) -> (Duration, [NetNs; 3]) {
    let start = Instant::now();
    let (router, outside, inside) = (
        NetNs::new().expect("a router"),
        NetNs::new().expect("the outside"),
        NetNs::new().expect("the inside"),
    );
    for (link, peer, address) in [
        ("wan0", &outside, "203.0.113.1/24"),
        ("lan0", &inside, "192.168.1.1/24"),
    ] {
        router.add_veth(link, peer, "eth0").expect("a veth pair");
        router
            .add_address(link, address.parse().expect("a prefix"))
            .expect("an address");
        router.set_link_up(link).expect("up");
    }
    router
        .set_sysctl("net.ipv4.ip_forward", "1")
        .expect("forwarding");
    if let Some(nat) = nat {
        router.add_nat("wan0", nat).expect("a NAT");
        let to = "192.168.1.10:4000".parse().expect("an address");
        router
            .forward_port("wan0", Protocol::Udp, 4000, to)
            .expect("a forwarded port");
    }
    (start.elapsed(), [router, outside, inside])
}

/// The median of `runs`.
fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

/// Prints the NAT rows.
pub(crate) fn rows() {
    println!();
    println!("A router's setup, with and without NAT, alternating (medians of {ROUTERS}):");
    println!("| router | setup | NAT adds |");
    println!("| --- | --- | --- |");
    let (mut plain, mut natted, mut full_cone) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUTERS {
        plain.push(router(None).0);
        natted.push(router(Some(Nat::port_restricted())).0);
        full_cone.push(router(Some(Nat::full_cone())).0);
    }
    let plain = median(plain);
    println!("| veth pairs, addresses, forwarding | {plain:.2?} | |");
    for (name, runs) in [("port_restricted", natted), ("full_cone (sets)", full_cone)] {
        let runs = median(runs);
        println!(
            "| the same, with a {name} NAT and a forwarded port | {runs:.2?} | {:.2?} |",
            runs.saturating_sub(plain)
        );
    }
}
