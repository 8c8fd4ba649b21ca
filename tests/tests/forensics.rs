//! A failed test shows what its network looked like, and, with capture on,
//! keeps what went over it: in every mode.

use std::path::{Path, PathBuf};

use netns_test_tests::pcap::{
    files_under, holds, interface_holds, read_capture, read_capture_cut_short, reported_capture,
};
use netns_test_tests::{MODES, Report, run_fixtures};

/// What the fixtures send, to be found in the capture.
const OVER_LO: &[u8] = b"payload-over-lo-7f3a";
const OVER_VETH: &[u8] = b"payload-over-veth-91c2";

mod fixture {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::time::Duration;

    use netns_test_runtime::{NetNs, netns_test};

    use super::{OVER_LO, OVER_VETH};

    /// What a fixture holds open: a listener and a connection to it, a UDP
    /// socket on each side of the veth, the second namespace.
    type Held = (
        TcpListener,
        TcpStream,
        TcpStream,
        UdpSocket,
        UdpSocket,
        NetNs,
    );

    /// Sends `OVER_VETH` over a veth pair from `ns` (`a0`) to `peer`
    /// (`peer_link`), where it is received: the sender and the receiver.
    fn over_veth(ns: &NetNs, peer: &NetNs, peer_link: &str) -> (UdpSocket, UdpSocket) {
        netns_test_tests::veth_to(ns, peer, peer_link);
        let receiver = peer
            .run(|| UdpSocket::bind("10.9.0.2:9999"))
            .unwrap()
            .expect("bind in the peer");
        let sender = UdpSocket::bind("0.0.0.0:5353").expect("bind 5353");
        sender
            .send_to(OVER_VETH, "10.9.0.2:9999")
            .expect("send over the veth");
        receiver
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buffer = [0; 64];
        let (length, _) = receiver
            .recv_from(&mut buffer)
            .expect("receive over the veth");
        assert_eq!(&buffer[..length], OVER_VETH);
        (sender, receiver)
    }

    /// Sends `OVER_LO` over a TCP connection on `lo`, and `OVER_VETH` over a
    /// veth pair to a second namespace, where it is received.
    fn traffic(ns: &NetNs) -> Held {
        let listener = TcpListener::bind("127.0.0.1:7878").expect("bind 7878");
        let mut client = TcpStream::connect("127.0.0.1:7878").expect("connect");
        client.write_all(OVER_LO).expect("send over lo");
        let (mut server, _) = listener.accept().expect("accept");
        let mut received = vec![0; OVER_LO.len()];
        server.read_exact(&mut received).expect("receive over lo");

        let peer = NetNs::new().expect("a second namespace");
        let (sender, receiver) = over_veth(ns, &peer, "b0");
        (listener, client, server, sender, receiver, peer)
    }

    /// Sends `OVER_VETH` to a namespace named `router`, and fails.
    #[netns_test]
    #[ignore]
    fn fails_beside_a_named_router(ns: &NetNs) {
        let router = NetNs::named("router").expect("a named namespace");
        let _held = over_veth(ns, &router, "r0");
        panic!("the test fails here");
    }

    #[netns_test]
    #[ignore]
    fn panics_with_sockets_open(ns: &NetNs) {
        let _held = traffic(ns);
        panic!("the test fails here");
    }

    #[netns_test]
    #[ignore]
    fn returns_err(ns: &NetNs) -> Result<(), String> {
        let _held = traffic(ns);
        Err("it went wrong".into())
    }

    #[netns_test(timeout = "1s")]
    #[ignore]
    fn times_out_listening() {
        let _listener = TcpListener::bind("127.0.0.1:7979").expect("bind 7979");
        std::thread::sleep(Duration::from_secs(60));
    }

    #[netns_test]
    #[ignore]
    fn passes_after_traffic(ns: &NetNs) {
        let _held = traffic(ns);
    }

    #[netns_test]
    #[should_panic(expected = "as expected")]
    #[ignore]
    fn panics_as_expected() {
        let _listener = TcpListener::bind("127.0.0.1:7878").expect("bind 7878");
        panic!("as expected");
    }

    #[netns_test]
    #[should_panic(expected = "another message")]
    #[ignore]
    fn panics_with_the_wrong_message() {
        let _listener = TcpListener::bind("127.0.0.1:7878").expect("bind 7878");
        panic!("not the expected one");
    }

    #[netns_test(capture)]
    #[ignore]
    fn asks_for_capture_and_fails(ns: &NetNs) {
        let _held = traffic(ns);
        panic!("the test fails here");
    }

    /// Sends `OVER_LO`, waits until the capture being written holds it,
    /// and aborts.
    #[netns_test]
    #[ignore]
    fn crashes_after_traffic() {
        let listener = TcpListener::bind("127.0.0.1:7878").expect("bind 7878");
        let mut client = TcpStream::connect("127.0.0.1:7878").expect("connect");
        client.write_all(OVER_LO).expect("send over lo");
        drop(listener);
        let dir = std::env::var_os("NETNS_TEST_CAPTURE_DIR").expect("a capture directory");
        for _ in 0..1000 {
            let written = netns_test_tests::pcap::files_under(dir.as_ref())
                .iter()
                .filter_map(|file| std::fs::read(file).ok())
                .any(|bytes| bytes.windows(OVER_LO.len()).any(|window| window == OVER_LO));
            if written {
                std::process::abort();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the capture never held the payload");
    }

    /// Prints how many packet sockets its namespace has, and whether a
    /// capture thread runs in this process.
    #[netns_test]
    #[ignore]
    fn counts_packet_sockets() {
        let packet = std::fs::read_to_string("/proc/thread-self/net/packet").unwrap();
        let sockets = packet.lines().count() - 1;
        let threads: Vec<String> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
            .filter(|name| name.trim() == "netns-test-pack")
            .collect();
        panic!(
            "packet sockets: {sockets}; capture threads: {}",
            threads.len()
        );
    }
}

/// A fresh directory for capture files, writable by whoever runs this.
fn capture_dir(name: &str, mode: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "netns-test-forensics-{}-{name}-{mode}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the capture directory");
    dir
}

fn run(fixture: &str, mode: &str, env: &[(&str, &str)]) -> Report {
    let mut env = env.to_vec();
    env.push(("NETNS_TEST_MODE", mode));
    run_fixtures(
        &format!("fixture::{fixture}"),
        &["--ignored", "--exact"],
        &env,
    )
}

/// Asserts that a failure's `output`, under `mode`, has each of `lines`.
fn assert_shows(mode: &str, output: &str, lines: &[&str]) {
    for line in lines {
        assert!(output.contains(line), "{mode}: no {line:?} in:\n{output}");
    }
}

/// Runs `fixture` in `mode` with its captures going to `dir`, and
/// `NETNS_TEST_CAPTURE` set to `capture` when given.
fn run_capturing(fixture: &str, mode: &str, capture: Option<&str>, dir: &Path) -> Report {
    let dir = dir.to_str().expect("a UTF-8 path");
    match capture {
        Some(capture) => run(
            fixture,
            mode,
            &[
                ("NETNS_TEST_CAPTURE", capture),
                ("NETNS_TEST_CAPTURE_DIR", dir),
            ],
        ),
        None => run(fixture, mode, &[("NETNS_TEST_CAPTURE_DIR", dir)]),
    }
}

#[test]
fn a_panic_shows_the_network_as_it_was_at_the_panic() {
    for mode in MODES {
        let report = run("panics_with_sockets_open", mode, &[]);
        let output = report.failure_output("fixture::panics_with_sockets_open");
        assert_shows(
            mode,
            output,
            &[
                "netns-test: the network of `fixture::panics_with_sockets_open` at its panic (its sockets before unwinding, the rest after):",
                "  test: the test's own namespace",
                "lo         UNKNOWN    mtu 65536 127.0.0.1/8 ::1/128",
                "a0         UP         mtu 1500 10.9.0.1/24",
                "10.9.0.0/24 dev a0 src 10.9.0.1",
                "10.9.0.2 dev a0 lladdr ",
                // Held by the body, and dropped by the unwinding after the panic.
                "tcp LISTEN     127.0.0.1:7878",
                "tcp ESTAB      127.0.0.1:7878 -> 127.0.0.1:",
                "udp UNCONN     0.0.0.0:5353",
                "  ns2: made by NetNs::new",
                "b0         UP         mtu 1500 10.9.0.2/24",
                "udp UNCONN     10.9.0.2:9999",
            ],
        );
        assert!(
            !output.contains("its packets"),
            "{mode}: capture is off:\n{output}"
        );
    }
}

/// A `should_panic` test whose panic is not the one expected fails, and
/// shows its network at that panic.
#[test]
fn an_unexpected_panic_shows_the_network_at_the_panic() {
    for mode in MODES {
        let report = run("panics_with_the_wrong_message", mode, &[]);
        let output = report.failure_output("fixture::panics_with_the_wrong_message");
        assert_shows(
            mode,
            output,
            &[
                "the network of `fixture::panics_with_the_wrong_message` at its panic (its sockets before unwinding, the rest after):",
                "tcp LISTEN     127.0.0.1:7878",
            ],
        );
    }
}

#[test]
fn an_err_and_a_timeout_show_the_network_too() {
    for mode in MODES {
        let report = run("returns_err", mode, &[]);
        let output = report.failure_output("fixture::returns_err");
        assert_shows(
            mode,
            output,
            &[
                "the network of `fixture::returns_err` when it returned Err (its sockets before the body's locals were dropped):",
                "a0         UP         mtu 1500 10.9.0.1/24",
                "  ns2: made by NetNs::new",
            ],
        );
        let report = run("times_out_listening", mode, &[]);
        let output = report.failure_output("fixture::times_out_listening");
        assert_shows(
            mode,
            output,
            &[
                "the network of `fixture::times_out_listening` when it timed out, still running:",
                "tcp LISTEN     127.0.0.1:7979",
                "timed out after 1s",
            ],
        );
    }
}

#[test]
fn a_passing_test_reports_nothing() {
    for mode in MODES {
        for fixture in ["passes_after_traffic", "panics_as_expected"] {
            let report = run_fixtures(
                &format!("fixture::{fixture}"),
                &["--ignored", "--exact", "--nocapture"],
                &[("NETNS_TEST_MODE", mode)],
            );
            assert_eq!(
                report.status(&format!("fixture::{fixture}")),
                "ok",
                "{mode}:\n{}",
                report.output
            );
            assert!(
                !report.output.contains("the network of"),
                "{mode}:\n{}",
                report.output
            );
        }
    }
}

#[test]
fn a_failed_tests_capture_holds_what_crossed_lo_and_the_veth() {
    for mode in MODES {
        let dir = capture_dir("failed", mode);
        let report = run_capturing("panics_with_sockets_open", mode, Some("failed"), &dir);
        let output = report.failure_output("fixture::panics_with_sockets_open");
        let path = reported_capture(output);
        assert!(
            path.starts_with(&dir),
            "{mode}: {path:?} is not under {dir:?}"
        );
        assert!(
            path.ends_with("fixture.panics_with_sockets_open.pcapng"),
            "{mode}: {path:?} does not carry the test's name"
        );
        let interfaces = read_capture(&path);
        let packets = |name: &str| {
            interfaces
                .iter()
                .find(|(interface, _)| interface == name)
                .map(|(_, packets)| packets.clone())
                .unwrap_or_else(|| panic!("{mode}: no interface {name} in {interfaces:?}"))
        };
        let over_lo = packets("test/lo")
            .iter()
            .filter(|packet| holds(std::slice::from_ref(packet), OVER_LO))
            .count();
        assert_eq!(
            over_lo, 1,
            "{mode}: a packet on lo is kept once, not leaving and arriving"
        );
        assert!(holds(&packets("test/a0"), OVER_VETH), "{mode}: test/a0");
        assert!(holds(&packets("ns2/b0"), OVER_VETH), "{mode}: ns2/b0");
        assert_eq!(files_under(&dir), [path], "{mode}: only the kept file");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A namespace made by `NetNs::named` is called by its name in the report
/// and in the capture, in every mode.
#[test]
fn a_named_namespace_is_called_by_its_name() {
    for mode in MODES {
        let dir = capture_dir("named", mode);
        let report = run_capturing("fails_beside_a_named_router", mode, Some("failed"), &dir);
        let output = report.failure_output("fixture::fails_beside_a_named_router");
        assert_shows(
            mode,
            output,
            &[
                "  router: made by NetNs::named",
                "r0         UP         mtu 1500 10.9.0.2/24",
                "udp UNCONN     10.9.0.2:9999",
            ],
        );
        assert!(!output.contains("ns2"), "{mode}: {output}");
        let interfaces = read_capture(&reported_capture(output));
        assert!(
            interface_holds(&interfaces, "router/r0", OVER_VETH),
            "{mode}: {interfaces:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn under_failed_a_passing_test_keeps_nothing_and_under_all_it_keeps_its_file() {
    for mode in MODES {
        let dir = capture_dir("passing", mode);
        let report = run_capturing("passes_after_traffic", mode, Some("failed"), &dir);
        assert_eq!(
            report.status("fixture::passes_after_traffic"),
            "ok",
            "{}",
            report.output
        );
        assert_eq!(
            files_under(&dir),
            Vec::<PathBuf>::new(),
            "{mode}: nothing kept"
        );

        let report = run_capturing("passes_after_traffic", mode, Some("all"), &dir);
        assert_eq!(
            report.status("fixture::passes_after_traffic"),
            "ok",
            "{}",
            report.output
        );
        let files = files_under(&dir);
        assert_eq!(files.len(), 1, "{mode}: {files:?}");
        let interfaces = read_capture(&files[0]);
        assert!(
            interface_holds(&interfaces, "ns2/b0", OVER_VETH),
            "{mode}: {interfaces:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn the_capture_attribute_keeps_a_failed_tests_packets() {
    for mode in MODES {
        let dir = capture_dir("attribute", mode);
        let report = run_capturing("asks_for_capture_and_fails", mode, None, &dir);
        let path = reported_capture(report.failure_output("fixture::asks_for_capture_and_fails"));
        assert!(
            holds(&read_capture(&path)[0].1, OVER_LO),
            "{mode}: test/lo first"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A crash ends the process that captures: what it wrote is kept. Thread
/// mode is left out: there, a crash ends the test binary itself.
#[test]
fn a_crash_keeps_the_capture_so_far() {
    for mode in ["helper", "process"] {
        let dir = capture_dir("crash", mode);
        let report = run_capturing("crashes_after_traffic", mode, Some("failed"), &dir);
        let output = report.failure_output("fixture::crashes_after_traffic");
        assert!(output.contains("SIGABRT"), "{mode}:\n{output}");
        let line = output
            .lines()
            .find(|line| line.starts_with("netns-test: its packets, up to the end"))
            .unwrap_or_else(|| panic!("{mode}: no capture kept:\n{output}"));
        let (_, path) = line.rsplit_once(": ").expect("a path");
        let interfaces = read_capture_cut_short(Path::new(path), true);
        assert!(
            interface_holds(&interfaces, "test/lo", OVER_LO),
            "{mode}: {interfaces:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn capture_off_makes_no_socket_and_no_thread() {
    for mode in MODES {
        let dir = capture_dir("off", mode);
        let off = run_capturing("counts_packet_sockets", mode, None, &dir);
        let output = off.failure_output("fixture::counts_packet_sockets");
        assert!(
            output.contains("packet sockets: 0; capture threads: 0"),
            "{mode}:\n{output}"
        );
        let on = run_capturing("counts_packet_sockets", mode, Some("all"), &dir);
        let output = on.failure_output("fixture::counts_packet_sockets");
        assert!(
            output.contains("packet sockets: 1; capture threads: 1"),
            "{mode}:\n{output}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_bad_capture_setting_fails_and_names_the_values() {
    let report = run(
        "passes_after_traffic",
        "auto",
        &[("NETNS_TEST_CAPTURE", "sometimes")],
    );
    let output = report.failure_output("fixture::passes_after_traffic");
    assert!(output.contains("NETNS_TEST_CAPTURE"), "{output}");
    assert!(output.contains("`off`, `failed` or `all`"), "{output}");
}
