//! Before `main`: thread mode for a rootless process that runs one test.
//!
//! cargo-nextest runs every test in a process of its own, as
//! `<binary> <name> --exact ...`. Without CAP_SYS_ADMIN, such a process
//! would start a helper (a fork and exec of the test binary) for its one
//! test. Instead, a constructor that runs before `main`, while the process
//! still has one thread, moves it into a new user namespace, mapped to root
//! as a helper's is: there it holds CAP_SYS_ADMIN, and its test runs in
//! thread mode, in-process.
//!
//! Only where all of these hold: the process runs exactly one test, by
//! `--exact` name; that test is a `#[netns_test]`; thread mode is not
//! available; `NETNS_TEST_MODE` forces no mode; the process is no child or
//! helper of netns-test; it has one thread; and the kernel allows the user
//! namespace. Anywhere else nothing changes: a plain `#[test]`, or a
//! process that runs several tests, sees exactly the uid, capabilities and
//! namespaces it always did, and the mode is chosen as usual.

use std::os::unix::fs::MetadataExt;

use nix::sched::CloneFlags;

use crate::fault::{self, Fault};
use crate::mode::wire::{CHILD_MARKER, HELPER_MARKER};
use crate::test::TESTS;
use crate::userns::UsernsSetup;

#[ctor::ctor(unsafe)]
fn enter_a_user_namespace_for_one_test() {
    // Left alone, for the reason given, the process chooses its mode as usual.
    let _left_alone: Result<(), &str> = decide_and_enter();
}

/// Enters the user namespace where it should; otherwise says why not.
fn decide_and_enter() -> Result<(), &'static str> {
    match std::env::var("NETNS_TEST_MODE").as_deref() {
        Err(std::env::VarError::NotPresent) | Ok("" | "auto") => {}
        _ => return Err("NETNS_TEST_MODE forces a mode"),
    }
    if std::env::var_os(CHILD_MARKER).is_some() || std::env::var_os(HELPER_MARKER).is_some() {
        return Err("a child or helper of netns-test");
    }
    let Some(name) = the_one_test() else {
        return Err("not one test by --exact name");
    };
    if !TESTS.iter().any(|test| test.name() == name) {
        return Err("its test is no #[netns_test]");
    }
    if has_cap_sys_admin() {
        return Err("thread mode works already");
    }
    let single = std::fs::metadata("/proc/self/task").is_ok_and(|task| task.nlink() == 3);
    if !single || fault::injected(Fault::EarlyThreads) {
        return Err("the process has more than one thread");
    }
    match UsernsSetup::for_current_user().enter_user_namespace(CloneFlags::empty()) {
        Ok(()) => Ok(()),
        Err(_) => Err("the user namespace was refused"),
    }
}

/// The name of the one test this process runs: libtest's arguments hold
/// `--exact` and exactly one word that is no option (any option that takes
/// a value, as `--skip NAME` does, makes two).
fn the_one_test() -> Option<String> {
    let cmdline = std::fs::read("/proc/self/cmdline").ok()?;
    let mut words = cmdline
        .split(|&byte| byte == 0)
        .skip(1)
        .filter(|word| !word.is_empty());
    let mut exact = false;
    let mut names = Vec::new();
    for word in words.by_ref() {
        match word {
            b"--exact" => exact = true,
            [b'-', ..] => {}
            name => names.push(name),
        }
    }
    match (exact, names.as_slice()) {
        (true, [name]) => String::from_utf8(name.to_vec()).ok(),
        _ => None,
    }
}

/// Whether this process holds CAP_SYS_ADMIN, from `/proc/self/status`.
fn has_cap_sys_admin() -> bool {
    /// CAP_SYS_ADMIN's bit in the capability sets (`linux/capability.h`).
    const CAP_SYS_ADMIN: u32 = 21;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let hex = status
                .lines()
                .find_map(|line| line.strip_prefix("CapEff:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0)
}
