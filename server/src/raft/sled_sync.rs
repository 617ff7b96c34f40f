//! Making the state machine's sled database durable on demand.
//!
//! The write path never syncs sled: an acknowledged write is durable in the
//! Raft WAL, and a restart replays the WAL from the state machine's durable
//! applied index. sled is synced only where the WAL is about to give entries
//! up (a snapshot, after which openraft purges the log behind it) and where
//! data exists nowhere else (first boot's identity, an installed snapshot).
//!
//! sled's `flush` ends in `sync_file_range`, which survives a killed process
//! but not a power cut, so its file is fdatasync'ed after it.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct SledSync {
    db: sled::Db,
    file: File,
    blobs: Blobs,
}

/// sled writes a message larger than a quarter segment (~128 KiB: a big
/// batch, value or node) to a file of its own under `blobs/`, without any
/// fsync; its flush covers only the main file. These files must reach the
/// disk too.
struct Blobs {
    dir: PathBuf,
    synced: Mutex<HashSet<OsString>>,
}

impl Blobs {
    fn sync(&self) -> std::io::Result<()> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut synced = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        let mut present = HashSet::new();
        let mut new = false;
        for entry in entries {
            let name = entry?.file_name();
            if !synced.contains(&name) {
                match File::open(self.dir.join(&name)) {
                    Ok(f) => f.sync_data()?,
                    // Removed by sled's GC meanwhile: nothing to keep.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                new = true;
            }
            present.insert(name);
        }
        if new {
            File::open(&self.dir)?.sync_all()?;
        }
        *synced = present;
        Ok(())
    }
}

impl SledSync {
    /// `db_dir` is sled's directory: its `db` file holds almost everything,
    /// and `blobs/` one file per message too large for a log segment.
    pub fn new(db: sled::Db, db_dir: &Path) -> std::io::Result<Self> {
        Ok(SledSync {
            db,
            file: File::open(db_dir.join("db"))?,
            blobs: Blobs {
                dir: db_dir.join("blobs"),
                synced: Mutex::new(HashSet::new()),
            },
        })
    }

    /// Blocks until everything written to sled before the call survives a
    /// power cut.
    pub fn sync(&self) -> std::io::Result<()> {
        self.db.flush().map_err(std::io::Error::other)?;
        self.file.sync_data()?;
        self.blobs.sync()
    }
}
