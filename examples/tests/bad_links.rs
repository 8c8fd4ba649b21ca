//! Code tested against a bad link: a wire between two namespaces, with
//! delay, loss and a partition, seeded so that a failure replays
//! (`NETNS_TEST_SEED`, printed by its report). No netem, no root needed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use netns_test_runtime::{Conditions, NetNs, Wire, netns_test};

/// A namespace named `server`, and a wire to it from `client`: `c0`
/// (10.0.0.1) to `s0` (10.0.0.2), both up.
fn wired_to_a_server(client: &NetNs) -> std::io::Result<(NetNs, Wire)> {
    let server = NetNs::named("server")?;
    let wire = client.add_wire("c0", &server, "s0")?;
    client.add_address("c0", "10.0.0.1/24".parse()?)?;
    server.add_address("s0", "10.0.0.2/24".parse()?)?;
    client.set_link_up("c0")?;
    server.set_link_up("s0")?;
    Ok((server, wire))
}

/// A client that asks a UDP server and retries until it has an answer: it
/// gets every answer over a link that loses 5 % of packets each way and
/// takes 50 ms.
#[netns_test]
fn a_udp_client_retries_over_a_lossy_link(client: &NetNs) -> std::io::Result<()> {
    let (server, wire) = wired_to_a_server(client)?;
    wire.set_conditions(
        Conditions::new()
            .delay(Duration::from_millis(50))
            .loss(0.05),
    )?;

    // The server answers each request with the same bytes, until the
    // client is done.
    let socket = server.run(|| UdpSocket::bind("10.0.0.2:5300"))??;
    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
    let done = AtomicBool::new(false);
    let retries = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut buffer = [0; 64];
            while !done.load(Ordering::Relaxed) {
                if let Ok((length, from)) = socket.recv_from(&mut buffer) {
                    let _ = socket.send_to(&buffer[..length], from);
                }
            }
        });
        let asked = client_socket().and_then(ask_forty);
        done.store(true, Ordering::Relaxed);
        asked
    })?;
    println!("40 answers, {retries} retries");
    Ok(())
}

/// The client's socket, in the test's namespace.
fn client_socket() -> std::io::Result<UdpSocket> {
    let client = UdpSocket::bind("10.0.0.1:0")?;
    client.set_read_timeout(Some(Duration::from_millis(250)))?;
    Ok(client)
}

/// Asks 40 questions, each until it is answered; returns the retries.
fn ask_forty(client: UdpSocket) -> std::io::Result<u32> {
    let mut retries = 0;
    for question in 0..40u32 {
        let asked = question.to_be_bytes();
        let mut answer = [0; 4];
        loop {
            client.send_to(&asked, "10.0.0.2:5300")?;
            match client.recv(&mut answer) {
                Ok(4) if answer == asked => break,
                Ok(_) => {} // a late answer to an earlier try
                Err(_) => retries += 1,
            }
        }
    }
    Ok(retries)
}

/// A TCP connection survives a 2 s partition: what is written meanwhile
/// arrives once the link heals, by TCP's retransmission.
#[netns_test]
fn a_tcp_connection_survives_a_partition(client: &NetNs) -> std::io::Result<()> {
    let (server, wire) = wired_to_a_server(client)?;

    let listener = server.run(|| TcpListener::bind("10.0.0.2:8080"))??;
    let mut stream = TcpStream::connect("10.0.0.2:8080")?;
    let (mut accepted, _) = listener.accept()?;

    wire.partition()?; // both ways; the links stay up
    stream.write_all(b"sent while cut")?;
    std::thread::sleep(Duration::from_secs(2));
    wire.heal()?;

    accepted.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut received = [0; 14];
    accepted.read_exact(&mut received)?;
    assert_eq!(&received, b"sent while cut");
    Ok(())
}
