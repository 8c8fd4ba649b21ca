//! The test's seed: every draw netns-test makes for a test (a wire's loss,
//! duplication, jitter and reordering) comes from it, so that a failing
//! test replays exactly with the seed its report prints.
//!
//! The seed is decided once per test, in the test process ([`Plan`]):
//! `NETNS_TEST_SEED` if set, else the attribute's `seed = N`, else a random
//! one. Where the body runs, it is planted for the test's namespace and for
//! each namespace the test makes: the body's thread, and any thread in one
//! of those namespaces (an async runtime's workers, a thread of
//! `NetNs::run`), read it.
//!
//! [`Plan`]: crate::plan::Plan

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::netns::NsKey;

/// A test's seed, and whether anything drew from it.
#[derive(Debug, Clone)]
struct Entry {
    seed: u64,
    used: Arc<AtomicBool>,
}

impl Entry {
    fn read(&self) -> u64 {
        self.used.store(true, Ordering::Relaxed);
        self.seed
    }
}

thread_local! {
    /// The seed of the test whose body this thread runs, or was started by.
    static CURRENT: RefCell<Option<Entry>> = const { RefCell::new(None) };
}

/// The seeds of the tests running in this process, by their namespaces.
static RUNNING: Mutex<Vec<(NsKey, Entry)>> = Mutex::new(Vec::new());

/// The seed of this test: every draw netns-test makes for it comes from
/// it (see [`Wire`](crate::Wire)).
///
/// Set it with `#[netns_test(seed = 7)]`, or with `NETNS_TEST_SEED=7`,
/// which wins, to replay a failure whose report printed seed 7; it is
/// random otherwise. Outside a test, a seed random for the process.
///
/// ```
/// let seed = netns_test_runtime::seed();
/// assert_eq!(seed, netns_test_runtime::seed());
/// ```
pub fn seed() -> u64 {
    current()
}

/// The seed of the test the calling thread works for.
pub(crate) fn current() -> u64 {
    if let Some(entry) = CURRENT.with(|current| current.borrow().clone()) {
        return entry.read();
    }
    let running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
    if !running.is_empty() {
        if let Ok(here) = NsKey::of_this_thread() {
            if let Some((_, entry)) = running.iter().find(|(key, _)| !key.differs_from(here)) {
                return entry.read();
            }
        }
    }
    drop(running);
    static PROCESS: OnceLock<u64> = OnceLock::new();
    *PROCESS.get_or_init(random)
}

/// A seed planted for a test's namespace; removed when dropped.
#[derive(Debug)]
pub(crate) struct Planted {
    entry: Entry,
}

impl Planted {
    /// Plants `seed` for the test whose namespace is `key`, and on the
    /// calling thread (its body's).
    pub(crate) fn plant(key: NsKey, seed: u64) -> Planted {
        let entry = Entry {
            seed,
            used: Arc::new(AtomicBool::new(false)),
        };
        CURRENT.with(|current| *current.borrow_mut() = Some(entry.clone()));
        RUNNING
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((key, entry.clone()));
        Planted { entry }
    }

    /// Plants the seed for `key` too: a namespace the test made.
    pub(crate) fn add(&self, key: NsKey) {
        RUNNING
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((key, self.entry.clone()));
    }

    /// The seed, where anything drew from it (a wire was made, or
    /// [`seed`] was called).
    pub(crate) fn used(&self) -> Option<u64> {
        self.entry
            .used
            .load(Ordering::Relaxed)
            .then_some(self.entry.seed)
    }
}

impl Drop for Planted {
    fn drop(&mut self) {
        let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
        running.retain(|(_, entry)| !Arc::ptr_eq(&entry.used, &self.entry.used));
    }
}

/// A random seed, from the kernel (getrandom(2)).
pub(crate) fn random() -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom(2) writes at most `bytes.len()` bytes into `bytes`.
    let got = unsafe { nix::libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if got == 8 {
        return u64::from_ne_bytes(bytes);
    }
    // Where getrandom fails (before Linux 3.17), the clock will do: a
    // seed need not be secret, only different from run to run.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)
}
