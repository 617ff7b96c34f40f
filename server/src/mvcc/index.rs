//! The in-memory key index: for each key, the revisions at which it changed,
//! oldest first. Like etcd's `treeIndex`, it answers "which revision of this
//! key is visible at revision R" without touching storage; the values live in
//! sled under their revision.

use std::collections::BTreeMap;
use std::ops::Bound;

/// A revision: `main` is the store-wide revision a write request creates,
/// `sub` orders the changes inside one request (a txn writing several keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Rev {
    pub main: i64,
    pub sub: i64,
}

impl Rev {
    pub fn new(main: i64, sub: i64) -> Self {
        Rev { main, sub }
    }

    /// Big-endian bytes so sled's byte order is revision order.
    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&(self.main as u64).to_be_bytes());
        b[8..].copy_from_slice(&(self.sub as u64).to_be_bytes());
        b
    }

    pub fn from_bytes(b: &[u8]) -> Option<Rev> {
        if b.len() != 16 {
            return None;
        }
        let main = u64::from_be_bytes(b[..8].try_into().ok()?) as i64;
        let sub = u64::from_be_bytes(b[8..].try_into().ok()?) as i64;
        Some(Rev { main, sub })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexRev {
    pub rev: Rev,
    pub tombstone: bool,
}

/// What a write needs to know of a key's current version. Kept here so a
/// put does not load and decode the previous record from storage just to
/// count versions; that load was about a sixth of a put's CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Live {
    pub create_revision: i64,
    pub version: i64,
    pub lease: i64,
}

#[derive(Debug)]
struct Entry {
    revs: Vec<IndexRev>,
    /// Describes the last of `revs` unless that one is a tombstone.
    live: Live,
}

impl Entry {
    /// The newest revision and what it holds, unless it is a tombstone.
    fn current(&self) -> Option<(Rev, Live)> {
        let last = self.revs.last()?;
        (!last.tombstone).then_some((last.rev, self.live))
    }
}

#[derive(Debug, Default)]
pub struct KeyIndex {
    keys: BTreeMap<Vec<u8>, Entry>,
}

/// Which keys a request covers, in etcd's encoding: an empty `range_end` is the
/// single key, `"\0"` is every key from `key` on, anything else is `[key, range_end)`.
#[derive(Debug, Clone, Copy)]
pub enum KeyRange<'a> {
    Single(&'a [u8]),
    From(&'a [u8]),
    Between(&'a [u8], &'a [u8]),
}

type Bounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

impl<'a> KeyRange<'a> {
    pub fn new(key: &'a [u8], range_end: &'a [u8]) -> Self {
        if range_end.is_empty() {
            KeyRange::Single(key)
        } else if range_end == [0] {
            KeyRange::From(key)
        } else {
            KeyRange::Between(key, range_end)
        }
    }

    pub fn contains(&self, k: &[u8]) -> bool {
        match *self {
            KeyRange::Single(key) => k == key,
            KeyRange::From(key) => k >= key,
            KeyRange::Between(key, end) => k >= key && k < end,
        }
    }

    fn bounds(&self) -> Option<Bounds<'a>> {
        match *self {
            KeyRange::Single(key) => Some((Bound::Included(key), Bound::Included(key))),
            KeyRange::From(key) => Some((Bound::Included(key), Bound::Unbounded)),
            KeyRange::Between(key, end) if key < end => {
                Some((Bound::Included(key), Bound::Excluded(end)))
            }
            KeyRange::Between(..) => None,
        }
    }
}

impl KeyIndex {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Records a change; revisions arrive in increasing order. `live`
    /// describes the new version (ignored for a tombstone).
    pub fn push(&mut self, key: &[u8], rev: Rev, tombstone: bool, live: Live) {
        let r = IndexRev { rev, tombstone };
        match self.keys.get_mut(key) {
            Some(e) => {
                e.revs.push(r);
                e.live = live;
            }
            None => {
                let revs = vec![r];
                self.keys.insert(key.to_vec(), Entry { revs, live });
            }
        }
    }

    /// The revision of `key` visible at `at` (a main revision), unless the key
    /// did not exist then.
    pub fn get(&self, key: &[u8], at: i64) -> Option<Rev> {
        visible(&self.keys.get(key)?.revs, at)
    }

    /// The key's newest revision and what it holds, unless the key is
    /// deleted (or never was).
    pub fn latest(&self, key: &[u8]) -> Option<(Rev, Live)> {
        self.keys.get(key)?.current()
    }

    /// Every live key with its lease, for rebuilding the lease table.
    pub fn leased(&self) -> impl Iterator<Item = (&[u8], i64)> {
        self.keys.iter().filter_map(|(k, e)| {
            let (_, live) = e.current()?;
            (live.lease != 0).then_some((k.as_slice(), live.lease))
        })
    }

    /// Every key in `range` alive at `at`, in key order, with its revision.
    pub fn range<'s>(
        &'s self,
        range: KeyRange<'s>,
        at: i64,
    ) -> impl Iterator<Item = (&'s [u8], Rev)> + 's {
        self.range_live(range, at).map(|(k, r, _)| (k, r))
    }

    /// Like `range`, with what the index knows of each visible version when
    /// it is the key's newest one, so compares need not load the record.
    pub fn range_live<'s>(
        &'s self,
        range: KeyRange<'s>,
        at: i64,
    ) -> impl Iterator<Item = (&'s [u8], Rev, Option<Live>)> + 's {
        let iter = range.bounds().map(|b| self.keys.range::<[u8], _>(b));
        iter.into_iter().flatten().filter_map(move |(k, e)| {
            let rev = visible(&e.revs, at)?;
            let newest = e.revs.last().is_some_and(|r| r.rev == rev);
            Some((k.as_slice(), rev, newest.then_some(e.live)))
        })
    }

    /// Drops what compaction at `at` makes unreachable: for each key, every
    /// revision before the one visible at `at`, and that one too if it is a
    /// tombstone. Returns the dropped revisions, to be deleted from storage.
    pub fn compact(&mut self, at: i64) -> Vec<Rev> {
        let mut dropped = Vec::new();
        self.keys.retain(|_, e| {
            let revs = &mut e.revs;
            let upto = revs.partition_point(|r| r.rev.main <= at);
            if upto == 0 {
                return true;
            }
            let keep_from = if revs[upto - 1].tombstone {
                upto
            } else {
                upto - 1
            };
            dropped.extend(revs.drain(..keep_from).map(|r| r.rev));
            !revs.is_empty()
        });
        dropped
    }
}

fn visible(revs: &[IndexRev], at: i64) -> Option<Rev> {
    let upto = revs.partition_point(|r| r.rev.main <= at);
    let last = revs.get(upto.checked_sub(1)?)?;
    (!last.tombstone).then_some(last.rev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Rev {
        Rev::new(main, 0)
    }

    #[test]
    fn visibility_follows_history() {
        let mut ix = KeyIndex::default();
        ix.push(b"a", r(2), false, Live::default());
        ix.push(b"a", r(4), false, Live::default());
        ix.push(b"a", r(6), true, Live::default());
        ix.push(b"a", r(8), false, Live::default());
        assert_eq!(ix.get(b"a", 1), None);
        assert_eq!(ix.get(b"a", 2), Some(r(2)));
        assert_eq!(ix.get(b"a", 5), Some(r(4)));
        assert_eq!(ix.get(b"a", 6), None);
        assert_eq!(ix.get(b"a", 7), None);
        assert_eq!(ix.get(b"a", 100), Some(r(8)));
        assert_eq!(ix.get(b"b", 100), None);
    }

    #[test]
    fn ranges_use_etcd_encoding() {
        let mut ix = KeyIndex::default();
        for (i, k) in ["a", "b", "ba", "c"].iter().enumerate() {
            ix.push(k.as_bytes(), r(i as i64 + 1), false, Live::default());
        }
        let keys =
            |range, at| -> Vec<Vec<u8>> { ix.range(range, at).map(|(k, _)| k.to_vec()).collect() };
        assert_eq!(keys(KeyRange::new(b"b", b""), 10), vec![b"b".to_vec()]);
        assert_eq!(keys(KeyRange::new(b"b", b"c"), 10).len(), 2);
        assert_eq!(keys(KeyRange::new(b"b", b"\0"), 10).len(), 3);
        assert_eq!(keys(KeyRange::new(b"\0", b"\0"), 10).len(), 4);
        assert_eq!(keys(KeyRange::new(b"\0", b"\0"), 2).len(), 2);
        // An end before the start is an empty range, not a panic.
        assert!(keys(KeyRange::new(b"c", b"a"), 10).is_empty());
    }

    #[test]
    fn compaction_keeps_what_is_visible() {
        let mut ix = KeyIndex::default();
        ix.push(b"a", r(1), false, Live::default());
        ix.push(b"a", r(3), false, Live::default());
        ix.push(b"b", r(2), false, Live::default());
        ix.push(b"b", r(4), true, Live::default());
        ix.push(b"c", r(5), false, Live::default());
        let mut dropped = ix.compact(4);
        dropped.sort();
        assert_eq!(dropped, vec![r(1), r(2), r(4)]);
        assert_eq!(ix.get(b"a", 4), Some(r(3)));
        assert_eq!(ix.get(b"b", 10), None);
        assert_eq!(ix.len(), 2);
        assert_eq!(ix.get(b"c", 5), Some(r(5)));
    }
}
