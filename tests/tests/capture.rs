//! Packet capture is safe to leave on in CI, in every mode: a flood is
//! bounded in the file and in time, delays no other test, descriptors stay
//! bounded, any test name works, a directory that cannot be used falls
//! back, and nothing but the capture's own files is ever written.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use netns_test_tests::pcap::{
    files_under, holds, interface_holds, left_out, packet_times, read_capture, reported_capture,
};
use netns_test_tests::{MODES, Report, run_fixtures, run_fixtures_under};

/// What the fixtures send over `lo`, to be found in the capture.
const OVER_LO: &[u8] = b"payload-over-lo-c4e1";

/// How many times `sends_over_lo_and_a_veth_in_turn` sends over each.
const ROUNDS: usize = 300;

mod fixture {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::time::{Duration, Instant};

    use netns_test_runtime::{NetNs, netns_test};

    use super::{OVER_LO, ROUNDS};

    /// Sends UDP datagrams of `size` bytes over `lo` while `go` says so.
    fn flood(size: usize, mut go: impl FnMut(u64) -> bool) {
        let receiver = UdpSocket::bind("127.0.0.1:4000").expect("bind 4000");
        let sender = UdpSocket::bind("127.0.0.1:0").expect("bind a sender");
        let datagram = vec![0x5a; size];
        let mut sent = 0;
        while go(sent) {
            // The receiver drops what it cannot hold; the capture sees all.
            let _ = sender.send_to(&datagram, "127.0.0.1:4000");
            sent += 1;
        }
        drop(receiver);
    }

    fn over_lo() -> (TcpListener, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:7878").expect("bind 7878");
        let mut client = TcpStream::connect("127.0.0.1:7878").expect("connect");
        client.write_all(OVER_LO).expect("send over lo");
        (listener, client)
    }

    /// Sends a UDP datagram over `lo`, then one over a veth pair into a
    /// second namespace, [`ROUNDS`] times, in bursts: three interfaces
    /// in two namespaces are busy at once, `test/lo` and `test/a0` on one
    /// capture socket, `ns2/b0` on the other.
    #[netns_test(capture)]
    #[ignore]
    fn sends_over_lo_and_a_veth_in_turn(ns: &NetNs) {
        let peer = netns_test_tests::veth_peer(ns);
        let over_veth = peer
            .run(|| UdpSocket::bind("10.9.0.2:9999"))
            .unwrap()
            .expect("bind in the peer");
        let over_lo = UdpSocket::bind("127.0.0.1:9999").expect("bind 9999");
        let sender = UdpSocket::bind("0.0.0.0:0").expect("bind a sender");
        // The first datagram waits for ARP; the rest go out at once.
        sender.send_to(b"first", "10.9.0.2:9999").expect("send");
        over_veth
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        over_veth
            .recv_from(&mut [0; 16])
            .expect("receive over the veth");
        for round in 0..ROUNDS {
            // The receivers drop what they cannot hold; the capture sees all.
            let _ = sender.send_to(b"over lo", "127.0.0.1:9999");
            let _ = sender.send_to(b"over the veth", "10.9.0.2:9999");
            // Bursts that a capture socket's default buffer holds (in
            // helper mode, it may not be made larger).
            if round % 25 == 24 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        drop((over_lo, over_veth));
    }

    /// Keeps sending, without end, past its timeout.
    #[netns_test(capture, timeout = "1s")]
    #[ignore]
    fn floods_past_its_timeout() {
        flood(1400, |_| true);
    }

    /// Floods until the file `NETNS_TEST_STOP` names exists (or 60 s).
    #[netns_test(capture, timeout = "90s")]
    #[ignore]
    fn beside_floods() {
        let stop = std::env::var_os("NETNS_TEST_STOP").expect("NETNS_TEST_STOP");
        let start = Instant::now();
        flood(1400, |sent| {
            sent % 1024 != 0
                || !(std::path::Path::new(&stop).exists() || start.elapsed().as_secs() > 60)
        });
    }

    /// A quiet test, beside `beside_floods`.
    #[netns_test(capture, timeout = "3s")]
    #[ignore]
    fn beside_quiet() {
        std::thread::sleep(Duration::from_millis(500));
    }

    /// Sends some 24 MB over `lo`, in bursts, then fails.
    #[netns_test(capture)]
    #[ignore]
    fn floods_then_fails() {
        flood(8000, |sent| {
            if sent % 50 == 49 {
                std::thread::sleep(Duration::from_millis(1));
            }
            sent < 3000
        });
        panic!("after the flood");
    }

    #[netns_test]
    #[ignore]
    fn passes_after_traffic() {
        let _held = over_lo();
    }

    #[netns_test]
    #[ignore]
    fn a_name_that_is_far_too_long_for_a_file_name_on_any_file_system_linux_has_and_then_some_more_words_to_make_it_so_long_that_only_a_cut_and_a_hash_keep_it_apart_from_its_twin_which_differs_only_at_its_very_end_after_all_of_these_words_have_gone_by_and_this_is_one()
     {
        let _held = over_lo();
    }

    #[netns_test]
    #[ignore]
    fn a_name_that_is_far_too_long_for_a_file_name_on_any_file_system_linux_has_and_then_some_more_words_to_make_it_so_long_that_only_a_cut_and_a_hash_keep_it_apart_from_its_twin_which_differs_only_at_its_very_end_after_all_of_these_words_have_gone_by_and_this_is_two()
     {
        let _held = over_lo();
    }

    /// Sends over `lo`, moves to `/`, and fails.
    #[netns_test]
    #[ignore]
    fn changes_directory_and_fails() {
        let _held = over_lo();
        std::env::set_current_dir("/").expect("cd /");
        panic!("after changing directory");
    }

    /// Ends its process before any packet.
    #[netns_test]
    #[ignore]
    fn crashes_at_once() {
        std::process::abort();
    }

    macro_rules! ten {
        ($($name:ident)*) => {
            $(
                #[netns_test]
                #[ignore]
                fn $name() {}
            )*
        };
    }
    macro_rules! tens {
        ($($module:ident)*) => {
            $(mod $module {
                use netns_test_runtime::netns_test;
                ten!(t0 t1 t2 t3 t4 t5 t6 t7 t8 t9);
            })*
        };
    }
    macro_rules! hundreds {
        ($($module:ident)*) => {
            $(mod $module {
                tens!(a0 a1 a2 a3 a4 a5 a6 a7 a8 a9);
            })*
        };
    }

    /// 500 trivial tests.
    mod many {
        hundreds!(h0 h1 h2 h3 h4);
    }
}

/// A fresh directory, writable by whoever runs this.
fn fresh_dir(name: &str, mode: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "netns-test-capture-{}-{name}-{mode}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a directory");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    dir
}

fn text(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// Runs the fixtures matching `filter` in `mode`, capturing every test
/// (`NETNS_TEST_CAPTURE=capture`) into `dir`, with `env` added.
fn run_capturing(
    filter: &str,
    mode: &str,
    capture: &str,
    dir: &Path,
    env: &[(&str, &str)],
) -> Report {
    let mut all = vec![
        ("NETNS_TEST_MODE", mode),
        ("NETNS_TEST_CAPTURE", capture),
        ("NETNS_TEST_CAPTURE_DIR", text(dir)),
    ];
    all.extend_from_slice(env);
    run_fixtures(
        &format!("fixture::{filter}"),
        &["--ignored", "--exact"],
        &all,
    )
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .expect("stat /proc/self")
        .uid()
        == 0
}

/// A body that sends past its timeout ends at it: the capture finishes
/// within a bound, and the test reports its packets. The capture is slowed
/// (the fault `slow-capture`), so that the flood always outpaces it, as on
/// a loaded machine; without the bounds, the run never ends, and `timeout`
/// kills it after 60 s.
#[test]
fn a_flood_past_the_timeout_ends_at_the_timeout() {
    for mode in MODES {
        let dir = fresh_dir("timeout", mode);
        let report = run_fixtures_under(
            &["timeout", "--signal=KILL", "60"],
            "fixture::floods_past_its_timeout",
            &["--ignored", "--exact"],
            &[
                ("NETNS_TEST_MODE", mode),
                ("NETNS_TEST_CAPTURE_DIR", text(&dir)),
                ("__NETNS_TEST_FAULT", "slow-capture"),
            ],
        );
        let output = report.failure_output("fixture::floods_past_its_timeout");
        assert!(output.contains("timed out after 1s"), "{mode}:\n{output}");
        assert!(
            output.contains("netns-test: its packets"),
            "{mode}: no capture:\n{output}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A quiet test beside a flooding one, in the same process, passes: the
/// flood, which outpaces the slowed capture, cannot hold up its finish.
/// The flood stops when the quiet test has been reported.
#[test]
fn a_quiet_test_beside_a_flood_passes() {
    for mode in MODES {
        let dir = fresh_dir("beside", mode);
        let stop = dir.join("stop");
        let mut child = Command::new(std::env::current_exe().expect("the test binary"))
            .args(["fixture::beside_", "--ignored", "--test-threads=2"])
            .env("NETNS_TEST_MODE", mode)
            .env("NETNS_TEST_CAPTURE_DIR", &dir)
            .env("NETNS_TEST_STOP", &stop)
            .env("__NETNS_TEST_FAULT", "slow-capture")
            .env_remove("NEXTEST_TEST_FILTER")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run the fixtures");
        let stdout = child.stdout.take().expect("its stdout");
        let mut quiet = None;
        let mut output = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("a line");
            output.push_str(&line);
            output.push('\n');
            if let Some(status) = line.strip_prefix("test fixture::beside_quiet ... ") {
                quiet = Some(status.to_owned());
                std::fs::write(&stop, b"").expect("stop the flood");
            }
        }
        let _ = child.wait();
        assert_eq!(quiet.as_deref(), Some("ok"), "{mode}:\n{output}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A test's file is in time order across all its interfaces and
/// namespaces: no packet's timestamp is before the one written before it,
/// however the packets of its capture sockets interleave. Written as read,
/// a batch from each socket in turn, some 25 of these 900 packets went
/// back in time.
#[test]
fn packets_are_written_in_time_order() {
    for mode in MODES {
        let dir = fresh_dir("order", mode);
        let report = run_capturing("sends_over_lo_and_a_veth_in_turn", mode, "all", &dir, &[]);
        assert!(report.success, "{mode}:\n{}", report.output);
        let files = files_under(&dir);
        assert_eq!(files.len(), 1, "{mode}: {files:?}");
        let packets = packet_times(&files[0]);
        for interface in ["test/lo", "test/a0", "ns2/b0"] {
            let count = packets
                .iter()
                .filter(|(name, ..)| name == interface)
                .count();
            // Hundreds, but for what the kernel drops when a burst outruns
            // a capture socket's buffer (as an unprivileged user's, on a
            // loaded machine).
            assert!(
                count >= ROUNDS / 2,
                "{mode}: {count} packets on {interface}"
            );
        }
        let backwards: Vec<String> = packets
            .windows(2)
            .filter(|pair| pair[1].1 < pair[0].1)
            .map(|pair| {
                let gap = pair[0].1 - pair[1].1;
                format!("{} then {} ({gap:?} earlier)", pair[0].0, pair[1].0)
            })
            .collect();
        assert!(
            backwards.is_empty(),
            "{mode}: {} of {} packets go back in time, e.g. {:?}",
            backwards.len(),
            packets.len(),
            &backwards[..backwards.len().min(5)]
        );
        // A packet read after a later one was written keeps the order with
        // that one's stamp, and says so in a comment: rare, or the order
        // is not the stamps' own.
        let late = packets.iter().filter(|(.., comment)| *comment).count();
        assert!(
            late * 100 <= packets.len(),
            "{mode}: {late} packets came late"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A flood fills the file up to the limit, no further; the file and the
/// report say how many packets were left out.
#[test]
fn a_capture_stops_at_its_limit_and_says_what_it_left_out() {
    const LIMIT: u64 = 1 << 20;
    for mode in MODES {
        let dir = fresh_dir("limit", mode);
        let report = run_capturing(
            "floods_then_fails",
            mode,
            "failed",
            &dir,
            &[("NETNS_TEST_CAPTURE_LIMIT", "1MiB")],
        );
        let output = report.failure_output("fixture::floods_then_fails");
        assert!(
            output.contains(
                "more left out, past the limit of 1048576 bytes (NETNS_TEST_CAPTURE_LIMIT)"
            ),
            "{mode}:\n{output}"
        );
        let path = reported_capture(output);
        let size = std::fs::metadata(&path).expect("the capture").len();
        // The limit counts packets; headers and statistics add a little.
        assert!(size <= LIMIT + (16 << 10), "{mode}: {size} bytes");
        assert!(left_out(&path) > 0, "{mode}: no isb_ifdrop in {path:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_bad_limit_fails_and_names_the_values() {
    let dir = fresh_dir("bad-limit", "auto");
    let report = run_capturing(
        "passes_after_traffic",
        "auto",
        "failed",
        &dir,
        &[("NETNS_TEST_CAPTURE_LIMIT", "64MB")],
    );
    let output = report.failure_output("fixture::passes_after_traffic");
    assert!(
        output.contains("NETNS_TEST_CAPTURE_LIMIT=\"64MB\""),
        "{output}"
    );
    assert!(output.contains("`KiB`, `MiB` or `GiB`"), "{output}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Names longer than a file name may be are cut, and kept apart by a hash.
#[test]
fn any_test_name_works() {
    for mode in MODES {
        let dir = fresh_dir("long", mode);
        let report = run_fixtures(
            "fixture::a_name_that_is_far_too_long",
            &["--ignored"],
            &[
                ("NETNS_TEST_MODE", mode),
                ("NETNS_TEST_CAPTURE", "all"),
                ("NETNS_TEST_CAPTURE_DIR", text(&dir)),
            ],
        );
        assert!(report.success, "{mode}:\n{}", report.output);
        let files = files_under(&dir);
        assert_eq!(files.len(), 2, "{mode}: {files:?}");
        for file in &files {
            let name = file.file_name().expect("a file name").len();
            assert!(name <= 255, "{mode}: {file:?}");
            assert!(
                interface_holds(&read_capture(file), "test/lo", OVER_LO),
                "{mode}: {file:?}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A directory that cannot be used warns and falls back to one of the
/// user's own in the temporary directory; the passing test passes.
#[test]
fn an_unusable_directory_warns_and_falls_back() {
    for mode in MODES {
        let temp = fresh_dir("fallback", mode);
        let report = run_fixtures(
            "fixture::passes_after_traffic",
            &["--ignored", "--exact", "--nocapture"],
            &[
                ("NETNS_TEST_MODE", mode),
                ("NETNS_TEST_CAPTURE", "all"),
                ("NETNS_TEST_CAPTURE_DIR", "/proc/netns-test-nowhere"),
                ("TMPDIR", text(&temp)),
            ],
        );
        assert_eq!(
            report.status("fixture::passes_after_traffic"),
            "ok",
            "{mode}:\n{}",
            report.output
        );
        assert!(
            report.output.contains(
                "netns-test: warning: packet captures cannot go to /proc/netns-test-nowhere/capture"
            ),
            "{mode}:\n{}",
            report.output
        );
        let files = files_under(&temp);
        assert_eq!(files.len(), 1, "{mode}: {files:?}");
        assert!(
            files[0].ends_with("capture/fixture.passes_after_traffic.pcapng"),
            "{mode}: {files:?}"
        );
        assert_private(&files[0], &temp);
        let _ = std::fs::remove_dir_all(&temp);
    }
}

/// `file` is `0600`, and each directory from `top` down to it `0700`.
fn assert_private(file: &Path, top: &Path) {
    let mode = |path: &Path| std::fs::metadata(path).expect("stat").mode() & 0o777;
    assert_eq!(mode(file), 0o600, "{file:?}");
    for dir in file.ancestors().skip(1) {
        if dir == top {
            break;
        }
        assert_eq!(mode(dir), 0o700, "{dir:?}");
    }
}

/// Links planted at the names a capture uses are replaced, not followed:
/// the file they point to is untouched.
#[test]
fn a_planted_link_is_not_followed() {
    for mode in MODES {
        let dir = fresh_dir("links", mode);
        let victim = dir.join("victim");
        std::fs::write(&victim, b"precious").expect("write the victim");
        let binary = dir.join("capture");
        std::fs::create_dir(&binary).expect("mkdir");
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        for name in [
            "fixture.passes_after_traffic.pcapng.partial",
            "fixture.passes_after_traffic.pcapng",
        ] {
            std::os::unix::fs::symlink(&victim, binary.join(name)).expect("plant a link");
        }
        let report = run_capturing("passes_after_traffic", mode, "all", &dir, &[]);
        assert!(report.success, "{mode}:\n{}", report.output);
        assert_eq!(std::fs::read(&victim).expect("the victim"), b"precious");
        let kept = binary.join("fixture.passes_after_traffic.pcapng");
        assert!(
            std::fs::symlink_metadata(&kept).expect("kept").is_file(),
            "{mode}: the link was not replaced"
        );
        assert!(interface_holds(&read_capture(&kept), "test/lo", OVER_LO));
        assert_private(&kept, &dir);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Another user's directory, in a directory all may write to, is never
/// written to: root warns, and falls back. Needs root, to act as uid
/// 65534 with `setpriv`.
#[test]
fn another_users_directory_is_not_used() {
    if !is_root() {
        return;
    }
    for mode in MODES {
        let shared = fresh_dir("shared", mode);
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        let victim = shared.join("victim");
        std::fs::write(&victim, b"precious").expect("write the victim");
        let theirs = shared.join("capture");
        let as_nobody = |args: &[&str]| {
            let status = Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .args(args)
                .status()
                .expect("run setpriv");
            assert!(status.success(), "{args:?}");
        };
        as_nobody(&["mkdir", "-m", "0700", text(&theirs)]);
        as_nobody(&[
            "ln",
            "-s",
            text(&victim),
            text(&theirs.join("fixture.passes_after_traffic.pcapng.partial")),
        ]);
        let temp = fresh_dir("shared-fallback", mode);
        let report = run_fixtures(
            "fixture::passes_after_traffic",
            &["--ignored", "--exact", "--nocapture"],
            &[
                ("NETNS_TEST_MODE", mode),
                ("NETNS_TEST_CAPTURE", "all"),
                ("NETNS_TEST_CAPTURE_DIR", text(&shared)),
                ("TMPDIR", text(&temp)),
            ],
        );
        assert!(report.success, "{mode}:\n{}", report.output);
        // Root refuses it as another user's; in a user namespace (helper
        // mode), root may not even open it.
        let refused = format!(
            "netns-test: warning: packet captures cannot go to {} (",
            theirs.display()
        );
        assert!(
            report.output.contains(&refused),
            "{mode}:\n{}",
            report.output
        );
        assert_eq!(std::fs::read(&victim).expect("the victim"), b"precious");
        assert_eq!(files_under(&temp).len(), 1, "{mode}: the fallback is used");
        let _ = std::fs::remove_dir_all(&shared);
        let _ = std::fs::remove_dir_all(&temp);
    }
}

/// A relative capture directory is the one the test binary started in,
/// whatever the body does to its working directory.
#[test]
fn a_body_that_changes_directory_keeps_its_capture() {
    for mode in MODES {
        let dir = fresh_dir("cwd", mode);
        let cd = format!("cd '{}' && exec \"$0\" \"$@\"", text(&dir));
        let report = run_fixtures_under(
            &["sh", "-c", &cd],
            "fixture::changes_directory_and_fails",
            &["--ignored", "--exact"],
            &[
                ("NETNS_TEST_MODE", mode),
                ("NETNS_TEST_CAPTURE", "failed"),
                ("NETNS_TEST_CAPTURE_DIR", "relative"),
            ],
        );
        let output = report.failure_output("fixture::changes_directory_and_fails");
        let path = reported_capture(output);
        assert!(
            path.starts_with(dir.join("relative")),
            "{mode}: {path:?}:\n{output}"
        );
        let interfaces = read_capture(&path);
        assert!(
            interfaces
                .iter()
                .any(|(_, packets)| holds(packets, OVER_LO)),
            "{mode}: {interfaces:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A process that ends before any packet leaves no capture to point at:
/// the report says there were none. Thread mode is left out: there, a
/// crash ends the test binary itself.
#[test]
fn a_crash_before_any_packet_says_there_were_none() {
    for mode in ["helper", "process"] {
        let dir = fresh_dir("crash", mode);
        let report = run_capturing("crashes_at_once", mode, "failed", &dir, &[]);
        let output = report.failure_output("fixture::crashes_at_once");
        assert!(
            output.contains(
                "netns-test: no packets were captured before the process that ran it ended"
            ),
            "{mode}:\n{output}"
        );
        assert!(!output.contains("its packets"), "{mode}:\n{output}");
        assert_eq!(files_under(&dir), Vec::<PathBuf>::new(), "{mode}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// 500 tests with capture on pass under a 256-descriptor limit: the
/// packet sockets of finished tests wait for a bounded pool of closers,
/// not in an unbounded queue.
#[test]
fn descriptors_stay_bounded() {
    for mode in MODES {
        let dir = fresh_dir("descriptors", mode);
        let report = run_fixtures_under(
            &["sh", "-c", "ulimit -n 256 && exec \"$0\" \"$@\""],
            "fixture::many::",
            &["--ignored"],
            &[
                ("NETNS_TEST_MODE", mode),
                ("NETNS_TEST_CAPTURE", "failed"),
                ("NETNS_TEST_CAPTURE_DIR", text(&dir)),
            ],
        );
        let passed = report.status.values().filter(|s| *s == "ok").count();
        assert_eq!(passed, 500, "{mode}:\n{}", report.output);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
