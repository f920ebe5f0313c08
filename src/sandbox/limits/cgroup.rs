//! The server's cgroup: found, created and removed through the cgroup filesystems.
//!
//! Three layouts exist in the field: pure cgroup v2, hybrid (v1 controllers plus a v2 tree with
//! few or none: this machine), and nothing writable (unprivileged, no delegation). The group is
//! always nested under the supervisor's own cgroup, read from /proc/self/cgroup: a group made at
//! a hierarchy's root would escape the limits the session itself runs under.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{CgroupCoverage, CgroupFile, EffectiveLimits, UNLIMITED};

/// Period for the CPU bandwidth quota (the kernel's default, 100 ms).
const CPU_PERIOD_US: u64 = 100_000;
/// How long Drop waits for the killed tree to leave the group before giving up on rmdir.
const RMDIR_PATIENCE: Duration = Duration::from_secs(2);

/// A mounted cgroup hierarchy: v2, or v1 with its controllers.
#[derive(Debug, Clone)]
struct Hierarchy {
    mount: PathBuf,
    /// The mount's root inside the hierarchy (not "/" inside a cgroup namespace's bind mount).
    root: String,
    /// v1 controllers of this mount (empty for v2).
    controllers: Vec<String>,
}

/// The supervisor's own place in each hierarchy.
#[derive(Debug, Default)]
struct SelfCgroups {
    v2: Option<String>,
    /// (controllers, path) for each v1 hierarchy.
    v1: Vec<(Vec<String>, String)>,
}

#[derive(Debug)]
pub(super) struct Group {
    /// Created directories, removed in reverse order on drop.
    dirs: Vec<PathBuf>,
    /// The cgroup v2 directory the server is born in (or joins through cgroup.procs).
    v2_join: Option<PathBuf>,
    /// cgroup v1 directories the server joins by writing `0` to their `tasks`.
    v1_join: Vec<PathBuf>,
    coverage: CgroupCoverage,
    memory_dir: Option<(PathBuf, bool)>,
    pids_dir: Option<PathBuf>,
    /// A v2 directory with cgroup.kill (pure v2, or the v2 tree of a hybrid layout).
    kill_dir: Option<PathBuf>,
    /// A v1 freezer directory when cgroup.kill is unavailable.
    freezer_dir: Option<PathBuf>,
}

impl Group {
    /// Create the group and write `limits` into it. Errors when no controller could be used.
    pub(super) fn create(limits: &EffectiveLimits) -> Result<Self, String> {
        let mounts = read_mounts().map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let own = read_self_cgroups().map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let name = format!("mcp-guard-{}", std::process::id());
        let mut group = Self {
            dirs: Vec::new(),
            v2_join: None,
            v1_join: Vec::new(),
            coverage: CgroupCoverage::default(),
            memory_dir: None,
            pids_dir: None,
            kill_dir: None,
            freezer_dir: None,
        };
        let mut notes = Vec::new();

        // 1. cgroup v2 with the controllers we need delegated to our cgroup.
        let v2_parent = mounts
            .iter()
            .find(|h| h.controllers.is_empty())
            .and_then(|h| own.v2.as_deref().map(|p| h.dir_for(p)));
        if let Some(parent) = &v2_parent {
            if let Err(why) = group.try_v2(parent, &name, limits) {
                notes.push(format!("cgroup v2: {why}"));
            }
        }
        // 2. A bare v2 group for cgroup.kill when the limits will live in v1 (hybrid layouts):
        //    killing through it needs no freezer and cannot miss a process forked meanwhile.
        if group.kill_dir.is_none() {
            if let Some(parent) = &v2_parent {
                if let Ok(dir) = make_dir(parent, &name) {
                    group.dirs.push(dir.clone());
                    if dir.join("cgroup.kill").exists() {
                        group.v2_join = Some(dir.clone());
                        group.kill_dir = Some(dir);
                    }
                }
            }
        }
        // 3. cgroup v1 for what v2 could not do.
        if group.coverage.memory.is_none() || group.coverage.pids.is_none() {
            group.try_v1(&mounts, &own, &name, limits, &mut notes);
        }
        if group.coverage == CgroupCoverage::default() && group.kill_dir.is_none() {
            group.remove_dirs();
            return Err(notes.join("; "));
        }
        for note in notes {
            tracing::debug!("{note}");
        }
        Ok(group)
    }

    fn try_v2(
        &mut self,
        parent: &Path,
        name: &str,
        limits: &EffectiveLimits,
    ) -> Result<(), String> {
        let available =
            fs::read_to_string(parent.join("cgroup.controllers")).map_err(|e| e.to_string())?;
        let available: Vec<&str> = available.split_whitespace().collect();
        let wanted: Vec<&str> = ["memory", "pids", "cpu"]
            .into_iter()
            .filter(|c| available.contains(c))
            .filter(|c| *c != "cpu" || limits.cpus.is_some())
            .collect();
        if !wanted.contains(&"memory") && !wanted.contains(&"pids") {
            return Err(format!(
                "no memory or pids controller delegated (available: {})",
                available.join(" ")
            ));
        }
        // Controllers must be enabled in the parent's subtree_control. This fails (EBUSY) when the
        // parent has processes of its own, e.g. the guard: run it in a delegated cgroup.
        let enabled = fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap_or_default();
        let missing: Vec<String> = wanted
            .iter()
            .filter(|c| !enabled.split_whitespace().any(|e| e == **c))
            .map(|c| format!("+{c}"))
            .collect();
        if !missing.is_empty() {
            fs::write(parent.join("cgroup.subtree_control"), missing.join(" ")).map_err(|e| {
                format!(
                    "cannot enable {} in {}: {e}",
                    missing.join(" "),
                    parent.display()
                )
            })?;
        }
        let dir = make_dir(parent, name)
            .map_err(|e| format!("cannot create a cgroup in {}: {e}", parent.display()))?;
        self.dirs.push(dir.clone());
        self.v2_join = Some(dir.clone());
        if wanted.contains(&"memory")
            && limits
                .memory_bytes
                .is_some_and(|b| write(&dir, "memory.max", b).is_ok())
        {
            // No swap: a server must not get around its limit by swapping.
            let _ = write(&dir, "memory.swap.max", 0);
            self.coverage.memory = Some(CgroupFile {
                v2: true,
                file: "memory.max",
            });
            self.memory_dir = Some((dir.clone(), true));
        }
        if wanted.contains(&"pids")
            && limits
                .pids
                .is_some_and(|n| write(&dir, "pids.max", n).is_ok())
        {
            self.coverage.pids = Some(CgroupFile {
                v2: true,
                file: "pids.max",
            });
            self.pids_dir = Some(dir.clone());
        }
        if let (Some(cpus), true) = (limits.cpus, wanted.contains(&"cpu")) {
            let quota = cpu_quota_us(cpus);
            if fs::write(dir.join("cpu.max"), format!("{quota} {CPU_PERIOD_US}")).is_ok() {
                self.coverage.cpu = Some(CgroupFile {
                    v2: true,
                    file: "cpu.max",
                });
            }
        }
        if dir.join("cgroup.kill").exists() {
            self.kill_dir = Some(dir);
        }
        Ok(())
    }

    fn try_v1(
        &mut self,
        mounts: &[Hierarchy],
        own: &SelfCgroups,
        name: &str,
        limits: &EffectiveLimits,
        notes: &mut Vec<String>,
    ) {
        let mut wanted = vec!["memory", "pids", "freezer"];
        if limits.cpus.is_some() {
            wanted.push("cpu");
        }
        wanted.retain(|c| match *c {
            "memory" => self.coverage.memory.is_none() && limits.memory_bytes.is_some(),
            "pids" => self.coverage.pids.is_none() && limits.pids.is_some(),
            "freezer" => self.kill_dir.is_none(),
            _ => self.coverage.cpu.is_none(),
        });
        for controller in wanted {
            let Some(hierarchy) = mounts
                .iter()
                .find(|h| h.controllers.iter().any(|c| c == controller))
            else {
                notes.push(format!("cgroup v1: no {controller} hierarchy mounted"));
                continue;
            };
            let Some((_, path)) = own
                .v1
                .iter()
                .find(|(cs, _)| cs.iter().any(|c| c == controller))
            else {
                notes.push(format!("cgroup v1: not in a {controller} cgroup"));
                continue;
            };
            let parent = hierarchy.dir_for(path);
            let dir = match make_dir(&parent, name) {
                Ok(dir) => dir,
                Err(e) => {
                    notes.push(format!(
                        "cgroup v1: cannot create {}/{name}: {e}",
                        parent.display()
                    ));
                    continue;
                }
            };
            let applied = match controller {
                "memory" => write(
                    &dir,
                    "memory.limit_in_bytes",
                    limits.memory_bytes.unwrap_or(UNLIMITED),
                )
                .map(|()| {
                    // memsw (memory + swap) exists only with swap accounting; equal to the memory
                    // limit it forbids swapping.
                    let _ = write(
                        &dir,
                        "memory.memsw.limit_in_bytes",
                        limits.memory_bytes.unwrap_or(UNLIMITED),
                    );
                    self.coverage.memory = Some(CgroupFile {
                        v2: false,
                        file: "memory.limit_in_bytes",
                    });
                    self.memory_dir = Some((dir.clone(), false));
                }),
                "pids" => write(&dir, "pids.max", limits.pids.unwrap_or(UNLIMITED)).map(|()| {
                    self.coverage.pids = Some(CgroupFile {
                        v2: false,
                        file: "pids.max",
                    });
                    self.pids_dir = Some(dir.clone());
                }),
                "cpu" => write(&dir, "cpu.cfs_period_us", CPU_PERIOD_US)
                    .and_then(|()| {
                        write(
                            &dir,
                            "cpu.cfs_quota_us",
                            cpu_quota_us(limits.cpus.unwrap_or(1.0)),
                        )
                    })
                    .map(|()| {
                        self.coverage.cpu = Some(CgroupFile {
                            v2: false,
                            file: "cpu.cfs_quota_us",
                        })
                    }),
                _ => {
                    self.freezer_dir = Some(dir.clone());
                    Ok(())
                }
            };
            self.dirs.push(dir.clone());
            match applied {
                Ok(()) => self.v1_join.push(dir),
                Err(e) => notes.push(format!(
                    "cgroup v1: cannot set the {controller} limit in {}: {e}",
                    dir.display()
                )),
            }
        }
    }

    pub(super) fn coverage(&self) -> CgroupCoverage {
        self.coverage
    }

    /// The v2 directory the server should be born in (`clone3(CLONE_INTO_CGROUP)`).
    pub(super) fn v2_dir(&self) -> Option<&Path> {
        self.v2_join.as_deref()
    }

    /// Write `pid` into every hierarchy's group. All or nothing: a process in the memory group but
    /// not the pids group would be half-limited, so a failure is an error.
    pub(super) fn join(&self, pid: i32) -> io::Result<()> {
        for dir in self.v2_join.iter().chain(&self.v1_join) {
            write_procs(dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// Move the calling process, which must be single-threaded, into every hierarchy's group;
    /// `born_in_v2` when it was forked into the v2 directory already. All or nothing, as
    /// [`Self::join`].
    ///
    /// In v1, writing `0` to `tasks` moves only the calling thread, and the kernel skips its
    /// global threadgroup lock for that case (no RCU grace period: ~30 µs instead of 7–15 ms
    /// measured here). With one thread, the thread is the process, and everything it starts
    /// afterwards is born in the group.
    pub(super) fn join_current(&self, born_in_v2: bool) -> io::Result<()> {
        if let (Some(dir), false) = (&self.v2_join, born_in_v2) {
            write_procs(dir, "cgroup.procs", &std::process::id().to_string())?;
        }
        for dir in &self.v1_join {
            write_procs(dir, "tasks", "0")?;
        }
        Ok(())
    }

    pub(super) fn pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .v2_join
            .iter()
            .chain(&self.v1_join)
            .flat_map(|dir| read_pids(dir))
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    pub(super) fn kill_all(&self) {
        if let Some(dir) = &self.kill_dir {
            if fs::write(dir.join("cgroup.kill"), "1").is_ok() {
                return;
            }
        }
        // v1: freeze first so nothing forks between reading the list and the kills.
        let frozen = self
            .freezer_dir
            .as_ref()
            .is_some_and(|dir| fs::write(dir.join("freezer.state"), "FROZEN").is_ok());
        for pid in self.pids() {
            // SAFETY: kill(2) with a pid read from the group; no memory is passed.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        if frozen {
            // SIGKILL is delivered once the group thaws.
            if let Some(dir) = &self.freezer_dir {
                let _ = fs::write(dir.join("freezer.state"), "THAWED");
            }
        }
    }

    pub(super) fn limit_hit(&self) -> Option<String> {
        if let Some((dir, v2)) = &self.memory_dir {
            let oom_kills = if *v2 {
                read_key(&dir.join("memory.events"), "oom_kill")
            } else {
                // oom_control has oom_kill since Linux 4.13; failcnt counts hits of the limit.
                read_key(&dir.join("memory.oom_control"), "oom_kill")
                    .or_else(|| read_number(&dir.join("memory.failcnt")))
            };
            if oom_kills.unwrap_or(0) > 0 {
                return Some("memory".into());
            }
        }
        if let Some(dir) = &self.pids_dir {
            if read_key(&dir.join("pids.events"), "max").unwrap_or(0) > 0 {
                return Some("pids".into());
            }
        }
        None
    }

    fn remove_dirs(&mut self) {
        let started = Instant::now();
        while let Some(dir) = self.dirs.pop() {
            loop {
                match fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    // Still populated: the tree is being killed (zombies leave last).
                    Err(e) if started.elapsed() < RMDIR_PATIENCE => {
                        tracing::trace!("rmdir {}: {e}, retrying", dir.display());
                        self.kill_all();
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => {
                        tracing::warn!("cannot remove the server's cgroup {}: {e}", dir.display());
                        break;
                    }
                }
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.remove_dirs();
    }
}

impl Hierarchy {
    /// The directory of cgroup `path` (as in /proc/self/cgroup) in this mount.
    fn dir_for(&self, path: &str) -> PathBuf {
        let relative = path
            .strip_prefix(self.root.as_str())
            .unwrap_or(path)
            .trim_start_matches('/');
        self.mount.join(relative)
    }
}

fn cpu_quota_us(cpus: f64) -> u64 {
    // The kernel refuses quotas under 1 ms.
    ((cpus * CPU_PERIOD_US as f64) as u64).max(1_000)
}

/// Create `parent/name`. A leftover of a supervisor that was SIGKILLed with the same pid is
/// removed first if empty (rmdir refuses a populated cgroup, so this never frees a live one).
fn make_dir(parent: &Path, name: &str) -> io::Result<PathBuf> {
    let dir = parent.join(name);
    match fs::create_dir(&dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_dir(&dir)?;
            fs::create_dir(&dir)?;
        }
        other => other?,
    }
    sweep_stale(parent, name);
    Ok(dir)
}

/// Remove empty `mcp-guard-PID` siblings whose supervisor is gone (killed before it could clean).
fn sweep_stale(parent: &Path, ours: &str) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| *n != ours)
            .and_then(|n| n.strip_prefix("mcp-guard-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir(entry.path());
        }
    }
}

fn write_procs(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    let path = dir.join(file);
    fs::write(&path, value)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn write(dir: &Path, file: &str, value: u64) -> io::Result<()> {
    fs::write(dir.join(file), value.to_string())
}

fn read_pids(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

fn read_number(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The value of `key` in a flat-keyed file such as memory.events ("oom_kill 3").
fn read_key(path: &Path, key: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// cgroup mounts from /proc/self/mountinfo: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS] - FSTYPE SRC SUPEROPTS`.
fn read_mounts() -> io::Result<Vec<Hierarchy>> {
    let text = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(text.lines().filter_map(parse_mount).collect())
}

fn parse_mount(line: &str) -> Option<Hierarchy> {
    let (left, right) = line.split_once(" - ")?;
    let fields: Vec<&str> = left.split(' ').collect();
    let (root, mount) = (*fields.get(3)?, *fields.get(4)?);
    let mut right = right.split(' ');
    let fstype = right.next()?;
    let superopts = right.nth(1).unwrap_or_default();
    let controllers = match fstype {
        "cgroup2" => Vec::new(),
        "cgroup" => {
            // Named hierarchies (name=systemd) carry no controller.
            let cs: Vec<String> = superopts
                .split(',')
                .filter(|o| {
                    !o.contains('=')
                        && !["rw", "ro"].contains(o)
                        && !o.starts_with("no")
                        && *o != "clone_children"
                        && *o != "xattr"
                })
                .map(str::to_owned)
                .collect();
            if cs.is_empty() {
                return None;
            }
            cs
        }
        _ => return None,
    };
    Some(Hierarchy {
        mount: PathBuf::from(unescape_mount(mount)),
        root: unescape_mount(root),
        controllers,
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mount(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

fn read_self_cgroups() -> io::Result<SelfCgroups> {
    let text = fs::read_to_string("/proc/self/cgroup")?;
    let mut own = SelfCgroups::default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.is_empty() {
            own.v2 = Some(path.to_owned());
        } else {
            own.v1.push((
                controllers.split(',').map(str::to_owned).collect(),
                path.to_owned(),
            ));
        }
    }
    Ok(own)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_parse() {
        let v1 = parse_mount(
            "34 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct",
        )
        .unwrap();
        assert_eq!(v1.controllers, ["cpu", "cpuacct"]);
        assert_eq!(v1.mount, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        let v2 = parse_mount(
            "30 25 0:26 / /sys/fs/cgroup/unified rw shared:9 - cgroup2 cgroup2 rw,nsdelegate",
        )
        .unwrap();
        assert!(v2.controllers.is_empty());
        assert!(parse_mount(
            "35 25 0:30 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd"
        )
        .is_none());
        assert!(parse_mount("22 1 0:21 / /proc rw - proc proc rw").is_none());
    }

    #[test]
    fn dir_for_strips_the_mount_root() {
        let h = Hierarchy {
            mount: "/sys/fs/cgroup".into(),
            root: "/ns".into(),
            controllers: vec![],
        };
        assert_eq!(h.dir_for("/ns/a"), Path::new("/sys/fs/cgroup/a"));
        let h = Hierarchy {
            mount: "/sys/fs/cgroup/memory".into(),
            root: "/".into(),
            controllers: vec!["memory".into()],
        };
        assert_eq!(
            h.dir_for("/process_api/x"),
            Path::new("/sys/fs/cgroup/memory/process_api/x")
        );
        assert_eq!(h.dir_for("/"), Path::new("/sys/fs/cgroup/memory"));
    }

    #[test]
    fn flat_keyed_files_parse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.events");
        fs::write(&path, "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n").unwrap();
        assert_eq!(read_key(&path, "oom_kill"), Some(1));
        assert_eq!(read_key(&path, "max"), Some(12));
        assert_eq!(read_key(&path, "nope"), None);
    }
}
