//! `#[netns_test]` with the parametrising attributes of rstest and
//! test-case stacked above it: each case is one test, listed once, run once,
//! in a namespace of its own, in every mode.

use std::collections::BTreeMap;
use std::process::Command;

use netns_test_tests::{MODES, run_fixtures};

mod fixture {
    use netns_test_runtime::{NetNs, netns_test};
    use rstest::rstest;
    use test_case::test_case;

    /// Fails unless the calling thread's namespace is fresh, then marks it:
    /// a case that ran in a namespace another case had used would see the
    /// mark.
    fn fresh_then_mark() {
        let ttl = "/proc/sys/net/ipv4/ip_default_ttl";
        let seen = std::fs::read_to_string(ttl).expect("read ip_default_ttl");
        assert_eq!(seen.trim(), "64", "another case ran in this namespace");
        std::fs::write(ttl, "77").expect("mark the namespace");
    }

    /// Binds a port of the family on loopback; the port is free only in a
    /// namespace of the test's own.
    fn bind(family: u8) -> std::io::Result<()> {
        let address = match family {
            4 => "127.0.0.1:80",
            6 => "[::1]:80",
            other => panic!("no such family: {other}"),
        };
        std::net::TcpListener::bind(address).map(drop)
    }

    #[test_case(4 ; "v4")]
    #[test_case(6 ; "v6")]
    #[test_case(5 => panics "no such family" ; "bad family")]
    #[test_case(6 => matches Err(_) ; "fails")] // binds, so returns `Ok`
    #[netns_test]
    #[ignore]
    fn test_case_sync(family: u8) -> std::io::Result<()> {
        fresh_then_mark();
        bind(family)
    }

    async fn bind_async(family: u8) {
        let address = if family == 4 {
            "127.0.0.1:80"
        } else {
            "[::1]:80"
        };
        tokio::net::TcpListener::bind(address).await.expect("bind");
    }

    #[test_case(4 ; "v4")]
    #[test_case(6 ; "v6")]
    #[netns_test]
    #[ignore]
    async fn test_case_async(family: u8) {
        fresh_then_mark();
        bind_async(family).await;
    }

    #[rstest]
    #[case::v4(4)]
    #[case::v6(6)]
    #[should_panic(expected = "no such family")]
    #[case::bad_family(5)]
    #[case::fails(7)]
    #[netns_test]
    #[ignore]
    fn rstest_sync(#[case] family: u8) {
        fresh_then_mark();
        if family == 7 {
            panic!("this case fails");
        }
        bind(family).expect("bind");
    }

    /// rstest's async cases: rstest wants to see a test attribute, so
    /// `#[netns_test]` goes in its `test_attr`.
    #[rstest]
    #[case::v4(4)]
    #[case::v6(6)]
    #[test_attr(netns_test(threads = 2))]
    #[ignore]
    async fn rstest_async(#[case] family: u8) {
        fresh_then_mark();
        bind_async(family).await;
    }

    /// A parametrised test takes its case as its parameter, so it finds its
    /// namespace with `NetNs::current()`.
    #[test_case(1280 ; "minimum v6 mtu")]
    #[test_case(9000 ; "jumbo")]
    #[netns_test]
    #[ignore]
    fn test_case_with_its_netns(mtu: u32) -> Result<(), netns_test_runtime::Error> {
        let ns = NetNs::current()?;
        let peer = NetNs::new()?;
        ns.add_veth("v0", &peer, "v1")?;
        ns.set_mtu("v0", mtu)?;
        assert_eq!(ns.link("v0")?.mtu, mtu);
        Ok(())
    }

    /// The example of `docs/writing-tests.md`.
    #[test_case("127.0.0.1:80" ; "v4")]
    #[test_case("[::1]:80" ; "v6")]
    #[netns_test]
    #[ignore]
    fn binds(address: &str) -> Result<(), Box<dyn std::error::Error>> {
        let ns = NetNs::current()?; // this case's own namespace
        assert!(ns.link("lo")?.up);
        std::net::TcpListener::bind(address)?;
        Ok(())
    }

    /// `#[test]` above `#[netns_test]`: invisible to it, so the test is
    /// registered twice; the second start fails and says why.
    #[test]
    #[netns_test]
    #[ignore]
    fn test_above() {}
}

/// Every test of this binary, as `--list` names them, with how often.
fn listing() -> BTreeMap<String, usize> {
    let output = Command::new(std::env::current_exe().expect("this binary"))
        .args(["--list", "--format", "terse"])
        .output()
        .expect("list the tests");
    assert!(output.status.success(), "{output:?}");
    let mut names = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if let Some(name) = line.strip_suffix(": test") {
            *names.entry(name.to_owned()).or_insert(0) += 1;
        }
    }
    names
}

#[test]
fn each_case_is_listed_once() {
    let names = listing();
    let cases = [
        "fixture::test_case_sync::test_case_1_v4",
        "fixture::test_case_sync::test_case_2_v6",
        "fixture::test_case_sync::test_case_3_bad_family",
        "fixture::test_case_sync::test_case_4_fails",
        "fixture::test_case_async::test_case_1_v4",
        "fixture::test_case_async::test_case_2_v6",
        "fixture::rstest_sync::case_1_v4",
        "fixture::rstest_sync::case_2_v6",
        "fixture::rstest_sync::case_3_bad_family",
        "fixture::rstest_sync::case_4_fails",
        "fixture::rstest_async::case_1_v4",
        "fixture::rstest_async::case_2_v6",
        "fixture::test_case_with_its_netns::test_case_1_minimum_v6_mtu",
        "fixture::test_case_with_its_netns::test_case_2_jumbo",
        "fixture::binds::test_case_1_v4",
        "fixture::binds::test_case_2_v6",
    ];
    for case in cases {
        assert_eq!(names.get(case), Some(&1), "{case} in {names:#?}");
    }
    let twice: Vec<_> = names.iter().filter(|(_, count)| **count > 1).collect();
    assert_eq!(
        twice,
        [(&"fixture::test_above".to_owned(), &2)],
        "only a `#[test]` above `#[netns_test]` is listed twice"
    );
}

#[test]
fn each_case_runs_once_in_a_namespace_of_its_own_in_every_mode() {
    let expected = [
        ("fixture::test_case_sync::test_case_1_v4", "ok"),
        ("fixture::test_case_sync::test_case_2_v6", "ok"),
        ("fixture::test_case_sync::test_case_3_bad_family", "ok"),
        ("fixture::test_case_sync::test_case_4_fails", "FAILED"),
        ("fixture::test_case_async::test_case_1_v4", "ok"),
        ("fixture::test_case_async::test_case_2_v6", "ok"),
        ("fixture::rstest_sync::case_1_v4", "ok"),
        ("fixture::rstest_sync::case_2_v6", "ok"),
        ("fixture::rstest_sync::case_3_bad_family", "ok"),
        ("fixture::rstest_sync::case_4_fails", "FAILED"),
        ("fixture::rstest_async::case_1_v4", "ok"),
        ("fixture::rstest_async::case_2_v6", "ok"),
        (
            "fixture::test_case_with_its_netns::test_case_1_minimum_v6_mtu",
            "ok",
        ),
        ("fixture::test_case_with_its_netns::test_case_2_jumbo", "ok"),
        ("fixture::binds::test_case_1_v4", "ok"),
        ("fixture::binds::test_case_2_v6", "ok"),
    ];
    for mode in MODES {
        let report = run_fixtures(
            "fixture::",
            &["--ignored", "--skip", "test_above"],
            &[("NETNS_TEST_MODE", mode)],
        );
        for (name, status) in expected {
            assert_eq!(
                report.status(name),
                status,
                "{mode}: {name}\n{}",
                report.output
            );
        }
        assert_eq!(
            report.status.len(),
            expected.len(),
            "{mode}:\n{}",
            report.output
        );
        let runs = report.output.matches("\ntest fixture::").count();
        assert_eq!(
            runs,
            expected.len(),
            "{mode}: each case once\n{}",
            report.output
        );
        for (name, why) in [
            ("fixture::rstest_sync::case_4_fails", "this case fails"),
            (
                "fixture::test_case_sync::test_case_4_fails",
                "Expected `Err(_)` found Ok(())",
            ),
        ] {
            assert!(
                report.failure_output(name).contains(why),
                "{mode}: {name}\n{}",
                report.output
            );
        }
    }
}

#[test]
fn a_test_attribute_above_fails_the_second_registration_and_says_why() {
    for mode in MODES {
        let report = run_fixtures(
            "fixture::test_above",
            &["--ignored", "--exact"],
            &[("NETNS_TEST_MODE", mode)],
        );
        assert!(!report.success, "{mode}:\n{}", report.output);
        assert_eq!(
            report
                .output
                .matches("test fixture::test_above ... ok")
                .count(),
            1
        );
        assert_eq!(
            report
                .output
                .matches("test fixture::test_above ... FAILED")
                .count(),
            1
        );
        assert!(
            report.failure_output("fixture::test_above").contains(
                "is registered with libtest twice, so it is listed and run twice: a `#[test]` above `#[netns_test]`"
            ),
            "{mode}:\n{}",
            report.output
        );
    }
}
