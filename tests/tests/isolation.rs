//! Each test runs in a namespace of its own, the harness never moves, and
//! nothing a test does is visible on the host afterwards.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use netns_test_runtime::{NetNs, netns_test};
use netns_test_tests::{ip, links_and_addresses, netns_inode, run_fixtures};

/// The port every holder binds.
const PORT: u16 = 8080;
/// How many holders must hold it at once.
const HOLDERS: usize = 8;

mod fixture {
    use super::*;

    mod same_port {
        use super::super::*;

        /// Binds the shared port, then waits until every holder has bound it
        /// too: the holders meet through files, which work across the
        /// processes of process mode and nextest alike.
        fn hold_port() {
            let listener = TcpListener::bind(("127.0.0.1", PORT)).expect("bind the shared port");
            let dir =
                std::env::var("NETNS_TEST_BARRIER_DIR").expect("run by `same_port_in_parallel`");
            let me = std::thread::current()
                .name()
                .unwrap_or("holder")
                .replace("::", "-");
            std::fs::write(format!("{dir}/{me}"), "").expect("announce");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let holding = std::fs::read_dir(&dir).expect("read the barrier").count();
                if holding == HOLDERS {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "only {holding} of {HOLDERS} held the port at once"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            drop(listener);
        }

        macro_rules! holders {
            ($($name:ident)*) => {$(
                #[netns_test]
                #[ignore = "fixture"]
                fn $name() {
                    hold_port();
                }
            )*};
        }
        holders!(h1 h2 h3 h4 h5 h6 h7 h8);
    }

    /// Records its namespace for `harness_never_moves_and_the_namespace_is_discarded`,
    /// which alone calls it.
    #[netns_test]
    #[ignore = "fixture"]
    pub(super) fn records_its_namespace() {
        *super::BODY_INODE.lock().unwrap() = Some(super::netns_inode());
        TcpListener::bind("127.0.0.1:1").expect("a low port is free here");
    }

    /// Prints the inode of the body's namespace.
    #[netns_test]
    #[ignore = "fixture"]
    fn prints_inode(ns: &NetNs) {
        assert_eq!(
            ns.inode(),
            super::netns_inode(),
            "the handle is the body's namespace"
        );
        println!("body netns inode: {}", ns.inode());
    }
}

/// Eight tests bind 127.0.0.1:8080 and hold it at the same time.
#[test]
fn same_port_in_parallel() {
    let dir = std::env::temp_dir().join(format!("netns-test-barrier-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the barrier");
    let report = run_fixtures(
        "fixture::same_port::",
        &["--ignored", "--test-threads=8"],
        &[(
            "NETNS_TEST_BARRIER_DIR",
            dir.to_str().expect("a UTF-8 path"),
        )],
    );
    std::fs::remove_dir_all(&dir).expect("remove the barrier");
    assert_eq!(report.status.len(), HOLDERS, "{}", report.output);
    assert!(
        report.status.values().all(|status| status == "ok"),
        "{}",
        report.output
    );
}

/// The body's namespace is not the harness's.
#[test]
fn body_runs_in_another_namespace() {
    let report = run_fixtures(
        "fixture::prints_inode",
        &["--ignored", "--exact", "--nocapture"],
        &[],
    );
    assert_eq!(
        report.status("fixture::prints_inode"),
        "ok",
        "{}",
        report.output
    );
    let body: u64 = report
        .output
        .lines()
        .find_map(|line| line.strip_prefix("body netns inode: "))
        .unwrap_or_else(|| panic!("no inode printed:\n{}", report.output))
        .parse()
        .expect("an inode");
    assert_ne!(
        body,
        netns_inode(),
        "the body ran in the harness's namespace"
    );
}

static BODY_INODE: Mutex<Option<u64>> = Mutex::new(None);

/// The harness thread's namespace is the same before and after a netns test,
/// and the body's namespace is gone once the test has ended.
#[test]
fn harness_never_moves_and_the_namespace_is_discarded() {
    let before = netns_inode();
    fixture::records_its_namespace();
    assert_eq!(netns_inode(), before, "the harness thread moved");
    match BODY_INODE.lock().unwrap().take() {
        // Thread mode: nothing in this process may refer to it any more.
        Some(body) => {
            assert_ne!(body, before);
            let wanted = format!("net:[{body}]");
            for entry in std::fs::read_dir("/proc/self/task").expect("list threads") {
                let task = entry.expect("a thread").path();
                let link = std::fs::read_link(task.join("ns/net")).map(|l| l.display().to_string());
                assert_ne!(
                    link.ok().as_deref(),
                    Some(wanted.as_str()),
                    "{task:?} is still in it"
                );
            }
            for entry in std::fs::read_dir("/proc/self/fd").expect("list fds") {
                let link = std::fs::read_link(entry.expect("an fd").path());
                assert_ne!(
                    link.ok().map(|l| l.display().to_string()),
                    Some(wanted.clone())
                );
            }
        }
        // Helper or process mode: the body ran in another process.
        None => assert!(
            matches!(
                std::env::var("NETNS_TEST_MODE").as_deref(),
                Ok("process" | "helper")
            ) || !netns_test_runtime::diagnose().thread_mode(),
            "the body did not run in this process, yet thread mode was in use"
        ),
    }
}

/// Makes links, addresses and routes inside its namespace.
#[netns_test]
fn makes_links_and_addresses() {
    ip(&[
        "link", "add", "nt-a0", "type", "veth", "peer", "name", "nt-b0",
    ]);
    ip(&["link", "add", "nt-br0", "type", "bridge"]);
    ip(&["address", "add", "203.0.113.1/24", "dev", "nt-a0"]);
    ip(&["address", "add", "2001:db8::1/64", "dev", "nt-a0", "nodad"]);
    ip(&["link", "set", "nt-a0", "up"]);
    ip(&["route", "add", "198.51.100.0/24", "via", "203.0.113.2"]);
    assert!(ip(&["-o", "address", "show", "dev", "nt-a0"]).contains("203.0.113.1/24"));
    assert!(ip(&["route", "show"]).contains("198.51.100.0/24 via 203.0.113.2"));
}

#[test]
fn nothing_is_left_on_the_host() {
    let before = links_and_addresses();
    makes_links_and_addresses();
    let after = links_and_addresses();
    assert_eq!(before, after);
    assert!(!after.contains("nt-a0") && !after.contains("203.0.113.1"));
}

#[netns_test]
fn tcp_over_both_loopbacks() -> std::io::Result<()> {
    for address in ["127.0.0.1:9", "[::1]:9"] {
        let listener = TcpListener::bind(address)?;
        let mut client = TcpStream::connect(address)?;
        let (mut server, peer) = listener.accept()?;
        assert_eq!(peer, client.local_addr()?);
        client.write_all(b"ping")?;
        let mut buffer = [0; 4];
        server.read_exact(&mut buffer)?;
        assert_eq!(&buffer, b"ping");
    }
    Ok(())
}

#[netns_test]
fn udp_over_both_loopbacks() -> std::io::Result<()> {
    for address in ["127.0.0.1:9", "[::1]:9"] {
        let server = UdpSocket::bind(address)?;
        let client = UdpSocket::bind((server.local_addr()?.ip(), 0))?;
        client.send_to(b"datagram", address)?;
        let mut buffer = [0; 16];
        let (n, from) = server.recv_from(&mut buffer)?;
        assert_eq!(
            (&buffer[..n], from),
            (&b"datagram"[..], client.local_addr()?)
        );
    }
    Ok(())
}

/// A fresh namespace has `lo`, up, and nothing else.
#[netns_test]
fn only_loopback_is_there() {
    let links = ip(&["-o", "link", "show"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:") && links.contains("UP"), "{links}");
}
