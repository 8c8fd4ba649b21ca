//! A failure report tells the truth: when its sockets were taken, in every
//! mode; at a replaced panic hook too; every entry it could decode, with
//! what it could not named, and names escaped.

use netns_test_tests::{MODES, Report, run_fixtures};

mod fixture {
    use std::net::TcpListener;
    use std::os::unix::ffi::OsStrExt;
    use std::process::Command;

    use netns_test_runtime::{NetNs, netns_test};

    /// Catches a panic while holding one listener, then panics while
    /// holding another: the report shows the sockets of the first panic.
    #[netns_test]
    #[ignore = "fixture"]
    fn catches_a_panic_then_fails() {
        let first = TcpListener::bind("127.0.0.1:7001").expect("bind 7001");
        let caught = std::panic::catch_unwind(|| panic!("caught"));
        assert!(caught.is_err());
        drop(first);
        let _second = TcpListener::bind("127.0.0.1:7002").expect("bind 7002");
        panic!("the test fails here");
    }

    /// Replaces every panic hook, netns-test's included, with one of its
    /// own, then fails while holding a listener.
    #[netns_test]
    #[ignore = "fixture"]
    fn replaces_the_hook_and_fails() {
        std::panic::set_hook(Box::new(|info| eprintln!("the test's own hook: {info}")));
        let _listener = TcpListener::bind("127.0.0.1:7003").expect("bind 7003");
        panic!("the test fails here");
    }

    /// Runs after `replaces_the_hook_and_fails` in the same process.
    #[netns_test]
    #[ignore = "fixture"]
    fn replaces_the_hook_then_another_fails() {
        let _listener = TcpListener::bind("127.0.0.1:7004").expect("bind 7004");
        panic!("the test fails here");
    }

    /// Returns `Err` from inside a macro, where the attribute cannot see it.
    macro_rules! fail {
        () => {
            return Err("it went wrong".to_owned())
        };
    }

    /// Returns `Err` from an async body while a task holds a listener.
    #[netns_test]
    #[ignore = "fixture"]
    async fn returns_err_while_a_task_listens() -> Result<(), String> {
        listen_in_a_task(7005).await;
        Err("it went wrong".into())
    }

    /// Starts a task that holds a listener on `port`.
    async fn listen_in_a_task(port: u16) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        tokio::spawn(async move {
            let _ = listener.accept().await;
        });
        tokio::task::yield_now().await;
    }

    /// Returns `Err` from inside a macro, which the attribute cannot see,
    /// while a task holds a listener.
    #[netns_test]
    #[ignore = "fixture"]
    async fn returns_err_from_a_macro_while_a_task_listens() -> Result<(), String> {
        listen_in_a_task(7009).await;
        fail!();
    }

    /// Returns `Err` through `?` while it holds a listener.
    #[netns_test]
    #[ignore = "fixture"]
    fn returns_err() -> Result<(), String> {
        let _listener = TcpListener::bind("127.0.0.1:7006").expect("bind 7006");
        Err::<(), _>("it went wrong".to_owned())?;
        Ok(())
    }

    /// Returns `Err` from inside a macro, which the attribute cannot see:
    /// the listener it held is dropped by then.
    #[netns_test]
    #[ignore = "fixture"]
    fn returns_err_from_a_macro() -> Result<(), String> {
        let _listener = TcpListener::bind("127.0.0.1:7008").expect("bind 7008");
        fail!();
    }

    /// Makes a link whose name is not UTF-8 and holds an escape sequence,
    /// and a route this netlink client cannot decode (`congctl`), and
    /// fails.
    #[netns_test]
    #[ignore = "fixture"]
    fn has_odd_links_and_routes(ns: &NetNs) {
        let name = std::ffi::OsStr::from_bytes(b"br\xff\x1b[31m");
        let ip = |args: &[&std::ffi::OsStr]| {
            let status = Command::new("ip").args(args).status().expect("run ip");
            assert!(status.success(), "ip {args:?}: {status}");
        };
        ip(&[
            "link".as_ref(),
            "add".as_ref(),
            name,
            "type".as_ref(),
            "bridge".as_ref(),
        ]);
        let route = [
            "route",
            "add",
            "10.0.0.0/8",
            "dev",
            "lo",
            "congctl",
            "cubic",
        ];
        ip(&route.map(AsRef::as_ref));
        let links = ns.links().expect("list the links");
        assert!(
            links.iter().any(|link| link.name == "br\u{fffd}\u{1b}[31m"),
            "{links:?}"
        );
        let _listener = TcpListener::bind("127.0.0.1:7007").expect("bind 7007");
        panic!("the test fails here");
    }
}

fn run(filter: &str, mode: &str) -> Report {
    run_fixtures(
        filter,
        &["--ignored", "--exact", "--test-threads=1"],
        &[("NETNS_TEST_MODE", mode)],
    )
}

/// Asserts that a failure's `output`, under `mode`, has each of `lines`.
fn assert_shows(mode: &str, output: &str, lines: &[&str]) {
    for line in lines {
        assert!(output.contains(line), "{mode}: no {line:?} in:\n{output}");
    }
}

/// A test that caught a panic before the one that failed it shows the
/// sockets of its first panic, and says so: a caught panic takes them once,
/// not again at each panic.
#[test]
fn caught_panics_take_the_sockets_once() {
    for mode in MODES {
        let name = "fixture::catches_a_panic_then_fails";
        let report = run(name, mode);
        let output = report.failure_output(name);
        assert_shows(
            mode,
            output,
            &[
                "the network of `fixture::catches_a_panic_then_fails` at its panic (its sockets before unwinding of the first of its 2 panics, the rest after):",
                "tcp LISTEN     127.0.0.1:7001",
            ],
        );
        assert!(!output.contains("127.0.0.1:7002"), "{mode}:\n{output}");
    }
}

/// A hook set with `panic::set_hook` during a test replaces the one that
/// takes the sockets at the panic: that test's report says its sockets were
/// taken after unwinding; the next test has the hook again.
#[test]
fn a_replaced_panic_hook_is_said_and_mended() {
    for mode in MODES {
        let report = run_fixtures(
            "fixture::replaces_the_hook_",
            &["--ignored", "--test-threads=1"],
            &[("NETNS_TEST_MODE", mode)],
        );
        let output = report.failure_output("fixture::replaces_the_hook_and_fails");
        assert_shows(
            mode,
            output,
            &[
                "at its panic (its sockets after unwinding closed the body's: the panic hook that takes them at the panic did not run):",
            ],
        );
        let output = report.failure_output("fixture::replaces_the_hook_then_another_fails");
        assert_shows(
            mode,
            output,
            &[
                "at its panic (its sockets before unwinding, the rest after):",
                "tcp LISTEN     127.0.0.1:7004",
            ],
        );
    }
}

/// A body's `Err`, through `?`, `return` or its value, shows the sockets
/// its locals and its tasks held; one returned from inside a macro (which
/// the attribute cannot see) shows, in an async body, those its tasks held,
/// taken before its runtime was dropped, and in a sync body says that its
/// locals were dropped by then.
#[test]
fn an_err_says_when_its_sockets_were_taken() {
    let shown: [(&str, &[&str]); 3] = [
        (
            "fixture::returns_err_while_a_task_listens",
            &[
                "when it returned Err (its sockets before the body's locals were dropped):",
                "tcp LISTEN     127.0.0.1:7005",
            ],
        ),
        (
            "fixture::returns_err_from_a_macro_while_a_task_listens",
            &[
                "when it returned Err (its sockets before its runtime and tasks were dropped):",
                "tcp LISTEN     127.0.0.1:7009",
            ],
        ),
        (
            "fixture::returns_err",
            &[
                "when it returned Err (its sockets before the body's locals were dropped):",
                "tcp LISTEN     127.0.0.1:7006",
            ],
        ),
    ];
    for mode in MODES {
        for (name, lines) in shown {
            let report = run(name, mode);
            assert_shows(mode, report.failure_output(name), lines);
        }
        let name = "fixture::returns_err_from_a_macro";
        let report = run(name, mode);
        let output = report.failure_output(name);
        assert_shows(
            mode,
            output,
            &["when it returned Err (its sockets after the body's locals were dropped):"],
        );
        assert!(!output.contains("127.0.0.1:7008"), "{mode}:\n{output}");
    }
}

/// A link whose name is not UTF-8 is listed, its escape sequence escaped; a
/// route that cannot be decoded is counted, and hides no other section.
#[test]
fn every_entry_that_decodes_is_shown_and_names_are_escaped() {
    for mode in MODES {
        let name = "fixture::has_odd_links_and_routes";
        let report = run(name, mode);
        let output = report.failure_output(name);
        assert_shows(
            mode,
            output,
            &[
                "lo         UNKNOWN    mtu 65536 127.0.0.1/8 ::1/128",
                "br\u{fffd}\\u{1b}[31m DOWN",
                "routes     (1 could not be decoded: ",
                "tcp LISTEN     127.0.0.1:7007",
            ],
        );
        assert!(
            !output.contains('\u{1b}'),
            "{mode}: a raw escape:\n{output}"
        );
    }
}
