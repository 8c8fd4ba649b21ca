//! Rootless, a process that runs one netns test by `--exact` name (as
//! cargo-nextest runs every test) enters a user namespace before `main` and
//! runs its test in thread mode, in-process; any other process is left as
//! it was. Each test runs this test binary as uid 65534 (through `setpriv`
//! when run as root), and tells where a body ran by its pid: the test
//! binary's own in thread mode, another in helper and process modes.

use std::process::{Command, Output};

use netns_test_tests::REFUSING;

mod fixture {
    use std::time::Duration;

    use netns_test_runtime::{NetNs, netns_test};

    #[netns_test]
    #[ignore = "fixture"]
    fn reports_its_process(ns: &NetNs) {
        println!("body pid: {}", std::process::id());
        println!(
            "body thread: {}",
            std::thread::current().name().unwrap_or("")
        );
        assert_eq!(
            ns.links().unwrap().len(),
            1,
            "a fresh namespace has only lo"
        );
        std::net::TcpListener::bind("127.0.0.1:80").expect("bind port 80");
    }

    #[netns_test]
    #[ignore = "fixture"]
    fn panics() {
        panic!("boom {}", 42);
    }

    #[netns_test]
    #[ignore = "fixture"]
    fn returns_err() -> Result<(), String> {
        Err("the reason".to_owned())
    }

    #[netns_test]
    #[ignore = "fixture"]
    #[should_panic(expected = "right words")]
    fn should_panic() {
        panic!("the right words");
    }

    #[netns_test(timeout = "300ms")]
    #[ignore = "fixture"]
    fn times_out() {
        std::thread::sleep(Duration::from_secs(60));
    }

    #[test]
    #[ignore = "fixture"]
    fn plain() {
        let uid_map = std::fs::read_to_string("/proc/self/uid_map").expect("read uid_map");
        println!("plain uid: {}", nix::unistd::getuid());
        println!(
            "plain uid_map: {}",
            uid_map.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
}

/// Runs this test binary without privileges with `args`: through
/// `wrapper` if any (which drops them), else as uid 65534; returns its
/// output and its pid.
fn run_unprivileged(wrapper: &[&str], args: &[&str], env: &[(&str, &str)]) -> (Output, u32) {
    let exe = std::env::current_exe().expect("this binary");
    let root = nix::unistd::geteuid().is_root();
    let mut words: Vec<String> = wrapper.iter().map(|word| word.to_string()).collect();
    if root && wrapper.is_empty() {
        words.extend(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ]
            .map(str::to_owned),
        );
    }
    words.push(exe.display().to_string());
    words.extend(args.iter().map(|arg| arg.to_string()));
    words.push("--nocapture".to_owned());
    let child = Command::new(&words[0])
        .args(&words[1..])
        .env_remove("NETNS_TEST_MODE")
        .env_remove("RUST_BACKTRACE")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the fixture binary");
    let pid = child.id();
    (child.wait_with_output().expect("its output"), pid)
}

fn text(output: &Output) -> String {
    format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The pid the body printed.
fn body_pid(output: &Output) -> u32 {
    let text = text(output);
    text.lines()
        .find_map(|line| {
            line.split_once("body pid: ")
                .map(|(_, pid)| pid.trim().to_owned())
        })
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no body pid:\n{text}"))
}

/// A netns test run alone, by `--exact` name, runs in thread mode in the
/// test binary's own process, inside a namespace of its own.
#[test]
fn one_netns_test_runs_in_its_own_process() {
    let (output, pid) = run_unprivileged(
        &[],
        &["fixture::reports_its_process", "--exact", "--ignored"],
        &[],
    );
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(
        body_pid(&output),
        pid,
        "the body ran in another process:\n{}",
        text(&output)
    );
    assert!(
        text(&output).contains("body thread: fixture::reports_its_process"),
        "{}",
        text(&output)
    );
}

/// Its outcomes are reported as usual: thread mode's timeout message shows
/// that it ran in-process.
#[test]
fn its_outcomes_are_reported_as_usual() {
    for (name, status, says) in [
        ("panics", "FAILED", "boom 42"),
        ("returns_err", "FAILED", "Error: \"the reason\""),
        ("should_panic", "ok", ""),
        (
            "times_out",
            "FAILED",
            "timed out after 300ms; the body's thread was left running",
        ),
    ] {
        let name = format!("fixture::{name}");
        let (output, _) = run_unprivileged(&[], &[&name, "--exact", "--ignored"], &[]);
        let text = text(&output);
        assert!(
            text.contains(&format!("{name} ... {status}"))
                || text.contains(&format!("{name} - should panic ... {status}")),
            "{name}:\n{text}"
        );
        assert!(text.contains(says), "{name} should say {says:?}:\n{text}");
    }
}

/// A plain test run alone keeps its real uid, in the initial user namespace.
#[test]
fn a_plain_test_sees_its_real_uid() {
    let (output, _) = run_unprivileged(&[], &["fixture::plain", "--exact", "--ignored"], &[]);
    let text = text(&output);
    assert!(text.contains("plain uid: 65534"), "{text}");
    assert!(text.contains("plain uid_map: 0 0 4294967295"), "{text}");
}

/// A process that skips a netns test by `--exact` name runs every other
/// test, plain ones included: it is left alone, and they keep their real
/// uid; an option's value is no test name.
#[test]
fn a_skipped_netns_test_moves_nothing() {
    let (output, _) = run_unprivileged(
        &[],
        &[
            "--exact",
            "--skip",
            "fixture::reports_its_process",
            "--ignored",
            "--test-threads",
            "1",
        ],
        &[],
    );
    let text = text(&output);
    assert!(text.contains("plain uid: 65534"), "{text}");
    assert!(!text.contains("body pid"), "{text}");
}

/// An option that takes a value, before the name, is read as libtest reads
/// it: the process runs one netns test, in-process.
#[test]
fn an_options_value_is_no_second_name() {
    let (output, pid) = run_unprivileged(
        &[],
        &[
            "--test-threads",
            "1",
            "fixture::reports_its_process",
            "--exact",
            "--ignored",
        ],
        &[],
    );
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(body_pid(&output), pid, "{}", text(&output));
}

/// Environment variables for a run.
type Env<'a> = &'a [(&'a str, &'a str)];

/// Where any condition fails, the process is left alone, and the test runs
/// as it would have: in a helper, in another process.
#[test]
fn every_fallback_is_taken() {
    let cases: [(&str, &[&str], Env); 3] = [
        (
            "several tests",
            &[
                "fixture::reports_its_process",
                "fixture::plain",
                "--ignored",
            ],
            &[],
        ),
        (
            "a forced mode",
            &["fixture::reports_its_process", "--exact", "--ignored"],
            &[("NETNS_TEST_MODE", "helper")],
        ),
        (
            "more than one thread",
            &["fixture::reports_its_process", "--exact", "--ignored"],
            &[("__NETNS_TEST_FAULT", "early-threads")],
        ),
    ];
    for (case, args, env) in cases {
        let (output, pid) = run_unprivileged(&[], args, env);
        assert!(output.status.success(), "{case}:\n{}", text(&output));
        assert_ne!(
            body_pid(&output),
            pid,
            "{case}: the body ran in the test binary"
        );
    }
}

/// Where the user namespace is refused, the test fails with the same causes
/// and remedies as before.
#[test]
fn a_refused_user_namespace_fails_as_before() {
    let (output, _) = run_unprivileged(
        REFUSING,
        &["fixture::reports_its_process", "--exact", "--ignored"],
        &[],
    );
    let text = text(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("no mode works (thread, helper or process)"),
        "{text}"
    );
    assert!(text.contains("user.max_user_namespaces is 0"), "{text}");
}
