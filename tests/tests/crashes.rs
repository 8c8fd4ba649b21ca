//! Where the body runs in a child process (process mode, or a helper in
//! helper mode), a crash, an exit or a hang fails
//! that test alone, with a message that names what happened, and the other
//! tests keep running and report their own results.

use std::time::Duration;

use netns_test_tests::run_fixtures;

mod fixture {
    use netns_test_runtime::netns_test;

    #[netns_test]
    #[ignore = "fixture"]
    fn exits_zero() {
        std::process::exit(0);
    }

    #[netns_test]
    #[ignore = "fixture"]
    fn exits_three() {
        std::process::exit(3);
    }

    #[netns_test]
    #[ignore = "fixture"]
    #[should_panic]
    fn exits_in_a_should_panic_test() {
        std::process::exit(0);
    }

    #[netns_test]
    #[ignore = "fixture"]
    fn aborts() {
        std::process::abort();
    }

    #[netns_test]
    #[ignore = "fixture"]
    fn segfaults() {
        let unmapped = std::ptr::without_provenance_mut::<u8>(8);
        // SAFETY: none; this fixture faults on purpose. Page zero is never
        // mapped, and a volatile write cannot be optimized away.
        unsafe { unmapped.write_volatile(1) };
    }

    #[netns_test]
    #[ignore = "fixture"]
    fn overflows_its_stack() {
        #[allow(unconditional_recursion)]
        fn recurse(depth: u64) -> u64 {
            let frame = std::hint::black_box([depth; 64]);
            recurse(depth + 1) + frame[0]
        }
        recurse(0);
    }

    #[netns_test(timeout = "300ms")]
    #[ignore = "fixture"]
    fn hangs() {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }

    #[netns_test]
    #[ignore = "fixture"]
    fn hangs_without_a_timeout_of_its_own() {
        // Says which process runs the body, for the killed-binary test.
        if let Some(file) = std::env::var_os("NETNS_TEST_BODY_PID") {
            std::fs::write(file, std::process::id().to_string()).expect("write the pid");
        }
        std::thread::sleep(std::time::Duration::from_secs(60));
    }

    #[netns_test]
    #[ignore = "fixture"]
    fn survives() {
        std::thread::sleep(std::time::Duration::from_millis(200));
        std::net::TcpListener::bind("127.0.0.1:80").expect("bind in the survivor");
    }
}

/// (name, what its failure says)
const CRASHES: [(&str, &str); 7] = [
    (
        "exits_zero",
        "exited with status 0 before the body finished",
    ),
    (
        "exits_three",
        "exited with status 3 before the body finished",
    ),
    (
        "exits_in_a_should_panic_test",
        "exited with status 0 before the body finished",
    ),
    ("aborts", "killed by signal 6, SIGABRT"),
    ("segfaults", "killed by signal 11, SIGSEGV"),
    ("overflows_its_stack", "has overflowed its stack"),
    (
        "hangs",
        "timed out after 300ms; the test's process was killed",
    ),
];

#[test]
fn crashes_fail_only_their_own_test_in_process_mode() {
    crashes_fail_only_their_own_test("process");
}

/// A crash takes its helper down with it; the next test gets a new helper.
#[test]
fn crashes_fail_only_their_own_test_in_helper_mode() {
    crashes_fail_only_their_own_test("helper");
}

fn crashes_fail_only_their_own_test(mode: &str) {
    let report = run_fixtures(
        "fixture::",
        &[
            "--ignored",
            "--test-threads=4",
            "--skip",
            "hangs_without_a_timeout",
        ],
        &[("NETNS_TEST_MODE", mode)],
    );
    for (name, says) in CRASHES {
        // In helper mode, the helper that ran the body is what was killed.
        let says = match (mode, name) {
            ("helper", "hangs") => {
                "timed out after 300ms; the helper process that ran it was killed"
            }
            _ => says,
        };
        let name = format!("fixture::{name}");
        assert_eq!(report.status(&name), "FAILED", "{}", report.output);
        let output = report.failure_output(&name);
        assert!(
            output.contains(says),
            "{name} should say {says:?}:\n{output}"
        );
    }
    assert_eq!(
        report.status("fixture::survives"),
        "ok",
        "{}",
        report.output
    );
    assert_eq!(report.status.len(), CRASHES.len() + 1, "{}", report.output);
}

/// `NETNS_TEST_TIMEOUT` is the timeout of tests that set none, in every mode.
#[test]
fn the_default_timeout_comes_from_the_environment() {
    for mode in ["process", "helper", "auto"] {
        let report = run_fixtures(
            "fixture::hangs_without_a_timeout_of_its_own",
            &["--ignored", "--exact"],
            &[("NETNS_TEST_MODE", mode), ("NETNS_TEST_TIMEOUT", "200ms")],
        );
        let name = "fixture::hangs_without_a_timeout_of_its_own";
        assert_eq!(report.status(name), "FAILED", "{mode}: {}", report.output);
        let output = report.failure_output(name);
        assert!(output.contains("timed out after 200ms"), "{mode}: {output}");
    }
}

/// In thread mode a body cannot be killed: the test fails at its timeout and
/// says that the thread was left running.
#[test]
fn thread_mode_timeout_says_the_thread_was_left_running() {
    let started = std::time::Instant::now();
    let report = run_fixtures(
        "fixture::hangs",
        &["--ignored", "--exact"],
        &[("NETNS_TEST_MODE", "thread")],
    );
    assert_eq!(
        report.status("fixture::hangs"),
        "FAILED",
        "{}",
        report.output
    );
    let output = report.failure_output("fixture::hangs");
    if netns_test_runtime::diagnose().thread_mode() {
        assert!(
            output.contains("timed out after 300ms; the body's thread was left running"),
            "{output}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the run waited for the body"
        );
    } else {
        // Without CAP_SYS_ADMIN, forcing thread mode fails, saying why.
        assert!(
            output.contains("NETNS_TEST_MODE=thread was requested"),
            "{output}"
        );
        assert!(output.contains("lacks CAP_SYS_ADMIN"), "{output}");
    }
}

/// In helper and process modes, the message names what was killed at the
/// timeout: the helper that ran the body, or the test's own process.
#[test]
fn a_timeout_names_the_process_that_was_killed() {
    for (mode, says) in [
        (
            "helper",
            "timed out after 300ms; the helper process that ran it was killed",
        ),
        (
            "process",
            "timed out after 300ms; the test's process was killed",
        ),
    ] {
        let report = run_fixtures(
            "fixture::hangs",
            &["--ignored", "--exact"],
            &[("NETNS_TEST_MODE", mode)],
        );
        assert_eq!(
            report.status("fixture::hangs"),
            "FAILED",
            "{mode}: {}",
            report.output
        );
        let output = report.failure_output("fixture::hangs");
        assert!(output.contains(says), "{mode}: {output}");
    }
}

/// A test binary killed in the middle of a test leaves no process of
/// netns-test behind: the process that runs the body (a process-mode child
/// or a helper) dies with it.
#[test]
fn nothing_outlives_a_killed_test_binary() {
    for mode in ["process", "helper"] {
        let file =
            std::env::temp_dir().join(format!("netns-test-body-pid-{}-{mode}", std::process::id()));
        let _ = std::fs::remove_file(&file);
        let mut binary = std::process::Command::new(std::env::current_exe().expect("this binary"))
            .args([
                "fixture::hangs_without_a_timeout_of_its_own",
                "--exact",
                "--ignored",
            ])
            .env("NETNS_TEST_MODE", mode)
            .env("NETNS_TEST_BODY_PID", &file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the fixture binary");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let body = loop {
            if let Some(pid) = std::fs::read_to_string(&file)
                .ok()
                .and_then(|pid| pid.parse::<u32>().ok())
            {
                break pid;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{mode}: the body never started"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_ne!(body, binary.id(), "{mode}: the body ran in the test binary");
        assert!(netns_test_tests::alive(body), "{mode}: no body to check");
        binary.kill().expect("kill the fixture binary");
        binary.wait().expect("reap it");
        assert!(
            netns_test_tests::ends(body),
            "{mode}: the body's process {body} outlived its test binary"
        );
        let _ = std::fs::remove_file(file);
    }
}
