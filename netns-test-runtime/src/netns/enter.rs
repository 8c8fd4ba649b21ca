//! Entering a namespace for a while: [`NetNs::enter`] and its guard.

use std::marker::PhantomData;

use super::NetNs;
use crate::error::Error;
use crate::names::Before;

/// Entering.
impl NetNs {
    /// Moves the calling thread into this namespace until the guard is dropped.
    ///
    /// The guard restores the thread's previous namespace when dropped, during
    /// unwinding too. It cannot be sent to another thread, since it restores
    /// the thread that created it. Guards nest: drop them in reverse order.
    ///
    /// ```compile_fail
    /// let ns = netns_test_runtime::NetNs::current().unwrap();
    /// let guard = ns.enter().unwrap();
    /// std::thread::spawn(move || drop(guard)); // the guard is !Send
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Proc`] if the current namespace cannot be opened,
    /// [`Error::Setns`] or [`Error::Names`].
    pub fn enter(&self) -> Result<EnterGuard<'_>, Error> {
        let previous = NetNs::current()?;
        self.join_here()?;
        let before = match &self.names {
            Some(names) => names
                .enter_for_a_while()
                .inspect_err(|_| restore(&previous))?,
            None => None,
        };
        Ok(EnterGuard {
            previous,
            before,
            _entered: PhantomData,
        })
    }
}

/// Returned by [`NetNs::enter`]: moves the thread back when dropped.
#[derive(Debug)]
#[must_use = "the thread moves back as soon as the guard is dropped"]
pub struct EnterGuard<'ns> {
    previous: NetNs,
    /// Where the thread was in the file system, if it moved there.
    before: Option<Before>,
    /// Ties the guard to the namespace and to the thread (`*const ()` is `!Send`).
    _entered: PhantomData<(&'ns NetNs, *const ())>,
}

impl Drop for EnterGuard<'_> {
    fn drop(&mut self) {
        if let Some(before) = self.before.take()
            && let Err(error) = before.restore()
        {
            eprintln!("netns-test: cannot restore the thread's mount namespace: {error}");
            std::process::abort();
        }
        restore(&self.previous);
    }
}

/// Moves the calling thread back into `previous`.
fn restore(previous: &NetNs) {
    if let Err(error) = previous.join_here() {
        // Leaving the thread in the wrong namespace would let later code
        // touch a network it does not expect; stopping is the safe choice.
        eprintln!("netns-test: cannot restore the thread's network namespace: {error}");
        std::process::abort();
    }
}
