//! Synod's patch: the flush worker writes the open chunk with `O_DIRECT`,
//! whole aligned blocks, one write per batch.
//!
//! A buffered write only copies into the page cache; the fdatasync after
//! it then has two round trips to the disk to wait for, writing the page
//! back and flushing the disk's cache, with a kernel worker's wake-up
//! between them. A direct write reaches the device (its volatile cache, if
//! it has one) before it returns, so the fdatasync that follows has only
//! the cache flush left. On Synod's test machine (ext4 on virtio, a
//! volatile write cache, no FUA) a 300-byte append and its sync took
//! 83–106 µs buffered and 58–70 µs direct, by median of three runs of
//! `bench/sync-latency.py`. `O_DSYNC` instead of the fdatasync saved
//! nothing more there, and the power-loss test's file layer sees syncs as
//! fdatasync calls, so the sync stays as it was.
//!
//! A direct write must start at, and cover, whole blocks, so the block
//! holding the records' end is kept in memory and written again, with the
//! new records after it and zeros to the block's end. Those zeros are what
//! a preallocated chunk holds there already. Rewriting bytes already synced
//! risks them no more than the page cache's own write-back of that page
//! did.
//!
//! Where the file system refuses `O_DIRECT` (tmpfs before Linux 6.6), or
//! refuses the first write for its alignment (a file system or device
//! wanting blocks larger than 4 KiB), the worker writes through the page
//! cache as before.

use std::fs::File;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;

use crate::ChunkId;
use crate::Config;
use crate::WalTypes;
use crate::wal::file_entry::FileEntry;
use crate::wal::queued_write::QueuedWrite;

/// The alignment of direct writes: a multiple of the 512-byte and 4 KiB
/// logical blocks of common disks. Where more is needed, the first write
/// fails with EINVAL and the worker falls back to the page cache.
const BLOCK: usize = 4096;

/// Blocks of buffer kept between batches: a rare large batch should not
/// hold its memory until the chunk is full.
const KEPT_BLOCKS: usize = 256;

#[derive(Clone, Copy)]
#[repr(C, align(4096))]
struct Block([u8; BLOCK]);

#[derive(Default)]
pub(crate) enum DirectWriter {
    #[default]
    Untried,
    Unsupported,
    Open(Tail),
}

pub(crate) struct Tail {
    /// The global offset of the chunk `file` belongs to.
    chunk: u64,
    file: File,
    buf: Vec<Block>,
    /// The file offset of `buf`'s first byte, a multiple of `BLOCK`.
    start: u64,
    /// How many bytes of `buf` hold the file's records.
    len: usize,
    /// False until the block holding the records' end is read from the
    /// file; after that, `buf` has it.
    known: bool,
}

impl DirectWriter {
    /// Writes `writes` (`total` bytes) at file offset `at` of `entry`'s
    /// chunk, directly.
    /// Returns `Ok(false)`, having written nothing, where direct writes are
    /// not supported; the caller then writes them through the page cache.
    pub(crate) fn write<W: WalTypes>(
        &mut self,
        config: &Config,
        entry: &FileEntry<W>,
        at: u64,
        writes: &[QueuedWrite<W>],
        total: usize,
    ) -> io::Result<bool> {
        let stale = match self {
            DirectWriter::Untried => true,
            DirectWriter::Unsupported => false,
            DirectWriter::Open(t) => t.chunk != entry.starting_offset,
        };
        if stale {
            *self = Self::open(config, entry.starting_offset)?;
        }
        let DirectWriter::Open(tail) = self else {
            return Ok(false);
        };
        let first = !tail.known;
        match tail.write(entry, at, writes, total) {
            Ok(()) => Ok(true),
            // Nothing was written; the page cache takes this batch and the
            // rest.
            Err(e) if first && e.raw_os_error() == Some(libc::EINVAL) => {
                log::info!(
                    "chunk {}: direct writes refused ({e}), writing through the page cache",
                    ChunkId(entry.starting_offset)
                );
                *self = DirectWriter::Unsupported;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn open(config: &Config, chunk: u64) -> io::Result<Self> {
        let path = config.chunk_path(ChunkId(chunk));
        let opened = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path);
        match opened {
            Ok(file) => Ok(DirectWriter::Open(Tail {
                chunk,
                file,
                buf: Vec::new(),
                start: 0,
                len: 0,
                known: false,
            })),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                log::info!(
                    "{path}: no O_DIRECT on this file system, writing through the page cache"
                );
                Ok(DirectWriter::Unsupported)
            }
            Err(e) => Err(e),
        }
    }
}

fn bytes(blocks: &mut [Block]) -> &mut [u8] {
    let len = blocks.len() * BLOCK;
    // SAFETY: `Block` is a plain byte array with no padding, so the blocks
    // are `len` initialised, contiguous bytes, borrowed as long as they are.
    unsafe { std::slice::from_raw_parts_mut(blocks.as_mut_ptr().cast(), len) }
}

impl Tail {
    fn reserve(&mut self, bytes: usize) {
        let blocks = bytes.div_ceil(BLOCK);
        if self.buf.len() < blocks {
            self.buf.resize(blocks, Block([0; BLOCK]));
        }
    }

    fn write<W: WalTypes>(
        &mut self,
        entry: &FileEntry<W>,
        at: u64,
        writes: &[QueuedWrite<W>],
        total: usize,
    ) -> io::Result<()> {
        if !self.known || self.start + self.len as u64 != at {
            // The first batch into this chunk since the worker started:
            // the records before `at` in its block come from the file.
            // Later batches start where the last one ended.
            if self.known {
                log::warn!(
                    "a batch at {at}, not at the records' end {}: reading its block again",
                    self.start + self.len as u64
                );
            }
            self.start = at - at % BLOCK as u64;
            self.len = (at - self.start) as usize;
            self.reserve(self.len);
            entry.f.read_exact_at(
                &mut bytes(&mut self.buf)[..self.len],
                self.start,
            )?;
            self.known = true;
        }
        debug_assert_eq!(
            total,
            writes.iter().map(|w| w.write.data.len()).sum::<usize>()
        );
        if total == 0 {
            return Ok(());
        }
        let end = self.len + total;
        let padded = end.next_multiple_of(BLOCK);
        self.reserve(padded);
        let buf = bytes(&mut self.buf);
        let mut len = self.len;
        for w in writes {
            buf[len..len + w.write.data.len()].copy_from_slice(&w.write.data);
            len += w.write.data.len();
        }
        buf[end..padded].fill(0);

        // A failed write stops the worker, so `buf` needs no repair.
        self.file.write_all_at(&buf[..padded], self.start)?;

        let kept = end - end % BLOCK;
        buf.copy_within(kept..end, 0);
        self.start += kept as u64;
        self.len = end - kept;
        if self.buf.len() > KEPT_BLOCKS {
            self.buf.truncate(1);
            self.buf.shrink_to_fit();
        }
        Ok(())
    }
}
