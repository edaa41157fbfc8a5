//! A small tmpfs to fill up: a full disk on demand, for the cache tier's disk (needs root).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of its own, unmounted when dropped.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// A tmpfs of `bytes`, or `None` where none can be mounted (without root).
    pub fn mount(bytes: u64) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .is_ok_and(|output| output.status.success());
        mounted.then_some(Tmpfs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills every free byte with one file; its path (remove it to free the space).
    pub fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        loop {
            if let Err(err) = std::io::Write::write_all(&mut file, &chunk) {
                assert_eq!(err.raw_os_error(), Some(28), "ENOSPC: {err}");
                break;
            }
        }
        // The last partial chunk, byte by byte, until nothing fits.
        while std::io::Write::write_all(&mut file, &[0]).is_ok() {}
        filler
    }

    pub fn free_bytes(&self) -> u64 {
        let output = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(self.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .nth(1)
            .and_then(|line| line.trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
