//! A linearizability checker for histories of one register: the search of
//! Wing & Gong with Lowe's memoization, as porcupine and Knossos do it.
//! Linearizability composes, so a history over several keys is checked one
//! key at a time.
//!
//! An operation whose outcome the client never learned (a timeout, a lost
//! connection) may have taken effect at any point after its call, or not at
//! all: it gets no return time and matches whatever state it meets, so the
//! search may place it anywhere after its call, including after everything.

use std::collections::HashSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Write(u64),
    /// Compare-and-swap: set to `.1` if the value is `.0`.
    Cas(u64, u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Read(Option<u64>),
    Written,
    Swapped(bool),
    /// The client does not know whether the operation took effect.
    Unknown,
}

#[derive(Debug, Clone, Copy)]
pub struct Call {
    pub op: Op,
    pub outcome: Outcome,
    /// When the client sent it and got its answer (any clock, same for all);
    /// `ret` is None when no answer came.
    pub call: u64,
    pub ret: Option<u64>,
}

/// The register's next state if `op` could have produced `outcome` from
/// `state`.
fn step(state: Option<u64>, op: Op, outcome: Outcome) -> Option<Option<u64>> {
    match (op, outcome) {
        (Op::Read, Outcome::Read(v)) => (v == state).then_some(state),
        (Op::Read, Outcome::Unknown) => Some(state),
        (Op::Write(v), Outcome::Written | Outcome::Unknown) => Some(Some(v)),
        (Op::Cas(from, to), Outcome::Swapped(true)) => (state == Some(from)).then_some(Some(to)),
        (Op::Cas(from, _), Outcome::Swapped(false)) => (state != Some(from)).then_some(state),
        (Op::Cas(from, to), Outcome::Unknown) => {
            Some(if state == Some(from) { Some(to) } else { state })
        }
        _ => None,
    }
}

/// Whether the history of one register, starting at `initial`, is
/// linearizable; None if that was not decided within `budget` search steps
/// (proving a history wrong can take a search through every order of the
/// operations whose outcome is unknown).
pub fn check(history: &[Call], initial: Option<u64>, budget: u64) -> Option<bool> {
    let mut steps = 0u64;
    // Reads that returned nothing tell nothing.
    let calls: Vec<&Call> = history
        .iter()
        .filter(|c| !(c.op == Op::Read && c.outcome == Outcome::Unknown))
        .collect();
    let n = calls.len();
    // Events: 2i is the call of operation i, 2i+1 its return. Calls sort
    // before returns at the same time: such operations count as overlapping.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, c) in calls.iter().enumerate() {
        events.push((c.call, false, i));
        events.push((c.ret.unwrap_or(u64::MAX), true, i));
    }
    events.sort_by_key(|&(t, is_ret, i)| (t, is_ret, i));
    // A doubly linked list over the events, node 0 the head.
    let len = events.len() + 1;
    let mut next: Vec<usize> = (1..=len).collect();
    let mut prev: Vec<usize> = (0..len).map(|i| i.wrapping_sub(1)).collect();
    next[len - 1] = usize::MAX;
    let mut call_node = vec![0; n];
    let mut ret_node = vec![0; n];
    for (k, &(_, is_ret, i)) in events.iter().enumerate() {
        if is_ret {
            ret_node[i] = k + 1;
        } else {
            call_node[i] = k + 1;
        }
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, node: usize| {
        next[prev[node]] = next[node];
        if next[node] != usize::MAX {
            prev[next[node]] = prev[node];
        }
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, node: usize| {
        next[prev[node]] = node;
        if next[node] != usize::MAX {
            prev[next[node]] = node;
        }
    };

    let words = n.div_ceil(64);
    let mut done = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
    let mut state = initial;
    let mut node = next[0];
    loop {
        if next[0] == usize::MAX {
            return Some(true);
        }
        steps += 1;
        if steps > budget {
            return None;
        }
        if node == usize::MAX {
            // Nothing more can go next here: undo the last choice.
            let Some((op, before)) = stack.pop() else {
                return Some(false);
            };
            done[op / 64] &= !(1 << (op % 64));
            state = before;
            relink(&mut next, &mut prev, ret_node[op]);
            relink(&mut next, &mut prev, call_node[op]);
            node = next[call_node[op]];
            continue;
        }
        let (_, is_ret, op) = events[node - 1];
        if is_ret {
            // An operation returned before any choice could place it.
            node = usize::MAX;
            continue;
        }
        let c = calls[op];
        if let Some(after) = step(state, c.op, c.outcome) {
            let mut key = done.clone();
            key[op / 64] |= 1 << (op % 64);
            if seen.insert((key.clone(), after)) {
                stack.push((op, state));
                done = key;
                state = after;
                unlink(&mut next, &mut prev, call_node[op]);
                unlink(&mut next, &mut prev, ret_node[op]);
                node = next[0];
                continue;
            }
        }
        node = next[node];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(op: Op, outcome: Outcome, call: u64, ret: u64) -> Call {
        Call {
            op,
            outcome,
            call,
            ret: Some(ret),
        }
    }

    #[test]
    fn sequential_histories() {
        let h = [
            c(Op::Write(1), Outcome::Written, 0, 1),
            c(Op::Read, Outcome::Read(Some(1)), 2, 3),
            c(Op::Cas(1, 2), Outcome::Swapped(true), 4, 5),
            c(Op::Cas(1, 3), Outcome::Swapped(false), 6, 7),
            c(Op::Read, Outcome::Read(Some(2)), 8, 9),
        ];
        assert_eq!(check(&h, None, 1_000_000), Some(true));
    }

    #[test]
    fn a_stale_read_is_rejected() {
        // The write finished before the read began, yet the read missed it.
        let h = [
            c(Op::Write(1), Outcome::Written, 0, 1),
            c(Op::Read, Outcome::Read(None), 2, 3),
        ];
        assert_eq!(check(&h, None, 1_000_000), Some(false));
        // Overlapping, the read may come first.
        let h = [
            c(Op::Write(1), Outcome::Written, 0, 3),
            c(Op::Read, Outcome::Read(None), 1, 2),
        ];
        assert_eq!(check(&h, None, 1_000_000), Some(true));
    }

    #[test]
    fn reads_cannot_go_back_in_time() {
        // Two reads after one another see 2, then the older 1.
        let h = [
            c(Op::Write(1), Outcome::Written, 0, 1),
            c(Op::Write(2), Outcome::Written, 2, 10),
            c(Op::Read, Outcome::Read(Some(2)), 3, 4),
            c(Op::Read, Outcome::Read(Some(1)), 5, 6),
        ];
        assert_eq!(check(&h, None, 1_000_000), Some(false));
    }

    #[test]
    fn two_swaps_from_one_value_cannot_both_win() {
        let h = [
            c(Op::Write(0), Outcome::Written, 0, 1),
            c(Op::Cas(0, 1), Outcome::Swapped(true), 2, 5),
            c(Op::Cas(0, 2), Outcome::Swapped(true), 3, 6),
        ];
        assert_eq!(check(&h, None, 1_000_000), Some(false));
    }

    #[test]
    fn an_unknown_write_may_land_late_or_never() {
        let lost = Call {
            op: Op::Write(7),
            outcome: Outcome::Unknown,
            call: 0,
            ret: None,
        };
        let never = [lost, c(Op::Read, Outcome::Read(None), 5, 6)];
        assert_eq!(check(&never, None, 1_000_000), Some(true));
        let late = [
            lost,
            c(Op::Read, Outcome::Read(None), 5, 6),
            c(Op::Read, Outcome::Read(Some(7)), 7, 8),
        ];
        assert_eq!(check(&late, None, 1_000_000), Some(true));
        // But once seen, it cannot be undone.
        let undone = [
            lost,
            c(Op::Read, Outcome::Read(Some(7)), 5, 6),
            c(Op::Read, Outcome::Read(None), 7, 8),
        ];
        assert_eq!(check(&undone, None, 1_000_000), Some(false));
    }

    #[test]
    fn a_lost_update_is_rejected() {
        // Both swaps from 0 report success one after the other.
        let h = [
            c(Op::Cas(0, 1), Outcome::Swapped(true), 0, 1),
            c(Op::Cas(0, 2), Outcome::Swapped(true), 2, 3),
        ];
        assert_eq!(check(&h, Some(0), 1_000_000), Some(false));
    }
}
