//! `#[netns_test(sysfs)]`: `/sys/class/net` and `/proc/net` show the test's
//! namespace, in every mode, and the host's mounts do not change.

use netns_test_runtime::{NetNs, netns_test};

fn sys_class_net() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .expect("list /sys/class/net")
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// The interfaces `/proc/net/dev` lists: `/proc/net` is `/proc/self/net`,
/// the main thread's.
fn proc_net_dev() -> Vec<String> {
    let dev = std::fs::read_to_string("/proc/net/dev").expect("read /proc/net/dev");
    let mut names: Vec<String> = dev
        .lines()
        .skip(2)
        .filter_map(|line| Some(line.split_once(':')?.0.trim().to_owned()))
        .collect();
    names.sort();
    names
}

#[netns_test(sysfs)]
fn proc_net_shows_the_tests_namespace(ns: &NetNs) {
    assert_eq!(proc_net_dev(), ["lo"]);
    ns.add_veth("p0", ns, "p1").unwrap();
    assert_eq!(proc_net_dev(), ["lo", "p0", "p1"]);
    let listener = std::net::TcpListener::bind("127.0.0.1:4242").unwrap();
    let tcp = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    assert!(
        tcp.contains(":1092 "),
        "the test's listener on port 4242:\n{tcp}"
    );
    drop(listener);
}

#[netns_test(sysfs)]
fn lists_the_tests_links(ns: &NetNs) {
    assert_eq!(sys_class_net(), ["lo"]);
    ns.add_veth("s0", ns, "s1").unwrap();
    ns.set_mtu("s0", 1400).unwrap();
    assert_eq!(sys_class_net(), ["lo", "s0", "s1"]);
    let mtu = std::fs::read_to_string("/sys/class/net/s0/mtu").unwrap();
    assert_eq!(mtu.trim(), "1400");
}

#[netns_test(sysfs, threads = 2)]
async fn async_tests_take_it_too() {
    assert_eq!(sys_class_net(), ["lo"]);
}

#[test]
fn the_hosts_mounts_do_not_change() {
    let mounts = || std::fs::read_to_string("/proc/thread-self/mountinfo").expect("read mountinfo");
    let (before, host_links) = (mounts(), sys_class_net());
    lists_the_tests_links();
    assert_eq!(mounts(), before);
    assert_eq!(sys_class_net(), host_links);
    assert!(!host_links.contains(&"s0".to_owned()));
}
