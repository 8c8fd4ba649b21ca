//! Where capture files go, and how they are made so that nothing else can
//! be overwritten or read through them.
//!
//! The directory is the plan's (absolute, decided in the test process),
//! opened once per process, before any body runs: a body that changes the
//! working directory changes nothing here. Files are only ever made inside a
//! directory of the running user's own, made `0700` and checked to belong
//! to that user and to be writable by no one else, opened without following
//! a symbolic link; every file is made there with `O_CREAT | O_EXCL |
//! O_NOFOLLOW`, mode `0600`, under an unpredictable temporary name, and
//! renamed into place. A directory that cannot be used is warned about,
//! once, and replaced by one in the system's temporary directory.

use std::ffi::OsStr;
use std::fs::File;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, open, openat, renameat};
use nix::sys::stat::{FileStat, Mode, fstat, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, geteuid, unlinkat};

use crate::error::{CaptureDirProblem, Error};

/// The longest file name most Linux file systems take (`NAME_MAX`).
const NAME_MAX: usize = 255;
/// What a partial file's name adds to the kept file's: `.<16 hex>.partial`.
const PARTIAL_SUFFIX: usize = 1 + 16 + ".partial".len();
/// What a kept file's name adds to its stem.
const EXTENSION: &str = ".pcapng";

/// A directory that takes capture files: the running user's, writable by
/// no one else.
#[derive(Debug)]
pub(crate) struct Dir {
    /// Its absolute path, for reports.
    path: PathBuf,
    fd: OwnedFd,
}

/// The capture directory of this process, or why there is none.
struct Resolved {
    dir: Result<Dir, (PathBuf, CaptureDirProblem)>,
    /// What to tell the user, once.
    warning: Option<String>,
}

static RESOLVED: OnceLock<Resolved> = OnceLock::new();

/// The capture directory of this process: the one for this binary in
/// `asked`, the plan's, or the fallback; resolved on the first call (every
/// plan of a process has the same).
pub(crate) fn dir(asked: &Path) -> Result<&'static Dir, Error> {
    RESOLVED
        .get_or_init(|| resolve(asked))
        .dir
        .as_ref()
        .map_err(|(dir, problem)| Error::CaptureDir {
            dir: dir.clone(),
            problem: *problem,
        })
}

/// Says, once per process, on the stderr of the body that calls it, that
/// the capture directory asked for cannot be used, if so: past libtest's
/// capture in thread mode, and into the test's output in the other modes,
/// where the body's stderr goes there.
pub(crate) fn warn_once() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    let warning = RESOLVED
        .get()
        .and_then(|resolved| resolved.warning.as_ref());
    if let Some(warning) = warning {
        if !WARNED.swap(true, Ordering::Relaxed) {
            let _ = writeln!(io::stderr(), "{warning}");
        }
    }
}

fn resolve(asked: &Path) -> Resolved {
    let binary = binary_name(&std::env::current_exe().unwrap_or_default());
    let first = match asked_dir(asked, &binary) {
        Ok(dir) => {
            return Resolved {
                dir: Ok(dir),
                warning: None,
            };
        }
        Err(problem) => (asked.join(&binary), problem),
    };
    let fallback = fallback_dir(&binary);
    let instead = match &fallback {
        Ok(dir) => format!("they go to {} instead", dir.path.display()),
        Err((dir, problem)) => format!("nor to {} ({problem}): no capture is kept", dir.display()),
    };
    let warning = format!(
        "netns-test: warning: packet captures cannot go to {} ({}); {instead}; set NETNS_TEST_CAPTURE_DIR to a directory that belongs to you and that no one else may write",
        first.0.display(),
        first.1,
    );
    Resolved {
        dir: fallback,
        warning: Some(warning),
    }
}

/// `<asked>/<binary>`, `asked` made as needed.
fn asked_dir(asked: &Path, binary: &str) -> Result<Dir, CaptureDirProblem> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(asked)
        .map_err(|error| io_problem("create the capture directory", &error))?;
    // The directory asked for may be a symbolic link: it is the user's
    // choice. What netns-test makes in it is not followed.
    let base = open_dir(asked, "open the capture directory")?;
    let fd = private_subdir(&base, OsStr::new(binary))?;
    Ok(Dir {
        path: asked.join(binary),
        fd,
    })
}

/// `<temporary directory>/netns-test-captures-<uid>/<binary>`.
fn fallback_dir(binary: &str) -> Result<Dir, (PathBuf, CaptureDirProblem)> {
    let temp = std::env::temp_dir();
    let user = format!("netns-test-captures-{}", geteuid().as_raw());
    let path = temp.join(&user).join(binary);
    let made = || {
        let temp_fd = open_dir(&temp, "open the temporary directory")?;
        let user_fd = private_subdir(&temp_fd, OsStr::new(&user))?;
        private_subdir(&user_fd, OsStr::new(binary))
    };
    match made() {
        Ok(fd) => Ok(Dir { path, fd }),
        Err(problem) => Err((path, problem)),
    }
}

/// Opens the directory at `path`, following links.
fn open_dir(path: &Path, step: &'static str) -> Result<OwnedFd, CaptureDirProblem> {
    open(
        path,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|source| CaptureDirProblem::Io { step, source })
}

/// Makes `name` in `parent` (`0700`) unless it is there, and opens it
/// without following a link; it must belong to the running user, and no
/// one else may write to it.
fn private_subdir(parent: &OwnedFd, name: &OsStr) -> Result<OwnedFd, CaptureDirProblem> {
    match mkdirat(parent, name, Mode::S_IRWXU) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(source) => {
            return Err(CaptureDirProblem::Io {
                step: "create the capture directory",
                source,
            });
        }
    }
    let fd = openat(
        parent,
        name,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|source| CaptureDirProblem::Io {
        step: "open the capture directory (not following a link)",
        source,
    })?;
    let stat = fstat(&fd).map_err(|source| CaptureDirProblem::Io {
        step: "inspect the capture directory",
        source,
    })?;
    check_private(&stat)?;
    Ok(fd)
}

/// Whether a directory is the running user's alone.
fn check_private(stat: &FileStat) -> Result<(), CaptureDirProblem> {
    let user = geteuid().as_raw();
    let mode = stat.st_mode & 0o7777;
    if stat.st_uid != user {
        return Err(CaptureDirProblem::NotOwned {
            owner: stat.st_uid,
            user,
        });
    }
    if mode & 0o022 != 0 {
        return Err(CaptureDirProblem::WritableByOthers { mode });
    }
    if mode & 0o300 != 0o300 {
        return Err(CaptureDirProblem::NotWritable { mode });
    }
    Ok(())
}

fn io_problem(step: &'static str, error: &io::Error) -> CaptureDirProblem {
    CaptureDirProblem::Io {
        step,
        source: error.raw_os_error().map_or(Errno::EIO, Errno::from_raw),
    }
}

impl Dir {
    /// The absolute path of the file `name` here.
    pub(crate) fn path_of(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Makes a new, empty file for `stem` to be written until it is kept:
    /// `<stem>.pcapng.<16 random hex digits>.partial`, mode `0600`. Any
    /// partial file an earlier run of the same test left is removed first.
    pub(crate) fn create_partial(&self, stem: &str) -> Result<(File, String), Error> {
        for stale in self.partials_of(stem) {
            self.remove(&stale);
        }
        let mut attempts = 0;
        loop {
            let name = format!("{stem}{EXTENSION}.{:016x}.partial", unpredictable());
            let created = openat(
                &self.fd,
                name.as_str(),
                OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_WRONLY
                    | OFlag::O_CLOEXEC,
                Mode::S_IRUSR | Mode::S_IWUSR,
            );
            match created {
                Ok(fd) => return Ok((File::from(fd), name)),
                Err(Errno::EEXIST) if attempts < 8 => attempts += 1,
                Err(errno) => {
                    return Err(Error::Capture {
                        step: "create the capture file",
                        source: errno.into(),
                    });
                }
            }
        }
    }

    /// Renames the partial file `partial` to `name`, replacing what has
    /// that name (a link there is replaced, not followed).
    pub(crate) fn keep(&self, partial: &str, name: &str) -> Result<PathBuf, Error> {
        renameat(&self.fd, partial, &self.fd, name).map_err(|errno| Error::Capture {
            step: "keep the capture file",
            source: errno.into(),
        })?;
        Ok(self.path_of(name))
    }

    /// Removes the file `name`, if it is there.
    pub(crate) fn remove(&self, name: &str) {
        let _ = unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir);
    }

    /// The partial files of `stem` here, newest first.
    pub(crate) fn partials_of(&self, stem: &str) -> Vec<String> {
        let prefix = format!("{stem}{EXTENSION}.");
        let listing = std::fs::read_dir(format!("/proc/self/fd/{}", self.fd.as_raw_fd()));
        let mut found: Vec<(i64, String)> = listing
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let random = name.strip_prefix(&prefix)?.strip_suffix(".partial")?;
                (random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit()))
                    .then_some(name)
            })
            .map(|name| {
                let modified = fstatat(&self.fd, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_or(0, |stat| stat.st_mtime * 1_000_000_000 + stat.st_mtime_nsec);
                (modified, name)
            })
            .collect();
        found.sort_by(|a, b| b.cmp(a));
        found.into_iter().map(|(_, name)| name).collect()
    }

    /// How many packets the pcapng file `name` here holds, up to its first
    /// block cut short.
    pub(crate) fn packets_in(&self, name: &str) -> Result<u64, Error> {
        let failed = |source: io::Error| Error::Capture {
            step: "read a capture left by a process that ended",
            source,
        };
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| failed(errno.into()))?;
        count_packets(File::from(fd)).map_err(failed)
    }
}

/// The enhanced packet blocks of a pcapng file, whose first block (the
/// section header) gives its byte order; a block cut short ends the count.
fn count_packets(file: File) -> io::Result<u64> {
    const SECTION_HEADER: u32 = 0x0A0D_0D0A;
    const ENHANCED_PACKET: u32 = 6;
    const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
    let size = file.metadata()?.len();
    let mut file = BufReader::new(file);
    let mut little_endian = true;
    let (mut at, mut packets) = (0u64, 0u64);
    let mut header = [0u8; 12];
    while at + 12 <= size {
        file.read_exact(&mut header)?;
        let word = |bytes: &[u8], little: bool| {
            let bytes = [bytes[0], bytes[1], bytes[2], bytes[3]];
            match little {
                true => u32::from_le_bytes(bytes),
                false => u32::from_be_bytes(bytes),
            }
        };
        if word(&header[..4], true) == SECTION_HEADER {
            little_endian = word(&header[8..], true) == BYTE_ORDER_MAGIC;
        }
        let kind = word(&header[..4], little_endian);
        let length = u64::from(word(&header[4..8], little_endian));
        if length < 12 || at + length > size {
            break;
        }
        if kind == ENHANCED_PACKET {
            packets += 1;
        }
        at += length;
        file.seek(SeekFrom::Start(at))?;
    }
    Ok(packets)
}

/// A number no other user can guess: the standard library's hasher keys
/// are drawn from the system's random source.
fn unpredictable() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// The name under which the test `name` is kept, without the extension:
/// `::` becomes `.`; a name too long for a file is cut, and a hash of the
/// whole name keeps it apart from others cut the same.
pub(crate) fn stem_of(name: &str) -> String {
    const MAX_STEM: usize = NAME_MAX - EXTENSION.len() - PARTIAL_SUFFIX;
    let stem = name.replace("::", ".").replace('/', "_");
    if stem.len() <= MAX_STEM {
        return stem;
    }
    let mut cut = MAX_STEM - 17;
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{:016x}", &stem[..cut], fnv1a(stem.as_bytes()))
}

/// FNV-1a, 64 bits: stable across builds and Rust versions, unlike the
/// standard library's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The name of the directory for the test binary `exe`: cargo's
/// `<name>-<16 hex digits>` without the hash.
fn binary_name(exe: &Path) -> String {
    let binary = exe
        .file_name()
        .map(|file| String::from_utf8_lossy(file.as_bytes()).into_owned())
        .unwrap_or_else(|| "netns-test".into());
    match binary.rsplit_once('-') {
        Some((stem, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            stem.to_owned()
        }
        _ => binary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_after_the_binary_and_the_test() {
        let exe = Path::new("/src/target/debug/deps/topology-0123456789abcdef");
        assert_eq!(binary_name(exe), "topology");
        assert_eq!(binary_name(Path::new("/x/bin/my-tool")), "my-tool");
        assert_eq!(stem_of("fixture::fails"), "fixture.fails");
    }

    #[test]
    fn long_names_are_cut_and_kept_apart() {
        let long = |last: &str| format!("fixture::{}::{last}", "é".repeat(200));
        let (a, b) = (stem_of(&long("a")), stem_of(&long("b")));
        assert_ne!(a, b);
        for stem in [&a, &b] {
            assert!(
                stem.len() + EXTENSION.len() + PARTIAL_SUFFIX <= NAME_MAX,
                "{stem}"
            );
        }
        assert_eq!(stem_of(&long("a")), a, "the same name, the same file");
    }

    #[test]
    fn packets_are_counted_up_to_a_block_cut_short() {
        let dir = std::env::temp_dir().join(format!("netns-test-count-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("count.pcapng");
        let mut bytes = Vec::new();
        // A section header (28 bytes), an interface (20), two packets (32
        // each, empty), and a third cut short.
        let block = |kind: u32, length: u32, body: &[u8]| {
            let mut block = Vec::new();
            block.extend(kind.to_le_bytes());
            block.extend(length.to_le_bytes());
            block.extend(body);
            block.resize(length as usize - 4, 0);
            block.extend(length.to_le_bytes());
            block
        };
        bytes.extend(block(0x0A0D_0D0A, 28, &0x1A2B_3C4Du32.to_le_bytes()));
        bytes.extend(block(1, 20, &[]));
        bytes.extend(block(6, 32, &[]));
        bytes.extend(block(6, 32, &[]));
        bytes.extend(&block(6, 32, &[])[..20]);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(count_packets(File::open(&path).unwrap()).unwrap(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
