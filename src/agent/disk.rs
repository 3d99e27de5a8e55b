//! Free space on the spool's filesystem, and the floor below which recording pauses.

use std::path::Path;

/// Bytes available to this user on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    Some((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
}

/// Pause below `floor`, resume only once there is a margin above it: a disk hovering at the
/// floor must not flap between the two on every check.
#[derive(Debug, Clone, Copy)]
pub struct DiskFloor {
    pub floor: u64,
    pub paused: bool,
}

impl DiskFloor {
    pub fn new(floor: u64) -> Self {
        DiskFloor {
            floor,
            paused: false,
        }
    }

    /// Updates with the latest free space; returns Some(new state) when it changed.
    pub fn update(&mut self, free: u64) -> Option<bool> {
        let margin = (self.floor / 20).max(16 << 20);
        let paused = if self.paused {
            free < self.floor.saturating_add(margin)
        } else {
            free < self.floor
        };
        (paused != self.paused).then(|| {
            self.paused = paused;
            paused
        })
    }
}

/// Bytes the files under `dir` take (the spool's size on disk).
pub fn tree_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_below_the_floor_and_resumes_with_a_margin() {
        let mut d = DiskFloor::new(1 << 30);
        assert_eq!(d.update(2 << 30), None);
        assert_eq!(d.update((1 << 30) - 1), Some(true));
        assert_eq!(d.update(1 << 30), None, "at the floor: still paused");
        assert_eq!(d.update((1 << 30) + (100 << 20)), Some(false));
    }
}
