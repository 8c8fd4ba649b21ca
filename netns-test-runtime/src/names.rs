//! Names: the view of `/etc` that a network's hosts see, in which
//! `/etc/hosts` lists every host of the network, `/etc/resolv.conf` names
//! no DNS server that could make a lookup wait, and `/etc/nsswitch.conf`
//! looks names up in those files.
//!
//! The view is a mount namespace, made at the first use of a network's
//! names (a thread or a command started in one of its hosts), since making
//! one costs a good part of a network namespace. The files are bound over
//! the host machine's from a tmpfs of the view's own, in a
//! mount namespace whose mounts receive none of its own back from the host
//! (`MS_SLAVE`), so nothing is written to, or left on, the host machine.
//! The view ends when the last thread, process or handle in it does.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::thread;

use nix::errno::Errno;
use nix::libc;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use crate::error::Error;

/// The calling thread's mount namespace, as `/proc` names it.
const THREAD_MNTNS: &str = "/proc/thread-self/ns/mnt";

/// A network's names, and the mount namespace that shows them, once made.
#[derive(Debug)]
pub(crate) struct Names {
    /// `/etc/hosts`.
    hosts: String,
    /// `/etc/resolv.conf`.
    resolv: String,
    /// What `/etc/nsswitch.conf`'s `hosts:` line says.
    sources: &'static str,
    view: OnceLock<Result<View, (&'static str, Errno)>>,
}

/// A mount namespace that shows a network's names.
#[derive(Debug)]
struct View {
    fd: OwnedFd,
    inode: u64,
}

/// Where a thread was before it entered a view, to go back.
#[derive(Debug)]
pub(crate) struct Before {
    mnt: OwnedFd,
    cwd: Option<PathBuf>,
}

impl Names {
    /// The names of `hosts` (each name with its addresses): every lookup
    /// of another name fails at once, unless `nameserver` is given, to
    /// which the names the hosts file does not hold go.
    pub(crate) fn new(
        hosts: &[(&str, Vec<std::net::IpAddr>)],
        nameserver: Option<std::net::IpAddr>,
    ) -> Names {
        let mut file = String::from(
            "# The names of a netns-test network.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        );
        for (name, addresses) in hosts {
            for address in addresses {
                file.push_str(&format!("{address}\t{name}\n"));
            }
        }
        // Nothing listens on a host's port 53 unless a test runs a server
        // there: a lookup that reaches this is refused at once.
        let (resolv, sources) = match nameserver {
            Some(server) => (
                format!("# A netns-test network's DNS server.\nnameserver {server}\n"),
                "files dns",
            ),
            None => (
                "# A netns-test network names its hosts in /etc/hosts, and has no DNS server.\nnameserver 127.0.0.1\noptions attempts:1\n".to_owned(),
                "files",
            ),
        };
        Names {
            hosts: file,
            resolv,
            sources,
            view: OnceLock::new(),
        }
    }

    /// The view, made at its first use.
    fn view(&self) -> Result<&View, Error> {
        let made = self.view.get_or_init(|| {
            thread::scope(|scope| {
                thread::Builder::new()
                    .name("netns-test-names".into())
                    .spawn_scoped(scope, || self.make_view())
                    .map_err(|error| {
                        let errno = error.raw_os_error().map_or(Errno::EAGAIN, Errno::from_raw);
                        (
                            "start a thread to make the view of a network's names",
                            errno,
                        )
                    })?
                    .join()
                    .unwrap_or_else(|payload| std::panic::resume_unwind(payload))
            })
        });
        made.as_ref()
            .map_err(|&(step, source)| Error::Names { step, source })
    }

    /// On a thread of its own, which ends after: a mount namespace with
    /// the names bound over `/etc`'s files.
    fn make_view(&self) -> Result<View, (&'static str, Errno)> {
        // CLONE_NEWNS unshares the thread's root and working directory too.
        unshare(CloneFlags::CLONE_NEWNS).map_err(|errno| {
            (
                "make a mount namespace for a network's names (unshare(CLONE_NEWNS))",
                errno,
            )
        })?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_SLAVE,
            None::<&str>,
        )
        .map_err(|errno| {
            (
                "keep a network's names off the host's mounts (MS_SLAVE)",
                errno,
            )
        })?;
        // The files are written on a tmpfs mounted over /tmp for the
        // while, in the view only: bound over /etc's, they outlive its
        // unmounting, and end with the view.
        mount(
            Some("tmpfs"),
            SCRATCH,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("size=1m,mode=0755"),
        )
        .map_err(|errno| {
            (
                "mount a tmpfs over /tmp, in the view only, to write a network's names on",
                errno,
            )
        })?;
        self.bind_files()?;
        umount2(SCRATCH, MntFlags::MNT_DETACH)
            .map_err(|errno| ("unmount the view's tmpfs from /tmp", errno))?;
        let file = std::fs::File::open(THREAD_MNTNS).map_err(|error| {
            (
                "open the mount namespace of a network's names",
                errno_of(&error),
            )
        })?;
        let inode = file
            .metadata()
            .map_err(|error| {
                (
                    "read the mount namespace of a network's names",
                    errno_of(&error),
                )
            })?
            .ino();
        Ok(View {
            fd: file.into(),
            inode,
        })
    }

    /// Binds the view's files over `/etc`'s.
    fn bind_files(&self) -> Result<(), (&'static str, Errno)> {
        bind_text(Path::new("/etc/hosts"), &self.hosts).map_err(|errno| {
            (
                "bind a network's names over /etc/hosts (it must exist)",
                errno,
            )
        })?;
        bind_text(Path::new("/etc/resolv.conf"), &self.resolv)
            .or_else(absent_is_fine)
            .map_err(|errno| ("bind a network's /etc/resolv.conf over the host's", errno))?;
        if let Ok(switch) = std::fs::read_to_string("/etc/nsswitch.conf") {
            bind_text(
                Path::new("/etc/nsswitch.conf"),
                &with_sources(&switch, self.sources),
            )
            .map_err(|errno| ("bind a network's /etc/nsswitch.conf over the host's", errno))?;
        }
        // A name service cache would answer from the host's files.
        bind_text(Path::new("/var/run/nscd/socket"), "")
            .or_else(absent_is_fine)
            .map_err(|errno| {
                (
                    "hide the host's name service cache (nscd) from a network",
                    errno,
                )
            })?;
        Ok(())
    }

    /// Moves the calling thread into the view, unless it is there: its
    /// file system state (root, working directory) becomes its own, and
    /// its working directory stays the same path.
    ///
    /// # Errors
    ///
    /// [`Error::Names`] when the view cannot be made or entered.
    pub(crate) fn enter(&self) -> Result<(), Error> {
        let view = self.view()?;
        if in_view(view)? {
            return Ok(());
        }
        let cwd = std::env::current_dir().ok();
        unshare(CloneFlags::CLONE_FS).map_err(failed(
            "give the thread a root and working directory of its own (unshare(CLONE_FS))",
        ))?;
        setns(&view.fd, CloneFlags::CLONE_NEWNS).map_err(failed(
            "enter the mount namespace of a network's names (setns)",
        ))?;
        stay_in(cwd.as_deref());
        Ok(())
    }

    /// Moves the calling thread into the view, as [`Names::enter`] does,
    /// and returns the way back: a copy of the mount namespace it was in,
    /// made for it, since a thread in a user namespace may not enter its
    /// parent's again.
    ///
    /// # Errors
    ///
    /// [`Error::Names`] when the view cannot be made or entered.
    pub(crate) fn enter_for_a_while(&self) -> Result<Option<Before>, Error> {
        let view = self.view()?;
        if in_view(view)? {
            return Ok(None);
        }
        let cwd = std::env::current_dir().ok();
        // CLONE_NEWNS unshares the thread's root and working directory too.
        unshare(CloneFlags::CLONE_NEWNS).map_err(failed(
            "give the thread a mount namespace to come back to (unshare(CLONE_NEWNS))",
        ))?;
        let home = std::fs::File::open(THREAD_MNTNS).map_err(|error| Error::Names {
            step: "open the thread's mount namespace",
            source: errno_of(&error),
        })?;
        setns(&view.fd, CloneFlags::CLONE_NEWNS).map_err(failed(
            "enter the mount namespace of a network's names (setns)",
        ))?;
        stay_in(cwd.as_deref());
        Ok(Some(Before {
            mnt: home.into(),
            cwd,
        }))
    }

    /// The view's mount namespace, for a child to enter between `fork`
    /// and `exec` ([`enter_in_child`]).
    pub(crate) fn view_fd(&self) -> Result<BorrowedFd<'_>, Error> {
        Ok(self.view()?.fd.as_fd())
    }
}

impl Before {
    /// Moves the thread back where it was.
    pub(crate) fn restore(self) -> Result<(), Error> {
        setns(&self.mnt, CloneFlags::CLONE_NEWNS).map_err(|source| Error::Names {
            step: "move the thread back to its mount namespace (setns)",
            source,
        })?;
        stay_in(self.cwd.as_deref());
        Ok(())
    }
}

/// Whether the calling thread is in `view`.
fn in_view(view: &View) -> Result<bool, Error> {
    let here = std::fs::metadata(THREAD_MNTNS).map_err(|error| Error::Names {
        step: "read the calling thread's mount namespace",
        source: errno_of(&error),
    })?;
    Ok(here.ino() == view.inode)
}

fn failed(step: &'static str) -> impl Fn(Errno) -> Error {
    move |source| Error::Names { step, source }
}

/// Entering a mount namespace moves the thread to its root: back to the
/// same path, which the view shows too.
fn stay_in(cwd: Option<&Path>) {
    if let Some(cwd) = cwd {
        let _ = std::env::set_current_dir(cwd);
    }
}

/// In a child between `fork` and `exec`, which shares no file system
/// state with another: enters network namespace `net` and, if given, mount
/// namespace `mnt`, staying in the same working directory.
/// Async-signal-safe: system calls only, no allocation.
pub(crate) fn enter_in_child(net: BorrowedFd<'_>, mnt: Option<BorrowedFd<'_>>) -> io::Result<()> {
    setns(net, CloneFlags::CLONE_NEWNET)?;
    let Some(mnt) = mnt else {
        return Ok(());
    };
    let mut cwd = [0u8; libc::PATH_MAX as usize];
    // SAFETY: getcwd(3) writes at most `cwd.len()` bytes, NUL included.
    let known = !unsafe { libc::getcwd(cwd.as_mut_ptr().cast(), cwd.len()) }.is_null();
    setns(mnt, CloneFlags::CLONE_NEWNS)?;
    if known {
        // SAFETY: `cwd` holds the NUL-terminated path getcwd(3) wrote.
        unsafe { libc::chdir(cwd.as_ptr().cast()) };
    }
    Ok(())
}

/// `switch` with its `hosts:` line saying `sources`, or one added.
fn with_sources(switch: &str, sources: &str) -> String {
    let mut out = String::new();
    let mut said = false;
    for line in switch.lines() {
        if line.trim_start().starts_with("hosts:") {
            if !said {
                out.push_str(&format!("hosts: {sources}\n"));
                said = true;
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !said {
        out.push_str(&format!("hosts: {sources}\n"));
    }
    out
}

/// Where the view's files are written.
const SCRATCH: &str = "/tmp";

/// Binds a file holding `text`, written on the scratch tmpfs, over
/// `path`.
fn bind_text(path: &Path, text: &str) -> Result<(), Errno> {
    let name = path.file_name().unwrap_or(path.as_os_str());
    let written = Path::new(SCRATCH).join(name);
    std::fs::write(&written, text).map_err(|error| errno_of(&error))?;
    mount(
        Some(&written),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
}

fn absent_is_fine(errno: Errno) -> Result<(), Errno> {
    match errno {
        Errno::ENOENT => Ok(()),
        errno => Err(errno),
    }
}

fn errno_of(error: &io::Error) -> Errno {
    error.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_line_is_replaced_once_or_added() {
        let switch = "passwd: files\nhosts:   files mdns4_minimal [NOTFOUND=return] dns\nhosts: dns\nnetworks: files\n";
        assert_eq!(
            with_sources(switch, "files"),
            "passwd: files\nhosts: files\nnetworks: files\n"
        );
        assert_eq!(
            with_sources("passwd: files", "files dns"),
            "passwd: files\nhosts: files dns\n"
        );
    }

    #[test]
    fn every_address_of_every_host_is_listed() {
        let names = Names::new(
            &[(
                "alice",
                vec!["10.0.1.2".parse().unwrap(), "fd00:0:1::2".parse().unwrap()],
            )],
            None,
        );
        assert!(names.hosts.contains("10.0.1.2\talice\n"), "{}", names.hosts);
        assert!(
            names.hosts.contains("fd00:0:1::2\talice\n"),
            "{}",
            names.hosts
        );
        assert!(names.hosts.contains("127.0.0.1\tlocalhost\n"));
        assert_eq!(names.sources, "files");
        assert!(names.resolv.contains("nameserver 127.0.0.1\n"));
    }
}
