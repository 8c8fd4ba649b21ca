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

    /// Threads of the test process that no test's namespace holds, and
    /// that end on request: while a test runs, threads of other tests end.
    static BYSTANDERS: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>> =
        std::sync::Mutex::new(Vec::new());

    #[test]
    #[ignore = "fixture"]
    fn ending_a_start_bystanders() {
        let mut bystanders = BYSTANDERS.lock().unwrap();
        for _ in 0..4 {
            bystanders.push(std::thread::spawn(std::thread::park));
        }
    }

    /// Leaves the pool in its namespace while more threads of the process
    /// end than it starts.
    #[netns_test]
    #[ignore = "fixture"]
    fn ending_b_pool_while_others_end(ns: &NetNs) {
        pool_is_here(ns);
        for bystander in BYSTANDERS.lock().unwrap().drain(..) {
            bystander.thread().unpark();
            bystander.join().unwrap();
        }
    }

    /// Async tests whose workers are still ending when the body returns.
    macro_rules! with_workers {
        ($($name:ident)*) => {$(
            #[netns_test(threads = 4)]
            #[ignore = "fixture"]
            async fn $name() {
                let spawned: Vec<_> = (0..8).map(|_| tokio::spawn(tokio::task::yield_now())).collect();
                for task in spawned {
                    task.await.unwrap();
                }
            }
        )*};
    }
    with_workers!(
        workers_00 workers_01 workers_02 workers_03 workers_04 workers_05 workers_06 workers_07
        workers_08 workers_09 workers_10 workers_11 workers_12 workers_13 workers_14 workers_15
        workers_16 workers_17 workers_18 workers_19 workers_20 workers_21 workers_22 workers_23
        workers_24 workers_25 workers_26 workers_27 workers_28 workers_29 workers_30 workers_31
        workers_32 workers_33 workers_34 workers_35 workers_36 workers_37 workers_38 workers_39
    );

    /// Returns while a thread it started is still ending, as a runtime's
    /// workers may be when it was dropped at the body's end.
    #[netns_test]
    #[ignore = "fixture"]
    fn workers_ending_late() {
        std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(50)));
    }

    /// Times out while its runtime's workers wait in its namespace.
    #[netns_test(threads = 2, timeout = "300ms")]
    #[ignore = "fixture"]
    async fn times_out_with_workers() {
        std::thread::sleep(std::time::Duration::from_secs(600));
    }
}

/// A pool left in a test's namespace is named even while other threads of
/// the process end, so that the process has fewer threads after the test
/// than before it.
#[test]
fn a_pool_left_while_other_threads_end_is_named() {
    for mode in MODES {
        let report = run_fixtures(
            "fixture::ending_",
            &["--ignored", "--test-threads=1"],
            &[("NETNS_TEST_MODE", mode)],
        );
        let name = "fixture::ending_b_pool_while_others_end";
        assert_eq!(report.status(name), "ok", "{mode}:\n{}", report.output);
        let named = report.output.contains(&format!(
            "netns-test: after `{name}`, threads of this process are still in its network namespace: the-test-pool (tid "
        ));
        let thread_mode = mode == "auto" && netns_test_tests::thread_mode_here();
        assert_eq!(named, thread_mode, "{mode}:\n{}", report.output);
    }
}

/// The workers of a test's own runtime, still ending when its body
/// returns, are not taken for threads it left.
#[test]
fn a_tests_own_ending_workers_are_not_named() {
    for mode in MODES {
        let report = run_fixtures(
            "fixture::workers_",
            &["--ignored"],
            &[("NETNS_TEST_MODE", mode)],
        );
        assert!(report.success, "{mode}:\n{}", report.output);
        assert_eq!(report.status.len(), 41, "{mode}:\n{}", report.output);
        assert!(
            !report.output.contains("still in its network namespace"),
            "{mode}:\n{}",
            report.output
        );
    }
}

/// A test that timed out names the threads it left, and never as an
/// earlier test's.
#[test]
fn a_timed_out_test_is_not_its_own_earlier_test() {
    for mode in MODES {
        let name = "fixture::times_out_with_workers";
        let report = run_fixtures(
            name,
            &["--ignored", "--exact"],
            &[("NETNS_TEST_MODE", mode)],
        );
        assert_eq!(report.status(name), "FAILED", "{mode}:\n{}", report.output);
        assert!(
            !report.output.contains("earlier tests left threads"),
            "{mode}:\n{}",
            report.output
        );
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
