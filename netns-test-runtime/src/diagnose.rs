//! Why a machine refuses network namespaces, and what to do about it: the
//! probes of each mode, and the causes found when they fail.

use std::fmt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::thread;

use nix::errno::Errno;
use nix::libc;
use nix::sched::{CloneFlags, unshare};

use crate::mode::Requested;
use crate::userns::UsernsSetup;

/// What this machine supports, and the causes found for what it does not.
///
/// [`diagnose`] probes thread mode and the user namespaces that helper and
/// process modes need; a test that cannot run shows the same report in its
/// failure message.
///
/// # Example
///
/// ```
/// let diagnosis = netns_test_runtime::diagnose();
/// if !diagnosis.thread_mode() && !diagnosis.process_mode() {
///     eprintln!("{diagnosis}");
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Diagnosis {
    requested: Requested,
    thread: Option<Result<(), Errno>>,
    process: Option<Result<(), Errno>>,
    causes: Vec<Cause>,
}

/// Probes thread mode, and the user namespaces that helper and process
/// modes need, as the `doctor` example does.
pub fn diagnose() -> Diagnosis {
    Diagnosis::gather(Requested::Auto, Some(probe_thread()), Some(probe_process()))
}

/// Whether this process may unshare CLONE_NEWNET: tried on a throwaway thread.
pub(crate) fn probe_thread() -> Result<(), Errno> {
    thread::Builder::new()
        .name("netns-test-probe".into())
        .spawn(|| unshare(CloneFlags::CLONE_NEWNET))
        .map_err(|error| Errno::from_raw(error.raw_os_error().unwrap_or(libc::EAGAIN)))?
        .join()
        .unwrap_or(Err(Errno::EINVAL))
}

/// Whether a child of this process can enter a new user and network
/// namespace, as helper and process modes need: a fork that sets up the
/// namespaces and then stops short of exec.
pub(crate) fn probe_process() -> Result<(), Errno> {
    /// Returned by the probe's `pre_exec` once the namespaces are set up, so
    /// that the child exits instead of running anything.
    const SET_UP: i32 = libc::ECANCELED;
    let setup = UsernsSetup::for_current_user();
    let mut command = Command::new("/proc/self/exe");
    // SAFETY: the closure is async-signal-safe: `UsernsSetup::enter` only
    // makes system calls on buffers prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            setup.enter()?;
            Err(std::io::Error::from_raw_os_error(SET_UP))
        });
    }
    match command.spawn() {
        Err(error) if error.raw_os_error() == Some(SET_UP) => Ok(()),
        Err(error) => Err(Errno::from_raw(
            error.raw_os_error().unwrap_or(libc::EINVAL),
        )),
        Ok(mut child) => {
            // Cannot happen: the pre_exec hook never lets exec run.
            let _ = child.kill();
            let _ = child.wait();
            Err(Errno::EINVAL)
        }
    }
}

impl Diagnosis {
    pub(crate) fn gather(
        requested: Requested,
        thread: Option<Result<(), Errno>>,
        process: Option<Result<(), Errno>>,
    ) -> Self {
        let causes = Cause::find(
            Path::new("/proc"),
            thread.is_some_and(|probe| probe.is_err()),
            process.is_some_and(|probe| probe.is_err()),
        );
        Diagnosis {
            requested,
            thread,
            process,
            causes,
        }
    }

    /// Whether thread mode works: this process may unshare CLONE_NEWNET.
    pub fn thread_mode(&self) -> bool {
        matches!(self.thread, Some(Ok(())))
    }

    /// Whether helper and process modes work: a child may enter a new user
    /// and network namespace.
    pub fn process_mode(&self) -> bool {
        matches!(self.process, Some(Ok(())))
    }

    /// The causes found for each mode that does not work.
    pub fn causes(&self) -> &[Cause] {
        &self.causes
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let usable = self.thread_mode() || self.process_mode();
        match self.requested {
            Requested::Forced(mode) if !usable => write!(
                f,
                "NETNS_TEST_MODE={mode} was requested, but that mode does not work here"
            )?,
            Requested::ProcessAttribute if !usable => f.write_str(
                "#[netns_test(process)] asks for a process of the test's own, but process mode does not work here",
            )?,
            _ if !usable => f.write_str(
                "cannot create a network namespace here: no mode works (thread, helper or process)",
            )?,
            _ => f.write_str("network namespaces can be created here")?,
        }
        let mut line = |name: &str, probe: Option<Result<(), Errno>>, step: &str| match probe {
            None => Ok(()),
            Some(Ok(())) => write!(f, "\n  {name}: works"),
            Some(Err(errno)) => write!(f, "\n  {name}: {step} failed: {errno}"),
        };
        line(
            "thread mode (needs CAP_SYS_ADMIN)",
            self.thread,
            "unshare(CLONE_NEWNET)",
        )?;
        line(
            "helper and process modes (need user namespaces)",
            self.process,
            "entering a new user and network namespace",
        )?;
        if !self.causes.is_empty() {
            f.write_str("\ncauses found, with their remedies:")?;
            for cause in &self.causes {
                write!(f, "\n  - {cause}\n    fix: {}", cause.remedy())?;
            }
        } else if !usable {
            f.write_str("\nno known cause was found; the errors above are all netns-test knows")?;
        }
        if !usable {
            f.write_str("\nto let such tests pass as skipped instead of failing, set NETNS_TEST_UNAVAILABLE=skip")?;
        }
        Ok(())
    }
}

/// One reason a mode does not work, each with a remedy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// The process lacks CAP_SYS_ADMIN, which thread mode needs.
    NoCapSysAdmin,
    /// `user.max_user_namespaces` is 0.
    MaxUserNamespacesZero,
    /// Debian's and older Ubuntu's `kernel.unprivileged_userns_clone` is 0.
    UnprivilegedUsernsCloneOff,
    /// AppArmor's `kernel.apparmor_restrict_unprivileged_userns` is 1
    /// (Ubuntu 23.10 and later): unshare succeeds, then the map writes fail.
    AppArmorRestrictsUserns,
    /// A seccomp filter is active, such as Docker's default profile, which
    /// refuses `unshare` and `clone` with namespace flags.
    Seccomp,
    /// The kernel was built without user namespaces (`CONFIG_USER_NS`).
    NoUserNamespaces,
    /// `/proc` is not mounted, or masked, so netns-test can neither find the
    /// causes nor make namespaces: it needs `/proc/self/status`,
    /// `/proc/self/ns` and the `uid_map` files.
    ProcUnreadable,
}

impl Cause {
    /// Finds the causes under `proc` (normally `/proc`), for the modes that failed.
    pub(crate) fn find(proc: &Path, thread_failed: bool, process_failed: bool) -> Vec<Cause> {
        let read = |path: &str| std::fs::read_to_string(proc.join(path)).ok();
        let number = |path: &str| read(path).and_then(|text| text.trim().parse::<u64>().ok());
        let status = read("self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let mut causes = Vec::new();
        if (thread_failed || process_failed) && read("self/status").is_none() {
            // Nothing else can be told, and nothing would be true.
            causes.push(Cause::ProcUnreadable);
            return causes;
        }
        if thread_failed {
            /// CAP_SYS_ADMIN's bit in the capability sets (`linux/capability.h`).
            const CAP_SYS_ADMIN: u32 = 21;
            let effective = field("CapEff").and_then(|hex| u64::from_str_radix(hex, 16).ok());
            if effective.is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) == 0) {
                causes.push(Cause::NoCapSysAdmin);
            }
        }
        if process_failed {
            if !proc.join("self/ns/user").exists() {
                causes.push(Cause::NoUserNamespaces);
            }
            if number("sys/user/max_user_namespaces") == Some(0) {
                causes.push(Cause::MaxUserNamespacesZero);
            }
            if number("sys/kernel/unprivileged_userns_clone") == Some(0) {
                causes.push(Cause::UnprivilegedUsernsCloneOff);
            }
            if number("sys/kernel/apparmor_restrict_unprivileged_userns") == Some(1) {
                causes.push(Cause::AppArmorRestrictsUserns);
            }
        }
        // Seccomp mode 2 is a filter; it can refuse either mode's calls.
        if (thread_failed || process_failed) && field("Seccomp") == Some("2") {
            causes.push(Cause::Seccomp);
        }
        causes
    }

    /// What to do about it.
    pub fn remedy(&self) -> &'static str {
        match self {
            Cause::NoCapSysAdmin => {
                "run the tests as root, or in a container with CAP_SYS_ADMIN; without it, helper mode is used, which needs user namespaces"
            }
            Cause::MaxUserNamespacesZero => {
                "allow user namespaces: `sudo sysctl -w user.max_user_namespaces=15000`"
            }
            Cause::UnprivilegedUsernsCloneOff => {
                "allow unprivileged user namespaces: `sudo sysctl -w kernel.unprivileged_userns_clone=1`"
            }
            Cause::AppArmorRestrictsUserns => {
                "`sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`, or an AppArmor profile for the test binary that allows `userns`"
            }
            Cause::Seccomp => {
                "run the container without the filter (`docker run --security-opt seccomp=unconfined`), or with a profile that allows unshare, clone and setns"
            }
            Cause::NoUserNamespaces => {
                "use a kernel built with CONFIG_USER_NS=y, or run the tests as root for thread mode"
            }
            Cause::ProcUnreadable => {
                "mount /proc (`mount -t proc proc /proc`), or run the container without masking it (e.g. without `--security-opt systempaths=...` masks over /proc)"
            }
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cause::NoCapSysAdmin => "this process lacks CAP_SYS_ADMIN, which thread mode needs",
            Cause::MaxUserNamespacesZero => "user.max_user_namespaces is 0, so no user namespace can be created",
            Cause::UnprivilegedUsernsCloneOff => {
                "kernel.unprivileged_userns_clone is 0, so unprivileged users cannot create user namespaces"
            }
            Cause::AppArmorRestrictsUserns => {
                "kernel.apparmor_restrict_unprivileged_userns is 1, so AppArmor denies unprivileged user namespaces their capabilities"
            }
            Cause::Seccomp => "a seccomp filter is active (Docker's default profile refuses namespace calls)",
            Cause::NoUserNamespaces => "this kernel has no user namespaces",
            Cause::ProcUnreadable => "/proc/self/status cannot be read: /proc is not mounted, or is masked",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lays out a fake `/proc` with the given files.
    fn fake_proc(files: &[(&str, &str)]) -> std::path::PathBuf {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("netns-test-proc-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (path, text) in files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("create dirs");
            std::fs::write(path, text).expect("write file");
        }
        root
    }

    #[test]
    fn finds_every_cause_when_everything_refuses() {
        let proc = fake_proc(&[
            (
                "self/status",
                "Name:\tx\nCapEff:\t0000000000000000\nSeccomp:\t2\n",
            ),
            ("sys/user/max_user_namespaces", "0\n"),
            ("sys/kernel/unprivileged_userns_clone", "0\n"),
            ("sys/kernel/apparmor_restrict_unprivileged_userns", "1\n"),
        ]);
        let causes = Cause::find(&proc, true, true);
        assert_eq!(
            causes,
            [
                Cause::NoCapSysAdmin,
                Cause::NoUserNamespaces,
                Cause::MaxUserNamespacesZero,
                Cause::UnprivilegedUsernsCloneOff,
                Cause::AppArmorRestrictsUserns,
                Cause::Seccomp,
            ]
        );
        std::fs::remove_dir_all(proc).expect("clean up");
    }

    #[test]
    fn finds_nothing_on_a_permissive_machine() {
        let proc = fake_proc(&[
            ("self/status", "CapEff:\t000001ffffffffff\nSeccomp:\t0\n"),
            ("self/ns/user", ""),
            ("sys/user/max_user_namespaces", "63000\n"),
            ("sys/kernel/apparmor_restrict_unprivileged_userns", "0\n"),
        ]);
        assert_eq!(Cause::find(&proc, true, true), []);
        assert_eq!(Cause::find(&proc, false, false), []);
        std::fs::remove_dir_all(proc).expect("clean up");
    }

    /// Without a readable `/proc`, nothing is blamed on the kernel.
    #[test]
    fn a_masked_proc_is_said_to_be_masked() {
        let proc = fake_proc(&[("sys/user/max_user_namespaces", "0\n")]);
        assert_eq!(Cause::find(&proc, true, true), [Cause::ProcUnreadable]);
        assert_eq!(Cause::find(&proc, false, false), []);
        std::fs::remove_dir_all(proc).expect("clean up");
    }

    #[test]
    fn a_mode_that_works_is_not_diagnosed() {
        let proc = fake_proc(&[("self/status", "CapEff:\t0\nSeccomp:\t2\n")]);
        assert_eq!(Cause::find(&proc, false, false), []);
        assert_eq!(
            Cause::find(&proc, true, false),
            [Cause::NoCapSysAdmin, Cause::Seccomp]
        );
        std::fs::remove_dir_all(proc).expect("clean up");
    }
}
