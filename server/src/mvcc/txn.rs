//! Applying write requests. One `WriteTxn` covers every request of the Raft
//! entries applied together; its changes reach sled in one atomic batch
//! (written by `writer.rs`'s thread), and reads inside it see its own
//! earlier writes through `pending`.

use std::collections::{BTreeSet, HashMap};

use synod_proto::etcdserverpb::{
    compare, request_op, response_op, AlarmMember, AlarmRequest, AlarmResponse, CompactionRequest,
    CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest,
    LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse, PutRequest, PutResponse,
    ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use synod_proto::mvccpb::{self, event::EventType, KeyValue};
use synod_proto::synodpb::{self, request, response};

use super::{
    alarm_key, check_rev, encode_record, lease_deadline, lease_key, load, member_key, range,
    rev_key, KeyRange, Lease, Live, Records, Rev, Source, State,
};
use crate::error::EtcdError;

/// The version a put replaces: what the index knows of it, and the record
/// when the request needs its value.
struct Prev {
    live: Live,
    kv: Option<KeyValue>,
}

pub struct WriteTxn<'a> {
    st: &'a mut State,
    src: Source<'a>,
    batch: sled::Batch,
    pending: Records,
    compacted: Vec<Rev>,
    events: Vec<mvccpb::Event>,
    /// The main revision of the request being applied and the next sub revision.
    main: i64,
    sub: i64,
}

fn header(rev: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision: rev,
        ..Default::default()
    })
}

impl<'a> WriteTxn<'a> {
    pub(crate) fn new(st: &'a mut State, src: Source<'a>) -> Self {
        let main = st.rev + 1;
        WriteTxn {
            st,
            src,
            batch: sled::Batch::default(),
            pending: HashMap::new(),
            compacted: Vec::new(),
            events: Vec::new(),
            main,
            sub: 0,
        }
    }

    /// The storage writes, the revision records among them, the events for
    /// watchers, and the revisions a compaction dropped (deleted from
    /// storage later, in the background).
    pub fn finish(self) -> (sled::Batch, Records, Vec<mvccpb::Event>, Vec<Rev>) {
        (self.batch, self.pending, self.events, self.compacted)
    }

    /// Applies one request. A request that fails validation changes nothing
    /// and answers with an error; only a storage failure aborts the batch.
    pub fn apply(&mut self, req: &synodpb::Request) -> Result<synodpb::Response, EtcdError> {
        self.main = self.st.rev + 1;
        self.sub = 0;
        let result = match self.alarmed(req) {
            Err(e) => Err(e),
            Ok(()) => self.apply_op(req),
        };
        if self.sub > 0 {
            self.st.rev = self.main;
        }
        let op = match result {
            Ok(op) => op,
            Err(EtcdError::Internal(msg)) => return Err(EtcdError::Internal(msg)),
            Err(e) => response::Op::Error(synodpb::Error {
                code: e.code() as i32,
                message: e.to_string(),
            }),
        };
        Ok(synodpb::Response { op: Some(op) })
    }

    /// What active alarms refuse, as etcd's appliers do: with NOSPACE,
    /// whatever would store more (a put, a txn with a put, a lease); with
    /// CORRUPT, every write.
    fn alarmed(&self, req: &synodpb::Request) -> Result<(), EtcdError> {
        use synod_proto::etcdserverpb::AlarmType;
        let active = |t: AlarmType| self.st.alarms.iter().any(|(_, a)| *a == t as i32);
        if active(AlarmType::Corrupt) {
            match req.op {
                Some(request::Op::Alarm(_)) | Some(request::Op::Publish(_)) => {}
                _ => return Err(EtcdError::Corrupt),
            }
        }
        if active(AlarmType::Nospace) {
            let grows = match &req.op {
                Some(request::Op::Put(_)) | Some(request::Op::LeaseGrant(_)) => true,
                Some(request::Op::Txn(t)) => txn_puts(t),
                _ => false,
            };
            if grows {
                return Err(EtcdError::NoSpace);
            }
        }
        Ok(())
    }

    fn apply_op(&mut self, req: &synodpb::Request) -> Result<response::Op, EtcdError> {
        match req.op.as_ref() {
            Some(request::Op::Put(r)) => self.put_checked(r).map(response::Op::Put),
            Some(request::Op::DeleteRange(r)) => Ok(response::Op::DeleteRange(self.delete(r)?)),
            Some(request::Op::Txn(r)) => self.txn_checked(r).map(response::Op::Txn),
            Some(request::Op::Compaction(r)) => self.compact(r).map(response::Op::Compaction),
            Some(request::Op::LeaseGrant(r)) => self.lease_grant(r).map(response::Op::LeaseGrant),
            Some(request::Op::LeaseRevoke(r)) => {
                self.lease_revoke(r).map(response::Op::LeaseRevoke)
            }
            // One revision per lease that had keys, as when etcd's lessor
            // revokes expired leases one by one.
            Some(request::Op::Publish(a)) => {
                use prost::Message;
                self.batch.insert(&member_key(a.id)[..], a.encode_to_vec());
                Ok(response::Op::Publish(synodpb::PublishResponse {}))
            }
            Some(request::Op::LeaseExpire(r)) => {
                for id in &r.ids {
                    if self.st.leases.contains_key(id) {
                        self.revoke(*id)?;
                        if self.sub > 0 {
                            self.st.rev = self.main;
                            self.main += 1;
                            self.sub = 0;
                        }
                    }
                }
                Ok(response::Op::LeaseExpire(synodpb::LeaseExpireResponse {}))
            }
            Some(request::Op::Alarm(r)) => Ok(response::Op::Alarm(self.alarm(r))),
            None => Err(EtcdError::Internal("empty request".into())),
        }
    }

    /// etcd's alarm store: activating answers with the alarm (also when it
    /// was already active), deactivating with the alarm it removed, getting
    /// with the active alarms of the type asked (all for NONE).
    fn alarm(&mut self, r: &AlarmRequest) -> AlarmResponse {
        use synod_proto::etcdserverpb::alarm_request::AlarmAction;
        let member = (r.member_id, r.alarm);
        let one = |(member_id, alarm): (u64, i32)| vec![AlarmMember { member_id, alarm }];
        let alarms = match AlarmAction::try_from(r.action).unwrap_or(AlarmAction::Get) {
            AlarmAction::Get => self
                .st
                .alarms
                .iter()
                .filter(|(_, a)| r.alarm == 0 || *a == r.alarm)
                .map(|&(member_id, alarm)| AlarmMember { member_id, alarm })
                .collect(),
            // etcd would store an alarm of type NONE, which means nothing;
            // it is ignored here.
            AlarmAction::Activate if r.alarm == 0 => Vec::new(),
            AlarmAction::Activate => {
                if self.st.alarms.insert(member) {
                    self.batch
                        .insert(alarm_key(r.member_id, r.alarm), Vec::new());
                }
                one(member)
            }
            AlarmAction::Deactivate => {
                if self.st.alarms.remove(&member) {
                    self.batch.remove(alarm_key(r.member_id, r.alarm));
                    one(member)
                } else {
                    Vec::new()
                }
            }
        };
        // etcd 3.4 sends alarm answers without a header.
        AlarmResponse {
            header: None,
            alarms,
        }
    }

    /// The revision reads inside the current request see: its own writes included.
    fn read_rev(&self) -> i64 {
        if self.sub > 0 {
            self.main
        } else {
            self.st.rev
        }
    }

    fn next_rev(&mut self) -> Rev {
        let rev = Rev::new(self.main, self.sub);
        self.sub += 1;
        rev
    }

    fn record(&mut self, rev: Rev, kv: KeyValue, tombstone: bool, prev: Option<KeyValue>) {
        let live = Live {
            create_revision: kv.create_revision,
            version: kv.version,
            lease: kv.lease,
        };
        self.st.index.push(&kv.key, rev, tombstone, live);
        self.batch
            .insert(&rev_key(rev)[..], encode_record(&kv, tombstone));
        self.events.push(mvccpb::Event {
            r#type: if tombstone {
                EventType::Delete as i32
            } else {
                EventType::Put as i32
            },
            kv: Some(kv.clone()),
            prev_kv: prev,
        });
        self.pending.insert(rev, (kv, tombstone));
    }

    fn check_put(&self, r: &PutRequest) -> Result<(), EtcdError> {
        if (r.ignore_value || r.ignore_lease) && self.st.index.latest(&r.key).is_none() {
            return Err(EtcdError::KeyNotFound);
        }
        if r.lease != 0 && !self.st.leases.contains_key(&r.lease) {
            return Err(EtcdError::LeaseNotFound);
        }
        Ok(())
    }

    /// The version a put replaces. A put reads at the current revision,
    /// where a key's visible version is its newest, so the index knows it;
    /// the record itself is loaded only when the request needs its value.
    fn prev_for_put(&self, r: &PutRequest) -> Result<Option<Prev>, EtcdError> {
        let Some((rev, live)) = self.st.index.latest(&r.key) else {
            return Ok(None);
        };
        let kv = if r.prev_kv || r.ignore_value {
            Some(load(self.src, Some(&self.pending), rev)?.0)
        } else {
            None
        };
        Ok(Some(Prev { live, kv }))
    }

    fn put_checked(&mut self, r: &PutRequest) -> Result<PutResponse, EtcdError> {
        self.check_put(r)?;
        let prev = self.prev_for_put(r)?;
        self.put(r, prev)
    }

    fn put(&mut self, r: &PutRequest, prev: Option<Prev>) -> Result<PutResponse, EtcdError> {
        let rev = self.next_rev();
        let (live, prev) = match prev {
            Some(p) => (Some(p.live), p.kv),
            None => (None, None),
        };
        let value = match (&prev, r.ignore_value) {
            (Some(p), true) => p.value.clone(),
            (None, true) if live.is_some() => {
                return Err(EtcdError::Internal("previous value not loaded".into()))
            }
            _ => r.value.clone(),
        };
        let lease = match (&live, r.ignore_lease) {
            (Some(p), true) => p.lease,
            _ => r.lease,
        };
        let kv = KeyValue {
            key: r.key.clone(),
            create_revision: live.map_or(rev.main, |p| p.create_revision),
            mod_revision: rev.main,
            version: live.map_or(1, |p| p.version + 1),
            value,
            lease,
        };
        let old_lease = live.map_or(0, |p| p.lease);
        if old_lease != lease {
            self.detach(old_lease, &r.key);
        }
        if lease != 0 {
            if let Some(l) = self.st.leases.get_mut(&lease) {
                l.keys.insert(r.key.clone());
            }
        }
        self.record(rev, kv, false, prev.clone());
        Ok(PutResponse {
            header: header(rev.main),
            prev_kv: if r.prev_kv { prev } else { None },
        })
    }

    fn detach(&mut self, lease: i64, key: &[u8]) {
        if lease != 0 {
            if let Some(l) = self.st.leases.get_mut(&lease) {
                l.keys.remove(key);
            }
        }
    }

    fn delete(&mut self, r: &DeleteRangeRequest) -> Result<DeleteRangeResponse, EtcdError> {
        let at = self.read_rev();
        let revs: Vec<Rev> = self
            .st
            .index
            .range(KeyRange::new(&r.key, &r.range_end), at)
            .map(|(_, rev)| rev)
            .collect();
        let mut prev_kvs = Vec::with_capacity(revs.len());
        for rev in &revs {
            let prev = load(self.src, Some(&self.pending), *rev)?.0;
            let tomb_rev = self.next_rev();
            self.detach(prev.lease, &prev.key);
            let tomb = KeyValue {
                key: prev.key.clone(),
                mod_revision: tomb_rev.main,
                ..Default::default()
            };
            self.record(tomb_rev, tomb, true, Some(prev.clone()));
            prev_kvs.push(prev);
        }
        Ok(DeleteRangeResponse {
            header: header(self.read_rev()),
            deleted: revs.len() as i64,
            prev_kvs: if r.prev_kv { prev_kvs } else { Vec::new() },
        })
    }

    fn compare(&self, c: &Compare) -> Result<bool, EtcdError> {
        use compare::{CompareResult, CompareTarget, TargetUnion};
        let at = self.read_rev();
        let revs: Vec<(Rev, Option<Live>)> = self
            .st
            .index
            .range_live(KeyRange::new(&c.key, &c.range_end), at)
            .map(|(_, rev, live)| (rev, live))
            .collect();
        let target = CompareTarget::try_from(c.target).unwrap_or(CompareTarget::Version);
        let result = CompareResult::try_from(c.result).unwrap_or(CompareResult::Equal);
        let check = |kv: &KeyValue| -> bool {
            let ord = match (target, c.target_union.as_ref()) {
                (CompareTarget::Value, Some(TargetUnion::Value(v))) => kv.value.cmp(v),
                (CompareTarget::Version, Some(TargetUnion::Version(v))) => kv.version.cmp(v),
                (CompareTarget::Create, Some(TargetUnion::CreateRevision(v))) => {
                    kv.create_revision.cmp(v)
                }
                (CompareTarget::Mod, Some(TargetUnion::ModRevision(v))) => kv.mod_revision.cmp(v),
                (CompareTarget::Lease, Some(TargetUnion::Lease(v))) => kv.lease.cmp(v),
                // A target without its value compares against the zero value.
                (CompareTarget::Value, _) => kv.value.as_slice().cmp(&[][..]),
                (CompareTarget::Version, _) => kv.version.cmp(&0),
                (CompareTarget::Create, _) => kv.create_revision.cmp(&0),
                (CompareTarget::Mod, _) => kv.mod_revision.cmp(&0),
                (CompareTarget::Lease, _) => kv.lease.cmp(&0),
            };
            match result {
                CompareResult::Equal => ord.is_eq(),
                CompareResult::Greater => ord.is_gt(),
                CompareResult::Less => ord.is_lt(),
                CompareResult::NotEqual => ord.is_ne(),
            }
        };
        if revs.is_empty() {
            // etcd: a missing key never matches on value, and compares as
            // all-zero metadata otherwise.
            return Ok(target != CompareTarget::Value && check(&KeyValue::default()));
        }
        for (rev, live) in revs {
            let kv = match live {
                // Only a value needs the record.
                Some(l) if target != CompareTarget::Value => KeyValue {
                    create_revision: l.create_revision,
                    mod_revision: rev.main,
                    version: l.version,
                    lease: l.lease,
                    ..Default::default()
                },
                _ => load(self.src, Some(&self.pending), rev)?.0,
            };
            if !check(&kv) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Decides, against the state before the txn, which branch the txn and
    /// every nested txn on the way takes (etcd's compareToPath), and
    /// validates each op on that path, so a failing txn changes nothing and
    /// nested compares do not see the outer txn's own writes.
    fn txn_path(&self, t: &TxnRequest, path: &mut Vec<bool>) -> Result<(), EtcdError> {
        let ok = self.all_compares(&t.compare)?;
        path.push(ok);
        for op in if ok { &t.success } else { &t.failure } {
            match op.request.as_ref() {
                Some(request_op::Request::RequestPut(p)) => {
                    self.check_put(p)?;
                }
                Some(request_op::Request::RequestRange(r)) => {
                    check_rev(self.st, r.revision, self.read_rev())?;
                }
                Some(request_op::Request::RequestTxn(inner)) => self.txn_path(inner, path)?,
                Some(request_op::Request::RequestDeleteRange(_)) | None => {}
            }
        }
        Ok(())
    }

    fn all_compares(&self, cmps: &[Compare]) -> Result<bool, EtcdError> {
        for c in cmps {
            if !self.compare(c)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn txn_checked(&mut self, t: &TxnRequest) -> Result<TxnResponse, EtcdError> {
        let mut path = Vec::new();
        self.txn_path(t, &mut path)?;
        self.txn(t, &mut path.into_iter())
    }

    /// Runs a txn along a path `txn_path` decided and validated.
    fn txn(
        &mut self,
        t: &TxnRequest,
        path: &mut std::vec::IntoIter<bool>,
    ) -> Result<TxnResponse, EtcdError> {
        let ok = path
            .next()
            .ok_or_else(|| EtcdError::Internal("txn path too short".into()))?;
        let ops = if ok { &t.success } else { &t.failure };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let resp = match op.request.as_ref() {
                Some(request_op::Request::RequestRange(r)) => {
                    let current = self.read_rev();
                    response_op::Response::ResponseRange(range(
                        self.st,
                        self.src,
                        Some(&self.pending),
                        r,
                        current,
                    )?)
                }
                Some(request_op::Request::RequestPut(p)) => {
                    let prev = self.prev_for_put(p)?;
                    response_op::Response::ResponsePut(self.put(p, prev)?)
                }
                Some(request_op::Request::RequestDeleteRange(d)) => {
                    response_op::Response::ResponseDeleteRange(self.delete(d)?)
                }
                Some(request_op::Request::RequestTxn(inner)) => {
                    response_op::Response::ResponseTxn(self.txn(inner, path)?)
                }
                None => continue,
            };
            responses.push(ResponseOp {
                response: Some(resp),
            });
        }
        // Nested responses keep the revision they saw, as etcd's do.
        Ok(TxnResponse {
            header: header(self.read_rev()),
            succeeded: ok,
            responses,
        })
    }

    fn compact(&mut self, r: &CompactionRequest) -> Result<CompactionResponse, EtcdError> {
        if r.revision > self.st.rev {
            return Err(EtcdError::FutureRev);
        }
        if r.revision <= self.st.compact_rev {
            return Err(EtcdError::Compacted);
        }
        for rev in self.st.index.compact(r.revision) {
            self.pending.remove(&rev);
            self.compacted.push(rev);
        }
        self.st.compact_rev = r.revision;
        Ok(CompactionResponse {
            header: header(self.st.rev),
        })
    }

    fn lease_grant(&mut self, r: &LeaseGrantRequest) -> Result<LeaseGrantResponse, EtcdError> {
        if r.id == 0 {
            return Err(EtcdError::Internal("lease id not assigned".into()));
        }
        if self.st.leases.contains_key(&r.id) {
            return Err(EtcdError::LeaseExist);
        }
        self.st.leases.insert(
            r.id,
            Lease {
                ttl: r.ttl,
                keys: BTreeSet::new(),
                deadline: lease_deadline(r.ttl),
            },
        );
        self.batch
            .insert(&lease_key(r.id)[..], &r.ttl.to_be_bytes()[..]);
        Ok(LeaseGrantResponse {
            header: header(self.st.rev),
            id: r.id,
            ttl: r.ttl,
            error: String::new(),
        })
    }

    fn lease_revoke(&mut self, r: &LeaseRevokeRequest) -> Result<LeaseRevokeResponse, EtcdError> {
        if !self.st.leases.contains_key(&r.id) {
            return Err(EtcdError::LeaseNotFound);
        }
        self.revoke(r.id)?;
        Ok(LeaseRevokeResponse {
            header: header(self.read_rev()),
        })
    }

    /// Removes a lease and deletes its keys, all at one revision.
    fn revoke(&mut self, id: i64) -> Result<(), EtcdError> {
        let keys = self
            .st
            .leases
            .remove(&id)
            .map(|l| l.keys)
            .unwrap_or_default();
        self.batch.remove(&lease_key(id)[..]);
        for key in keys {
            self.delete(&DeleteRangeRequest {
                key,
                ..Default::default()
            })?;
        }
        Ok(())
    }
}

/// Whether a txn may put, in either branch or a nested txn (etcd's quota
/// cost of a txn).
fn txn_puts(t: &TxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .any(|op| match &op.request {
            Some(request_op::Request::RequestPut(_)) => true,
            Some(request_op::Request::RequestTxn(t)) => txn_puts(t),
            _ => false,
        })
}
