//! Same test, same result: what a body sees does not depend on the mode or
//! on the host. Each test runs its fixtures under every mode.

use std::io::Write;
use std::process::{Command, Stdio};

use netns_test_tests::{MODES, run_fixtures};

mod fixture {
    use std::sync::OnceLock;
    use std::sync::mpsc::{Sender, channel};

    use netns_test_runtime::{NetNs, netns_test};

    const FORWARDING: [&str; 5] = [
        "net.ipv4.ip_forward",
        "net.ipv4.conf.all.forwarding",
        "net.ipv4.conf.default.forwarding",
        "net.ipv6.conf.all.forwarding",
        "net.ipv6.conf.default.forwarding",
    ];

    /// The test's namespace, and any the body makes, start with the
    /// kernel's defaults: no forwarding.
    #[netns_test]
    #[ignore = "fixture"]
    fn starts_without_forwarding(ns: &NetNs) {
        let other = NetNs::new().unwrap();
        for ns in [ns, &other] {
            for name in FORWARDING {
                assert_eq!(ns.sysctl(name).unwrap(), "0", "{name}");
            }
        }
    }

    #[netns_test]
    #[ignore = "fixture"]
    fn reads_its_stdin() {
        let mut stdin = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut stdin).expect("read stdin");
        assert_eq!(stdin, "from the harness\n");
    }

    /// Prints the pid of the test binary's process, for `own_process`.
    #[test]
    #[ignore = "fixture"]
    fn prints_the_harness_pid() {
        println!("harness pid: {}", std::process::id());
    }

    #[netns_test(process)]
    #[ignore = "fixture"]
    fn own_process() {
        println!("body pid: {}", std::process::id());
    }

    /// A process-wide pool, made by the first test that needs it, as
    /// async-std's executor or rayon's global pool are: its thread stays in
    /// the namespace of that test.
    fn pool() -> &'static std::sync::Mutex<Sender<Sender<u64>>> {
        static POOL: OnceLock<std::sync::Mutex<Sender<Sender<u64>>>> = OnceLock::new();
        POOL.get_or_init(|| {
            let (requests, incoming) = channel::<Sender<u64>>();
            std::thread::Builder::new()
                .name("the-test-pool".into())
                .spawn(move || {
                    for reply in incoming {
                        let here = NetNs::current().map_or(0, |ns| ns.inode());
                        let _ = reply.send(here);
                    }
                })
                .expect("start the pool");
            std::sync::Mutex::new(requests)
        })
    }

    /// Whether the pool's thread is in this test's namespace.
    fn pool_is_here(ns: &NetNs) {
        let (reply, answer) = channel();
        pool().lock().unwrap().send(reply).unwrap();
        assert_eq!(
            answer.recv().unwrap(),
            ns.inode(),
            "the pool is in another test's namespace"
        );
    }

    #[netns_test(process)]
    #[ignore = "fixture"]
    fn pool_first(ns: &NetNs) {
        pool_is_here(ns);
    }

    #[netns_test(process)]
    #[ignore = "fixture"]
    fn pool_second(ns: &NetNs) {
        pool_is_here(ns);
    }

    /// As `pool_first`, without a process of its own.
    #[netns_test]
    #[ignore = "fixture"]
    fn shared_pool_first(ns: &NetNs) {
        pool_is_here(ns);
    }

    #[netns_test]
    #[ignore = "fixture"]
    fn shared_pool_second(ns: &NetNs) {
        pool_is_here(ns);
    }
}

/// On a host that forwards (simulated by an injected fault that makes each
/// fresh namespace start forwarding, as it would copy the host's values), a
/// test's namespaces start with the kernel's defaults anyway.
#[test]
fn forwarding_starts_off_whatever_the_host() {
    for mode in MODES {
        let report = run_fixtures(
            "fixture::starts_without_forwarding",
            &["--ignored", "--exact"],
            &[
                ("NETNS_TEST_MODE", mode),
                ("__NETNS_TEST_FAULT", "forwarding-host"),
            ],
        );
        assert_eq!(
            report.status("fixture::starts_without_forwarding"),
            "ok",
            "{mode}:\n{}",
            report.output
        );
    }
}

/// The body reads the test binary's stdin, in every mode.
#[test]
fn the_body_reads_the_harness_stdin() {
    for mode in MODES {
        let mut binary = Command::new(std::env::current_exe().expect("this binary"))
            .args(["fixture::reads_its_stdin", "--exact", "--ignored"])
            .env("NETNS_TEST_MODE", mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the fixture binary");
        let mut stdin = binary.stdin.take().expect("its stdin");
        stdin.write_all(b"from the harness\n").expect("write");
        drop(stdin);
        let output = binary.wait_with_output().expect("run it");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("test fixture::reads_its_stdin ... ok"),
            "{mode}:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// `#[netns_test(process)]` runs the test in a process of its own, in every
/// mode.
#[test]
fn a_process_test_runs_in_its_own_process() {
    for mode in MODES {
        let report = run_fixtures(
            "fixture::prints_the_harness_pid",
            &[
                "fixture::own_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ],
            &[("NETNS_TEST_MODE", mode)],
        );
        assert!(report.success, "{mode}:\n{}", report.output);
        let pid = |prefix: &str| {
            report
                .output
                .lines()
                .find_map(|line| {
                    line.split_once(prefix)
                        .map(|(_, pid)| pid.trim().to_owned())
                })
                .unwrap_or_else(|| panic!("{mode}: no {prefix:?}:\n{}", report.output))
        };
        assert_ne!(pid("harness pid: "), pid("body pid: "), "{mode}");
    }
}

/// A process-wide pool that a test made stays in its namespace; tests that
/// use one run in a process of their own, where it is theirs.
#[test]
fn a_process_wide_pool_serves_its_own_test() {
    for mode in MODES {
        let report = run_fixtures(
            "fixture::pool_",
            &["--ignored", "--test-threads=1"],
            &[("NETNS_TEST_MODE", mode)],
        );
        for name in ["fixture::pool_first", "fixture::pool_second"] {
            assert_eq!(report.status(name), "ok", "{mode}:\n{}", report.output);
        }
    }
}

/// A pool a test made without a process of its own: in thread mode, the
/// test process names its thread, left in the first test's namespace, and
/// the second test's failure recalls it; a helper retires rather than serve
/// the next test with it, so there both pass; process mode shares nothing.
#[test]
fn a_pool_left_in_a_namespace_is_named_or_not_shared() {
    for mode in MODES {
        let report = run_fixtures(
            "fixture::shared_pool_",
            &["--ignored", "--test-threads=1"],
            &[("NETNS_TEST_MODE", mode)],
        );
        let (first, second) = (
            report.status("fixture::shared_pool_first"),
            report.status("fixture::shared_pool_second"),
        );
        if mode == "auto" && netns_test_tests::thread_mode_here() {
            assert_eq!((first, second), ("ok", "FAILED"), "{}", report.output);
            assert!(
                report.output.contains(
                    "netns-test: after `fixture::shared_pool_first`, threads of this process are still in its network namespace: the-test-pool (tid "
                ),
                "{}",
                report.output
            );
            let failure = report.failure_output("fixture::shared_pool_second");
            assert!(failure.contains("earlier tests left threads"), "{failure}");
            assert!(failure.contains("#[netns_test(process)]"), "{failure}");
        } else {
            assert_eq!((first, second), ("ok", "ok"), "{mode}:\n{}", report.output);
        }
    }
}
