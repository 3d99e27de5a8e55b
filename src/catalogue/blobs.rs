//! Segment files on the catalogue's filesystem, as the agents sealed them.
//!
//! Owns the blob directory: a segment is written to a temporary name, synced and renamed, so
//! a crash leaves either nothing or the whole file. It holds only ciphertext; it never opens
//! one (that is retrieval's job, in memory).

use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Blobs {
    root: PathBuf,
}

impl Blobs {
    pub fn open(root: &Path) -> std::io::Result<Blobs> {
        std::fs::create_dir_all(root).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot create the blob directory {}: {e}", root.display()),
            )
        })?;
        Ok(Blobs {
            root: root.to_owned(),
        })
    }

    /// Relative name of a segment's blob: spread over 256 directories by its id's last byte
    /// (v7 ids start with their time: the first bytes would put a day in one directory).
    pub fn name_for(segment_id: &str) -> String {
        let tail = segment_id
            .get(segment_id.len().saturating_sub(2)..)
            .unwrap_or("00");
        format!("{tail}/{segment_id}.cvseg")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Writes `data` under `name` durably.
    pub fn put(&self, name: &str, data: &[u8]) -> std::io::Result<()> {
        let path = self.path(name);
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        std::fs::create_dir_all(&dir)?;
        let tmp = path.with_extension("cvseg.tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.path(name))
    }
}
