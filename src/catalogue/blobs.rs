//! Segment files in the catalogue's store, as the agents sealed them: a local directory (the
//! default) or an S3-compatible bucket.
//!
//! Owns where blobs live. On the filesystem a segment is written to a temporary name, synced
//! and renamed, so a crash leaves either nothing or the whole file; S3 writes are atomic per
//! object. It holds only ciphertext and never opens one (that is retrieval's job, in memory).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::s3::S3;

#[derive(Clone, Debug)]
pub enum Blobs {
    Dir(PathBuf),
    S3(S3),
}

impl Blobs {
    pub fn open(root: &Path) -> std::io::Result<Blobs> {
        std::fs::create_dir_all(root).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot create the blob directory {}: {e}", root.display()),
            )
        })?;
        Ok(Blobs::Dir(root.to_owned()))
    }

    /// Relative name of a segment's blob: spread over 256 prefixes by its id's last byte
    /// (v7 ids start with their time: the first bytes would put a day in one directory).
    pub fn name_for(segment_id: &str) -> String {
        let tail = segment_id
            .get(segment_id.len().saturating_sub(2)..)
            .unwrap_or("00");
        format!("{tail}/{segment_id}.cvseg")
    }

    /// Where a blob is on the local filesystem (None in a bucket).
    pub fn local_path(&self, name: &str) -> Option<PathBuf> {
        match self {
            Blobs::Dir(root) => Some(root.join(name)),
            Blobs::S3(_) => None,
        }
    }

    /// Stores `data` under `name` durably.
    pub async fn put(&self, name: &str, data: &[u8]) -> anyhow::Result<()> {
        match self {
            Blobs::Dir(root) => {
                let (path, data) = (root.join(name), data.to_vec());
                tokio::task::spawn_blocking(move || write_durably(&path, &data)).await??;
                Ok(())
            }
            Blobs::S3(s3) => s3.put(name, data).await,
        }
    }

    /// The blob, or its first `prefix` bytes.
    pub async fn get(&self, name: &str, prefix: Option<usize>) -> anyhow::Result<Vec<u8>> {
        match self {
            Blobs::Dir(root) => {
                let path = root.join(name);
                let data = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
                    match prefix {
                        None => std::fs::read(&path),
                        Some(n) => {
                            let mut buf = vec![0u8; n];
                            std::io::Read::read_exact(&mut std::fs::File::open(&path)?, &mut buf)?;
                            Ok(buf)
                        }
                    }
                })
                .await??;
                Ok(data)
            }
            Blobs::S3(s3) => s3.get(name, prefix).await,
        }
    }

    /// The blob's first `n` bytes (fewer if it is shorter) and its whole size.
    pub async fn head(&self, name: &str, n: usize) -> anyhow::Result<(Vec<u8>, u64)> {
        match self {
            Blobs::Dir(root) => {
                let path = root.join(name);
                let got =
                    tokio::task::spawn_blocking(move || -> std::io::Result<(Vec<u8>, u64)> {
                        use std::io::Read;
                        let file = std::fs::File::open(&path)?;
                        let size = file.metadata()?.len();
                        let mut buf = Vec::with_capacity(n);
                        file.take(n as u64).read_to_end(&mut buf)?;
                        Ok((buf, size))
                    })
                    .await??;
                Ok(got)
            }
            Blobs::S3(s3) => s3.head(name, n).await,
        }
    }

    /// `len` bytes of the blob from `offset` (fewer where it ends first).
    pub async fn get_range(&self, name: &str, offset: u64, len: u64) -> anyhow::Result<Vec<u8>> {
        match self {
            Blobs::Dir(root) => {
                let path = root.join(name);
                let data = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
                    use std::io::{Read, Seek, SeekFrom};
                    let mut file = std::fs::File::open(&path)?;
                    file.seek(SeekFrom::Start(offset))?;
                    let mut buf = Vec::with_capacity(len as usize);
                    file.take(len).read_to_end(&mut buf)?;
                    Ok(buf)
                })
                .await??;
                Ok(data)
            }
            Blobs::S3(s3) => s3.get_range(name, offset, len).await,
        }
    }

    /// Deletes a blob (a missing one is not an error).
    pub async fn delete(&self, name: &str) -> anyhow::Result<()> {
        match self {
            Blobs::Dir(root) => match std::fs::remove_file(root.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            },
            Blobs::S3(s3) => s3.delete(name).await,
        }
    }
}

fn write_durably(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new(".")).to_owned();
    std::fs::create_dir_all(&dir)?;
    let tmp = path.with_extension("cvseg.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
