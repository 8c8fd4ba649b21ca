//! The benchmark of netns-test: `cargo run --release -p netns-test-bench`.
//!
//! In one run it measures, as medians:
//!
//! - the floor: a thread that unshares `CLONE_NEWNET`, brings `lo` up over a
//!   netlink socket and is joined, written directly against the system calls
//!   (`src/lib.rs`);
//! - a plain thread spawn and join;
//! - one trivial `#[netns_test]` through the runtime, in thread, helper and
//!   process mode (and in helper mode as uid 65534, when run as root), and
//!   in thread mode with packet capture on, each in alternating rounds with
//!   the floor in the same process;
//! - 500 floors one after another and from 2 threads at once, whose ratio is
//!   the parallelism the kernel allows (it serialises namespace creation);
//! - 500 trivial `#[netns_test]`s against the same 500 plain `#[test]`s, run
//!   by libtest (as `cargo test` runs them) and by `cargo nextest run`, and
//!   500 plain tests that each make the floor's namespace: the floor as a
//!   suite reaches it, with the parallelism that runner and kernel allow;
//! - the same netns and plain suites under `cargo nextest run` as root and
//!   as uid 65534, for what rootless adds per test against root;
//! - the 500 netns tests with packet capture off and on, by wall time and
//!   by the most descriptors held at once;
//! - a wire beside a plain veth pair (round trips, TCP goodput), and the
//!   wire's delay, loss and rate as measured (`-- wire` runs these alone);
//! - a router's setup with and without a NAT (`-- nat` runs these alone);
//! - a network built by the builder, by the same netlink calls by hand,
//!   and by `ip` commands, and 250 hosts on one switch (`-- network`).
//!
//! It prints every median and the ratios the targets of `docs/speed.md` are
//! stated in. It asserts nothing: the machine is noisy, and the numbers are
//! for people.

use std::process::Command;
use std::time::{Duration, Instant};

/// Runs of each suite.
const SUITE_RUNS: usize = 5;

/// What one run of the speed binary's `measure_one` printed.
#[derive(Default)]
struct Measured {
    runtime: Vec<Duration>,
    floor: Vec<Duration>,
    serial_wall: Option<Duration>,
    parallel_wall: Option<Duration>,
}

mod nat;
mod network;
mod wire;

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("wire") => return wire::rows(),
        Some("nat") => return nat::rows(),
        Some("network") => return network::rows(),
        _ => {}
    }
    let speed = speed_binary();
    println!("netns-test benchmark on {}\n", machine());

    let thread_spawn = median(
        &(0..500)
            .map(|_| {
                let start = Instant::now();
                std::thread::spawn(|| ()).join().expect("an empty thread");
                start.elapsed()
            })
            .collect::<Vec<_>>(),
    );
    let thread = measure(&speed, "thread", false, &[]);
    let helper = measure(&speed, "helper", false, &[]);
    let helper_unprivileged = measure(&speed, "auto", true, &[]);
    let process = measure(&speed, "process", false, &[]);
    let captures = std::env::temp_dir().join(format!("netns-test-bench-{}", std::process::id()));
    let captures_dir = captures.to_string_lossy().into_owned();
    let capture_failed = measure(
        &speed,
        "thread",
        false,
        &[
            ("NETNS_TEST_CAPTURE", "failed"),
            ("NETNS_TEST_CAPTURE_DIR", &captures_dir),
        ],
    );
    let _ = std::fs::remove_dir_all(&captures);

    let Some(thread) = thread.filter(|thread| !thread.floor.is_empty()) else {
        println!("thread mode and the floor need root: run the benchmark as root");
        return;
    };
    let floor = median(&thread.floor);
    let thread_median = median(&thread.runtime);
    let (serial, parallel) = (
        thread.serial_wall.unwrap_or_default(),
        thread.parallel_wall.unwrap_or_default(),
    );
    let parallelism = serial.as_secs_f64() / parallel.as_secs_f64();

    println!("| measurement | median | ratio |");
    println!("| --- | --- | --- |");
    println!(
        "| floor: thread + unshare(CLONE_NEWNET) + lo up + join | {} | 1.00 |",
        show(floor)
    );
    println!(
        "| plain thread spawn + join | {} | {:.2}x floor |",
        show(thread_spawn),
        ratio(thread_spawn, floor)
    );
    println!(
        "| one test, thread mode | {} | {:.2}x floor (target <= 1.10) |",
        show(thread_median),
        ratio(thread_median, floor)
    );
    for (name, measured) in [
        (
            "thread mode, capture on (NETNS_TEST_CAPTURE=failed, test passes)",
            &capture_failed,
        ),
        ("helper mode, root", &helper),
        (
            "helper mode, uid 65534 (chosen automatically)",
            &helper_unprivileged,
        ),
        ("process mode, root", &process),
    ] {
        let Some(measured) = measured else {
            println!("| one test, {name} | not measured here | |");
            continue;
        };
        let median_here = median(&measured.runtime);
        // Each mode is compared with thread mode through the floor measured
        // beside it, so that a noisy moment does not favour either.
        let versus_thread = match measured.floor.is_empty() {
            false => ratio(median_here, median(&measured.floor)) / ratio(thread_median, floor),
            true => ratio(median_here, thread_median),
        };
        let target = if name.starts_with("helper") {
            " (target <= 1.50)"
        } else {
            ""
        };
        println!(
            "| one test, {name} | {} | {versus_thread:.2}x thread mode{target} |",
            show(median_here)
        );
    }
    println!(
        "| 500 floors, one after another / from 2 threads | {} / {} | parallelism reached {parallelism:.2} |",
        show(serial),
        show(parallel)
    );

    println!();
    println!(
        "500 trivial tests, wall time, median of {SUITE_RUNS} runs; \"added\" is over the plain suite,"
    );
    println!(
        "and the floor suite's added time per test is the floor divided by the parallelism it reached:"
    );
    println!(
        "| runner | mode | #[netns_test] | plain #[test] | floor suite | netns added per test | floor added per test (parallelism) | ratio (target <= 1.20) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for mode in ["thread", "helper"] {
        let libtest = |filter: &str| {
            let mut command = Command::new(&speed);
            command
                .args([filter, "--ignored", "-q"])
                .env("NETNS_TEST_MODE", mode);
            command
        };
        suite_row("libtest (cargo test)", mode, libtest, floor);
        let nextest = |filter: &str| {
            let mut command = nextest_suite(filter);
            command.env("NETNS_TEST_MODE", mode);
            command
        };
        if Command::new("cargo-nextest")
            .arg("--version")
            .output()
            .is_ok()
        {
            suite_row("cargo nextest run", mode, nextest, floor);
        } else {
            println!("| cargo nextest run | {mode} | not installed | | | | | |");
        }
    }
    capture_rows(&speed);
    caught_panics_row(&speed);
    rootless_nextest_rows();
    wire::rows();
    network::rows();
    nat::rows();
}

/// A test that catches 200 panics and passes, against a plain function that
/// does the same, in thread mode: what the panic hook costs it.
fn caught_panics_row(speed: &str) {
    let Ok(output) = Command::new(speed)
        .args([
            "measure_caught_panics",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("NETNS_TEST_MODE", "thread")
        .output()
    else {
        return;
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let list = |name: &str| -> Vec<Duration> {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|values| {
                values
                    .split(',')
                    .filter_map(|value| value.parse().ok())
                    .map(Duration::from_nanos)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (netns, plain) = (list("caught_netns_ns="), list("caught_plain_ns="));
    if netns.is_empty() || plain.is_empty() {
        println!("\ncaught panics: not measured here");
        return;
    }
    let (netns, plain) = (median(&netns), median(&plain));
    println!();
    println!("A test that catches 200 panics and passes, thread mode, median of 20:");
    println!("| #[netns_test] | the same 200 panics caught in a plain function | added |");
    println!("| --- | --- | --- |");
    println!(
        "| {} | {} | {} |",
        show(netns),
        show(plain),
        show(netns.saturating_sub(plain))
    );
}

/// The 500 trivial netns tests under libtest with capture off and on
/// (`NETNS_TEST_CAPTURE=failed`, every test passing), in alternating runs:
/// wall time, and the most descriptors the test binary and its children
/// held at once, sampled as they run.
fn capture_rows(speed: &str) {
    println!();
    println!(
        "500 trivial tests, capture off against on (NETNS_TEST_CAPTURE=failed), libtest, median of {SUITE_RUNS} runs; descriptors: the most held at once, over all runs:"
    );
    println!("| mode | capture off | capture on | ratio (target <= 1.50) | descriptors off / on |");
    println!("| --- | --- | --- | --- | --- |");
    let captures = std::env::temp_dir().join(format!("netns-test-bench-{}", std::process::id()));
    for mode in ["thread", "helper"] {
        let mut walls = [Vec::new(), Vec::new()];
        let mut descriptors = [0usize, 0];
        for _ in 0..SUITE_RUNS {
            for (on, capture) in ["off", "failed"].into_iter().enumerate() {
                std::thread::sleep(Duration::from_millis(300));
                let start = Instant::now();
                let mut child = Command::new(speed)
                    .args(["fixture::suite::netns::", "--ignored", "-q"])
                    .env("NETNS_TEST_MODE", mode)
                    .env("NETNS_TEST_CAPTURE", capture)
                    .env("NETNS_TEST_CAPTURE_DIR", &captures)
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .expect("run the suite");
                let status = loop {
                    descriptors[on] = descriptors[on].max(descriptors_of_tree(child.id()));
                    if let Some(status) = child.try_wait().expect("wait for the suite") {
                        break status;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                };
                walls[on].push(start.elapsed());
                assert!(status.success(), "the suite failed with capture {capture}");
            }
        }
        let [off, on] = walls.map(|times| median(&times));
        println!(
            "| {mode} | {} | {} | {:.2} | {} / {} |",
            show(off),
            show(on),
            ratio(on, off),
            descriptors[0],
            descriptors[1]
        );
    }
    let _ = std::fs::remove_dir_all(&captures);
}

/// The open descriptors of process `pid` and of its descendants.
fn descriptors_of_tree(pid: u32) -> usize {
    let open = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
    let children: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|children| {
            children
                .split_whitespace()
                .filter_map(|child| child.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    open + children.into_iter().map(descriptors_of_tree).sum::<usize>()
}

/// Under nextest, rootless against root: the time a trivial netns test adds
/// over a plain one, as root and as uid 65534 (through the target runner,
/// as CI runs it), in alternating rounds.
fn rootless_nextest_rows() {
    if !nix::unistd::geteuid().is_root()
        || Command::new("cargo-nextest")
            .arg("--version")
            .output()
            .is_err()
    {
        println!("(rootless against root under nextest: needs root and cargo-nextest)");
        return;
    }
    let host = Command::new("rustc")
        .arg("-vV")
        .output()
        .ok()
        .and_then(|output| {
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.lines()
                .find_map(|line| line.strip_prefix("host: ").map(str::to_owned))
        })
        .unwrap_or_else(|| "x86_64-unknown-linux-gnu".into());
    let runner = format!(
        "CARGO_TARGET_{}_RUNNER",
        host.to_uppercase().replace('-', "_")
    );
    let nextest = |filter: &str, unprivileged: bool| {
        let mut command = nextest_suite(filter);
        command.env_remove("NETNS_TEST_MODE");
        if unprivileged {
            command.env(
                &runner,
                "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all",
            );
        }
        command
    };
    let filters = ["fixture::suite::netns::", "fixture::suite::plain::"];
    let mut walls = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    for _ in 0..SUITE_RUNS {
        for (user, unprivileged) in [(0, false), (1, true)] {
            for (suite, filter) in filters.iter().enumerate() {
                std::thread::sleep(Duration::from_millis(300));
                let start = Instant::now();
                let output = nextest(filter, unprivileged).output().expect("run nextest");
                assert!(
                    output.status.success(),
                    "the {filter} suite failed:\n{}",
                    String::from_utf8_lossy(&output.stderr)
                );
                walls[user][suite].push(start.elapsed());
            }
        }
    }
    let added: Vec<(Duration, Duration, Duration)> = walls
        .iter()
        .map(|[netns, plain]| {
            let (netns, plain) = (median(netns), median(plain));
            (netns, plain, netns.saturating_sub(plain) / 500)
        })
        .collect();
    println!();
    println!(
        "Under cargo nextest, rootless against root (mode auto), median of {SUITE_RUNS} runs:"
    );
    println!("| user | #[netns_test] | plain #[test] | netns added per test | ratio to root |");
    println!("| --- | --- | --- | --- | --- |");
    for (user, (netns, plain, per_test)) in ["root", "uid 65534"].iter().zip(&added) {
        println!(
            "| {user} | {} | {} | {} | {:.2}{} |",
            show(*netns),
            show(*plain),
            show(*per_test),
            ratio(*per_test, added[0].2),
            if *user == "root" {
                ""
            } else {
                " (target <= 1.30)"
            }
        );
    }
}

/// `cargo nextest run` on the speed binary's suite tests whose names start
/// with `filter`.
fn nextest_suite(filter: &str) -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .args(["nextest", "run", "--release", "-p", "netns-test-bench"])
        .args(["--test", "speed", "--run-ignored", "only"])
        .args(["--ignore-default-filter", "--no-fail-fast"])
        .args(["-E", &format!("test(/^{filter}/)")]);
    command
}

fn median(durations: &[Duration]) -> Duration {
    let mut sorted = durations.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn show(duration: Duration) -> String {
    if duration >= Duration::from_millis(10) {
        format!("{:.2} s", duration.as_secs_f64())
    } else {
        format!("{:.0} µs", duration.as_secs_f64() * 1e6)
    }
}

/// The test binary of `tests/speed.rs`, built in release mode.
fn speed_binary() -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "test",
            "--release",
            "-p",
            "netns-test-bench",
            "--test",
            "speed",
            "--no-run",
        ])
        .args(["--message-format=json"])
        .output()
        .expect("run cargo to build the benchmark's test binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter(|line| line.contains("\"name\":\"speed\"") && line.contains("\"test\":true"))
        .find_map(|line| {
            let start = line.find("\"executable\":\"")? + "\"executable\":\"".len();
            let end = line[start..].find('"')? + start;
            Some(line[start..end].to_owned())
        })
        .unwrap_or_else(|| {
            panic!(
                "no speed test binary was built:\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

/// Runs the speed binary's `measure_one` in `mode`; `unprivileged` runs it
/// as uid 65534 when this process is root. `None` when it cannot run.
fn measure(speed: &str, mode: &str, unprivileged: bool, env: &[(&str, &str)]) -> Option<Measured> {
    let mut command = if unprivileged {
        if !nix::unistd::geteuid().is_root() {
            return None;
        }
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(speed);
        command
    } else {
        Command::new(speed)
    };
    let output = command
        .args(["measure_one", "--exact", "--ignored", "--nocapture"])
        .env("NETNS_TEST_MODE", mode)
        .envs(env.iter().copied())
        .output()
        .ok()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut measured = Measured::default();
    for line in stdout.lines() {
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let durations = || -> Vec<Duration> {
            value
                .split(',')
                .filter_map(|n| n.parse().ok())
                .map(Duration::from_nanos)
                .collect()
        };
        match name {
            "runtime_ns" => measured.runtime = durations(),
            "floor_ns" => measured.floor = durations(),
            "serial_wall_ns" => measured.serial_wall = durations().first().copied(),
            "parallel_wall_ns" => measured.parallel_wall = durations().first().copied(),
            _ => {}
        }
    }
    (!measured.runtime.is_empty()).then_some(measured)
}

/// Times the netns, plain and floor suites, alternating, and prints a row.
fn suite_row(runner: &str, mode: &str, command: impl Fn(&str) -> Command, floor: Duration) {
    let mut walls = [Vec::new(), Vec::new(), Vec::new()];
    let filters = [
        "fixture::suite::netns::",
        "fixture::suite::plain::",
        "fixture::suite::floor::",
    ];
    for _ in 0..SUITE_RUNS {
        for (filter, times) in filters.iter().zip(&mut walls) {
            std::thread::sleep(Duration::from_millis(300));
            let start = Instant::now();
            let output = command(filter).output().expect("run the suite");
            assert!(
                output.status.success(),
                "the {filter} suite failed:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            times.push(start.elapsed());
        }
    }
    let [netns, plain, floor_suite] = walls.map(|times| median(&times));
    let added = netns.saturating_sub(plain) / 500;
    let floor_added = floor_suite.saturating_sub(plain) / 500;
    let parallelism = ratio(floor, floor_added);
    println!(
        "| {runner} | {mode} | {} | {} | {} | {} | {} ({parallelism:.2}) | {:.2}{} |",
        show(netns),
        show(plain),
        show(floor_suite),
        show(added),
        show(floor_added),
        ratio(added, floor_added),
        if mode == "thread" {
            " (target <= 1.20)"
        } else {
            ""
        }
    );
}

/// The machine, as the tables of `docs/speed.md` name it.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|line| {
                let (_, model) = line.strip_prefix("model name")?.split_once(':')?;
                Some(model.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "an unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores ({cpu}), Linux {}", kernel.trim())
}
