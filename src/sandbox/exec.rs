//! What the server will execute: the program found on PATH, the interpreter named on its `#!`
//! line (through `env` if need be), and the ELF interpreter (`ld-linux`) of every binary.
//!
//! These files, and only these (plus `fs.exec` from the policy), get landlock EXECUTE. The
//! kernel opens every one of them with an exec open, which landlock checks for EXECUTE *and*
//! READ_FILE, so each gets both.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::path_search::resolve_program;

/// How deep `#!` interpreters may nest (the kernel's own limit is 4 for binfmt_script).
const MAX_CHAIN: usize = 5;

/// Every file the server's start-up executes, as written (`raw`) and canonical.
#[derive(Debug, Clone, Default)]
pub struct ExecChain {
    pub links: Vec<ExecLink>,
}

#[derive(Debug, Clone)]
pub struct ExecLink {
    /// The path as the kernel sees it (a venv's `bin/python3` symlink, say).
    pub raw: PathBuf,
    /// Symlinks resolved: what landlock's rule will name.
    pub canonical: PathBuf,
    pub kind: ExecKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecKind {
    /// A text file starting with `#!`.
    Script,
    /// A binary; `ld.so` itself has kind [`ExecKind::ElfInterpreter`].
    Elf,
    ElfInterpreter,
    /// Neither (unreadable, or an unknown format): executable, nothing more is known.
    Other,
}

impl ExecChain {
    /// Follow `program` through `#!` lines and ELF `PT_INTERP` headers. `path_var` resolves
    /// `#!/usr/bin/env NAME`, as `env` would at run time with the same PATH.
    pub fn resolve(program: &Path, path_var: &str) -> Self {
        let mut chain = ExecChain::default();
        let mut pending = vec![(program.to_path_buf(), false)];
        while let Some((raw, is_elf_interp)) = pending.pop() {
            if chain.links.len() >= MAX_CHAIN * 2 || chain.links.iter().any(|l| l.raw == raw) {
                continue;
            }
            let canonical = std::fs::canonicalize(&raw).unwrap_or_else(|_| raw.clone());
            let head = read_head(&canonical);
            let kind = if head.starts_with(b"#!") {
                for next in shebang_targets(&head, path_var) {
                    pending.push((next, false));
                }
                ExecKind::Script
            } else if head.starts_with(b"\x7fELF") {
                if let Some(interp) = elf_interpreter(&canonical) {
                    pending.push((interp, true));
                }
                if is_elf_interp {
                    ExecKind::ElfInterpreter
                } else {
                    ExecKind::Elf
                }
            } else {
                ExecKind::Other
            };
            chain.links.push(ExecLink {
                raw,
                canonical,
                kind,
            });
        }
        chain
    }

    /// Files that need EXECUTE.
    pub fn executables(&self) -> impl Iterator<Item = &ExecLink> {
        self.links.iter()
    }
}

/// The first 256 bytes: the kernel reads at most that much of a `#!` line.
fn read_head(path: &Path) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    if let Ok(file) = File::open(path) {
        let _ = file.take(256).read_to_end(&mut head);
    }
    head
}

/// The interpreter of a `#!` line and, for `env`, the program `env` will look up.
fn shebang_targets(head: &[u8], path_var: &str) -> Vec<PathBuf> {
    let line = head[2..].split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Vec::new();
    };
    let mut words = line.split_ascii_whitespace();
    let Some(interp) = words.next() else {
        return Vec::new();
    };
    let interp = PathBuf::from(interp);
    let mut targets = vec![interp.clone()];
    if interp.file_name().is_some_and(|n| n == "env") {
        // `env -S node --flag`, `env node`, `env VAR=1 node`: the first word that is neither
        // an option nor an assignment is the program.
        let name = words.find(|w| !w.starts_with('-') && !w.contains('='));
        if let Some(found) = name.and_then(|n| resolve_program(n, path_var)) {
            targets.push(found);
        }
    }
    targets
}

/// `PT_INTERP` of an ELF file (32- or 64-bit, either byte order), if it has one.
pub fn elf_interpreter(path: &Path) -> Option<PathBuf> {
    const PT_INTERP: u32 = 3;
    let mut file = File::open(path).ok()?;
    let mut ident = [0u8; 64];
    file.read_exact(&mut ident).ok()?;
    if &ident[..4] != b"\x7fELF" {
        return None;
    }
    let wide = match ident[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let big = match ident[5] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let field = |bytes: &[u8], at: usize, len: usize| -> Option<u64> {
        let slice = bytes.get(at..at + len)?;
        let push = |value: u64, byte: &u8| (value << 8) | u64::from(*byte);
        Some(if big {
            slice.iter().fold(0, push)
        } else {
            slice.iter().rev().fold(0, push)
        })
    };
    let (phoff, phentsize, phnum) = if wide {
        (
            field(&ident, 0x20, 8)?,
            field(&ident, 0x36, 2)?,
            field(&ident, 0x38, 2)?,
        )
    } else {
        (
            field(&ident, 0x1c, 4)?,
            field(&ident, 0x2a, 2)?,
            field(&ident, 0x2c, 2)?,
        )
    };
    let table_len = usize::try_from(phentsize.checked_mul(phnum)?).ok()?;
    if table_len > 64 * 1024 {
        return None;
    }
    let mut table = vec![0u8; table_len];
    read_at(&mut file, phoff, &mut table)?;
    let entsize = usize::try_from(phentsize).ok()?;
    for entry in table.chunks_exact(entsize.max(1)) {
        if field(entry, 0, 4)? != u64::from(PT_INTERP) {
            continue;
        }
        let (offset, size) = if wide {
            (field(entry, 0x08, 8)?, field(entry, 0x20, 8)?)
        } else {
            (field(entry, 0x04, 4)?, field(entry, 0x10, 4)?)
        };
        if size == 0 || size > 4096 {
            return None;
        }
        let mut name = vec![0u8; usize::try_from(size).ok()?];
        read_at(&mut file, offset, &mut name)?;
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        let name = std::str::from_utf8(&name[..end]).ok()?;
        return Some(PathBuf::from(name));
    }
    None
}

fn read_at(file: &mut File, offset: u64, buf: &mut [u8]) -> Option<()> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset)).ok()?;
    file.read_exact(buf).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_interpreter_of_a_dynamic_binary_is_ld_so() {
        let Some(env) = resolve_program("env", "/usr/bin:/bin") else {
            return;
        };
        let interp = elf_interpreter(&env).map(|p| p.to_string_lossy().into_owned());
        assert!(
            interp.is_some_and(|p| p.contains("ld-")),
            "env's PT_INTERP is ld.so"
        );
    }

    #[test]
    fn shebang_through_env_resolves_the_named_program() {
        let targets = shebang_targets(b"#!/usr/bin/env -S sh -e\n", "/usr/bin:/bin");
        assert_eq!(targets[0], PathBuf::from("/usr/bin/env"));
        assert!(targets.get(1).is_some_and(|p| p.ends_with("sh")));
    }
}
