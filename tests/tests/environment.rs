//! What a test does when the machine refuses namespaces, and how the
//! environment variables steer it.

use netns_test_runtime::{Cause, Mode, diagnose};
use netns_test_tests::{REFUSING, run_fixtures, run_fixtures_under};

mod fixture {
    use netns_test_runtime::netns_test;

    #[netns_test]
    #[ignore = "fixture"]
    fn needs_a_namespace() {
        std::net::TcpListener::bind("127.0.0.1:80").expect("bind port 80");
    }

    /// Prints what `selected_mode` says.
    #[test]
    #[ignore = "fixture"]
    fn prints_the_selected_mode() {
        match netns_test_runtime::selected_mode() {
            Ok(mode) => println!("selected: {mode}"),
            Err(error) => println!("no mode: {error}"),
        }
    }

    #[netns_test]
    #[ignore = "fixture"]
    #[should_panic(expected = "the body's own panic")]
    fn should_panic_needs_a_namespace() {
        panic!("the body's own panic");
    }

    #[netns_test(process)]
    #[ignore = "fixture"]
    fn own_process_needs_a_namespace() {
        std::net::TcpListener::bind("127.0.0.1:80").expect("bind port 80");
    }

    /// Meets the shortage that [`super::SHORT`] makes.
    #[netns_test]
    #[ignore = "fixture"]
    fn shortage_a_met() {
        std::net::TcpListener::bind("127.0.0.1:80").expect("bind port 80");
    }

    /// Ends the shortage: raises the limit (that of the user namespace
    /// [`super::SHORT`] made, not the host's), and ends the processes that
    /// held the namespaces (this process's children, started before its
    /// exec). Raising the limit ends it at once: a reaped holder's namespace
    /// is freed a moment later, by the kernel's workqueue.
    #[test]
    #[ignore = "fixture"]
    fn shortage_b_ends() {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        std::fs::write("/proc/sys/user/max_user_namespaces", "64").expect("raise the limit");
        let holders = std::env::var("NETNS_TEST_HOLDERS").expect("the holders' pids");
        let holders = std::fs::read_to_string(holders).expect("read the holders' pids");
        for pid in holders.split_whitespace() {
            let pid = Pid::from_raw(pid.parse().expect("a pid"));
            kill(pid, Signal::SIGKILL).expect("kill a holder");
            nix::sys::wait::waitpid(pid, None).expect("reap a holder");
        }
    }

    /// Runs after the shortage.
    #[netns_test]
    #[ignore = "fixture"]
    fn shortage_c_over() {
        std::net::TcpListener::bind("127.0.0.1:80").expect("bind port 80");
    }
}

/// A brief shortage of user namespaces: in a user namespace of its own (the
/// host's limits are untouched), at most 4 more may be made, and 4 processes
/// hold one each, whose pids go to `$NETNS_TEST_HOLDERS`.
const SHORT: &[&str] = &[
    "unshare",
    "--user",
    "--map-root-user",
    "sh",
    "-c",
    "echo 4 > /proc/sys/user/max_user_namespaces || exit 1
     for i in 1 2 3 4; do
       unshare --user sleep 600 & echo $! >> \"$NETNS_TEST_HOLDERS\"
       while [ \"$(cat /proc/$!/comm)\" != sleep ]; do sleep 0.01; done
     done
     exec \"$0\" \"$@\"",
];

/// A passing shortage fails the test that meets it, and says so; it decides
/// nothing for later tests, which run once it is over, and skips nothing.
/// The modes that make user namespaces: thread mode makes none, and `auto`
/// comes to them the same way, once thread mode is refused.
#[test]
fn a_passing_shortage_fails_one_test_and_decides_nothing() {
    for mode in ["helper", "process"] {
        let holders =
            std::env::temp_dir().join(format!("netns-test-holders-{}-{mode}", std::process::id()));
        let _ = std::fs::remove_file(&holders);
        let report = run_fixtures_under(
            SHORT,
            "fixture::shortage_",
            &["--ignored", "--test-threads=1"],
            &[
                ("NETNS_TEST_MODE", mode),
                ("NETNS_TEST_UNAVAILABLE", "skip"),
                (
                    "NETNS_TEST_HOLDERS",
                    holders.to_str().expect("a UTF-8 path"),
                ),
            ],
        );
        let _ = std::fs::remove_file(&holders);
        assert_eq!(
            report.status("fixture::shortage_a_met"),
            "FAILED",
            "{mode}:\n{}",
            report.output
        );
        let output = report.failure_output("fixture::shortage_a_met");
        assert!(
            output.contains(
                "entering a new user and network namespace met a passing shortage: ENOSPC"
            ),
            "{mode}:\n{output}"
        );
        assert!(
            output.contains("later tests try again"),
            "{mode}:\n{output}"
        );
        for name in ["fixture::shortage_b_ends", "fixture::shortage_c_over"] {
            assert_eq!(report.status(name), "ok", "{mode}:\n{}", report.output);
        }
        assert!(
            !report.output.contains("SKIPPED"),
            "{mode}:\n{}",
            report.output
        );
    }
}

#[test]
fn a_refusing_machine_fails_the_test_with_causes_and_remedies() {
    // `auto`, whatever mode the suite itself runs in, to see both modes refused.
    let report = run_fixtures_under(
        REFUSING,
        "fixture::",
        &["--ignored"],
        &[("NETNS_TEST_MODE", "auto")],
    );
    for name in [
        "fixture::needs_a_namespace",
        "fixture::should_panic_needs_a_namespace",
    ] {
        assert_eq!(report.status(name), "FAILED", "{}", report.output);
        let output = report.failure_output(name);
        for says in [
            "no mode works (thread, helper or process)",
            "unshare(CLONE_NEWNET) failed: EPERM",
            "lacks CAP_SYS_ADMIN",
            "user.max_user_namespaces is 0",
            "sysctl -w user.max_user_namespaces=",
            "NETNS_TEST_UNAVAILABLE=skip",
        ] {
            assert!(
                output.contains(says),
                "{name} should say {says:?}:\n{output}"
            );
        }
    }
    // A should_panic test must not pass on netns-test's failure.
    let output = report.failure_output("fixture::should_panic_needs_a_namespace");
    assert!(output.contains("did not panic as expected"), "{output}");
}

/// A test that asks for a process of its own, where none can be made, is
/// told that its attribute asked, not the variable.
#[test]
fn a_refused_process_test_names_its_attribute() {
    let name = "fixture::own_process_needs_a_namespace";
    let report = run_fixtures_under(REFUSING, name, &["--ignored", "--exact"], &[]);
    assert_eq!(report.status(name), "FAILED", "{}", report.output);
    let output = report.failure_output(name);
    assert!(
        output.contains("#[netns_test(process)] asks for a process of the test's own, but process mode does not work here"),
        "{output}"
    );
    assert!(!output.contains("NETNS_TEST_MODE"), "{output}");
}

#[test]
fn skip_passes_refused_tests_with_a_loud_line() {
    let report = run_fixtures_under(
        REFUSING,
        "fixture::",
        &["--ignored"],
        &[
            ("NETNS_TEST_MODE", "auto"),
            ("NETNS_TEST_UNAVAILABLE", "skip"),
        ],
    );
    for name in [
        "fixture::needs_a_namespace",
        "fixture::should_panic_needs_a_namespace",
    ] {
        assert_eq!(report.status(name), "ok", "{}", report.output);
        assert!(
            report.output.contains(&format!(
                "netns-test: SKIPPED {name}: cannot create a network namespace here"
            )),
            "{}",
            report.output
        );
    }
}

#[test]
fn an_unknown_mode_is_an_error() {
    let report = run_fixtures(
        "fixture::needs_a_namespace",
        &["--ignored", "--exact"],
        &[("NETNS_TEST_MODE", "threads")],
    );
    assert_eq!(report.status("fixture::needs_a_namespace"), "FAILED");
    let output = report.failure_output("fixture::needs_a_namespace");
    assert!(
        output.contains(
            "NETNS_TEST_MODE=\"threads\" is not understood; use `thread`, `helper`, `process` or `auto`"
        ),
        "{output}"
    );
}

#[test]
fn both_forced_modes_run_the_test_where_they_work() {
    let diagnosis = diagnose();
    for (mode, works) in [
        ("thread", diagnosis.thread_mode()),
        ("process", diagnosis.process_mode()),
    ] {
        let report = run_fixtures(
            "fixture::needs_a_namespace",
            &["--ignored", "--exact"],
            &[("NETNS_TEST_MODE", mode)],
        );
        let expected = if works { "ok" } else { "FAILED" };
        assert_eq!(
            report.status("fixture::needs_a_namespace"),
            expected,
            "{mode}: {}",
            report.output
        );
    }
}

/// The diagnosis agrees with this process's capabilities.
#[test]
fn diagnosis_matches_this_machine() {
    let diagnosis = diagnose();
    let status = std::fs::read_to_string("/proc/self/status").expect("read status");
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .expect("CapEff");
    let cap_sys_admin = effective & (1 << 21) != 0;
    assert_eq!(diagnosis.thread_mode(), cap_sys_admin, "{diagnosis}");
    assert_eq!(
        diagnosis.causes().contains(&Cause::NoCapSysAdmin),
        !cap_sys_admin,
        "{diagnosis}"
    );
    // This project's CI machines allow unprivileged user namespaces.
    assert!(diagnosis.process_mode(), "{diagnosis}");
}

/// Every variable takes only the values it names: anything else fails the
/// test with a message naming the variable and the values it takes.
#[test]
fn values_that_are_not_understood_are_errors() {
    for (name, value, says) in [
        ("NETNS_TEST_UNAVAILABLE", "skipp", "`skip` or `fail`"),
        ("NETNS_TEST_TIMEOUT", "0s", "a timeout longer than zero"),
        ("NETNS_TEST_TIMEOUT", "10", "followed by `ms`, `s` or `m`"),
    ] {
        let report = run_fixtures(
            "fixture::needs_a_namespace",
            &["--ignored", "--exact"],
            &[(name, value), ("NETNS_TEST_MODE", "auto")],
        );
        let output = report.failure_output("fixture::needs_a_namespace");
        let expected = format!("environment variable {name}={value:?} is not understood; use");
        assert!(output.contains(&expected), "{name}={value}:\n{output}");
        assert!(output.contains(says), "{name}={value}:\n{output}");
    }
}

/// A value that is not UTF-8 is an error too, never taken for unset.
#[test]
fn values_that_are_not_utf8_are_errors() {
    use std::os::unix::ffi::OsStrExt;
    for name in ["NETNS_TEST_MODE", "NETNS_TEST_TIMEOUT"] {
        let output = std::process::Command::new(std::env::current_exe().expect("this binary"))
            .args(["fixture::needs_a_namespace", "--exact", "--ignored"])
            .env(name, std::ffi::OsStr::from_bytes(b"\xff"))
            .output()
            .expect("run the fixture binary");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(!output.status.success(), "{name}:\n{stdout}");
        let expected = format!(
            "environment variable {name}={:?} is not understood",
            "\u{fffd}"
        );
        assert!(stdout.contains(&expected), "{name}:\n{stdout}");
    }
}

/// `selected_mode` says the mode tests will use, probing where no test ran.
#[test]
fn selected_mode_tells_the_truth() {
    let expected = match std::env::var("NETNS_TEST_MODE").as_deref() {
        Ok("process") => Mode::Process,
        Ok("helper") => Mode::Helper,
        _ if diagnose().thread_mode() => Mode::Thread,
        _ => Mode::Helper,
    };
    let selected = netns_test_runtime::selected_mode().expect("a mode");
    assert_eq!(selected, expected);
    assert_eq!(selected.to_string(), selected.as_str());
}

/// Where no mode works, `selected_mode` says so (the doctor then exits
/// non-zero), rather than naming thread mode before a test tried it.
#[test]
fn selected_mode_says_when_no_mode_works() {
    let report = run_fixtures_under(
        REFUSING,
        "fixture::prints_the_selected_mode",
        &["--ignored", "--exact", "--nocapture"],
        &[("NETNS_TEST_MODE", "auto")],
    );
    assert!(
        report
            .output
            .contains("no mode: cannot create a network namespace here"),
        "{}",
        report.output
    );
}

/// A failure of netns-test itself reads as its report, not as a crash
/// inside the library: no "panicked at" one of its files.
#[test]
fn netns_test_failures_read_as_reports() {
    let report = run_fixtures(
        "fixture::needs_a_namespace",
        &["--ignored", "--exact"],
        &[("NETNS_TEST_TIMEOUT", "0s")],
    );
    let output = report.failure_output("fixture::needs_a_namespace");
    assert!(
        output
            .trim_start()
            .starts_with("netns-test: environment variable NETNS_TEST_TIMEOUT"),
        "{output}"
    );
    assert!(!output.contains("panicked at"), "{output}");
    assert!(!output.contains("netns-test-runtime/src"), "{output}");
}
