//! No false pass, no hang, nothing left running, in every mode: each test
//! here runs fixtures under every value of `NETNS_TEST_MODE` and checks what
//! libtest reported, and what is left on the machine.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netns_test_tests::{
    MODES, alone_in_thread_mode, ends, pid_file, pids_in, run_fixtures, run_then, thread_mode_here,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

mod fixture {
    use std::time::Duration;

    use netns_test_runtime::{NetNs, netns_test};

    #[netns_test]
    #[ignore = "fixture"]
    fn exits_zero() {
        std::process::exit(0);
    }

    #[netns_test(timeout = "200ms")]
    #[ignore = "fixture"]
    fn exits_zero_after_its_timeout() {
        std::thread::sleep(Duration::from_millis(700));
        std::process::exit(0);
    }

    /// Runs while `exits_zero_after_its_timeout`'s body exits.
    #[netns_test]
    #[ignore = "fixture"]
    fn outlasts_the_exit() {
        std::thread::sleep(Duration::from_millis(2_500));
    }

    /// A copy of the process returns from the body, as if it passed; then
    /// the original crashes.
    #[netns_test]
    #[ignore = "fixture"]
    fn forks_a_copy_that_returns() {
        // SAFETY: the copy runs no code that another thread's state could
        // break: it returns from the body at once.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {}
            nix::unistd::ForkResult::Parent { child } => {
                nix::sys::wait::waitpid(child, None).expect("wait for the copy");
                std::process::abort();
            }
        }
    }

    /// Forks children that exit, with 0 and with 3, as rtnetlink's
    /// `NetworkNamespace::add` does: their exits are their own.
    #[netns_test]
    #[ignore = "fixture"]
    fn forks_children_that_exit() {
        for code in [0, 3] {
            // SAFETY: the child only exits, as a forked child of a threaded
            // process that calls exit(3) does; that is what is tested.
            match unsafe { nix::unistd::fork() }.expect("fork") {
                nix::unistd::ForkResult::Child => std::process::exit(code),
                nix::unistd::ForkResult::Parent { child } => {
                    let status = nix::sys::wait::waitpid(child, None).expect("wait for it");
                    assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, code));
                }
            }
        }
    }

    #[netns_test]
    #[ignore = "fixture"]
    fn shadowed() {}

    // A test with the same path as the one above, which libtest does not
    // collect: it must never run in its place.
    #[allow(unnameable_test_items)]
    const _: () = {
        #[netns_test]
        #[ignore = "fixture"]
        fn shadowed() {
            panic!("the shadow ran instead of the test");
        }
    };

    #[netns_test]
    #[ignore = "fixture"]
    #[should_panic]
    async fn async_should_panic() {
        panic!("the body's own panic");
    }

    /// Expects a panic about spawning: tokio's, if it cannot start its
    /// workers, must not count.
    #[netns_test(threads = 2)]
    #[ignore = "fixture"]
    #[should_panic(expected = "spawn")]
    async fn should_panic_about_spawning() {
        panic!("the body's own panic, which never comes: cannot spawn");
    }

    #[netns_test]
    #[ignore = "fixture"]
    fn binds_port_80() {
        std::net::TcpListener::bind("127.0.0.1:80").expect("bind port 80");
    }

    /// Moves its thread to what `/proc/self/ns/net` names: in a threaded
    /// process, the main thread's namespace.
    #[netns_test]
    #[ignore = "fixture"]
    fn moves_to_the_main_threads_namespace() {
        let main = std::fs::File::open("/proc/self/ns/net").expect("open /proc/self/ns/net");
        nix::sched::setns(main, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
    }

    /// Starts processes in every way that leaves one behind, each of which
    /// writes its pid to `$NETNS_TEST_PIDS`, and waits for all five: a
    /// process that starts another in the background; a shell's background
    /// job, whose shell has ended; a daemon that left its parent (`setsid
    /// -f`); and a server in a second namespace of the test.
    fn start_processes() {
        let file = std::env::var("NETNS_TEST_PIDS").expect("run by a test that reads the pids");
        let sh = |script: &str| {
            let mut command = std::process::Command::new("sh");
            command.args(["-c", script, &file]);
            command
        };
        let mut started = Vec::new();
        started.push(
            sh("sleep 120 & echo $! >> \"$0\"; echo $$ >> \"$0\"; exec sleep 120")
                .spawn()
                .expect("start sh"),
        );
        let status = sh("sleep 120 </dev/null >/dev/null 2>&1 & echo $! >> \"$0\"")
            .status()
            .expect("run sh");
        assert!(status.success(), "the background job: {status}");
        let mut daemon = std::process::Command::new("setsid");
        daemon.args(["-f", "sh", "-c", "echo $$ >> \"$0\"; exec sleep 120", &file]);
        let status = daemon.status().expect("run setsid");
        assert!(status.success(), "the daemon: {status}");
        let server = NetNs::new().expect("a second namespace");
        let spawned = server.run(|| sh("echo $$ >> \"$0\"; exec sleep 120").spawn());
        started.push(spawned.expect("enter it").expect("start sh in it"));
        while std::fs::read_to_string(&file).map_or(0, |pids| pids.lines().count()) < 5 {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Left running on purpose: netns-test must end them.
        std::mem::forget(started);
    }

    /// Runs right after a test that left processes, in the same test binary
    /// (helpers still live): checks that they have ended.
    #[test]
    #[ignore = "fixture"]
    fn then_nothing_is_left() {
        netns_test_tests::assert_the_started_processes_ended();
    }

    #[netns_test]
    #[ignore = "fixture"]
    fn leaves_processes_and_passes() {
        start_processes();
    }

    #[netns_test]
    #[ignore = "fixture"]
    fn leaves_processes_and_fails() {
        start_processes();
        panic!("the body fails");
    }

    #[netns_test(timeout = "300ms")]
    #[ignore = "fixture"]
    fn leaves_processes_and_times_out() {
        start_processes();
        std::thread::sleep(Duration::from_secs(600));
    }

    #[netns_test]
    #[ignore = "fixture"]
    fn leaves_processes_and_waits() {
        start_processes();
        std::thread::sleep(Duration::from_secs(600));
    }

    /// Starts a process that moves itself into a network namespace of its
    /// own, and whose parent then exits: no namespace of the test's names it.
    #[netns_test]
    #[ignore = "fixture"]
    fn leaves_a_process_in_a_namespace_of_its_own() {
        let file = std::env::var("NETNS_TEST_PIDS").expect("run by a test that reads the pids");
        let status = std::process::Command::new("unshare")
            .args([
                "--net",
                "sh",
                "-c",
                "sleep 120 </dev/null >/dev/null 2>&1 & echo $! >> \"$0\"",
                &file,
            ])
            .status()
            .expect("run unshare");
        assert!(status.success(), "unshare --net: {status}");
    }

    /// Starts background processes, one after another, and runs on past its
    /// timeout, while the test process reports it and ends.
    #[netns_test(timeout = "300ms")]
    #[ignore = "fixture"]
    fn keeps_starting_processes() {
        let file = std::env::var("NETNS_TEST_PIDS").expect("run by a test that reads the pids");
        loop {
            let _ = std::process::Command::new("sh")
                .args([
                    "-c",
                    "sleep 120 </dev/null >/dev/null 2>&1 & echo $! >> \"$0\"",
                    &file,
                ])
                .status();
        }
    }

    /// Expects its own panic: tokio, out of threads partway through
    /// starting its workers, must neither pass it nor hang it.
    #[netns_test(threads = 4)]
    #[ignore = "fixture"]
    #[should_panic(expected = "the body's own")]
    async fn four_workers_should_panic() {
        panic!("the body's own panic");
    }

    extern "C" fn forever() {
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Passes, and then its process never exits.
    #[netns_test]
    #[ignore = "fixture"]
    fn hangs_at_exit() {
        // SAFETY: `forever` is an `extern "C" fn()` that never unwinds.
        unsafe { nix::libc::atexit(forever) };
    }

    #[netns_test]
    #[ignore = "fixture"]
    fn inner(ns: &NetNs) {
        std::net::TcpListener::bind("127.0.0.1:80").expect("bind port 80");
        println!("inner namespace: {}", ns.inode());
    }

    /// Calls another test's function, twice: each call gets a namespace of
    /// its own.
    #[netns_test]
    #[ignore = "fixture"]
    fn calls_another_test(ns: &NetNs) {
        let _held = std::net::TcpListener::bind("127.0.0.1:80").expect("bind port 80");
        println!("outer namespace: {}", ns.inode());
        inner();
        inner();
    }

    #[netns_test]
    #[ignore = "fixture"]
    fn r#match() {
        std::net::TcpListener::bind("127.0.0.1:80").expect("bind port 80");
    }

    /// Nests modules until the test's path is longer than 4 KiB.
    macro_rules! nested {
        ($name:ident $($rest:ident)*) => {
            mod $name {
                use super::*;
                nested!($($rest)*);
            }
        };
        () => {
            #[netns_test]
            #[ignore = "fixture"]
            fn at_the_bottom() {
                std::net::TcpListener::bind("127.0.0.1:80").expect("bind port 80");
            }
        };
    }
    nested!(
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_one
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_two
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_three
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_four
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_five
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_six
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_seven
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_eight
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_nine
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_ten
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_eleven
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_twelve
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_thirteen
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_fourteen
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_fifteen
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_sixteen
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_seventeen
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_eighteen
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_nineteen
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_twenty
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_twenty_one
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_twenty_two
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_twenty_three
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_twenty_four
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_twenty_five
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_twenty_six
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_twenty_seven
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_twenty_eight
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_twenty_nine
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_thirty
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_thirty_one
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_thirty_two
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_thirty_three
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_thirty_four
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_thirty_five
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_thirty_six
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_thirty_seven
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_thirty_eight
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_thirty_nine
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_forty
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_forty_one
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_forty_two
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_forty_three
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_forty_four
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_forty_five
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_forty_six
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_forty_seven
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_forty_eight
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_forty_nine
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_fifty
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_fifty_one
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_fifty_two
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_fifty_three
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_fifty_four
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_fifty_five
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_fifty_six
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_fifty_seven
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_fifty_eight
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_fifty_nine
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_sixty
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_sixty_one
        a_module_with_a_rather_long_name_to_make_the_path_of_the_test_long_sixty_two
    );

    /// Deletes the test binary it runs in: `b_runs_after_its_binary_is_deleted`
    /// runs after it, with `--test-threads=1`.
    #[test]
    #[ignore = "fixture"]
    fn a_deletes_its_binary() {
        let exe = std::env::current_exe().expect("the test binary");
        std::fs::remove_file(exe).expect("delete the test binary");
    }

    #[netns_test]
    #[ignore = "fixture"]
    fn b_runs_after_its_binary_is_deleted() {
        std::net::TcpListener::bind("127.0.0.1:80").expect("bind port 80");
    }
}

/// A body's `exit(0)` never turns the run green; the output names the test.
#[test]
fn exit_zero_in_a_body_fails_the_run() {
    for mode in MODES {
        let report = run_fixtures(
            "fixture::exits_zero",
            &["--ignored", "--exact"],
            &[("NETNS_TEST_MODE", mode)],
        );
        assert!(
            !report.success,
            "{mode}: the run passed:\n{}",
            report.output
        );
        let named = report
            .output
            .contains("the body of `fixture::exits_zero` called")
            || report.status.get("fixture::exits_zero").map(String::as_str) == Some("FAILED");
        assert!(named, "{mode}: the test is not named:\n{}", report.output);
    }
}

/// Nor does the `exit(0)` of a body left running after its timeout, while
/// another test still runs.
#[test]
fn exit_zero_after_a_timeout_fails_the_run() {
    for mode in MODES {
        let report = run_fixtures(
            "fixture::exits_zero_after_its_timeout",
            &[
                "fixture::outlasts_the_exit",
                "--exact",
                "--ignored",
                "--test-threads=2",
            ],
            &[("NETNS_TEST_MODE", mode)],
        );
        assert!(
            !report.success,
            "{mode}: the run passed:\n{}",
            report.output
        );
        assert!(
            report.output.contains("exits_zero_after_its_timeout"),
            "{mode}:\n{}",
            report.output
        );
    }
}

/// A child that the body forked, which calls `exit`, ends as it asked; the
/// run goes on.
#[test]
fn a_forked_childs_exit_is_its_own() {
    for mode in MODES {
        let report = run_fixtures(
            "fixture::forks_children_that_exit",
            &["--ignored", "--exact"],
            &[("NETNS_TEST_MODE", mode)],
        );
        assert_eq!(
            report.status("fixture::forks_children_that_exit"),
            "ok",
            "{mode}:\n{}",
            report.output
        );
        assert!(report.success, "{mode}: the run failed:\n{}", report.output);
    }
}

/// A copy of the process that the body forked never reports for it: the
/// original's crash fails the test.
#[test]
fn a_forked_copy_never_reports() {
    for mode in MODES {
        let report = run_fixtures(
            "fixture::forks_a_copy_that_returns",
            &["--ignored", "--exact"],
            &[("NETNS_TEST_MODE", mode)],
        );
        assert!(
            !report.success,
            "{mode}: the run passed:\n{}",
            report.output
        );
        let status = report.status.get("fixture::forks_a_copy_that_returns");
        assert_ne!(
            status.map(String::as_str),
            Some("ok"),
            "{mode}:\n{}",
            report.output
        );
        if !alone_in_thread_mode(mode) {
            // In its own process the crash fails just this test; in thread
            // mode it takes the test binary down with it.
            assert_eq!(
                status.map(String::as_str),
                Some("FAILED"),
                "{mode}:\n{}",
                report.output
            );
            let output = report.failure_output("fixture::forks_a_copy_that_returns");
            assert!(output.contains("SIGABRT"), "{mode}:\n{output}");
        }
    }
}

/// A test is found by a key unique in the binary, not by its path, which a
/// test in a `const _` block shares.
#[test]
fn a_test_with_the_same_path_never_runs_in_its_place() {
    for mode in MODES {
        let report = run_fixtures(
            "fixture::shadowed",
            &["--ignored", "--exact"],
            &[("NETNS_TEST_MODE", mode)],
        );
        assert_eq!(
            report.status("fixture::shadowed"),
            "ok",
            "{mode}:\n{}",
            report.output
        );
        assert!(
            !report.output.contains("the shadow ran"),
            "{mode}:\n{}",
            report.output
        );
    }
}

/// When netns-test's own runtime fails inside the body (here, building the
/// async runtime, by an injected fault), a `should_panic` test fails.
#[test]
fn a_runtime_failure_is_not_the_bodys_panic() {
    for mode in MODES {
        let report = run_fixtures(
            "fixture::async_should_panic",
            &["--ignored", "--exact"],
            &[
                ("NETNS_TEST_MODE", mode),
                ("__NETNS_TEST_FAULT", "async-runtime"),
            ],
        );
        assert_eq!(
            report.status("fixture::async_should_panic"),
            "FAILED",
            "{mode}:\n{}",
            report.output
        );
        let output = report.failure_output("fixture::async_should_panic");
        assert!(
            output.contains("build the tokio runtime"),
            "{mode}:\n{output}"
        );
        assert!(
            output.contains("did not panic as expected"),
            "{mode}:\n{output}"
        );
    }
}

/// When tokio panics while the runtime is built (here it cannot start its
/// worker threads, by an injected fault), a `should_panic` test fails, even
/// one whose expected message the panic holds.
#[test]
fn a_runtime_that_panics_while_built_is_not_the_bodys_panic() {
    for mode in MODES {
        let name = "fixture::should_panic_about_spawning";
        let report = run_fixtures(
            name,
            &["--ignored", "--exact"],
            &[
                ("NETNS_TEST_MODE", mode),
                ("__NETNS_TEST_FAULT", "async-runtime-threads"),
            ],
        );
        assert_eq!(report.status(name), "FAILED", "{mode}:\n{}", report.output);
        let output = report.failure_output(name);
        assert!(
            output.contains("build the tokio runtime of the async test: it panicked"),
            "{mode}:\n{output}"
        );
        assert!(output.contains("spawn"), "{mode}:\n{output}");
        assert!(
            output.contains("did not panic as expected"),
            "{mode}:\n{output}"
        );
    }
}

/// With its isolation check made to see the harness's namespace (an injected
/// fault), no body runs: every mode checks, and fails closed.
#[test]
fn the_isolation_check_fails_closed_in_every_mode() {
    for mode in MODES {
        let report = run_fixtures(
            "fixture::binds_port_80",
            &["--ignored", "--exact"],
            &[
                ("NETNS_TEST_MODE", mode),
                ("__NETNS_TEST_FAULT", "harness-is-here"),
            ],
        );
        assert_eq!(
            report.status("fixture::binds_port_80"),
            "FAILED",
            "{mode}:\n{}",
            report.output
        );
        let output = report.failure_output("fixture::binds_port_80");
        assert!(
            output.contains("refusing to run the body"),
            "{mode}:\n{output}"
        );
    }
}

/// In thread mode, `/proc/self/ns/net` names the harness's namespace: a body
/// that moves there fails, with the pitfall explained (rootless, it may not
/// move there at all). In helper and process modes it names the body's own
/// process's namespace, which is not the host's.
#[test]
fn a_body_that_ends_in_the_harness_namespace_fails() {
    for mode in MODES {
        let report = run_fixtures(
            "fixture::moves_to_the_main_threads_namespace",
            &["--ignored", "--exact"],
            &[("NETNS_TEST_MODE", mode)],
        );
        let status = report.status("fixture::moves_to_the_main_threads_namespace");
        if alone_in_thread_mode(mode) && thread_mode_here() {
            assert_eq!(status, "FAILED", "{}", report.output);
            let output = report.failure_output("fixture::moves_to_the_main_threads_namespace");
            assert!(
                output.contains("ended in the harness's network namespace"),
                "{output}"
            );
            assert!(output.contains("/proc/thread-self/ns/net"), "{output}");
        } else if alone_in_thread_mode(mode) {
            // Rootless, in a user namespace of its own: the body holds no
            // privilege over the host's namespace, so it cannot move there.
            assert_eq!(status, "FAILED", "{}", report.output);
            let output = report.failure_output("fixture::moves_to_the_main_threads_namespace");
            assert!(output.contains("setns: EPERM"), "{output}");
        } else {
            assert_eq!(status, "ok", "{mode}:\n{}", report.output);
        }
    }
}

/// The processes a body starts, and those they start, end with the test,
/// whether it passes, fails or times out, and the test does not wait for them.
#[test]
fn nothing_the_body_started_outlives_the_test() {
    let cases = [
        ("leaves_processes_and_passes", "ok"),
        ("leaves_processes_and_fails", "FAILED"),
        ("leaves_processes_and_times_out", "FAILED"),
    ];
    for mode in MODES {
        for (fixture, expected) in cases {
            let pids = pid_file(fixture);
            let name = format!("fixture::{fixture}");
            let report = run_then(&name, "fixture::then_nothing_is_left", mode, &pids);
            assert_eq!(report.status(&name), expected, "{mode}:\n{}", report.output);
            let checked = report.status("fixture::then_nothing_is_left");
            assert_eq!(checked, "ok", "{mode} {fixture}:\n{}", report.output);
            let started = pids_in(&pids);
            assert_eq!(started.len(), 5, "{mode} {fixture}: {started:?}");
            for pid in started {
                assert!(
                    ends(pid),
                    "{mode} {fixture}: process {pid} outlived the test"
                );
            }
            let _ = std::fs::remove_file(pids);
        }
    }
}

/// The processes a body started end when the test binary is killed in the
/// middle of the test, in every mode: a reaper kills them in helper and
/// process modes; in thread mode, the watchdog, where the process runs
/// several tests (and so has no `--exact` name); where it runs one (as
/// under nextest), its signal handlers at the SIGTERM that nextest,
/// `timeout` and a shutdown send, and its sentinel at a SIGKILL.
#[test]
fn nothing_the_body_started_outlives_a_killed_test_binary() {
    let name = "fixture::leaves_processes_and_waits";
    let several = [name, "--ignored"];
    let one = [name, "--exact", "--ignored"];
    for mode in MODES {
        for (args, signal) in [
            (&several[..], Signal::SIGKILL),
            (&one[..], Signal::SIGTERM),
            (&one[..], Signal::SIGKILL),
        ] {
            let pids = pid_file("killed");
            let mut binary = Command::new(std::env::current_exe().expect("this binary"))
                .args(args)
                .env("NETNS_TEST_MODE", mode)
                .env("NETNS_TEST_PIDS", &pids)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start the fixture binary");
            let deadline = Instant::now() + Duration::from_secs(30);
            while pids_in(&pids).len() < 5 {
                assert!(
                    Instant::now() < deadline,
                    "{mode}: the body started nothing"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            kill(Pid::from_raw(binary.id() as i32), signal).expect("kill the fixture binary");
            binary.wait().expect("reap it");
            for pid in pids_in(&pids) {
                assert!(
                    ends(pid),
                    "{mode} {args:?} {signal}: process {pid} outlived the killed test binary"
                );
            }
            let _ = std::fs::remove_file(pids);
        }
    }
}

/// A process a body started that moved itself into a network namespace of
/// its own and was orphaned ends, at the latest, with the test binary, in
/// every mode, in a process that runs one test and in one that runs several.
#[test]
fn a_process_in_a_namespace_of_its_own_ends_with_the_test_binary() {
    let name = "fixture::leaves_a_process_in_a_namespace_of_its_own";
    for mode in MODES {
        for one in [true, false] {
            let pids = pid_file("own-namespace");
            let exact: &[&str] = match one {
                true => &["--ignored", "--exact"],
                false => &["--ignored"],
            };
            let report = run_fixtures(
                name,
                exact,
                &[
                    ("NETNS_TEST_MODE", mode),
                    ("NETNS_TEST_PIDS", pids.to_str().expect("a UTF-8 path")),
                ],
            );
            assert_eq!(report.status(name), "ok", "{mode}:\n{}", report.output);
            let started = pids_in(&pids);
            assert_eq!(started.len(), 1, "{mode} one test {one}: {started:?}");
            for pid in started {
                assert!(
                    ends(pid),
                    "{mode} one test {one}: process {pid} outlived the test binary"
                );
            }
            let _ = std::fs::remove_file(pids);
        }
    }
}

/// A body that runs on past its timeout, starting processes, leaves none of
/// them once the test process has ended, in every mode, in a process that
/// runs this one test.
#[test]
fn a_timed_out_body_leaves_nothing_when_the_process_ends() {
    for mode in MODES {
        let pids = pid_file("rapid");
        let report = run_fixtures(
            "fixture::keeps_starting_processes",
            &["--ignored", "--exact"],
            &[
                ("NETNS_TEST_MODE", mode),
                ("NETNS_TEST_PIDS", pids.to_str().expect("a UTF-8 path")),
            ],
        );
        let name = "fixture::keeps_starting_processes";
        assert_eq!(report.status(name), "FAILED", "{mode}:\n{}", report.output);
        let started = pids_in(&pids);
        assert!(!started.is_empty(), "{mode}: the body started nothing");
        for pid in started {
            assert!(ends(pid), "{mode}: process {pid} outlived the test process");
        }
        let _ = std::fs::remove_file(pids);
    }
}

/// Out of threads partway through starting tokio's workers (a limit of
/// processes in a user namespace of its own, where it counts this process's
/// threads alone; root is exempt from the limit, so a run as root becomes
/// uid 65534 first), an async test neither passes on tokio's panic nor
/// hangs: at every limit, the test ends, failed by netns-test's error, or
/// passed by its own panic where every worker started.
#[test]
fn a_runtime_short_of_threads_neither_passes_nor_hangs() {
    let name = "fixture::four_workers_should_panic";
    let unprivileged: &[&str] = match nix::unistd::geteuid().is_root() {
        true => &[
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ],
        false => &[],
    };
    for limit in 3..=6 {
        let mut run = Command::new("setpriv")
            .args(unprivileged)
            .args(["unshare", "--user", "--map-root-user", "prlimit"])
            .arg(format!("--nproc={limit}:{limit}"))
            .arg(std::env::current_exe().expect("this binary"))
            .args([name, "--exact", "--ignored", "--color=never"])
            .env("NETNS_TEST_MODE", "thread")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the fixture binary");
        let deadline = Instant::now() + Duration::from_secs(60);
        while run.try_wait().expect("look at the run").is_none() {
            if Instant::now() > deadline {
                let _ = run.kill();
                let _ = run.wait();
                panic!("limit {limit}: the test hung");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let output = run.wait_with_output().expect("its output");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let passed = stdout.contains(&format!("{name} - should panic ... ok"));
        let failed_by_netns_test = stdout.contains(&format!("{name} - should panic ... FAILED"))
            && stdout.contains("netns-test: ");
        assert!(passed || failed_by_netns_test, "limit {limit}:\n{stdout}");
    }
}

/// A process-mode child that has reported its outcome and then never exits
/// is stopped, and the outcome stands.
#[test]
fn a_child_that_hangs_after_its_outcome_is_stopped() {
    let report = run_fixtures(
        "fixture::hangs_at_exit",
        &["--ignored", "--exact"],
        &[("NETNS_TEST_MODE", "process")],
    );
    assert_eq!(
        report.status("fixture::hangs_at_exit"),
        "ok",
        "{}",
        report.output
    );
}

/// A test may call another test's function: each call gets a namespace of
/// its own, in every mode, one test at a time too.
#[test]
fn nested_test_calls_work() {
    for mode in MODES {
        let report = run_fixtures(
            "fixture::calls_another_test",
            &["--ignored", "--exact", "--test-threads=1", "--nocapture"],
            &[("NETNS_TEST_MODE", mode)],
        );
        // With --nocapture, the body's lines split libtest's status line.
        assert!(
            report.success && report.output.contains("test result: ok. 1 passed"),
            "{mode}:\n{}",
            report.output
        );
        let inodes = |prefix: &str| -> Vec<String> {
            report
                .output
                .lines()
                .filter_map(|line| line.split_once(prefix).map(|(_, inode)| inode.to_owned()))
                .collect()
        };
        let (outer, inner) = (inodes("outer namespace: "), inodes("inner namespace: "));
        assert_eq!(
            (outer.len(), inner.len()),
            (1, 2),
            "{mode}:\n{}",
            report.output
        );
        assert!(!inner.contains(&outer[0]), "{mode}: shared a namespace");
        assert_ne!(inner[0], inner[1], "{mode}: shared a namespace");
    }
}

/// Raw identifiers, and paths longer than 4 KiB, run in every mode.
#[test]
fn unusual_names_run() {
    for mode in MODES {
        let report = run_fixtures(
            "fixture::r#match",
            &["--ignored", "--exact"],
            &[("NETNS_TEST_MODE", mode)],
        );
        assert_eq!(
            report.status("fixture::r#match"),
            "ok",
            "{mode}:\n{}",
            report.output
        );
        let report = run_fixtures(
            "at_the_bottom",
            &["--ignored"],
            &[("NETNS_TEST_MODE", mode)],
        );
        let (name, status) = report.status.iter().next().expect("the nested test ran");
        assert!(name.len() > 4096, "{name}");
        assert_eq!(status, "ok", "{mode}:\n{}", report.output);
    }
}

/// A test binary deleted while it runs (as a rebuild does) still starts its
/// children and helpers.
#[test]
fn a_deleted_test_binary_still_runs_its_tests() {
    for mode in MODES {
        let dir =
            std::env::temp_dir().join(format!("netns-test-deleted-{}-{mode}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a directory");
        let copy = dir.join("copy");
        std::fs::copy(std::env::current_exe().expect("this binary"), &copy).expect("copy");
        let output = Command::new(&copy)
            .args([
                "fixture::a_deletes_its_binary",
                "fixture::b_runs_after_its_binary_is_deleted",
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env("NETNS_TEST_MODE", mode)
            .output()
            .expect("run the copy");
        let _ = std::fs::remove_dir_all(&dir);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("test fixture::b_runs_after_its_binary_is_deleted ... ok"),
            "{mode}:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
