//! What netns-test reads of `/proc`: a process's children, and the network
//! namespace a process or thread is in.

use std::path::Path;

/// The inode of the network namespace that `link` (a `/proc/.../ns/net`
/// link) names, read from the link's text, `net:[<inode>]`: unlike `stat`
/// or `open`, reading the link makes no nsfs inode.
pub(crate) fn netns_of(link: impl AsRef<Path>) -> Option<u64> {
    let text = std::fs::read_link(link).ok()?;
    text.to_str()?
        .strip_prefix("net:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The network namespace of process `pid`.
pub(crate) fn netns_of_process(pid: i32) -> Option<u64> {
    netns_of(format!("/proc/{pid}/ns/net"))
}

/// The network namespace of the calling thread.
pub(crate) fn netns_of_this_thread() -> Option<u64> {
    netns_of("/proc/thread-self/ns/net")
}

/// The children of every thread of process `pid`.
pub(crate) fn children_of(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|listed| {
            listed
                .split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// The inode read from the link's text is the namespace's own.
    #[test]
    fn the_link_names_the_namespace_inode() {
        let stat = std::fs::metadata("/proc/thread-self/ns/net").expect("stat the namespace");
        assert_eq!(netns_of_this_thread(), Some(stat.ino()));
        assert_eq!(
            netns_of_process(std::process::id() as i32),
            Some(stat.ino())
        );
        assert_eq!(netns_of("/proc/thread-self/ns/mnt"), None);
    }
}
