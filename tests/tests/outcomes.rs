//! `#[netns_test]` reports every outcome exactly as a plain `#[test]` does.
//!
//! Each fixture comes twice, as a plain `#[test]` in `fixture::plain` and as a
//! `#[netns_test]` in `fixture::netns`; the tests below run this binary on
//! them and compare what libtest reports. Run under each mode (see
//! `docs/modes.md`), this proves the outcomes in thread mode and in process
//! mode alike.

use netns_test_tests::run_fixtures;

macro_rules! twins {
    ($($(#[$attr:meta])* fn $name:ident() $(-> $ret:ty)? $body:block)*) => {
        mod plain {
            $(
                #[test]
                #[ignore = "fixture"]
                $(#[$attr])*
                fn $name() $(-> $ret)? $body
            )*
        }
        mod netns {
            use netns_test_runtime::netns_test;
            $(
                #[netns_test]
                #[ignore = "fixture"]
                $(#[$attr])*
                fn $name() $(-> $ret)? $body
            )*
        }
    };
}

mod fixture {
    twins! {
        fn passes() {}

        fn panics() {
            panic!("boom {}", 42);
        }

        fn failing_assert() {
            assert_eq!(1 + 1, 3, "arithmetic is broken");
        }

        #[should_panic]
        fn should_panic_panics() {
            panic!("any message");
        }

        #[should_panic]
        fn should_panic_returns() {}

        #[should_panic(expected = "right words")]
        fn should_panic_expected_matches() {
            panic!("these are the right words, indeed");
        }

        #[should_panic(expected = "right words")]
        fn should_panic_expected_differs() {
            panic!("wrong ones");
        }

        #[should_panic = "short form"]
        fn should_panic_short_form() {
            panic!("the short form works");
        }

        #[should_panic(expected = "right words")]
        fn should_panic_non_string_payload() {
            std::panic::panic_any(42_u32);
        }

        fn result_ok() -> Result<(), String> {
            Ok(())
        }

        fn result_err() -> Result<(), String> {
            Err("the reason".to_owned())
        }

        fn io_result_err() -> std::io::Result<()> {
            Err(std::io::Error::other("disk on fire"))
        }

        #[cfg_attr(all(), should_panic(expected = "via cfg_attr"))]
        fn should_panic_via_cfg_attr() {
            panic!("raised via cfg_attr");
        }

        fn prints_then_fails() {
            println!("to stdout: üñí");
            eprintln!("to stderr");
            panic!("after printing");
        }
    }

    /// Async bodies report the same outcomes as their sync twins.
    mod netns_async {
        use netns_test_runtime::netns_test;

        #[netns_test]
        #[ignore = "fixture"]
        async fn passes() {}

        #[netns_test(threads = 2)]
        #[ignore = "fixture"]
        async fn panics() {
            panic!("boom {}", 42);
        }

        #[netns_test]
        #[ignore = "fixture"]
        async fn result_err() -> Result<(), String> {
            Err("the reason".to_owned())
        }

        #[netns_test]
        #[ignore = "fixture"]
        #[should_panic(expected = "right words")]
        async fn should_panic_expected_matches() {
            tokio::task::yield_now().await;
            panic!("these are the right words, indeed");
        }

        #[netns_test(threads = 2)]
        #[ignore = "fixture"]
        #[should_panic]
        async fn should_panic_returns() {}
    }
}

const ASYNC_CASES: [&str; 5] = [
    "passes",
    "panics",
    "result_err",
    "should_panic_expected_matches",
    "should_panic_returns",
];

const CASES: [(&str, &str); 14] = [
    ("passes", "ok"),
    ("panics", "FAILED"),
    ("failing_assert", "FAILED"),
    ("should_panic_panics", "ok"),
    ("should_panic_returns", "FAILED"),
    ("should_panic_expected_matches", "ok"),
    ("should_panic_expected_differs", "FAILED"),
    ("should_panic_short_form", "ok"),
    ("should_panic_non_string_payload", "FAILED"),
    ("result_ok", "ok"),
    ("result_err", "FAILED"),
    ("io_result_err", "FAILED"),
    ("should_panic_via_cfg_attr", "ok"),
    ("prints_then_fails", "FAILED"),
];

#[test]
fn outcomes_match_plain_tests() {
    let report = run_fixtures("fixture::", &["--ignored"], &[]);
    for (case, expected) in CASES {
        let plain = report.status(&format!("fixture::plain::{case}"));
        let netns = report.status(&format!("fixture::netns::{case}"));
        assert_eq!(plain, expected, "plain {case}: {}", report.output);
        assert_eq!(netns, expected, "netns {case}: {}", report.output);
    }
    for case in ASYNC_CASES {
        let plain = report.status(&format!("fixture::plain::{case}"));
        let async_netns = report.status(&format!("fixture::netns_async::{case}"));
        assert_eq!(async_netns, plain, "async {case}: {}", report.output);
    }
    assert_eq!(
        report.status.len(),
        2 * CASES.len() + ASYNC_CASES.len(),
        "{}",
        report.output
    );
    assert!(!report.success, "a run with failures must exit non-zero");
}

/// The panic message, the `Err`'s Debug form and the test's output are what
/// libtest shows for a plain test.
#[test]
fn failure_messages_match_plain_tests() {
    let report = run_fixtures("fixture::", &["--ignored"], &[]);
    let netns = |case: &str| report.failure_output(&format!("fixture::netns::{case}"));
    let plain = |case: &str| report.failure_output(&format!("fixture::plain::{case}"));

    assert!(
        netns("panics").contains("panicked at"),
        "{}",
        netns("panics")
    );
    assert!(netns("panics").contains("boom 42"), "{}", netns("panics"));
    assert!(netns("failing_assert").contains("arithmetic is broken"));
    assert!(netns("failing_assert").contains("left: 2"));
    for case in ["result_err", "io_result_err"] {
        let error_line = |text: &str| {
            text.lines()
                .find(|line| line.starts_with("Error: "))
                .map(str::to_owned)
        };
        assert_eq!(error_line(netns(case)), error_line(plain(case)), "{case}");
        assert!(error_line(netns(case)).is_some(), "{}", netns(case));
    }
    assert!(netns("result_err").contains("Error: \"the reason\""));
    let async_output = |case: &str| report.failure_output(&format!("fixture::netns_async::{case}"));
    assert!(async_output("result_err").contains("Error: \"the reason\""));
    assert!(async_output("panics").contains("boom 42"));
    let printed = netns("prints_then_fails");
    assert!(printed.contains("to stdout: üñí"), "{printed}");
    assert!(printed.contains("to stderr"), "{printed}");
    assert!(printed.contains("after printing"), "{printed}");
    for output in [plain("should_panic_returns"), netns("should_panic_returns")] {
        assert!(
            output.contains("note: test did not panic as expected"),
            "{output}"
        );
    }
    for output in [
        plain("should_panic_expected_differs"),
        netns("should_panic_expected_differs"),
    ] {
        assert!(output.contains("panic message: \"wrong ones\""), "{output}");
        assert!(
            output.contains("expected substring: \"right words\""),
            "{output}"
        );
    }
}

/// `#[ignore]` stays: the runs above pass `--ignored`; without it, every
/// fixture is reported as ignored, with its reason, the netns ones included.
#[test]
fn ignore_is_kept() {
    let report = run_fixtures("fixture::", &[], &[]);
    for (case, _) in CASES {
        for kind in ["plain", "netns"] {
            let name = format!("fixture::{kind}::{case}");
            assert_eq!(
                report.status(&name),
                "ignored, fixture",
                "{}",
                report.output
            );
        }
    }
    assert!(report.success);
}
