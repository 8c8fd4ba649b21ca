//! The `NetNs` handle: creating, entering and running in namespaces without
//! ever moving a thread by surprise.

use std::panic::{AssertUnwindSafe, catch_unwind};

use netns_test_runtime::{Errno, Error, NetNs, diagnose, netns_test};
use netns_test_tests::{assert_fresh_namespace, interfaces, netns_inode};

#[netns_test]
fn the_handle_is_the_body_namespace(ns: NetNs) {
    assert_eq!(ns.inode(), netns_inode());
    assert_eq!(NetNs::current().unwrap().inode(), ns.inode());
    assert_fresh_namespace();
}

/// A named namespace is a fresh one, called by its name in `Debug`; a name
/// outside the rules is refused, saying why.
#[netns_test]
fn named_makes_a_fresh_namespace_called_by_its_name() {
    let here = netns_inode();
    let router = NetNs::named("router").expect("a named namespace");
    assert_eq!(netns_inode(), here);
    assert_ne!(router.inode(), here);
    assert_eq!(router.name(), Some("router"));
    assert_eq!(
        format!("{router:?}"),
        format!("NetNs {{ name: \"router\", inode: {} }}", router.inode())
    );
    assert_eq!(
        router.run(interfaces).expect("run in it"),
        ["lo"],
        "a fresh namespace"
    );
    assert_eq!(NetNs::new().expect("a namespace").name(), None);
    for bad in [
        "",
        "a/b",
        "two words",
        "x".repeat(33).as_str(),
        "r\u{e9}seau",
    ] {
        let refused = NetNs::named(bad).expect_err("a bad name");
        assert!(
            matches!(refused, Error::BadName { .. }),
            "{bad:?}: {refused}"
        );
        assert!(
            refused
                .to_string()
                .contains("cannot name a network namespace"),
            "{refused}"
        );
    }
}

#[netns_test]
fn new_makes_a_fresh_namespace_without_moving_the_caller() {
    let here = netns_inode();
    let ns = NetNs::new().expect("create a namespace");
    assert_eq!(netns_inode(), here);
    assert_ne!(ns.inode(), here);
    let (inode, interfaces) = ns.run(|| (netns_inode(), interfaces())).expect("run");
    assert_eq!(inode, ns.inode());
    assert_eq!(interfaces, ["lo"]);
    // `lo` is up there: a socket on 127.0.0.1 works.
    ns.run(|| std::net::TcpListener::bind("127.0.0.1:80").map(drop))
        .expect("run")
        .expect("bind in the new namespace");
    assert_eq!(netns_inode(), here);
}

#[netns_test]
fn run_borrows_returns_and_propagates_panics() {
    let here = netns_inode();
    let ns = NetNs::new().unwrap();
    let mut borrowed = vec![1, 2];
    let sum: i32 = ns
        .run(|| {
            borrowed.push(3);
            borrowed.iter().sum()
        })
        .unwrap();
    assert_eq!((sum, borrowed.len()), (6, 3));
    let payload = catch_unwind(AssertUnwindSafe(|| ns.run(|| panic!("inside run")))).unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"inside run"));
    assert_eq!(netns_inode(), here);
}

#[netns_test]
fn spawned_threads_are_inside() {
    let here = netns_inode();
    let ns = NetNs::new().unwrap();
    let handle = ns.spawn(netns_inode).expect("spawn");
    assert_eq!(handle.join().unwrap(), ns.inode());
    let panicked = ns
        .spawn(|| panic!("inside spawn"))
        .unwrap()
        .join()
        .unwrap_err();
    assert_eq!(panicked.downcast_ref::<&str>(), Some(&"inside spawn"));
    assert_eq!(netns_inode(), here);
}

#[netns_test]
fn enter_moves_the_thread_and_the_guard_moves_it_back() {
    let here = netns_inode();
    let ns = NetNs::new().unwrap();
    {
        let _guard = ns.enter().expect("enter");
        assert_eq!(netns_inode(), ns.inode());
        assert_eq!(interfaces(), ["lo"]);
    }
    assert_eq!(netns_inode(), here);
}

#[netns_test]
fn the_guard_restores_during_unwinding() {
    let here = netns_inode();
    let ns = NetNs::new().unwrap();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let _guard = ns.enter().unwrap();
        assert_eq!(netns_inode(), ns.inode());
        panic!("while entered");
    }));
    assert!(result.is_err());
    assert_eq!(netns_inode(), here);
}

#[netns_test]
fn nested_guards_restore_in_order() {
    let here = netns_inode();
    let (a, b) = (NetNs::new().unwrap(), NetNs::new().unwrap());
    assert_ne!(a.inode(), b.inode());
    let in_a = a.enter().unwrap();
    assert_eq!(netns_inode(), a.inode());
    let in_b = b.enter().unwrap();
    assert_eq!(netns_inode(), b.inode());
    drop(in_b);
    assert_eq!(netns_inode(), a.inode());
    drop(in_a);
    assert_eq!(netns_inode(), here);
}

#[netns_test]
fn as_fd_refers_to_the_namespace() {
    use std::os::fd::{AsFd, AsRawFd};
    let ns = NetNs::new().unwrap();
    let link = std::fs::read_link(format!("/proc/self/fd/{}", ns.as_fd().as_raw_fd())).unwrap();
    assert_eq!(
        link.to_str(),
        Some(format!("net:[{}]", ns.inode()).as_str())
    );
}

/// Outside a test, without CAP_SYS_ADMIN, creating or entering a namespace is
/// a typed error; with it, both work and the harness thread does not move.
#[test]
fn errors_are_typed() {
    let here = netns_inode();
    let privileged = diagnose().thread_mode();
    match NetNs::new() {
        Ok(ns) => {
            assert!(privileged);
            assert_ne!(ns.inode(), here);
        }
        Err(Error::Unshare { source }) => {
            assert!(!privileged);
            assert_eq!(source, Errno::EPERM);
            let message = Error::Unshare { source }.to_string();
            assert!(message.contains("CAP_SYS_ADMIN"), "{message}");
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
    let current = NetNs::current().unwrap();
    match current.enter() {
        Ok(guard) => {
            assert!(privileged);
            drop(guard);
        }
        Err(Error::Setns { inode, .. }) => {
            assert!(!privileged);
            assert_eq!(inode, here);
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
    assert_eq!(netns_inode(), here);
}
