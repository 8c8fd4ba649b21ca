//! What runs on a network's hosts: names that resolve from every host
//! (and an unknown one that fails without asking any DNS server), async
//! code on a host's own runtime and its ready-made tokio sockets, and
//! commands that start inside a host and end with the test.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use netns_test_runtime::{Network, netns_test};
use netns_test_tests::{MODES, ends, pid_file, pids_in, run_fixtures, run_then};

mod fixture {
    use netns_test_runtime::{Network, netns_test};

    /// Starts a command on `alice`, a host of a network, that prints a
    /// line on each stream, then writes its pid to `$NETNS_TEST_PIDS`, and
    /// runs on; waits for the pid.
    fn start_a_command_on_alice() -> Network {
        let file = std::env::var("NETNS_TEST_PIDS").expect("run by a test that reads the pids");
        let net = Network::builder()
            .router("gw")
            .host("alice")
            .link("gw")
            .build()
            .expect("the network builds");
        let script =
            "echo hello from alice; echo trouble on alice >&2; echo $$ >> \"$0\"; exec sleep 120";
        let child = net
            .host("alice")
            .expect("alice")
            .command("sh")
            .expect("a command on alice")
            .args(["-c", script, &file])
            .spawn()
            .expect("start sh on alice");
        while std::fs::read_to_string(&file).map_or(0, |pids| pids.lines().count()) < 1 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // Left running on purpose: netns-test must end it.
        std::mem::forget(child);
        net
    }

    #[netns_test]
    #[ignore = "fixture"]
    fn leaves_a_command_and_passes() {
        start_a_command_on_alice();
    }

    #[netns_test]
    #[ignore = "fixture"]
    fn leaves_a_command_and_fails() {
        let _net = start_a_command_on_alice();
        panic!("the body fails");
    }

    fn undeclared_router() -> netns_test_runtime::NetworkBuilder {
        Network::builder().host("alice").link("nowhere")
    }

    /// A network that cannot be built is netns-test's failure, not the
    /// body's panic: the test fails, though it expects a panic.
    #[netns_test(network = undeclared_router)]
    #[should_panic]
    #[ignore = "fixture"]
    fn a_network_that_cannot_be_built_should_panic(_net: &Network) {
        panic!("the body must not run");
    }

    /// Runs right after a fixture above, in the same test binary: checks
    /// that its command has ended.
    #[test]
    #[ignore = "fixture"]
    fn then_the_command_has_ended() {
        netns_test_tests::assert_the_started_processes_ended();
    }
}

/// A router between a client and a server, and a host on a switch
/// behind a second router.
fn two_segments() -> Network {
    Network::builder()
        .router("gw")
        .host("server")
        .link("gw")
        .host("client")
        .link("gw")
        .router("edge")
        .uplink("gw")
        .switch("lan")
        .link("edge")
        .host("printer")
        .link("lan")
        .build()
        .expect("the network builds")
}

/// What `name` resolves to from the calling thread, through
/// `getaddrinfo(3)` as `std::net::ToSocketAddrs` calls it.
fn resolve(name: &str) -> std::io::Result<BTreeSet<IpAddr>> {
    Ok((name, 80)
        .to_socket_addrs()?
        .map(|address| address.ip())
        .collect())
}

#[netns_test]
fn every_host_resolves_every_name_in_both_families() {
    let net = two_segments();
    for from in net.nodes() {
        for to in net
            .nodes()
            .iter()
            .filter(|node| !node.interfaces().is_empty())
        {
            let expected: BTreeSet<IpAddr> = [
                to.ipv4().expect("an IPv4 address").into(),
                to.ipv6().expect("an IPv6 address").into(),
            ]
            .into();
            let got = from
                .run(|| resolve(to.name()))
                .expect("a thread in the host")
                .unwrap_or_else(|error| panic!("{} resolves {}: {error}", from.name(), to.name()));
            assert_eq!(got, expected, "{} resolves {}", from.name(), to.name());
        }
    }
}

#[netns_test]
fn an_unknown_name_fails_without_asking_a_dns_server() {
    let net = two_segments();
    let client = net.host("client").expect("client");
    let failed = client
        .run(|| resolve("nosuchhost.example"))
        .expect("a thread in the host")
        .expect_err("no host of that name");
    // EAI_NONAME: no source was left to ask. A DNS server that does not
    // answer gives EAI_AGAIN, after its timeout.
    assert!(
        failed.to_string().contains("Name or service not known"),
        "{failed}"
    );
    // The names are the network's, not the host machine's.
    let host_name =
        std::fs::read_to_string("/proc/sys/kernel/hostname").expect("the machine's name");
    let host_name = host_name.trim();
    if resolve(host_name).is_ok() {
        let seen = client
            .run(|| resolve(host_name))
            .expect("a thread in the host");
        assert!(
            seen.is_err(),
            "{host_name} resolves in the network: {seen:?}"
        );
    }
}

#[netns_test]
fn names_leave_the_test_thread_and_the_host_machine_alone() {
    let before = std::fs::read("/etc/hosts").expect("the host's /etc/hosts");
    let net = two_segments();
    let server = net.host("server").expect("server");
    let seen = server
        .run(|| std::fs::read_to_string("/etc/hosts"))
        .expect("a thread in the host")
        .expect("the network's /etc/hosts");
    assert!(seen.contains("\tserver\n"), "{seen}");
    // The thread that built the network, and the host machine, see
    // their own.
    assert_eq!(std::fs::read("/etc/hosts").expect("/etc/hosts"), before);
    assert!(resolve("server").is_err());
    // A thread that enters a host and leaves finds its own again, in the
    // same working directory.
    let cwd = std::env::current_dir().expect("the working directory");
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let entered = server.enter().expect("enter the server");
            assert!(resolve("server").is_ok());
            assert_eq!(std::env::current_dir().expect("cwd"), cwd);
            drop(entered);
            assert!(resolve("server").is_err());
            assert_eq!(std::env::current_dir().expect("cwd"), cwd);
        });
    });
}

#[netns_test]
fn a_thread_spawned_in_a_host_resolves_and_connects_by_name() {
    let net = two_segments();
    let (server, client) = (
        net.host("server").expect("server"),
        net.host("client").expect("client"),
    );
    let listener = server
        .run(|| std::net::TcpListener::bind("[::]:7000"))
        .expect("a thread in the server")
        .expect("bind");
    let connected = client
        .spawn(|| std::net::TcpStream::connect("server:7000").map(|stream| stream.peer_addr()))
        .expect("a thread in the client");
    let (_, from) = listener.accept().expect("the client connects");
    let peer = connected
        .join()
        .expect("no panic")
        .expect("connect")
        .expect("peer");
    assert_eq!(peer.port(), 7000);
    let from = match from.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        ip => ip,
    };
    let client_ips: [IpAddr; 2] = [
        client.ipv4().expect("IPv4").into(),
        client.ipv6().expect("IPv6").into(),
    ];
    assert!(client_ips.contains(&from), "{from} is not the client's");
}

#[netns_test]
fn a_command_runs_inside_its_host_and_resolves_the_networks_names() {
    let net = two_segments();
    let (client, gw) = (
        net.host("client").expect("client"),
        net.host("gw").expect("gw"),
    );
    let output = client
        .command("sh")
        .expect("a command on the client")
        .args(["-c", "readlink /proc/self/ns/net; getent hosts gw; pwd"])
        .output()
        .expect("run sh on the client");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(format!("net:[{}]", client.inode()).as_str()),
        "{text}"
    );
    let gw_ipv6 = gw.ipv6().expect("IPv6").to_string();
    assert!(
        text.contains(&format!("{gw_ipv6} "))
            || text.contains(&gw.ipv4().expect("IPv4").to_string()),
        "{text}"
    );
    let cwd = std::env::current_dir().expect("cwd");
    assert_eq!(lines.last(), cwd.to_str(), "{text}");
}

/// A command started on a host ends with its test, passed or failed, in
/// every mode, and a failure's report shows the last lines it printed,
/// under its host's name.
#[test]
fn a_command_ends_with_its_test_and_its_last_lines_are_reported() {
    for mode in MODES {
        for (fixture, expected) in [
            ("leaves_a_command_and_passes", "ok"),
            ("leaves_a_command_and_fails", "FAILED"),
        ] {
            let pids = pid_file(fixture);
            let name = format!("fixture::{fixture}");
            let report = run_then(&name, "fixture::then_the_command_has_ended", mode, &pids);
            assert_eq!(report.status(&name), expected, "{mode}:\n{}", report.output);
            let checked = report.status("fixture::then_the_command_has_ended");
            assert_eq!(checked, "ok", "{mode} {fixture}:\n{}", report.output);
            if expected == "FAILED" {
                let failure = report.failure_output(&name);
                for line in [
                    "  alice: made by NetNs::named\n",
                    "  gw: made by NetNs::named\n",
                    "command sh on alice\n",
                    "    stdout | hello from alice\n",
                    "    stderr | trouble on alice\n",
                ] {
                    assert!(failure.contains(line), "{mode}: no {line:?} in\n{failure}");
                }
            }
            let started = pids_in(&pids);
            assert_eq!(started.len(), 1, "{mode} {fixture}: {started:?}");
            assert!(
                ends(started[0]),
                "{mode} {fixture}: the command outlived its test"
            );
            let _ = std::fs::remove_file(pids);
        }
    }
}

#[netns_test]
async fn async_code_runs_on_a_second_host_with_its_names_and_sockets() -> std::io::Result<()> {
    let net = two_segments();
    let (server, client) = (net.host("server")?, net.host("client")?);
    let listener = server.bind_tcp("[::]:7001").await?;
    let client_inode = client.inode();
    let task = client.spawn_async(async move {
        // On the client's own runtime: a worker, and the blocking thread
        // that `lookup_host` resolves on, are in the client.
        let here = netns_test_runtime::NetNs::current()?.inode();
        let found: Vec<_> = tokio::net::lookup_host("server:7001").await?.collect();
        let stream = tokio::net::TcpStream::connect(found[0]).await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((here, stream.local_addr()?))
    })?;
    let (accepted, from) = listener.accept().await?;
    let (here, local) = task.await?.map_err(std::io::Error::other)?;
    assert_eq!(here, client_inode);
    assert_eq!(from, local);
    drop(accepted);
    // Ready-made sockets of the client's, by name, from the test's own
    // runtime.
    let stream = client.connect_tcp("server:7001").await?;
    assert_eq!(listener.accept().await?.1, stream.local_addr()?);
    let udp = client.bind_udp("0.0.0.0:0").await?;
    let server_udp = server.bind_udp("0.0.0.0:7002").await?;
    // The test's own thread resolves as the machine does: the names are
    // the hosts'.
    let server_at = SocketAddr::new(
        server.ipv4().ok_or(std::io::ErrorKind::NotFound)?.into(),
        7002,
    );
    udp.send_to(b"ping", server_at).await?;
    let mut buffer = [0; 8];
    let (length, _) = server_udp.recv_from(&mut buffer).await?;
    assert_eq!(&buffer[..length], b"ping");
    // Dropped here, inside an async body: the hosts' runtimes stop
    // without waiting, which tokio's own drop would refuse to do.
    drop(net);
    Ok(())
}

#[netns_test]
fn a_panic_in_a_hosts_future_reaches_its_awaiter_and_a_dropped_host_cancels() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let ns = netns_test_runtime::NetNs::new().expect("a namespace");
    let task = ns
        .spawn_async(async { panic!("boom on the host") })
        .expect("spawn");
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(task)))
        .expect_err("the panic reaches the awaiter");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom on the host"));
    let pending = ns.spawn_async(std::future::pending::<()>()).expect("spawn");
    drop(ns);
    let ended = runtime.block_on(pending).expect_err("its runtime ended");
    assert!(
        matches!(ended, netns_test_runtime::Error::TaskCancelled),
        "{ended}"
    );
}

#[netns_test]
async fn a_tokio_command_starts_inside_its_host() -> std::io::Result<()> {
    let net = two_segments();
    let printer = net.host("printer")?;
    let output = printer
        .tokio_command("sh")?
        .args(["-c", "readlink /proc/self/ns/net; getent hosts gw"])
        .output()
        .await?;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.starts_with(&format!("net:[{}]\n", printer.inode())),
        "{text}"
    );
    assert!(text.contains(" gw"), "{text}");
    Ok(())
}

/// The network of the tests below, declared once.
fn two_homes() -> netns_test_runtime::NetworkBuilder {
    Network::builder()
        .router("isp")
        .router("home1")
        .nat(netns_test_runtime::Nat::port_restricted())
        .uplink("isp")
        .host("alice")
        .link("home1")
        .host("server")
        .link("isp")
}

#[netns_test(network = two_homes)]
fn a_test_takes_its_network_from_the_attribute(net: &Network) {
    let (alice, server) = (
        net.host("alice").expect("alice"),
        net.host("server").expect("server"),
    );
    let listener = server
        .run(|| std::net::TcpListener::bind("0.0.0.0:7003"))
        .expect("a thread in the server")
        .expect("bind");
    let connected = alice
        .run(|| std::net::TcpStream::connect("server:7003").map(|stream| stream.local_addr()))
        .expect("a thread in alice")
        .expect("connect")
        .expect("an address");
    let (_, from) = listener.accept().expect("alice connects");
    // Behind home1's NAT: the server sees home1's address, not alice's.
    assert_ne!(from.ip(), connected.ip());
    assert_eq!(
        from.ip(),
        IpAddr::from(
            net.host("home1")
                .expect("home1")
                .interface_to("isp")
                .expect("an uplink")
                .ipv4
        )
    );
}

#[netns_test(network = two_homes, threads = 2)]
async fn an_async_test_takes_its_network_too(net: &Network) -> std::io::Result<()> {
    let server = net.host("server")?;
    let listener = server.bind_tcp("[::]:7004").await?;
    let stream = net.host("alice")?.connect_tcp("server:7004").await?;
    assert_eq!(listener.accept().await?.1, stream.local_addr()?);
    Ok(())
}

#[test]
fn a_network_that_cannot_be_built_fails_its_test_in_every_mode() {
    let name = "fixture::a_network_that_cannot_be_built_should_panic";
    for mode in MODES {
        let report = run_fixtures(
            name,
            &["--ignored", "--exact"],
            &[("NETNS_TEST_MODE", mode)],
        );
        assert_eq!(report.status(name), "FAILED", "{mode}:\n{}", report.output);
        let failure = report.failure_output(name);
        assert!(
            failure.contains("link alice to nowhere"),
            "{mode}:\n{failure}"
        );
        assert!(
            !failure.contains("the body must not run"),
            "{mode}:\n{failure}"
        );
    }
}
