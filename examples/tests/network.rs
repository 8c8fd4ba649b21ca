//! Networks declared with the builder, with no veth, address, route or
//! sysctl by hand: a client finds a server by name through a router, over
//! IPv4 and IPv6; two peers behind home NATs punch a hole through a
//! rendezvous server over slow, lossy lines; a node of a three-node
//! cluster is partitioned from the others, then healed; async code and a
//! real program run on hosts; a DNS server runs on one.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use netns_test_runtime::{Conditions, Nat, Network, NetworkBuilder, netns_test};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A server and a client, each linked to a router, `gw`; used by the
/// tests below that name it in `#[netns_test(network = ...)]`.
fn client_and_server() -> NetworkBuilder {
    Network::builder()
        .router("gw")
        .host("server")
        .link("gw")
        .host("client")
        .link("gw")
}

#[netns_test(network = client_and_server)]
fn a_client_finds_a_server_by_name_over_ipv4_and_ipv6(net: &Network) -> Result<()> {
    let (server, client) = (net.host("server")?, net.host("client")?);
    let listener = server.run(|| TcpListener::bind("[::]:8080"))??; // both families
    // On every host of the network, `server` has an A and an AAAA record.
    let addresses: Vec<SocketAddr> = client
        .run(|| ("server", 8080).to_socket_addrs())??
        .collect();
    assert!(addresses.iter().any(SocketAddr::is_ipv4));
    assert!(addresses.iter().any(SocketAddr::is_ipv6));
    for address in addresses {
        let sent = client.spawn(move || TcpStream::connect(address)?.write_all(b"hi"))?;
        let mut got = String::new();
        listener.accept()?.0.read_to_string(&mut got)?;
        sent.join().map_err(|_| "the client panicked")??;
        assert_eq!(got, "hi");
    }
    Ok(())
}

/// Two homes behind NATs and a rendezvous server, all on the internet;
/// each home's line has 30 ms of delay and loses 1 % of packets.
fn two_homes() -> NetworkBuilder {
    let line = Conditions::new()
        .delay(Duration::from_millis(30))
        .loss(0.01);
    Network::builder()
        .router("internet")
        .host("rendezvous")
        .link("internet")
        .router("home1")
        .nat(Nat::port_restricted())
        .uplink("internet")
        .conditions(line)
        .router("home2")
        .nat(Nat::port_restricted())
        .uplink("internet")
        .conditions(line)
        .host("alice")
        .link("home1")
        .host("bob")
        .link("home2")
}

#[netns_test(network = two_homes)]
fn peers_behind_two_home_nats_punch_a_hole(net: &Network) -> Result<()> {
    let bind = |host: &str| -> Result<UdpSocket> {
        let socket = net.host(host)?.run(|| UdpSocket::bind("0.0.0.0:4000"))??;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        Ok(socket)
    };
    let (server, alice, bob) = (bind("rendezvous")?, bind("alice")?, bind("bob")?);
    let rendezvous = net
        .host("alice")?
        .run(|| ("rendezvous", 4000).to_socket_addrs())??;
    let rendezvous = rendezvous
        .into_iter()
        .find(SocketAddr::is_ipv4)
        .ok_or("no IPv4")?;
    // Each peer says hello until the rendezvous has seen both, at the
    // addresses their NATs gave them.
    let (mut buffer, mut alice_at, mut bob_at) = ([0; 64], None, None);
    for _ in 0..50 {
        alice.send_to(b"alice", rendezvous)?;
        bob.send_to(b"bob", rendezvous)?;
        while let Ok((length, from)) = server.recv_from(&mut buffer) {
            match &buffer[..length] {
                b"alice" => alice_at = Some(from),
                _ => bob_at = Some(from),
            }
        }
        if alice_at.is_some() && bob_at.is_some() {
            break;
        }
    }
    let (alice_at, bob_at) = (
        alice_at.ok_or("alice never arrived")?,
        bob_at.ok_or("bob never arrived")?,
    );
    // The rendezvous saw home1's address, not alice's own.
    let home1 = net
        .host("home1")?
        .interface_to("internet")
        .ok_or("no uplink")?
        .ipv4;
    assert_eq!(alice_at.ip(), home1);
    // Told each other's public address, both send at once: each NAT lets
    // the other's datagrams in once its own have gone out.
    let (mut alice_heard, mut bob_heard) = (false, false);
    for _ in 0..50 {
        alice.send_to(b"from alice", bob_at)?;
        bob.send_to(b"from bob", alice_at)?;
        alice_heard |= alice
            .recv_from(&mut buffer)
            .is_ok_and(|(_, from)| from == bob_at);
        bob_heard |= bob
            .recv_from(&mut buffer)
            .is_ok_and(|(_, from)| from == alice_at);
        if alice_heard && bob_heard {
            break;
        }
    }
    assert!(alice_heard && bob_heard, "the hole was not punched");
    Ok(())
}

#[netns_test]
fn a_cluster_node_is_partitioned_then_healed() -> Result<()> {
    let net = Network::builder()
        .switch("lan")
        .host("n1")
        .link("lan")
        .wire()
        .host("n2")
        .link("lan")
        .wire()
        .host("n3")
        .link("lan")
        .wire()
        .build()?;
    let node = |name: &str| -> Result<UdpSocket> {
        let socket = net.host(name)?.run(|| UdpSocket::bind("0.0.0.0:7000"))??;
        socket.set_read_timeout(Some(Duration::from_millis(300)))?;
        Ok(socket)
    };
    let (n1, n2, n3) = (node("n1")?, node("n2")?, node("n3")?);
    let at = |name: &str| -> Result<SocketAddr> {
        let ip = net.host(name)?.ipv4().ok_or("no IPv4")?;
        Ok(SocketAddr::new(ip.into(), 7000))
    };
    let mut buffer = [0; 16];
    let mut reaches = |to: &UdpSocket, address: SocketAddr| -> Result<bool> {
        n1.send_to(b"heartbeat", address)?;
        Ok(to.recv_from(&mut buffer).is_ok())
    };
    assert!(reaches(&n2, at("n2")?)? && reaches(&n3, at("n3")?)?);
    net.wire("n3", "lan")?.partition()?; // n3's link stays up; nothing crosses it
    assert!(reaches(&n2, at("n2")?)?);
    assert!(!reaches(&n3, at("n3")?)?);
    net.wire("n3", "lan")?.heal()?;
    assert!(reaches(&n3, at("n3")?)?);
    Ok(())
}

#[netns_test(network = client_and_server)]
async fn async_code_on_one_host_serves_another(net: &Network) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (server, client) = (net.host("server")?, net.host("client")?);
    // A tokio listener made in `server`, served on `server`'s own runtime.
    let listener = server.bind_tcp("[::]:8080").await?;
    let serving = server.spawn_async(async move {
        let (mut stream, _) = listener.accept().await?;
        stream.write_all(b"hello from server").await?;
        std::io::Result::Ok(())
    })?;
    // A tokio stream made in `client`, by name, used from the test's runtime.
    let mut stream = client.connect_tcp("server:8080").await?;
    let mut got = String::new();
    stream.read_to_string(&mut got).await?;
    serving.await??;
    assert_eq!(got, "hello from server");
    Ok(())
}

#[netns_test(network = client_and_server)]
fn a_real_program_runs_on_a_host(net: &Network) -> Result<()> {
    // Started inside `client`, with its names; it ends with the test at the
    // latest, and if the test fails, the report shows its last lines.
    let output = net
        .host("client")?
        .command("getent")?
        .args(["ahostsv4", "server"])
        .output()?;
    let text = String::from_utf8(output.stdout)?;
    assert!(text.starts_with("10.0.1.2 "), "{text}");
    Ok(())
}

#[netns_test]
fn a_dns_server_on_a_host_answers_the_others() -> Result<()> {
    let net = Network::builder()
        .router("gw")
        .host("dns")
        .link("gw")
        .host("client")
        .link("gw")
        .nameserver("dns") // names the hosts file does not hold go to dns:53
        .build()?;
    let dns = net.host("dns")?;
    let socket = dns.run(|| UdpSocket::bind("0.0.0.0:53"))??;
    socket.set_read_timeout(Some(Duration::from_millis(20)))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let answering =
        dns.spawn(move || answer_a_queries(&socket, Ipv4Addr::new(192, 0, 2, 7), &stopped))?;
    let found = net
        .host("client")?
        .run(|| ("www.example", 443).to_socket_addrs());
    stop.store(true, Ordering::Relaxed);
    answering.join().map_err(|_| "the server panicked")??;
    let found: Vec<SocketAddr> = found??.collect();
    assert_eq!(found, [SocketAddr::from(([192, 0, 2, 7], 443))]);
    Ok(())
}

/// A DNS server of a few lines: every A query gets `address`, any other
/// query an empty answer; until `stop`.
fn answer_a_queries(
    socket: &UdpSocket,
    address: Ipv4Addr,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let mut query = [0; 512];
    while !stop.load(Ordering::Relaxed) {
        let Ok((length, from)) = socket.recv_from(&mut query) else {
            continue; // its read timeout: look at `stop` again
        };
        // The question: the header's 12 bytes, then a name of labels up
        // to a zero, then its type and class.
        let Some(end) = query[12..length].iter().position(|&byte| byte == 0) else {
            continue;
        };
        let question = 12 + end + 1 + 4;
        let is_a = query.get(question - 4..question - 2) == Some(&[0, 1]);
        let mut reply = query[..question].to_vec();
        reply[2..4].copy_from_slice(&[0x81, 0x80]); // a response, recursion available
        reply[6..12].copy_from_slice(&[0, u8::from(is_a), 0, 0, 0, 0]);
        if is_a {
            // The question's name (a pointer to byte 12), A, IN, 60 s, 4 bytes.
            reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            reply.extend_from_slice(&address.octets());
        }
        socket.send_to(&reply, from)?;
    }
    Ok(())
}
