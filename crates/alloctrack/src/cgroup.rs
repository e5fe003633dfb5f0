//! The memory limit and use of the cgroup the process runs in: what a container's memory limit
//! really is, as opposed to the machine's memory.
//!
//! # Implementation details
//!
//! `/proc/self/cgroup` names the process's cgroup: a `0::<path>` line under cgroup v2, a line
//! whose controllers include `memory` under v1. The controller's files are looked up under the
//! usual mount points (`/sys/fs/cgroup` for v2, `/sys/fs/cgroup/memory` for v1) at that path,
//! then at the mount point itself, which is where a container with its own cgroup namespace sees
//! its cgroup (its path then reads `/`).
//!
//! Use is the *working set*, as the kubelet computes it for evictions: the cgroup's usage
//! (`memory.current`, v1 `memory.usage_in_bytes`) minus its inactive file cache
//! (`inactive_file`, v1 `total_inactive_file`, in `memory.stat`), which the kernel reclaims
//! before it would kill anything. The limit is `memory.max` (`max`: none), v1
//! `memory.limit_in_bytes` (a value near `i64::MAX`: none).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Which cgroup hierarchy the memory controller is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// The legacy per-controller hierarchies.
    V1,
    /// The unified hierarchy.
    V2,
}

/// The memory controller of a cgroup: its limit and working set. [`Cgroup::detect`] finds the
/// process's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    dir: PathBuf,
    version: CgroupVersion,
}

/// v1 reports "no limit" as the largest page-aligned `i64`; anything this large is no limit.
const V1_UNLIMITED: u64 = 1 << 62;

impl Cgroup {
    /// The memory cgroup of this process, if it runs in one whose files can be read (Linux).
    pub fn detect() -> Option<Cgroup> {
        let table = fs::read_to_string("/proc/self/cgroup").ok()?;
        Self::from_table(&table, Path::new("/sys/fs/cgroup"))
    }

    /// The cgroup whose memory controller files are in `dir`.
    pub fn at(dir: impl Into<PathBuf>, version: CgroupVersion) -> Cgroup {
        Cgroup { dir: dir.into(), version }
    }

    /// The cgroup `table` (the text of `/proc/self/cgroup`) names, under the cgroup mount
    /// `root`.
    pub(crate) fn from_table(table: &str, root: &Path) -> Option<Cgroup> {
        let mut v2 = None;
        for line in table.lines() {
            let mut fields = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) = (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let path = path.trim_start_matches('/');
            if controllers.split(',').any(|c| c == "memory") {
                let mount = root.join("memory");
                return Self::first_with(&[mount.join(path), mount], CgroupVersion::V1, "memory.usage_in_bytes");
            }
            if id == "0" && controllers.is_empty() {
                v2 = Some(path.to_string());
            }
        }
        let path = v2?;
        Self::first_with(&[root.join(path), root.to_path_buf()], CgroupVersion::V2, "memory.current")
    }

    fn first_with(dirs: &[PathBuf], version: CgroupVersion, usage_file: &str) -> Option<Cgroup> {
        dirs.iter().find(|dir| dir.join(usage_file).is_file()).map(|dir| Cgroup::at(dir.clone(), version))
    }

    /// The directory of the controller's files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The hierarchy.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The memory limit in bytes, or `None` if the cgroup has none.
    ///
    /// # Errors
    /// If the limit file cannot be read or parsed.
    pub fn limit(&self) -> io::Result<Option<u64>> {
        match self.version {
            CgroupVersion::V2 => {
                let text = self.read("memory.max")?;
                if text == "max" { Ok(None) } else { parse(&text, "memory.max").map(Some) }
            }
            CgroupVersion::V1 => {
                let limit = parse(&self.read("memory.limit_in_bytes")?, "memory.limit_in_bytes")?;
                Ok((limit < V1_UNLIMITED).then_some(limit))
            }
        }
    }

    /// The working set in bytes: usage minus the inactive file cache (see the module docs).
    ///
    /// # Errors
    /// If the usage or statistics file cannot be read or parsed.
    pub fn working_set(&self) -> io::Result<u64> {
        let (usage_file, inactive_key) = match self.version {
            CgroupVersion::V2 => ("memory.current", "inactive_file"),
            CgroupVersion::V1 => ("memory.usage_in_bytes", "total_inactive_file"),
        };
        let usage = parse(&self.read(usage_file)?, usage_file)?;
        let stat = self.read("memory.stat")?;
        let inactive = stat
            .lines()
            .find_map(|line| line.strip_prefix(inactive_key)?.strip_prefix(' '))
            .map_or(Ok(0), |value| parse(value, "memory.stat"))?;
        Ok(usage.saturating_sub(inactive))
    }

    fn read(&self, file: &str) -> io::Result<String> {
        fs::read_to_string(self.dir.join(file)).map(|text| text.trim().to_string())
    }
}

fn parse(text: &str, file: &str) -> io::Result<u64> {
    text.trim().parse().map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidData, format!("cgroup file {file}: not a byte count: {text:?}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, file: &str, text: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join(file), text).unwrap();
    }

    fn temp_root(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("alloctrack-cgroup-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        root
    }

    #[test]
    fn v2_limit_and_working_set() {
        let root = temp_root("v2");
        let dir = root.join("system.slice/app.service");
        write(&dir, "memory.current", "500000\n");
        write(&dir, "memory.max", "1000000\n");
        write(&dir, "memory.stat", "anon 300000\nfile 200000\ninactive_file 150000\nactive_file 50000\n");
        let cgroup = Cgroup::from_table("0::/system.slice/app.service\n", &root).unwrap();
        assert_eq!(cgroup.version(), CgroupVersion::V2);
        assert_eq!(cgroup.limit().unwrap(), Some(1_000_000));
        assert_eq!(cgroup.working_set().unwrap(), 350_000);
        write(&dir, "memory.max", "max\n");
        assert_eq!(cgroup.limit().unwrap(), None);
        write(&dir, "memory.max", "lots\n");
        let err = cgroup.limit().unwrap_err();
        assert!(err.to_string().contains("memory.max"), "{err}");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_namespaced_container_sees_its_cgroup_at_the_mount_point() {
        let root = temp_root("ns");
        write(&root, "memory.current", "42\n");
        let cgroup = Cgroup::from_table("0::/\n", &root).unwrap();
        assert_eq!(cgroup.dir(), root);
        // Not found at all: no cgroup.
        assert_eq!(Cgroup::from_table("0::/\n", &root.join("absent")), None);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn v1_memory_controller_among_others() {
        let root = temp_root("v1");
        let dir = root.join("memory/docker/abc");
        write(&dir, "memory.usage_in_bytes", "9000\n");
        write(&dir, "memory.limit_in_bytes", "9223372036854771712\n");
        write(&dir, "memory.stat", "cache 10\ninactive_file 99\ntotal_inactive_file 1000\n");
        let table = "12:pids:/docker/abc\n4:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n0::/\n";
        let cgroup = Cgroup::from_table(table, &root).unwrap();
        assert_eq!(cgroup.version(), CgroupVersion::V1);
        assert_eq!(cgroup.limit().unwrap(), None, "v1's 'unlimited' is no limit");
        assert_eq!(cgroup.working_set().unwrap(), 8000, "total_inactive_file, not inactive_file");
        write(&dir, "memory.limit_in_bytes", "4096\n");
        assert_eq!(cgroup.limit().unwrap(), Some(4096));
        fs::remove_dir_all(&root).unwrap();
    }
}
