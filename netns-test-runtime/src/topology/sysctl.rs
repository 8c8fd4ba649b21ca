//! `net.*` sysctls of a [`NetNs`], read and written through procfs.

use crate::error::Error;
use crate::netns::NetNs;

impl NetNs {
    /// Reads a sysctl under `net.*` in this namespace, e.g.
    /// `net.ipv4.ip_forward`, without its trailing newline. As in sysctl(8),
    /// a `/` stands for a `.` in an interface name:
    /// `net.ipv4.conf.eth0/100.forwarding`.
    ///
    /// The file is opened on a thread inside the namespace: the files under
    /// `/proc/sys/net` (like `/proc/self/net`) show the namespace of the
    /// thread that opens them, not of the path.
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::NetNs;
    ///
    /// let ns = NetNs::new()?;
    /// // A fresh namespace forwards nothing, whatever the host does.
    /// assert_eq!(ns.sysctl("net.ipv4.ip_forward")?, "0");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::BadSysctl`] for a name outside `net.*`; [`Error::Sysctl`]
    /// when the file cannot be read.
    pub fn sysctl(&self, name: &str) -> Result<String, Error> {
        let path = sysctl_path(name)?;
        self.run(|| std::fs::read_to_string(&path))?
            .map(|value| value.trim_end_matches('\n').to_owned())
            .map_err(|source| Error::Sysctl {
                step: format!("read {name}"),
                source,
            })
    }

    /// Writes a sysctl under `net.*` in this namespace, e.g.
    /// `ns.set_sysctl("net.ipv4.ip_forward", "1")`. See [`NetNs::sysctl`].
    ///
    /// ```
    /// # fn main() -> Result<(), netns_test_runtime::Error> {
    /// # if !netns_test_runtime::diagnose().thread_mode() { return Ok(()); } // needs CAP_SYS_ADMIN
    /// use netns_test_runtime::NetNs;
    ///
    /// let ns = NetNs::new()?;
    /// ns.set_sysctl("net.ipv4.ip_forward", "1")?;
    /// assert_eq!(ns.sysctl("net.ipv4.ip_forward")?, "1");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::BadSysctl`]; [`Error::Sysctl`] when the kernel refuses the value.
    pub fn set_sysctl(&self, name: &str, value: &str) -> Result<(), Error> {
        let path = sysctl_path(name)?;
        self.run(|| std::fs::write(&path, value))?
            .map_err(|source| Error::Sysctl {
                step: format!("write {name} = {value}"),
                source,
            })
    }
}

/// The file of a `net.*` sysctl. As in sysctl(8), a `/` in a name stands for
/// a `.` in the file's path, for interface names such as `eth0.100`:
/// `net.ipv4.conf.eth0/100.forwarding`.
fn sysctl_path(name: &str) -> Result<String, Error> {
    let parts: Vec<String> = name.split('.').map(|part| part.replace('/', ".")).collect();
    let plain = parts.iter().all(|part| {
        !part.is_empty()
            && part != "."
            && part != ".."
            && part
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'))
    });
    if parts.first().map(String::as_str) != Some("net") || parts.len() < 2 || !plain {
        return Err(Error::BadSysctl {
            name: name.to_owned(),
        });
    }
    Ok(format!("/proc/sys/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_names() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward").unwrap(),
            "/proc/sys/net/ipv4/ip_forward"
        );
        assert_eq!(
            sysctl_path("net.ipv6.conf.veth-a0.forwarding").unwrap(),
            "/proc/sys/net/ipv6/conf/veth-a0/forwarding"
        );
        assert_eq!(
            sysctl_path("net.ipv4.conf.eth0/100.forwarding").unwrap(),
            "/proc/sys/net/ipv4/conf/eth0.100/forwarding"
        );
        for bad in [
            "net.ipv4.conf.//.x",
            "net./.x",
            "kernel.hostname",
            "net",
            "net..x",
            "net.ipv4/../../x",
            "net.a b",
            "vm.swappiness",
        ] {
            assert!(
                matches!(sysctl_path(bad), Err(Error::BadSysctl { .. })),
                "{bad}"
            );
        }
    }
}
