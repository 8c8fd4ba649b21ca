//! The setup time of a NAT router: a router between two namespaces, with
//! and without its NAT (one nftables transaction, and one more for a
//! forwarded port), made one after another in the same run; and, where the
//! `nft` program is installed, the same rules loaded by it, as the peers
//! load theirs.

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
    let nft = std::process::Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    let (mut plain, mut natted, mut full_cone, mut by_nft) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUTERS {
        plain.push(router(None).0);
        natted.push(router(Some(Nat::port_restricted())).0);
        full_cone.push(router(Some(Nat::full_cone())).0);
        if nft {
            let (took, namespaces) = router(None);
            by_nft.push(took + nft_rules(&namespaces[0]));
        }
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
    match nft {
        true => {
            let runs = median(by_nft);
            println!(
                "| the same, the port-restricted rules loaded by the `nft` program | {runs:.2?} | {:.2?} |",
                runs.saturating_sub(plain)
            );
        }
        false => println!(
            "| the same, the rules loaded by the `nft` program | `nft` is not installed here | |"
        ),
    }
}

/// The rules of a port-restricted NAT with a forwarded port on `wan0`, as
/// one `nft -f` file.
const NFT_RULES: &str = "\
table ip netns_test {
    chain prerouting { type nat hook prerouting priority dstnat; iifname \"wan0\" udp dport 4000 dnat to 192.168.1.10:4000; }
    chain postrouting { type nat hook postrouting priority srcnat; oifname \"wan0\" masquerade; }
    chain input { type filter hook input priority filter; iifname \"wan0\" ct state established,related accept; iifname \"wan0\" drop; }
    chain forward { type filter hook forward priority filter; ct state established,related accept; ct status dnat accept; iifname \"wan0\" drop; }
}
";

/// Loads [`NFT_RULES`] in `router` with the `nft` program; how long it took.
fn nft_rules(router: &NetNs) -> Duration {
    let start = Instant::now();
    let loaded = router
        .run(|| {
            let mut child = std::process::Command::new("nft")
                .args(["-f", "-"])
                .stdin(std::process::Stdio::piped())
                .spawn()?;
            // Written, then closed, so that nft reads to its end.
            if let Some(mut stdin) = child.stdin.take() {
                std::io::Write::write_all(&mut stdin, NFT_RULES.as_bytes())?;
            }
            child.wait()
        })
        .expect("run nft in the router");
    assert!(loaded.is_ok_and(|status| status.success()), "nft -f failed");
    start.elapsed()
}
