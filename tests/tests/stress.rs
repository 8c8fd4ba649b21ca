//! Stress: thousands of namespaces and hundreds of netns tests leave this
//! process's descriptors, threads and memory, and the host's network, as
//! they found them. `NETNS_TEST_STRESS=N` multiplies the counts.

use std::time::Duration;

use netns_test_runtime::{NetNs, netns_test};
use netns_test_tests::{links_and_addresses, run_fixtures};

/// The stress tests measure this whole process, so they must not overlap:
/// libtest runs the tests of one binary in parallel.
static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ALONE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn scale() -> usize {
    std::env::var("NETNS_TEST_STRESS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// This process's open descriptors, threads and resident memory.
#[derive(Debug, Clone, Copy)]
struct Usage {
    fds: usize,
    threads: usize,
    rss_kib: u64,
}

impl Usage {
    fn now() -> Usage {
        let count = |dir| std::fs::read_dir(dir).expect("list /proc").count();
        let statm = std::fs::read_to_string("/proc/self/statm").expect("read statm");
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect("rss");
        Usage {
            fds: count("/proc/self/fd"),
            threads: count("/proc/self/task"),
            rss_kib: pages * 4,
        }
    }

    /// Waits briefly for threads that are ending, then compares.
    fn assert_back_to(self, baseline: Usage, rss_slack_kib: u64) {
        let mut now = Usage::now();
        for _ in 0..200 {
            if now.fds <= baseline.fds && now.threads <= baseline.threads {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            now = Usage::now();
        }
        assert!(
            now.fds <= baseline.fds,
            "descriptors leaked: {baseline:?} -> {now:?}"
        );
        assert!(
            now.threads <= baseline.threads,
            "threads leaked: {baseline:?} -> {now:?}"
        );
        assert!(
            now.rss_kib <= baseline.rss_kib + rss_slack_kib,
            "memory grew by more than {rss_slack_kib} KiB: {baseline:?} -> {now:?}"
        );
    }
}

mod fixture {
    use super::*;

    /// Creates and discards 2,000 namespaces through the public API, first
    /// one after another, then from 2 threads at once. It runs as a netns
    /// test, because making namespaces needs the privilege a test's body has
    /// in either mode.
    #[netns_test]
    #[ignore = "fixture: run by namespaces_come_and_go"]
    pub(super) fn two_thousand_namespaces() {
        let count = 2_000 * scale();
        // Warm up allocator pools and the runtime's one-time state, and
        // make the 32 namespaces a test keeps open for its failure report
        // (NetNs::new says so): after them, nothing may stay.
        for _ in 0..32 {
            drop(NetNs::new().unwrap());
        }
        let baseline = Usage::now();
        let mut last = 0;
        for _ in 0..count {
            let ns = NetNs::new().expect("create a namespace");
            assert_ne!(ns.inode(), last);
            last = ns.inode();
        }
        Usage::now().assert_back_to(baseline, 4 * 1024);
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    for _ in 0..count / 2 {
                        let ns = NetNs::new().expect("create a namespace");
                        ns.run(|| ()).expect("run in it");
                    }
                });
            }
        });
        Usage::now().assert_back_to(baseline, 4 * 1024);
    }

    /// Holds 1,000 namespaces at once, each with a veth pair to the test's
    /// own, started under a soft limit of 1,024 descriptors.
    #[netns_test]
    #[ignore = "fixture: run by a_thousand_namespaces_at_once_under_1024_descriptors"]
    pub(super) fn a_thousand_namespaces_at_once(ns: &NetNs) {
        let held: Vec<NetNs> = (0..1_000)
            .map(|_| NetNs::new().expect("create a namespace"))
            .collect();
        let mut inodes: Vec<u64> = held.iter().map(NetNs::inode).collect();
        inodes.sort_unstable();
        inodes.dedup();
        assert_eq!(inodes.len(), 1_000, "1,000 namespaces, all alive");
        for (index, other) in held.iter().enumerate().step_by(100) {
            ns.add_veth(&format!("v{index}"), other, "eth0")
                .expect("a veth pair");
        }
    }

    /// Runs right after it, in the same process: no namespace is held.
    #[test]
    #[ignore = "fixture: run by a_thousand_namespaces_at_once_under_1024_descriptors"]
    pub(super) fn then_no_namespace_is_held() {
        let held = std::fs::read_dir("/proc/self/fd")
            .expect("list /proc/self/fd")
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().starts_with("net:["))
            .count();
        assert!(held < 8, "{held} namespaces are still held");
    }

    macro_rules! ten_tests {
        () => {
            ten_tests!(@ t0 t1 t2 t3 t4 t5 t6 t7 t8 t9);
        };
        (@ $($name:ident)*) => {
            $(
                #[netns_test]
                #[ignore = "fixture: run by five_hundred_tests"]
                pub(crate) fn $name() {
                    let listener = std::net::TcpListener::bind("127.0.0.1:80").expect("port 80");
                    drop(listener);
                }
            )*
            pub(crate) const ALL: [fn(); 10] = [$($name),*];
        };
    }
    macro_rules! modules {
        ($inner:ident: $($module:ident)*) => {
            $(pub(crate) mod $module {
                #[allow(unused_imports)]
                use super::*;
                $inner!();
            })*
            pub(crate) const ALL: &[&[fn()]] = &[$(&$module::ALL),*];
        };
    }
    macro_rules! hundred_tests {
        () => {
            modules!(ten_tests: a0 a1 a2 a3 a4 a5 a6 a7 a8 a9);
        };
    }

    /// 500 netns tests: 5 modules of 10 modules of 10.
    pub(crate) mod many {
        use super::*;
        macro_rules! flat {
            ($($module:ident)*) => {
                $(pub(crate) mod $module {
                    use super::*;
                    hundred_tests!();
                })*
                pub(crate) fn all() -> Vec<fn()> {
                    let mut all = Vec::new();
                    $(for ten in $module::ALL { all.extend_from_slice(ten); })*
                    all
                }
            };
        }
        flat!(h0 h1 h2 h3 h4);
    }
}

#[test]
fn namespaces_come_and_go() {
    let _alone = alone();
    let host = links_and_addresses();
    fixture::two_thousand_namespaces();
    assert_eq!(links_and_addresses(), host);
}

/// A test that holds 1,000 namespaces at once runs in a process started
/// with the common soft limit of 1,024 descriptors (the runtime raises it
/// to the hard limit), in every mode, and holds none after.
#[test]
fn a_thousand_namespaces_at_once_under_1024_descriptors() {
    let _alone = alone();
    let name = "fixture::a_thousand_namespaces_at_once";
    let after = "fixture::then_no_namespace_is_held";
    for mode in netns_test_tests::MODES {
        let report = netns_test_tests::run_fixtures_under(
            &["prlimit", "--nofile=1024:"],
            name,
            &[after, "--ignored", "--exact", "--test-threads=1"],
            &[("NETNS_TEST_MODE", mode)],
        );
        assert_eq!(report.status(name), "ok", "{mode}:\n{}", report.output);
        assert_eq!(report.status(after), "ok", "{mode}:\n{}", report.output);
    }
}

/// 500 netns tests, run by libtest in one binary, all pass.
#[test]
fn five_hundred_tests_in_one_binary() {
    let _alone = alone();
    let host = links_and_addresses();
    let report = run_fixtures("fixture::many::", &["--ignored"], &[]);
    assert_eq!(report.status.len(), 500, "{}", report.output);
    assert!(
        report.status.values().all(|status| status == "ok"),
        "{}",
        report.output
    );
    assert_eq!(links_and_addresses(), host);
}

/// The same 500 tests called from this process, in whichever mode it uses,
/// leave its descriptors, threads and memory where they were.
#[test]
fn five_hundred_tests_leave_nothing_in_the_harness() {
    let _alone = alone();
    let tests = fixture::many::all();
    assert_eq!(tests.len(), 500);
    let run_all = || {
        std::thread::scope(|scope| {
            for half in tests.chunks(250) {
                scope.spawn(move || half.iter().for_each(|test| test()));
            }
        });
    };
    // Warm up: the one-time state, and in helper mode the two helpers that
    // two threads of tests keep.
    run_all();
    let baseline = Usage::now();
    for _ in 0..scale() {
        run_all();
    }
    Usage::now().assert_back_to(baseline, 4 * 1024);
}
