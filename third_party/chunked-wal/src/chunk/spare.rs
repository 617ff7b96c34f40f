//! Synod's patch: chunk files are created at their full size, filled with
//! written zeros, before any record goes in.
//!
//! An fdatasync after an append that grows a file must also write the inode
//! for the new size; into space already written, it writes only the data.
//! On Synod's test machine (ext4) that took a 300-byte sync from 167–208 µs
//! to 129–147 µs (BENCHMARKS.md). Zeros, not
//! `fallocate`: unwritten extents must be converted on the first write into
//! them, a metadata change the sync then waits for all the same.
//!
//! Filling 64 MiB took about 0.17 s there, too long to stall the writer,
//! so the next chunk's file is prepared in the background once the
//! open chunk is half full, and renamed into place when it is needed.

use std::fs::File;
use std::fs::OpenOptions;
use std::io;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Mutex;
use std::thread::JoinHandle;

use crate::Config;

pub(crate) struct Spare {
    path: PathBuf,
    size: u64,
    preparing: Mutex<Option<JoinHandle<io::Result<()>>>>,
}

impl Spare {
    /// Not a chunk name, so opening the WAL passes over it; a spare left by
    /// a crash is simply filled again.
    pub(crate) const FILE_NAME: &'static str = "spare.chunk";

    pub(crate) fn new(config: &Config) -> Self {
        Self {
            path: Path::new(&config.dir).join(Self::FILE_NAME),
            size: config.chunk_max_size() as u64,
            preparing: Mutex::new(None),
        }
    }

    /// Starts filling the spare file unless that is already under way.
    pub(crate) fn prepare(&self) {
        let mut preparing = self.preparing.lock().unwrap();
        if preparing.is_none() {
            let (path, size) = (self.path.clone(), self.size);
            *preparing = Some(std::thread::spawn(move || fill(&path, size)));
        }
    }

    /// Moves the spare to `path` (which must not exist), filling it first
    /// if no preparation was started. The caller syncs the directory.
    pub(crate) fn take(&self, path: &Path) -> io::Result<File> {
        if path.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("chunk file {} already exists", path.display()),
            ));
        }
        let preparing = self.preparing.lock().unwrap().take();
        match preparing {
            Some(h) => h.join().map_err(|_| {
                io::Error::other("preparing the spare chunk panicked")
            })??,
            None => fill(&self.path, self.size)?,
        }
        std::fs::rename(&self.path, path)?;
        OpenOptions::new().read(true).write(true).open(path)
    }
}

impl Drop for Spare {
    /// A preparation still writing could otherwise reach a file a later
    /// `ChunkedWal` on this directory has renamed into a chunk.
    fn drop(&mut self) {
        if let Some(h) = self.preparing.get_mut().unwrap().take() {
            let _ = h.join();
        }
    }
}

fn fill(path: &Path, size: u64) -> io::Result<()> {
    const PIECE: usize = 1 << 20;
    let zeros = vec![0u8; PIECE];
    let mut f = File::create(path)?;
    let mut left = size;
    while left > 0 {
        let n = left.min(PIECE as u64) as usize;
        f.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    // The size too: a chunk renamed in must need no metadata sync later.
    f.sync_all()
}
