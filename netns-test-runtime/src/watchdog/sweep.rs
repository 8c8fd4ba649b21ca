//! Finding and killing the processes of network namespaces, async-signal-safe:
//! system calls on fixed buffers, for the watchdog (a forked process that
//! never execs), the signal handlers and the sentinel.

use std::os::fd::RawFd;

use nix::libc;

/// The decimal digits of `n`, right-aligned, and how many there are.
fn decimal(mut n: u32) -> ([u8; 10], usize) {
    let mut digits = [0u8; 10];
    let mut count = 0;
    loop {
        digits[9 - count] = b'0' + (n % 10) as u8;
        count += 1;
        n /= 10;
        if n == 0 {
            return (digits, count);
        }
    }
}

pub(super) fn close(fd: RawFd) {
    if fd >= 0 {
        // SAFETY: `fd` is a descriptor the watchdog received and owns.
        unsafe { libc::close(fd) };
    }
}

/// The inode of the namespace `fd` is of: a namespace's own file, or a
/// socket made in it (through `SIOCGSKNS`).
pub(super) fn namespace_of(fd: RawFd) -> Option<u64> {
    // SAFETY: a zeroed stat is valid; fstat(2) fills it.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `stat` is valid for writes.
    if unsafe { libc::fstat(fd, &raw mut stat) } != 0 {
        return None;
    }
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Some(stat.st_ino);
    }
    /// `SIOCGSKNS` (`linux/sockios.h`).
    const SIOCGSKNS: libc::c_ulong = 0x894C;
    // SAFETY: SIOCGSKNS takes no argument and returns a new descriptor.
    let ns = unsafe { libc::ioctl(fd, SIOCGSKNS as _) };
    if ns < 0 {
        return None;
    }
    // SAFETY: as above, for the namespace's descriptor.
    let found = unsafe { libc::fstat(ns, &raw mut stat) } == 0;
    close(ns);
    found.then_some(stat.st_ino)
}

/// Kills every process whose network namespace is one of `inodes`; returns
/// how many it found.
pub(super) fn kill_in(inodes: &[u64]) -> usize {
    // SAFETY: open(2) on a NUL-terminated path.
    let proc = unsafe {
        libc::open(
            c"/proc".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if proc < 0 {
        return 0;
    }
    let mut killed = 0;
    let mut entries = [0u8; 8192];
    loop {
        // SAFETY: getdents64(2) fills at most `entries.len()` bytes.
        let length = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                proc,
                entries.as_mut_ptr(),
                entries.len(),
            )
        };
        if length <= 0 {
            break;
        }
        let mut at = 0;
        while at + 19 < length as usize {
            // struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2),
            // d_type (1), then the NUL-terminated name.
            let record = usize::from(u16::from_ne_bytes([entries[at + 16], entries[at + 17]]));
            if record == 0 {
                break;
            }
            let name = &entries[at + 19..(at + record).min(length as usize)];
            if let Some(pid) = pid_of(name) {
                if namespace_of_process(pid).is_some_and(|ns| inodes.contains(&ns)) {
                    // SAFETY: kill(2) with a pid and a signal.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    killed += 1;
                }
            }
            at += record;
        }
    }
    close(proc);
    killed
}

/// The pid a `/proc` entry's NUL-terminated name is, if it is one.
fn pid_of(name: &[u8]) -> Option<i32> {
    let mut pid: i32 = 0;
    let mut digits = 0;
    for &byte in name.iter().take_while(|&&byte| byte != 0) {
        if !byte.is_ascii_digit() {
            return None;
        }
        pid = pid.checked_mul(10)?.checked_add(i32::from(byte - b'0'))?;
        digits += 1;
    }
    (digits > 0).then_some(pid)
}

/// The inode of process `pid`'s network namespace, from the text of its
/// `/proc/<pid>/ns/net` link, `net:[<inode>]`.
fn namespace_of_process(pid: i32) -> Option<u64> {
    let mut path = [0u8; 40];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        path[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(b"/proc/");
    let (digits, length) = decimal(pid.unsigned_abs());
    put(&digits[10 - length..]);
    put(b"/ns/net\0");
    let mut link = [0u8; 32];
    // SAFETY: `path` is NUL-terminated; readlink(2) writes at most
    // `link.len()` bytes.
    let length =
        unsafe { libc::readlink(path.as_ptr().cast(), link.as_mut_ptr().cast(), link.len()) };
    let text = link.get(..usize::try_from(length).ok()?)?;
    let inode = text.strip_prefix(b"net:[")?.strip_suffix(b"]")?;
    let mut value: u64 = 0;
    for &byte in inode {
        if !byte.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(byte - b'0'))?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_names_and_links() {
        assert_eq!(pid_of(b"1234\0rest"), Some(1234));
        assert_eq!(pid_of(b"self\0"), None);
        assert_eq!(pid_of(b"\0"), None);
        let here = crate::procfs::netns_of_process(std::process::id() as i32);
        assert_eq!(namespace_of_process(std::process::id() as i32), here);
    }
}
