//! `#[netns_test(sysfs)]`: `/sys/class/net` lists the test's links, and the
//! host's mounts do not change.

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
