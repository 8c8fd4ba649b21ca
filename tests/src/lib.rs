//! Helpers shared by the integration tests of netns-test.
//!
//! Several tests prove what libtest reports by running a test binary again,
//! usually the calling test binary itself, on its fixture tests. Fixtures are
//! `#[ignore]`d, so that a normal run skips them, and live in modules named
//! `fixture`; `.config/nextest.toml` keeps them out of nextest runs.

pub mod pcap;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use netns_test_runtime::NetNs;

/// What one run of a test binary reported.
#[derive(Debug)]
pub struct Report {
    /// Each test's status as libtest printed it: `ok`, `FAILED` or `ignored`.
    pub status: BTreeMap<String, String>,
    /// Each failed test's captured output, from libtest's failure section.
    pub failure_output: BTreeMap<String, String>,
    /// Everything the binary printed to stdout and stderr.
    pub output: String,
    /// Whether the binary exited with status 0.
    pub success: bool,
}

impl Report {
    /// The status of `name`, panicking with the whole output if it did not run.
    pub fn status(&self, name: &str) -> &str {
        self.status
            .get(name)
            .unwrap_or_else(|| panic!("{name} was not reported; the run printed:\n{}", self.output))
    }

    /// The captured output of the failed test `name`.
    pub fn failure_output(&self, name: &str) -> &str {
        self.failure_output.get(name).unwrap_or_else(|| {
            panic!(
                "{name} has no failure section; the run printed:\n{}",
                self.output
            )
        })
    }
}

/// Runs the calling test binary on the tests matching `filter`, with extra
/// arguments (e.g. `--ignored` for fixtures) and environment variables.
pub fn run_fixtures(filter: &str, args: &[&str], env: &[(&str, &str)]) -> Report {
    run_fixtures_under(&[], filter, args, env)
}

/// A machine that refuses namespaces: a user namespace in which no further
/// user namespace may be made (`user.max_user_namespaces` is 0 there; the
/// host's setting is untouched) and no capability is held. Pass it to
/// [`run_fixtures_under`].
pub const REFUSING: &[&str] = &[
    "unshare",
    "--user",
    "--map-root-user",
    "sh",
    "-c",
    "echo 0 > /proc/sys/user/max_user_namespaces && exec setpriv --bounding-set=-all --inh-caps=-all \"$0\" \"$@\"",
];

/// Like [`run_fixtures`], with the binary started through `wrapper`, a
/// command that runs its arguments.
pub fn run_fixtures_under(
    wrapper: &[&str],
    filter: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Report {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = match wrapper.split_first() {
        Some((program, wrapper_args)) => {
            let mut command = Command::new(program);
            command.args(wrapper_args).arg(exe);
            command
        }
        None => Command::new(exe),
    };
    command
        .arg(filter)
        .arg("--color=never")
        .args(args)
        .envs(env.iter().copied())
        .env_remove("RUST_BACKTRACE")
        .env_remove("NEXTEST_TEST_FILTER");
    let output = command.output().expect("run the fixture binary");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let mut status = BTreeMap::new();
    // Only libtest's status lines count, which come before its failure
    // sections: a failed test's output may hold lines that look like them.
    let statuses = stdout.split("\nfailures:\n").next().unwrap_or(&stdout);
    for line in statuses.lines() {
        let Some(rest) = line.strip_prefix("test ") else {
            continue;
        };
        let Some((name, result)) = rest.rsplit_once(" ... ") else {
            continue;
        };
        let name = name.trim_end_matches(" - should panic");
        status.insert(name.to_owned(), result.trim().to_owned());
    }
    let mut failure_output = BTreeMap::new();
    let mut sections = stdout.split("\n---- ").skip(1);
    for section in sections.by_ref() {
        let Some((header, body)) = section.split_once('\n') else {
            continue;
        };
        let name = header.trim_end_matches(" ----").trim_end_matches(" stdout");
        let body = body.split("\n\nfailures:\n").next().unwrap_or(body);
        failure_output.insert(name.to_owned(), body.to_owned());
    }
    Report {
        status,
        failure_output,
        output: format!("{stdout}\n--- stderr ---\n{stderr}"),
        success: output.status.success(),
    }
}

/// The values of `NETNS_TEST_MODE` that every mode-dependent test runs under:
/// `auto` is thread mode as root and helper mode without privileges.
pub const MODES: [&str; 3] = ["auto", "helper", "process"];

/// Whether the machine gives this process thread mode when the mode is `auto`.
pub fn thread_mode_here() -> bool {
    netns_test_runtime::diagnose().thread_mode()
}

/// Whether a fixture run alone, by `--exact` name, under
/// `NETNS_TEST_MODE=mode` runs in thread mode: as root natively, and
/// without privileges in a user namespace the test binary enters before
/// `main`, where the machine allows one.
pub fn alone_in_thread_mode(mode: &str) -> bool {
    mode == "auto" && (thread_mode_here() || netns_test_runtime::diagnose().process_mode())
}

/// Whether process `pid` is running (not gone, and not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// Waits up to 20 s for process `pid` to end; whether it did.
pub fn ends(pid: u32) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while alive(pid) {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    true
}

/// The inode of the calling thread's network namespace.
pub fn netns_inode() -> u64 {
    std::fs::metadata("/proc/thread-self/ns/net")
        .expect("stat /proc/thread-self/ns/net")
        .ino()
}

/// The calling thread's links and addresses, as `ip` lists them, for
/// comparing the host before and after a test.
pub fn links_and_addresses() -> String {
    let mut listing = String::new();
    for args in [
        &["-o", "link", "show"][..],
        &["-o", "address", "show"],
        &["route", "show", "table", "all"],
        &["-6", "route", "show", "table", "all"],
    ] {
        let output = Command::new("ip").args(args).output().expect("run ip");
        assert!(output.status.success(), "ip {args:?} failed: {output:?}");
        listing.push_str(&String::from_utf8_lossy(&output.stdout));
    }
    listing
}

/// Runs `ip` with `args` in the calling thread's namespace, and asserts it worked.
pub fn ip(args: &[&str]) -> String {
    let output = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The interfaces the calling thread's network namespace has, from
/// `/proc/thread-self/net/dev` (which follows the thread, unlike `/proc/net`).
pub fn interfaces() -> Vec<String> {
    let dev = std::fs::read_to_string("/proc/thread-self/net/dev").expect("read net/dev");
    dev.lines()
        .skip(2)
        .filter_map(|line| Some(line.split_once(':')?.0.trim().to_owned()))
        .collect()
}

/// Asserts that the calling thread is in a fresh network namespace: one with
/// nothing but `lo`, unlike any host.
pub fn assert_fresh_namespace() {
    assert_eq!(interfaces(), ["lo"], "not in a fresh network namespace");
}

/// A second namespace, joined to `ns` by a veth pair, both ends up: `a0`
/// (10.9.0.1/24) in `ns`, `b0` (10.9.0.2/24) in the new one.
pub fn veth_peer(ns: &NetNs) -> NetNs {
    let peer = NetNs::new().expect("a second namespace");
    veth_to(ns, &peer, "b0");
    peer
}

/// Joins `ns` to `peer` by a veth pair, both ends up: `a0` (10.9.0.1/24) in
/// `ns`, `peer_link` (10.9.0.2/24) in `peer`.
pub fn veth_to(ns: &NetNs, peer: &NetNs, peer_link: &str) {
    ns.add_veth("a0", peer, peer_link).expect("veth");
    ns.add_address("a0", "10.9.0.1/24".parse().unwrap())
        .unwrap();
    peer.add_address(peer_link, "10.9.0.2/24".parse().unwrap())
        .unwrap();
    ns.set_link_up("a0").unwrap();
    peer.set_link_up(peer_link).unwrap();
}

/// Whether `socket` hears a datagram from `from` within its read
/// timeout.
pub fn hears(socket: &std::net::UdpSocket, from: std::net::SocketAddr) -> bool {
    let mut buffer = [0; 64];
    socket
        .recv_from(&mut buffer)
        .is_ok_and(|(_, source)| source == from)
}

/// A file for the pids of the processes a fixture starts, empty.
pub fn pid_file(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("netns-test-pids-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// The pids written to `path`, one a line.
pub fn pids_in(path: &std::path::Path) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

/// Runs fixture `name`, then fixture `then`, in one process, by `--exact`
/// names, under `NETNS_TEST_MODE=mode`, with `NETNS_TEST_PIDS` naming
/// `pids`, where the first writes the pids of what it starts and the second
/// checks that they ended.
pub fn run_then(name: &str, then: &str, mode: &str, pids: &std::path::Path) -> Report {
    run_fixtures(
        name,
        &[then, "--ignored", "--exact", "--test-threads=1"],
        &[
            ("NETNS_TEST_MODE", mode),
            ("NETNS_TEST_PIDS", pids.to_str().expect("a UTF-8 path")),
        ],
    )
}

/// In a fixture that runs right after one that started processes and wrote
/// their pids to `$NETNS_TEST_PIDS`: asserts that each has ended.
pub fn assert_the_started_processes_ended() {
    let file = std::env::var("NETNS_TEST_PIDS").expect("run by a test that reads the pids");
    let pids = std::fs::read_to_string(file).expect("the pids");
    for pid in pids.lines().map(|pid| pid.parse().expect("a pid")) {
        assert!(ends(pid), "process {pid} outlived its test");
    }
}
