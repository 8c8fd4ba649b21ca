//! Wires: links whose conditions change at any time, through a relay in
//! userspace, in every mode. Timing is asserted only where it is a lower
//! bound (a delay is never shorter than set); rates of loss are asserted on
//! the relay's own counters and on what arrives.

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use netns_test_runtime::{Conditions, Error, NetNs, Wire, netns_test};
use netns_test_tests::{Report, run_fixtures};

/// Two namespaces joined by a wire, `a0` (10.1.0.1) in `a` and `b0`
/// (10.1.0.2) in `b`, both up.
fn wired(a: &NetNs, b: &NetNs) -> Wire {
    let wire = a.add_wire("a0", b, "b0").expect("a wire");
    a.add_address("a0", "10.1.0.1/24".parse().unwrap()).unwrap();
    b.add_address("b0", "10.1.0.2/24".parse().unwrap()).unwrap();
    a.set_link_up("a0").unwrap();
    b.set_link_up("b0").unwrap();
    wire
}

/// A UDP socket bound in `ns`, with a read timeout.
fn udp(ns: &NetNs, address: &str) -> UdpSocket {
    let socket = ns.run(|| UdpSocket::bind(address)).unwrap().expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    socket
}

/// Sends `count` numbered datagrams from `a` to `b`, paced so that no
/// socket buffer overflows, and returns the numbers received, in order of
/// arrival.
fn numbered(a: &NetNs, b: &NetNs, count: u32, port: u16) -> Vec<u32> {
    let receiver = udp(b, &format!("10.1.0.2:{port}"));
    let sender = udp(a, "10.1.0.1:0");
    let mut received = Vec::new();
    let mut buffer = [0u8; 64];
    for number in 0..count {
        sender
            .send_to(&number.to_be_bytes(), format!("10.1.0.2:{port}"))
            .unwrap();
        if number % 50 == 49 {
            drain(
                &receiver,
                &mut buffer,
                &mut received,
                Duration::from_millis(2),
            );
        }
    }
    drain(
        &receiver,
        &mut buffer,
        &mut received,
        Duration::from_millis(300),
    );
    received
}

/// Reads numbered datagrams until none comes for `quiet`.
fn drain(receiver: &UdpSocket, buffer: &mut [u8], into: &mut Vec<u32>, quiet: Duration) {
    receiver.set_read_timeout(Some(quiet)).unwrap();
    while let Ok(length) = receiver.recv(buffer) {
        into.push(u32::from_be_bytes(
            buffer[..length.min(4)].try_into().unwrap(),
        ));
    }
}

/// A TCP connection from the calling thread's namespace (`a` of
/// [`wired`]) to `port` of `b`: the client's end, and the server's.
fn connected(b: &NetNs, port: u16) -> (std::net::TcpStream, std::net::TcpStream) {
    let address = format!("10.1.0.2:{port}");
    let listener = b
        .run(|| std::net::TcpListener::bind(&address))
        .unwrap()
        .unwrap();
    let client = std::net::TcpStream::connect(&address).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

/// A UDP round trip from `a` to an echo in `b`.
fn round_trip(a: &NetNs, b: &NetNs) -> Duration {
    let echo = udp(b, "10.1.0.2:7");
    let client = udp(a, "10.1.0.1:0");
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let start = Instant::now();
    client.send_to(b"ping", "10.1.0.2:7").unwrap();
    let mut buffer = [0u8; 16];
    let (length, from) = echo.recv_from(&mut buffer).expect("the echo gets it");
    echo.send_to(&buffer[..length], from).unwrap();
    client.recv(&mut buffer).expect("the reply");
    start.elapsed()
}

/// Sends 8 MiB of TCP from the calling thread's namespace (`a` of
/// [`wired`]) to `port` of `b`, and asserts that they arrive whole, within
/// a minute.
fn carries_tcp(b: &NetNs, port: u16) {
    use std::io::{Read, Write};
    let (mut client, mut server) = connected(b, port);
    server
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let sent: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let received = std::thread::scope(|scope| {
        // Fails once the reader below has given up.
        scope.spawn(|| client.write_all(&sent));
        let mut received = vec![0; sent.len()];
        let mut at = 0;
        while at < received.len() && Instant::now() < deadline {
            match server.read(&mut received[at..]) {
                Ok(0) => break,
                Ok(read) => at += read,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(error) => panic!("{error}"),
            }
        }
        drop(server);
        received.truncate(at);
        received
    });
    assert!(
        received == sent,
        "8 MiB of TCP arrive whole within a minute: {} bytes did",
        received.len()
    );
}

#[netns_test]
fn a_perfect_wire_carries_udp_and_tcp_both_ways(a: &NetNs) {
    let b = NetNs::new().unwrap();
    let wire = wired(a, &b);
    assert!(round_trip(a, &b) < Duration::from_secs(1));
    carries_tcp(&b, 9000);
    let links: Vec<String> = a.links().unwrap().into_iter().map(|l| l.name).collect();
    assert_eq!(links, ["lo", "a0"], "the relay's namespace is hidden");
    let counters = wire.counters_from("a0").unwrap();
    assert!(counters.passed > 0 && counters.lost == 0, "{counters}");
}

/// Through the relay, with segmentation offloads on (a delay draws
/// nothing per packet), TCP's super-frames cross whole.
#[netns_test]
fn a_delayed_wire_carries_tcp(a: &NetNs) {
    let b = NetNs::new().unwrap();
    let wire = wired(a, &b);
    wire.set_conditions(Conditions::new().delay(Duration::from_millis(1)))
        .unwrap();
    carries_tcp(&b, 9003);
    let counters = wire.counters_from("a0").unwrap();
    assert!(counters.passed > 0 && counters.lost == 0, "{counters}");
}

#[netns_test]
fn delay_is_never_shorter_than_set_both_ways_or_one_way(a: &NetNs) {
    let b = NetNs::new().unwrap();
    let wire = wired(a, &b);
    let delay = Duration::from_millis(30);
    wire.set_conditions(Conditions::new().delay(delay)).unwrap();
    for _ in 0..5 {
        let rtt = round_trip(a, &b);
        assert!(rtt >= delay * 2, "{rtt:?}");
    }
    wire.set_conditions(Conditions::new()).unwrap();
    wire.set_conditions_from("b0", Conditions::new().delay(delay))
        .unwrap();
    let rtt = round_trip(a, &b);
    assert!(rtt >= delay && rtt < delay * 2, "one way only: {rtt:?}");
}

#[netns_test(seed = 7)]
fn loss_is_seeded_and_the_same_seed_drops_the_same_datagrams() {
    assert_eq!(netns_test_runtime::seed(), 7);
    let made = NetNs::new().unwrap();
    let elsewhere = made.run(netns_test_runtime::seed).unwrap();
    assert_eq!(
        elsewhere, 7,
        "a thread in a namespace the test made reads its seed"
    );
    let lost = |port| {
        let (a2, b) = (NetNs::new().unwrap(), NetNs::new().unwrap());
        let wire = wired(&a2, &b);
        // Neighbours first: a burst sent while 10.1.0.2 is being resolved
        // reaches the wire in an order of the kernel's making (the queued
        // datagrams and the next ones race), and the draws follow the
        // order datagrams arrive in.
        assert_eq!(numbered(&a2, &b, 1, 4999), [0]);
        wire.set_conditions(Conditions::new().loss(0.1)).unwrap();
        let received: BTreeSet<u32> = numbered(&a2, &b, 10_000, port).into_iter().collect();
        let lost: Vec<u32> = (0..10_000).filter(|n| !received.contains(n)).collect();
        let counted = wire.counters_from("a0").unwrap().lost;
        (lost, counted)
    };
    let (first, counted) = lost(4000);
    assert_eq!(first.len() as u64, counted, "every loss is the relay's");
    // Within the binomial 99.9 % interval of 10 % of 10,000: ±3.29 σ.
    assert!((901..=1099).contains(&first.len()), "{}", first.len());
    let (second, _) = lost(4000);
    assert_eq!(
        first, second,
        "the same seed and traffic lose the same datagrams"
    );
    let (other_flow, _) = lost(4001);
    assert_ne!(first, other_flow, "another flow draws its own");
}

#[netns_test]
fn duplicates_arrive_twice_and_jitter_keeps_order(a: &NetNs) {
    let b = NetNs::new().unwrap();
    let wire = wired(a, &b);
    wire.set_conditions(Conditions::new().duplicate(0.2))
        .unwrap();
    let received = numbered(a, &b, 1000, 4100);
    let duplicated = wire.counters_from("a0").unwrap().duplicated;
    assert!((120..=280).contains(&duplicated), "{duplicated}");
    assert_eq!(received.len() as u64, 1000 + duplicated);
    wire.set_conditions(
        Conditions::new()
            .delay(Duration::from_millis(5))
            .jitter(Duration::from_millis(4)),
    )
    .unwrap();
    let received = numbered(a, &b, 500, 4101);
    assert_eq!(
        received,
        (0..500).collect::<Vec<_>>(),
        "in order, none lost"
    );
}

#[netns_test]
fn reorder_sends_some_ahead(a: &NetNs) {
    let b = NetNs::new().unwrap();
    let wire = wired(a, &b);
    wire.set_conditions(
        Conditions::new()
            .delay(Duration::from_millis(10))
            .reorder(0.25),
    )
    .unwrap();
    let received = numbered(a, &b, 400, 4200);
    assert_eq!(received.len(), 400);
    let overtaking = received.windows(2).filter(|pair| pair[1] < pair[0]).count();
    let reordered = wire.counters_from("a0").unwrap().reordered;
    assert!(reordered > 40 && overtaking > 0, "{reordered} {overtaking}");
}

#[netns_test]
fn the_rate_spaces_packets_and_a_full_queue_drops(a: &NetNs) {
    let b = NetNs::new().unwrap();
    let wire = wired(a, &b);
    // Neighbours first: datagrams sent before 10.1.0.2 is resolved wait in
    // a queue of the kernel's that holds fewer than 100.
    assert_eq!(numbered(a, &b, 1, 4299), [0]);
    // 100 datagrams of 1,000 bytes at 4 Mbit/s: at least 0.2 s.
    wire.set_conditions(Conditions::new().rate(4_000_000))
        .unwrap();
    let receiver = udp(&b, "10.1.0.2:4300");
    let sender = udp(a, "10.1.0.1:0");
    let start = Instant::now();
    for _ in 0..100 {
        sender.send_to(&[0u8; 1000 - 42], "10.1.0.2:4300").unwrap();
    }
    let mut buffer = [0u8; 2048];
    for _ in 0..100 {
        receiver.recv(&mut buffer).expect("every datagram arrives");
    }
    assert!(
        start.elapsed() >= Duration::from_millis(195),
        "{:?}",
        start.elapsed()
    );
    wire.set_conditions(Conditions::new().rate(1_000_000).queue(10))
        .unwrap();
    for _ in 0..100 {
        sender.send_to(&[0u8; 958], "10.1.0.2:4300").unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    let full = wire.counters_from("a0").unwrap().queue_full;
    assert!(full >= 80, "{full}");
}

#[netns_test]
fn partitions_cut_both_ways_or_one_and_heal(a: &NetNs) {
    use std::io::{Read, Write};
    let b = NetNs::new().unwrap();
    let wire = wired(a, &b);
    let (mut client, mut server) = connected(&b, 9001);
    wire.partition().unwrap();
    assert!(
        numbered(a, &b, 20, 4400).is_empty(),
        "nothing crosses a cut"
    );
    client.write_all(b"across the cut").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    wire.heal().unwrap();
    let mut received = [0u8; 14];
    server
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    server
        .read_exact(&mut received)
        .expect("TCP delivers once healed");
    assert_eq!(&received, b"across the cut");
    assert!(wire.counters_from("a0").unwrap().partitioned >= 20);

    wire.partition_from("b0").unwrap();
    assert_eq!(numbered(a, &b, 20, 4401).len(), 20, "a0 -> b0 still passes");
    let echo = udp(a, "10.1.0.1:4402");
    let from_b = udp(&b, "10.1.0.2:0");
    from_b.send_to(b"x", "10.1.0.1:4402").unwrap();
    assert!(echo.recv(&mut [0u8; 8]).is_err(), "b0 -> a0 is cut");
    wire.heal().unwrap();
    from_b.send_to(b"x", "10.1.0.1:4402").unwrap();
    echo.recv(&mut [0u8; 8]).expect("healed");
}

#[netns_test]
fn a_change_takes_effect_for_the_next_packet(a: &NetNs) {
    let b = NetNs::new().unwrap();
    let wire = wired(a, &b);
    wire.set_conditions(Conditions::new().loss(1.0)).unwrap();
    assert!(numbered(a, &b, 50, 4500).is_empty());
    wire.set_conditions(Conditions::new()).unwrap();
    assert_eq!(numbered(a, &b, 50, 4501).len(), 50);
}

/// Switching a direction between the kernel (perfect) and the relay (a
/// delay) while datagrams cross loses none and doubles none.
#[netns_test]
fn switching_between_kernel_and_relay_loses_nothing(a: &NetNs) {
    let b = NetNs::new().unwrap();
    let wire = wired(a, &b);
    assert_eq!(numbered(a, &b, 1, 4510), [0], "neighbours first");
    let mut received = std::thread::scope(|scope| {
        let receiving = scope.spawn(|| numbered(a, &b, 2000, 4511));
        for toggle in 0..40 {
            let conditions = match toggle % 2 {
                0 => Conditions::new().delay(Duration::from_micros(200)),
                _ => Conditions::new(),
            };
            wire.set_conditions(conditions).unwrap();
            std::thread::sleep(Duration::from_millis(3));
        }
        receiving.join().unwrap()
    });
    received.sort_unstable();
    assert_eq!(received, (0..2000).collect::<Vec<u32>>());
}

/// Datagrams sent right after a change from perfect to a delay and back,
/// each time, arrive in the order sent: the kernel hands a direction to
/// the relay before the change returns, and takes it back only once the
/// relay holds nothing of it.
#[netns_test]
fn switching_between_kernel_and_relay_keeps_order(a: &NetNs) {
    let b = NetNs::new().unwrap();
    let wire = wired(a, &b);
    assert_eq!(numbered(a, &b, 1, 4512), [0], "neighbours first");
    let receiver = udp(&b, "10.1.0.2:4513");
    let sender = udp(a, "10.1.0.1:0");
    let (mut received, mut buffer) = (Vec::new(), [0u8; 64]);
    for round in 0..40u32 {
        let conditions = match round % 2 {
            0 => Conditions::new().delay(Duration::from_micros(200)),
            _ => Conditions::new(),
        };
        wire.set_conditions(conditions).unwrap();
        for number in round * 50..(round + 1) * 50 {
            sender
                .send_to(&number.to_be_bytes(), "10.1.0.2:4513")
                .unwrap();
        }
        drain(
            &receiver,
            &mut buffer,
            &mut received,
            Duration::from_millis(20),
        );
    }
    assert_eq!(received, (0..2000).collect::<Vec<u32>>());
}

/// Once an end's link is deleted (as when its namespace ends), the relay
/// ends too, and a change says so, even one that switches nothing.
#[netns_test]
fn a_wire_whose_end_is_deleted_ends(a: &NetNs) {
    let b = NetNs::new().unwrap();
    let wire = wired(a, &b);
    a.delete_link("a0").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match wire.set_conditions(Conditions::new()) {
            Err(Error::Relay { .. }) => break,
            Ok(()) => assert!(Instant::now() < deadline, "the relay still runs"),
            Err(other) => panic!("{other}"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[netns_test]
fn bad_values_are_refused_naming_the_field(a: &NetNs) {
    let b = NetNs::new().unwrap();
    let wire = wired(a, &b);
    for (conditions, field) in [
        (Conditions::new().loss(1.5), "loss"),
        (Conditions::new().duplicate(-0.1), "duplicate"),
        (Conditions::new().reorder(f64::NAN), "reorder"),
        (Conditions::new().rate(0), "rate"),
        (Conditions::new().rate(1000).queue(0), "queue"),
    ] {
        let refused = wire.set_conditions(conditions).unwrap_err();
        assert!(
            matches!(&refused, Error::BadConditions { field: f, .. } if *f == field),
            "{refused}"
        );
        assert!(
            refused.to_string().contains(&format!("`{field}`")),
            "{refused}"
        );
    }
    let not_an_end = wire.partition_from("c0").unwrap_err();
    assert_eq!(
        not_an_end.to_string(),
        "`c0` is no end of wire a0 <-> b0: name one of its two links"
    );
}

#[netns_test]
fn a_dropped_handle_leaves_the_wire_and_its_conditions(a: &NetNs) {
    let b = NetNs::new().unwrap();
    wired(a, &b)
        .set_conditions(Conditions::new().loss(1.0))
        .unwrap();
    assert!(numbered(a, &b, 20, 4700).is_empty(), "still lossy");
    let links: Vec<String> = b.links().unwrap().into_iter().map(|l| l.name).collect();
    assert_eq!(links, ["lo", "b0"]);
}

/// What the capture of a failed fixture shows: a datagram cut by a
/// partition is on the sending end, and not on the other.
#[test]
fn the_capture_shows_a_dropped_datagram_on_one_end_only() {
    use netns_test_tests::pcap::{interface_holds, read_capture, reported_capture};
    let dir = std::env::temp_dir().join(format!("netns-test-wire-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let name = "fixture::sends_across_a_cut_and_fails";
    let report = run_fixtures(
        name,
        &["--ignored", "--exact"],
        &[
            ("NETNS_TEST_CAPTURE", "failed"),
            ("NETNS_TEST_CAPTURE_DIR", dir.to_str().unwrap()),
        ],
    );
    let interfaces = read_capture(&reported_capture(report.failure_output(name)));
    assert!(
        interface_holds(&interfaces, "test/a0", CUT),
        "{interfaces:?}"
    );
    assert!(
        interface_holds(&interfaces, "server/b0", PASSED),
        "{interfaces:?}"
    );
    assert!(
        !interface_holds(&interfaces, "server/b0", CUT),
        "{interfaces:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the capture fixture sends: one datagram before a partition, one
/// during it.
const PASSED: &[u8] = b"datagram-before-the-cut-5d1e";
const CUT: &[u8] = b"datagram-during-the-cut-a93f";

/// A wire's relay ends with its test: once the test's namespaces end, no
/// relay thread is left in the process (thread mode, where the test's body
/// runs in this process).
#[test]
fn a_relay_ends_with_its_test() {
    if !netns_test_tests::thread_mode_here() {
        return;
    }
    let report = run_fixtures(
        "fixture::",
        &[
            "--ignored",
            "--test-threads=1",
            "--exact",
            "fixture::makes_a_wire_and_passes",
            "fixture::then_no_relay_runs",
        ],
        &[("NETNS_TEST_MODE", "thread")],
    );
    assert_eq!(
        report.status("fixture::makes_a_wire_and_passes"),
        "ok",
        "{}",
        report.output
    );
    assert_eq!(
        report.status("fixture::then_no_relay_runs"),
        "ok",
        "{}",
        report.output
    );
}

/// The tests of a wire's behaviour, run again where the kernel has no fast
/// path (the hook `no-fast-path`): the relay then reads its ports, and
/// every behaviour holds the same.
const BEHAVIOUR: &[&str] = &[
    "a_perfect_wire_carries_udp_and_tcp_both_ways",
    "a_delayed_wire_carries_tcp",
    "delay_is_never_shorter_than_set_both_ways_or_one_way",
    "duplicates_arrive_twice_and_jitter_keeps_order",
    "partitions_cut_both_ways_or_one_and_heal",
    "a_change_takes_effect_for_the_next_packet",
    "the_capture_shows_a_dropped_datagram_on_one_end_only",
    "switching_between_kernel_and_relay_keeps_order",
    "a_wire_whose_end_is_deleted_ends",
];

#[test]
fn without_a_fast_path_the_relay_carries_everything() {
    let mut args = vec!["--exact"];
    args.extend(BEHAVIOUR);
    let report = run_fixtures("", &args, &[("__NETNS_TEST_FAULT", "no-fast-path")]);
    for name in BEHAVIOUR {
        assert_eq!(report.status(name), "ok", "{name}: {}", report.output);
    }
}

/// A perfect wire's frames cross in the kernel: its relay never wakes
/// while 8 MiB of TCP cross; without the fast path, it does (thread mode,
/// where the relay is a thread of this process).
#[test]
fn a_perfect_wire_leaves_its_relay_asleep() {
    if !netns_test_tests::thread_mode_here() {
        return;
    }
    let name = "fixture::counts_the_relays_wakeups";
    let wakeups = |env: &[(&str, &str)]| -> u64 {
        let report = run_fixtures(name, &["--ignored", "--exact", "--nocapture"], env);
        assert_eq!(report.status(name), "ok", "{}", report.output);
        report
            .output
            .lines()
            .find_map(|line| line.strip_prefix("relay woke: "))
            .and_then(|count| count.trim().parse().ok())
            .unwrap_or_else(|| panic!("no count printed:\n{}", report.output))
    };
    assert_eq!(wakeups(&[("NETNS_TEST_MODE", "thread")]), 0);
    let relayed = wakeups(&[
        ("NETNS_TEST_MODE", "thread"),
        ("__NETNS_TEST_FAULT", "no-fast-path"),
    ]);
    assert!(relayed > 0, "the relay woke {relayed} times");
}

mod fixture {
    use super::*;

    /// Prints how many times the wire's relay woke while 8 MiB of TCP
    /// crossed a perfect wire.
    #[netns_test]
    #[ignore = "fixture"]
    fn counts_the_relays_wakeups(a: &NetNs) {
        use std::io::{Read, Write};
        let b = NetNs::new().unwrap();
        let _wire = wired(a, &b);
        let (mut client, mut server) = connected(&b, 9002);
        // Once the relay sleeps: on a loaded machine it may not have run
        // (nor named itself) yet, or not reached its first wait.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut before = wakeups();
        let before = loop {
            assert!(Instant::now() < deadline, "the relay never settled");
            std::thread::sleep(Duration::from_millis(50));
            match wakeups() {
                Some(now) if Some(now) == before => break now,
                now => before = now,
            }
        };
        let sent = vec![7u8; 8 << 20];
        std::thread::scope(|scope| {
            scope.spawn(|| client.write_all(&sent).unwrap());
            let mut received = vec![0u8; sent.len()];
            server.read_exact(&mut received).unwrap();
        });
        let after = wakeups().expect("the relay still runs");
        println!("relay woke: {}", after - before);
    }

    /// The voluntary context switches of this process's relay thread,
    /// once it has named itself.
    fn wakeups() -> Option<u64> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| task.ok())
            .find(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|name| name.trim() == "netns-test-wire")
            })
            .and_then(|task| std::fs::read_to_string(task.path().join("status")).ok())
            .and_then(|status| {
                status.lines().find_map(|line| {
                    line.strip_prefix("voluntary_ctxt_switches:")
                        .and_then(|count| count.trim().parse().ok())
                })
            })
    }

    #[netns_test]
    #[ignore = "fixture"]
    fn makes_a_wire_and_passes(a: &NetNs) {
        let b = NetNs::new().unwrap();
        let wire = wired(a, &b);
        wire.set_conditions(Conditions::new().delay(Duration::from_millis(1)))
            .unwrap();
        assert_eq!(numbered(a, &b, 10, 4900).len(), 10);
        assert_eq!(relays(), 1, "the relay runs while its test does");
    }

    /// Runs after `makes_a_wire_and_passes`, in the same process.
    #[test]
    #[ignore = "fixture"]
    fn then_no_relay_runs() {
        let deadline = Instant::now() + Duration::from_secs(20);
        while relays() > 0 {
            assert!(Instant::now() < deadline, "a relay outlived its test");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The relay threads of this process.
    fn relays() -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.trim() == "netns-test-wire")
            .count()
    }

    #[netns_test]
    #[ignore = "fixture"]
    fn sends_across_a_cut_and_fails(a: &NetNs) {
        let b = NetNs::named("server").unwrap();
        let wire = wired(a, &b);
        let receiver = udp(&b, "10.1.0.2:4800");
        let sender = udp(a, "10.1.0.1:0");
        sender.send_to(PASSED, "10.1.0.2:4800").unwrap();
        receiver.recv(&mut [0u8; 64]).expect("before the cut");
        wire.partition_from("a0").unwrap();
        sender.send_to(CUT, "10.1.0.2:4800").unwrap();
        assert!(receiver.recv(&mut [0u8; 64]).is_err(), "cut");
        panic!("fails to keep the capture");
    }

    /// Prints the datagrams a lossy wire lost, and fails, to show its
    /// report.
    #[netns_test]
    #[ignore = "fixture"]
    fn prints_what_a_lossy_wire_lost(a: &NetNs) {
        let b = NetNs::named("server").unwrap();
        let wire = wired(a, &b);
        assert_eq!(numbered(a, &b, 1, 4999), [0], "neighbours first");
        wire.set_conditions(Conditions::new().loss(0.2)).unwrap();
        wire.set_conditions_from("b0", Conditions::new().delay(Duration::from_millis(1)))
            .unwrap();
        let received: BTreeSet<u32> = numbered(a, &b, 500, 4600).into_iter().collect();
        let lost: Vec<u32> = (0..500).filter(|n| !received.contains(n)).collect();
        println!("lost: {lost:?}");
        panic!("fails to show the report");
    }
}

/// The same seed, set from the environment, replays the same draws in a
/// new process; another seed draws others. The report names the wire, its
/// conditions and counters, and the seed with the line that replays it.
#[test]
fn the_environment_seed_replays_a_failure() {
    let name = "fixture::prints_what_a_lossy_wire_lost";
    let run = |seed: &str| -> Report {
        run_fixtures(
            name,
            &["--ignored", "--exact", "--nocapture"],
            &[("NETNS_TEST_SEED", seed)],
        )
    };
    let lost = |report: &Report| -> String {
        report
            .output
            .lines()
            .find(|line| line.starts_with("lost: "))
            .unwrap_or_else(|| panic!("no losses printed:\n{}", report.output))
            .to_owned()
    };
    let first = run("1234");
    assert_eq!(first.status(name), "FAILED", "{}", first.output);
    let again = run("1234");
    assert_eq!(lost(&first), lost(&again));
    assert_ne!(lost(&first), lost(&run("1235")));
    let output = &first.output;
    for line in [
        "  wire a0 <-> b0 (seed 1234)",
        "    from a0     loss 20%: passed ",
        "    from b0     delay 1ms: passed ",
        "netns-test: its seed was 1234; replay it with NETNS_TEST_SEED=1234 cargo test -- fixture::prints_what_a_lossy_wire_lost --exact",
        "  server: made by NetNs::named",
    ] {
        assert!(output.contains(line), "{line:?} is not in:\n{output}");
    }
    let bad = run("seven");
    assert!(
        bad.output
            .contains("NETNS_TEST_SEED=\"seven\" is not understood"),
        "{}",
        bad.output
    );
}
