//! The cost of building a network: "two homes" (two peers behind two home
//! NATs, a rendezvous server and an internet switch, the homes' lines
//! delayed) made by the builder, by the same netlink calls made by hand,
//! and, where the `ip` program is installed, by `ip` commands, as the
//! peers build theirs (with `tc` and `nft`, where the kernel and the
//! machine have them); and 250 hosts on one switch.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use netns_test_runtime::{Conditions, MacAddr, Nat, NetNs, Network, NetworkBuilder, Via};

/// Builds of each kind.
const BUILDS: usize = 15;

/// The homes' lines: 30 ms of delay.
fn line() -> Conditions {
    Conditions::new().delay(Duration::from_millis(30))
}

/// The declaration: the switch first, so the rendezvous is `10.1.1.1`,
/// `home1` `.2` and `home2` `.3` on it; `alice` behind `home1` on
/// `10.0.1.0/24`, `bob` behind `home2` on `10.0.2.0/24`.
fn two_homes() -> NetworkBuilder {
    Network::builder()
        .switch("internet")
        .host("rendezvous")
        .link("internet")
        .router("home1")
        .nat(Nat::port_restricted())
        .uplink("internet")
        .conditions(line())
        .router("home2")
        .nat(Nat::port_restricted())
        .uplink("internet")
        .conditions(line())
        .host("alice")
        .link("home1")
        .host("bob")
        .link("home2")
}

fn v4(a: u8, b: u8, c: u8) -> IpAddr {
    Ipv4Addr::new(10, a, b, c).into()
}

fn v6(a: u16, b: u16, c: u16) -> IpAddr {
    Ipv6Addr::new(0xfd00, a, b, 0, 0, 0, 0, c).into()
}

/// Brings up `link` of `ns` with its MAC address and both addresses of
/// host `h` on segment `(a, b)`, as the builder does.
fn end(ns: &NetNs, link: &str, (a, b): (u8, u8), h: u8) {
    ns.set_mac(link, MacAddr::new([2, 0, 10, a, b, h]))
        .expect("a MAC address");
    ns.set_link_up(link).expect("up");
    let prefixes = [
        format!("{}/24", v4(a, b, h)),
        format!("{}/64", v6(a.into(), b.into(), h.into())),
    ];
    for prefix in prefixes {
        ns.add_address(link, prefix.parse().expect("a prefix"))
            .expect("an address");
    }
}

/// A switch's port: its MAC address, in the bridge, up.
fn port(switch: &NetNs, link: &str, h: u8) {
    switch
        .set_mac(link, MacAddr::new([2, 0, 11, 1, 1, h]))
        .expect("a MAC address");
    switch.attach_to_bridge(link, "br0").expect("a port");
    switch.set_link_up(link).expect("up");
}

/// Default routes of `ns`, both families, to host `h` of segment `(a, b)`.
fn default_routes(ns: &NetNs, (a, b): (u8, u8), h: u8) {
    ns.add_default_route(v4(a, b, h)).expect("a default route");
    ns.add_default_route(v6(a.into(), b.into(), h.into()))
        .expect("a default route");
}

/// The same network as [`two_homes`] builds, by the same calls, by hand.
fn by_hand() -> Vec<NetNs> {
    let name = |name| NetNs::named(name).expect("a namespace");
    let internet = name("internet");
    let (rendezvous, home1, home2, alice, bob) = (
        name("rendezvous"),
        name("home1"),
        name("home2"),
        name("alice"),
        name("bob"),
    );
    for router in [&home1, &home2] {
        router
            .set_sysctl("net.ipv4.ip_forward", "1")
            .expect("forwarding");
        router
            .set_sysctl("net.ipv6.conf.all.forwarding", "1")
            .expect("forwarding");
    }
    internet.add_bridge("br0").expect("a bridge");
    internet
        .set_mac("br0", MacAddr::new([2, 0, 11, 255, 0, 0]))
        .expect("a MAC address");
    internet.set_link_up("br0").expect("up");
    rendezvous
        .add_veth("eth0", &internet, "eth0")
        .expect("a veth pair");
    port(&internet, "eth0", 1);
    end(&rendezvous, "eth0", (1, 1), 1);
    let mut wires = Vec::new();
    for (h, home, port_name) in [(2, &home1, "eth1"), (3, &home2, "eth2")] {
        let wire = home.add_wire("eth0", &internet, port_name).expect("a wire");
        wire.set_conditions(line()).expect("conditions");
        wires.push(wire);
        port(&internet, port_name, h);
        end(home, "eth0", (1, 1), h);
    }
    for (b, home, peer) in [(1, &home1, &alice), (2, &home2, &bob)] {
        peer.add_veth("eth0", home, "eth1").expect("a veth pair");
        end(home, "eth1", (0, b), 1);
        end(peer, "eth0", (0, b), 2);
    }
    default_routes(&rendezvous, (1, 1), 2);
    default_routes(&home1, (1, 1), 3);
    default_routes(&home2, (1, 1), 2);
    default_routes(&alice, (0, 1), 1);
    default_routes(&bob, (0, 2), 1);
    // Each home routes the other's inside, IPv6 only (IPv4 is private).
    for (home, b, h) in [(&home1, 2, 3), (&home2, 1, 2)] {
        let inside = format!("{}/64", v6(0, b, 0)).parse().expect("a prefix");
        home.add_route(inside, Via::Gateway(v6(1, 1, h)))
            .expect("a route");
    }
    for home in [&home1, &home2] {
        home.add_nat("eth0", Nat::port_restricted()).expect("a NAT");
    }
    drop(wires);
    vec![internet, rendezvous, home1, home2, alice, bob]
}

/// Runs a command, which must succeed.
fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().expect(program);
    assert!(status.success(), "{program} {args:?}: {status}");
}

/// The same namespaces, links, addresses, routes and sysctls made with
/// `ip` commands, as the peers' tests make theirs; `tag` keeps the names
/// apart from any other run's. What the kernel or the machine lacks (the
/// delay is netem's; the NAT, nft's) is left out, so this is a lower
/// bound on those peers' cost.
fn by_ip(tag: &str, netem: bool, nft: bool) {
    let ns = |name: &str| format!("{name}-{tag}");
    let names = ["internet", "rendezvous", "home1", "home2", "alice", "bob"].map(ns);
    let [internet, rendezvous, home1, home2, alice, bob] = names.each_ref().map(String::as_str);
    for name in &names {
        run("ip", &["netns", "add", name]);
        run("ip", &["-n", name, "link", "set", "lo", "up"]);
    }
    for router in [home1, home2] {
        run(
            "ip",
            &[
                "netns",
                "exec",
                router,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
            ],
        );
    }
    run(
        "ip",
        &["-n", internet, "link", "add", "br0", "type", "bridge"],
    );
    run(
        "ip",
        &[
            "-n",
            internet,
            "link",
            "set",
            "br0",
            "address",
            "02:00:0b:ff:00:00",
            "up",
        ],
    );
    let pair = |a: &str, a_link: &str, b: &str, b_link: &str| {
        run(
            "ip",
            &[
                "-n", a, "link", "add", a_link, "type", "veth", "peer", "name", b_link, "netns", b,
            ],
        );
    };
    let up = |name: &str, link: &str, mac: String, addresses: &[String]| {
        run(
            "ip",
            &["-n", name, "link", "set", link, "address", &mac, "up"],
        );
        for address in addresses {
            run("ip", &["-n", name, "address", "add", address, "dev", link]);
        }
    };
    let host = |name: &str, link: &str, (a, b): (u8, u8), h: u8| {
        let addresses = [
            format!("{}/24", v4(a, b, h)),
            format!("{}/64", v6(a.into(), b.into(), h.into())),
        ];
        up(
            name,
            link,
            format!("02:00:0a:{a:02x}:{b:02x}:{h:02x}"),
            &addresses,
        );
    };
    for (h, node, port_name) in [
        (1, rendezvous, "eth0"),
        (2, home1, "eth1"),
        (3, home2, "eth2"),
    ] {
        pair(node, "eth0", internet, port_name);
        run(
            "ip",
            &["-n", internet, "link", "set", port_name, "master", "br0"],
        );
        up(internet, port_name, format!("02:00:0b:01:01:{h:02x}"), &[]);
        host(node, "eth0", (1, 1), h);
        if netem && node != rendezvous {
            run(
                "tc",
                &[
                    "-n", node, "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "30ms",
                ],
            );
        }
    }
    for (b, home, peer) in [(1, home1, alice), (2, home2, bob)] {
        pair(peer, "eth0", home, "eth1");
        host(home, "eth1", (0, b), 1);
        host(peer, "eth0", (0, b), 2);
    }
    let routes = |name: &str, (a, b): (u8, u8), h: u8| {
        run(
            "ip",
            &[
                "-n",
                name,
                "route",
                "add",
                "default",
                "via",
                &v4(a, b, h).to_string(),
            ],
        );
        run(
            "ip",
            &[
                "-n",
                name,
                "-6",
                "route",
                "add",
                "default",
                "via",
                &v6(a.into(), b.into(), h.into()).to_string(),
            ],
        );
    };
    routes(rendezvous, (1, 1), 2);
    routes(home1, (1, 1), 3);
    routes(home2, (1, 1), 2);
    routes(alice, (0, 1), 1);
    routes(bob, (0, 2), 1);
    for (home, b, h) in [(home1, 2, 3), (home2, 1, 2)] {
        let inside = format!("{}/64", v6(0, b, 0));
        run(
            "ip",
            &[
                "-n",
                home,
                "-6",
                "route",
                "add",
                &inside,
                "via",
                &v6(1, 1, h).to_string(),
            ],
        );
    }
    if nft {
        for home in [home1, home2] {
            let rules = "table ip nat { chain postrouting { type nat hook postrouting priority srcnat; oifname \"eth0\" masquerade; } }";
            run("ip", &["netns", "exec", home, "nft", rules]);
        }
    }
}

/// Removes what [`by_ip`] made, untimed.
fn remove_ip(tag: &str) {
    for name in ["internet", "rendezvous", "home1", "home2", "alice", "bob"] {
        let _ = Command::new("ip")
            .args(["netns", "del", &format!("{name}-{tag}")])
            .status();
    }
}

/// Whether `program` runs (`-V`).
fn installed(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Whether the kernel has netem: a qdisc added in a namespace of its own.
fn kernel_has_netem() -> bool {
    let ns = NetNs::new().expect("a namespace");
    ns.run(|| {
        Command::new("tc")
            .args(["qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"])
            .output()
            .is_ok_and(|output| output.status.success())
    })
    .unwrap_or(false)
}

/// The median of `runs`.
fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn timed<T>(make: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let made = make();
    (start.elapsed(), made)
}

/// Prints the network rows.
pub(crate) fn rows() {
    println!();
    println!(
        "Building \"two homes\" (6 namespaces, 5 links of which 2 wires with 30 ms, 2 NATs), alternating, medians of {BUILDS}:"
    );
    let ip = installed("ip", &["-V"]);
    let (netem, nft) = (
        ip && installed("tc", &["-V"]) && kernel_has_netem(),
        installed("nft", &["--version"]),
    );
    let (mut built, mut by_calls, mut by_commands) = (Vec::new(), Vec::new(), Vec::new());
    for build in 0..BUILDS {
        let (took, net) = timed(|| two_homes().build().expect("two homes"));
        built.push(took);
        drop(net);
        let (took, namespaces) = timed(by_hand);
        by_calls.push(took);
        drop(namespaces);
        if ip {
            let tag = format!("{}-{build}", std::process::id());
            by_commands.push(timed(|| by_ip(&tag, netem, nft)).0);
            remove_ip(&tag);
        }
    }
    let (built, by_calls) = (median(built), median(by_calls));
    println!("| made by | time | builder's ratio |");
    println!("| --- | --- | --- |");
    println!("| `Network::builder()` | {built:.2?} | |");
    println!(
        "| the same netlink calls by hand | {by_calls:.2?} | {:.2}x (target <= 1.5) |",
        built.as_secs_f64() / by_calls.as_secs_f64()
    );
    if ip {
        let by_commands = median(by_commands);
        let left_out = match (netem, nft) {
            (true, true) => String::new(),
            (netem, nft) => {
                let mut missing = Vec::new();
                if !netem {
                    missing.push("tc's netem delay (no sch_netem in this kernel)");
                }
                if !nft {
                    missing.push("nft's NAT rules (nft not installed)");
                }
                format!(", without {}", missing.join(" and "))
            }
        };
        println!(
            "| `ip` commands{left_out} | {by_commands:.2?} | {:.1}x less (target >= 10) |",
            by_commands.as_secs_f64() / built.as_secs_f64()
        );
    } else {
        println!("| `ip` commands | not installed | |");
    }

    println!();
    println!("250 hosts on one switch, built (medians of 3):");
    let mut switch = Vec::new();
    for _ in 0..3 {
        let declared = (0..250).fold(Network::builder().switch("lan"), |declared, host| {
            declared.host(&format!("h{host}")).link("lan")
        });
        let (took, net) = timed(|| declared.build().expect("250 hosts"));
        switch.push(took);
        drop(net);
    }
    println!("| hosts | build | target |");
    println!("| --- | --- | --- |");
    println!("| 250 on one switch | {:.2?} | < 1 s |", median(switch));
}
