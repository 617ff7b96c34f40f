//! ZooKeeper-style helpers over etcd's flat key space, for code leaving the
//! PECL zookeeper extension: `exists`, `children` and sequential keys.
//!
//! Paths map to keys one to one, with `/` as the separator: the node
//! `/app/x` is the key `/app/x`, and the children of `/app` are the names
//! `c` such that the key `/app/c` exists or some key lies under `/app/c/`.
//! Unlike ZooKeeper, etcd keeps no parents: `/app/c/d` alone makes `c` a
//! child of `/app` (as a directory is one in a file listing), or else keys
//! written by other etcd clients would hide whole subtrees.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::pb::{compare, range_request, Compare, RangeRequest, RangeResponse, TxnRequest};
use crate::{prefix_end, Client, Error};

use super::{first_kv, header_revision, malformed, op_put, op_range, random};

/// Keys read per page by `children`. A subtree found on a page is skipped
/// with a new range from its end, so a child with a million keys below it
/// costs one more request, not a million keys read.
const PAGE: i64 = 256;

/// ZooKeeper's sequential suffix: ten digits, zero-padded.
const DIGITS: usize = 10;

/// How many times `create_sequential` tries again when others created
/// under the same prefix first; each retry learns what beat it.
const MAX_ATTEMPTS: usize = 64;

fn non_empty(what: &str, v: &[u8]) -> Result<(), Error> {
    if v.is_empty() {
        return Err(Error::InvalidArgument(format!("{what} must not be empty")));
    }
    Ok(())
}

/// Whether `key` exists (a key, not a "directory" of keys under it).
pub async fn exists(client: &Client, key: &[u8]) -> Result<bool, Error> {
    non_empty("the key", key)?;
    let resp = client
        .range(RangeRequest {
            key: key.to_vec(),
            count_only: true,
            ..Default::default()
        })
        .await?;
    Ok(resp.count > 0)
}

/// The names of the direct children of `path` (see the module comment),
/// sorted by byte order, all as of one revision.
pub async fn children(client: &Client, path: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    non_empty("the path", path)?;
    let mut base = path.to_vec();
    if base.last() != Some(&b'/') {
        base.push(b'/');
    }
    let end = prefix_end(&base);
    let mut names = BTreeSet::new();
    let mut from = base.clone();
    // The first page fixes the revision every later page is read at.
    let mut revision = 0;
    loop {
        let resp = page(client, &from, &end, revision).await?;
        if revision == 0 {
            revision = resp.header.as_ref().map_or(0, |h| h.revision);
        }
        let Some(last) = resp.kvs.last() else { break };
        // Where the next page starts: after the last key read, or past the
        // subtree that key is in.
        let mut next = after(&last.key);
        for kv in &resp.kvs {
            if kv.key < from {
                continue;
            }
            let rest = &kv.key[base.len()..];
            let Some(slash) = rest.iter().position(|&b| b == b'/') else {
                if !rest.is_empty() {
                    names.insert(rest.to_vec());
                }
                continue;
            };
            let name = &rest[..slash];
            if !name.is_empty() {
                names.insert(name.to_vec());
            }
            // Everything under `base/name/` adds nothing more.
            from = prefix_end(&kv.key[..base.len() + slash + 1]);
            if from > last.key {
                next = from.clone();
                break;
            }
        }
        if !resp.more || next >= end {
            break;
        }
        from = next;
    }
    Ok(names.into_iter().collect())
}

/// The smallest key after `key`.
fn after(key: &[u8]) -> Vec<u8> {
    let mut k = key.to_vec();
    k.push(0);
    k
}

async fn page(
    client: &Client,
    from: &[u8],
    end: &[u8],
    revision: i64,
) -> Result<RangeResponse, Error> {
    client
        .range(RangeRequest {
            key: from.to_vec(),
            range_end: end.to_vec(),
            limit: PAGE,
            revision,
            keys_only: true,
            ..Default::default()
        })
        .await
}

/// Creates `prefix` followed by a ten-digit, zero-padded number and returns
/// the key. Numbers increase in the order the keys are created, across
/// every creator on the prefix, and are never reused, even after a delete:
/// a key is created only if no key after it exists under the prefix's
/// numbers (one txn), and its number is above every revision seen before.
/// So a ZooKeeper lock or queue recipe ("the lowest number goes first")
/// stays correct. Keys under `prefix` that start with a digit but were not
/// made here can block creation; that is reported, never looped on.
pub async fn create_sequential(
    client: &Client,
    prefix: &[u8],
    value: &[u8],
    lease: i64,
) -> Result<Vec<u8>, Error> {
    non_empty("the prefix", prefix)?;
    // The numbered keys: the prefix followed by a digit.
    let (first, end) = (with(prefix, b"0"), with(prefix, b":"));
    let last_numbered = || RangeRequest {
        key: first.clone(),
        range_end: end.clone(),
        limit: 1,
        keys_only: true,
        sort_order: range_request::SortOrder::Descend as i32,
        sort_target: range_request::SortTarget::Key as i32,
        ..Default::default()
    };
    let seen = client.range(last_numbered()).await?;
    let mut revision = seen.header.as_ref().map_or(0, |h| h.revision);
    let mut last = seen.kvs.into_iter().next().map(|kv| kv.key);
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            // Creators that lost the same round pick the same next number,
            // and with their requests applied in a steady order one of them
            // could lose every round. A short random pause, longer after
            // each loss (up to 16 ms), breaks the lockstep.
            let cap = 1000u64 << attempt.min(4);
            tokio::time::sleep(Duration::from_micros(random() % cap)).await;
        }
        let number = match &last {
            Some(k) => next_number(prefix, k)?.max(revision + 1),
            None => revision + 1,
        };
        let key = with(prefix, format!("{number:0DIGITS$}").as_bytes());
        let resp = client
            .txn(TxnRequest {
                // No numbered key at or after ours: ours is the newest.
                compare: vec![Compare {
                    key: key.clone(),
                    range_end: end.clone(),
                    target: compare::CompareTarget::Create as i32,
                    result: compare::CompareResult::Equal as i32,
                    target_union: Some(compare::TargetUnion::CreateRevision(0)),
                }],
                success: vec![op_put(&key, value.to_vec(), lease)],
                failure: vec![op_range(last_numbered())],
            })
            .await?;
        if resp.succeeded {
            return Ok(key);
        }
        // The compare failed on a numbered key, which the same txn read.
        let beaten_by = first_kv(&resp, 0).ok_or_else(|| malformed("no key after ours"))?;
        last = Some(beaten_by.key.clone());
        revision = header_revision(&resp);
    }
    Err(Error::Server {
        code: tonic::Code::Aborted,
        message: format!(
            "createSequential: gave up after {MAX_ATTEMPTS} attempts: others kept creating under the prefix first"
        ),
    })
}

fn with(prefix: &[u8], tail: &[u8]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(tail);
    k
}

/// The number after the one `key` (the last numbered key under `prefix`)
/// carries. A key whose suffix does not start with ten digits sorts where
/// no ten-digit number can follow it.
fn next_number(prefix: &[u8], key: &[u8]) -> Result<i64, Error> {
    let suffix = &key[prefix.len().min(key.len())..];
    let digits = suffix
        .get(..DIGITS)
        .filter(|d| d.iter().all(u8::is_ascii_digit));
    let parsed = digits
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|d| d.parse::<i64>().ok());
    match parsed {
        Some(n) if n < 9_999_999_999 => Ok(n + 1),
        _ => Err(Error::Server {
            code: tonic::Code::FailedPrecondition,
            message: format!(
                "createSequential: the key {:?} under the prefix is not a sequential key and sorts after every number",
                String::from_utf8_lossy(key)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_number_reads_ten_digits() {
        assert_eq!(next_number(b"q-", b"q-0000000041").unwrap(), 42);
        assert_eq!(next_number(b"q-", b"q-0000000041-x").unwrap(), 42);
        assert!(next_number(b"q-", b"q-5").is_err());
        assert!(next_number(b"q-", b"q-9999999999").is_err());
    }
}
