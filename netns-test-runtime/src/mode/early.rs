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
use std::sync::OnceLock;

use nix::sched::CloneFlags;

use crate::fault::{self, Fault};
use crate::mode::Requested;
use crate::mode::select;
use crate::mode::wire::{CHILD_MARKER, HELPER_MARKER};
use crate::test::TESTS;
use crate::userns::UsernsSetup;

// SAFETY: the constructor runs before `main`, while the process has one
// thread; it reads files and the environment (no other thread can change
// it yet) and makes system calls, and relies on nothing that `main` sets up.
#[ctor::ctor(unsafe)]
fn enter_a_user_namespace_for_one_test() {
    crate::watchdog::note_main_thread();
    // Left alone, for the reason given, the process chooses its mode as usual.
    let _left_alone: Result<(), &str> = decide_and_enter();
}

/// Enters the user namespace where it should; otherwise says why not.
fn decide_and_enter() -> Result<(), &'static str> {
    if !matches!(select::requested(), Ok(Requested::Auto)) {
        return Err("NETNS_TEST_MODE forces a mode, or is not understood");
    }
    if std::env::var_os(CHILD_MARKER).is_some() || std::env::var_os(HELPER_MARKER).is_some() {
        return Err("a child or helper of netns-test");
    }
    let Some(name) = the_one_test() else {
        return Err("not one test by --exact name");
    };
    // Exactly one: a `#[netns_test]` in a `const _` block shares the path,
    // and so the name, of the test libtest runs, which may be a plain one.
    if TESTS.iter().filter(|test| test.name() == name).count() != 1 {
        return Err("its name is not that of exactly one #[netns_test]");
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

/// Whether this process runs exactly one test, by `--exact` name, as
/// cargo-nextest runs each test.
pub(crate) fn runs_one_test() -> bool {
    static ONE: OnceLock<bool> = OnceLock::new();
    *ONE.get_or_init(|| the_one_test().is_some())
}

/// The libtest options that take a value in the next word, unless it is
/// attached (`--skip=NAME`).
const VALUED: [&[u8]; 7] = [
    b"--skip",
    b"--test-threads",
    b"--logfile",
    b"--color",
    b"--format",
    b"--shuffle-seed",
    b"-Z",
];

/// The name of the one test this process runs, from its arguments.
fn the_one_test() -> Option<String> {
    let cmdline = std::fs::read("/proc/self/cmdline").ok()?;
    let mut args: Vec<&[u8]> = cmdline.split(|&byte| byte == 0).skip(1).collect();
    if args.last().is_some_and(|last| last.is_empty()) {
        args.pop();
    }
    one_test(&args)
}

/// The one test that libtest, given `args`, runs, where it runs exactly one
/// by name: `--exact` and a single filter, read as libtest reads them, where
/// an option that takes a value (`--skip NAME`) takes the next word, a
/// filter that `--skip` also names runs nothing, and `--list` or `--help`
/// run no test.
fn one_test(args: &[&[u8]]) -> Option<String> {
    let mut exact = false;
    let mut filters = Vec::new();
    let mut skipped = Vec::new();
    let mut words = args.iter().copied();
    while let Some(word) = words.next() {
        match word {
            b"--" => filters.extend(words.by_ref()),
            b"--exact" => exact = true,
            b"--list" | b"--help" | b"-h" | b"--bench" => return None,
            b"--skip" => skipped.push(words.next()?),
            valued if VALUED.contains(&valued) => {
                words.next()?;
            }
            [b'-', ..] => {
                if let Some(name) = word.strip_prefix(b"--skip=") {
                    skipped.push(name);
                }
            }
            filter => filters.push(filter),
        }
    }
    match (exact, filters.as_slice()) {
        (true, [name]) if !skipped.contains(name) => String::from_utf8(name.to_vec()).ok(),
        _ => None,
    }
}

/// Whether this process holds CAP_SYS_ADMIN, from `/proc/self/status`.
pub(crate) fn has_cap_sys_admin() -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn one(args: &str) -> Option<String> {
        let words: Vec<&[u8]> = args.split_whitespace().map(str::as_bytes).collect();
        one_test(&words)
    }

    /// Read as libtest reads its arguments: an option's value is no filter.
    #[test]
    fn one_test_by_exact_name() {
        assert_eq!(one("a::t --exact").as_deref(), Some("a::t"));
        assert_eq!(
            one("--exact --test-threads 1 a::t").as_deref(),
            Some("a::t")
        );
        assert_eq!(one("--exact a::t --skip b::u").as_deref(), Some("a::t"));
        assert_eq!(one("--exact -- a::t").as_deref(), Some("a::t"));
        assert_eq!(one("--exact --skip a::t"), None);
        assert_eq!(one("--exact --skip=a::t"), None);
        assert_eq!(one("--exact a::t --skip a::t"), None);
        assert_eq!(one("--exact a::t --skip=a::t"), None);
        assert_eq!(one("a::t"), None);
        assert_eq!(one("--exact a::t b::u"), None);
        assert_eq!(one("--exact a::t --list"), None);
        assert_eq!(one("--exact --format json a::t").as_deref(), Some("a::t"));
        assert_eq!(one("--exact a::t --skip"), None);
    }
}
