//! `Synod\Op` and the transaction builder `Synod\Txn`:
//! `$client->txn()->ifValue('k', '=', 'v')->then(Op::put('k', 'w'))->else(Op::get('k'))->commit()`.

use crate::args::Bytes;
use ext_php_rs::exception::PhpException;
use ext_php_rs::flags::ClassFlags;
use ext_php_rs::prelude::*;
use ext_php_rs::types::ZendClassObject;
use ext_php_rs::zend::ce;
use synod_client::pb::compare::{CompareResult, CompareTarget, TargetUnion};
use synod_client::pb::request_op::Request;
use synod_client::pb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

use crate::client::LastRevision;
use crate::lock::Lock;
use crate::runtime::{self, Conn};
use crate::values::TxnResult;

pub fn value_error(msg: String) -> PhpException {
    PhpException::new(msg, 0, ce::value_error())
}

/// The key and range end of a key, or of every key under a prefix; the
/// empty prefix is the whole keyspace (`\0` to `\0`, as etcd's client does).
pub fn key_range(key: &[u8], prefix: bool) -> (Vec<u8>, Vec<u8>) {
    match (prefix, key.is_empty()) {
        (false, _) => (key.to_vec(), Vec::new()),
        (true, true) => (vec![0], vec![0]),
        (true, false) => (key.to_vec(), synod_client::prefix_end(key)),
    }
}

/// One operation of a transaction: made with Op::get, Op::put or Op::delete.
#[php_class]
#[php(name = "Synod\\Op")]
#[php(flags = ClassFlags::NoDynamicProperties)]
#[derive(Clone, Default)]
pub struct Op {
    req: Option<Request>,
}

#[php_impl]
impl Op {
    /// Reads a key, or every key under a prefix; gives KeyValue[] in the result.
    #[php(defaults(prefix = false))]
    pub fn get(key: Bytes, prefix: bool, limit: Option<i64>) -> PhpResult<Op> {
        let limit = limit.unwrap_or(0);
        let (k, end) = key_range(&key, prefix);
        if limit < 0 {
            return Err(value_error(format!(
                "limit must not be negative, {limit} given"
            )));
        }
        Ok(Op {
            req: Some(Request::RequestRange(RangeRequest {
                key: k,
                range_end: end,
                limit,
                ..Default::default()
            })),
        })
    }

    /// Writes a key (attached to a lease when given); gives the revision in the result.
    pub fn put(key: Bytes, value: Bytes, lease: Option<i64>) -> Op {
        Op {
            req: Some(Request::RequestPut(PutRequest {
                key: key.to_vec(),
                value: value.to_vec(),
                lease: lease.unwrap_or(0),
                ..Default::default()
            })),
        }
    }

    /// Deletes a key, or every key under a prefix; gives the count in the result.
    #[php(defaults(prefix = false))]
    pub fn delete(key: Bytes, prefix: bool) -> Op {
        let (k, end) = key_range(&key, prefix);
        Op {
            req: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                key: k,
                range_end: end,
                ..Default::default()
            })),
        }
    }
}

impl Op {
    fn request(&self) -> PhpResult<RequestOp> {
        match &self.req {
            Some(r) => Ok(RequestOp {
                request: Some(r.clone()),
            }),
            None => Err(value_error(
                "an Op is made with Op::get(), Op::put() or Op::delete()".into(),
            )),
        }
    }
}

/// A transaction being built: comparisons, then the operations to run when
/// all hold, else the others. Made by Client::txn().
#[php_class]
#[php(name = "Synod\\Txn")]
#[php(flags = ClassFlags::NoDynamicProperties)]
#[derive(Default)]
pub struct Txn {
    conn: Option<Conn>,
    req: TxnRequest,
    /// The making Client's, so its lastRevision() covers the commit.
    last: LastRevision,
}

impl Txn {
    pub fn new(conn: Conn, last: LastRevision) -> Txn {
        Txn {
            conn: Some(conn),
            req: TxnRequest::default(),
            last,
        }
    }

    fn compare<'a>(
        self_: &'a mut ZendClassObject<Txn>,
        key: &[u8],
        op: &str,
        target: CompareTarget,
        value: TargetUnion,
        prefix: bool,
    ) -> PhpResult<&'a mut ZendClassObject<Txn>> {
        let result = match op {
            "=" | "==" | "===" => CompareResult::Equal,
            "!=" | "!==" | "<>" => CompareResult::NotEqual,
            "<" => CompareResult::Less,
            ">" => CompareResult::Greater,
            _ => {
                return Err(value_error(format!(
                    "comparison operator must be one of =, !=, <, >; {op:?} given"
                )))
            }
        };
        let (key, range_end) = key_range(key, prefix);
        self_.req.compare.push(Compare {
            result: result as i32,
            target: target as i32,
            key,
            range_end,
            target_union: Some(value),
        });
        Ok(self_)
    }

    fn ops(ops: &[&Op]) -> PhpResult<Vec<RequestOp>> {
        ops.iter().map(|o| o.request()).collect()
    }
}

#[php_impl]
impl Txn {
    /// Compares the key's value ('=', '!=', '<', '>', bytewise).
    #[php(defaults(prefix = false))]
    pub fn if_value<'a>(
        self_: &'a mut ZendClassObject<Txn>,
        key: Bytes,
        op: &str,
        value: Bytes,
        prefix: bool,
    ) -> PhpResult<&'a mut ZendClassObject<Txn>> {
        let v = TargetUnion::Value(value.to_vec());
        Self::compare(self_, &key, op, CompareTarget::Value, v, prefix)
    }

    /// Compares the key's version (0 when the key does not exist).
    #[php(defaults(prefix = false))]
    pub fn if_version<'a>(
        self_: &'a mut ZendClassObject<Txn>,
        key: Bytes,
        op: &str,
        version: i64,
        prefix: bool,
    ) -> PhpResult<&'a mut ZendClassObject<Txn>> {
        let v = TargetUnion::Version(version);
        Self::compare(self_, &key, op, CompareTarget::Version, v, prefix)
    }

    /// Compares the key's create revision (0 when the key does not exist).
    #[php(defaults(prefix = false))]
    pub fn if_create_revision<'a>(
        self_: &'a mut ZendClassObject<Txn>,
        key: Bytes,
        op: &str,
        revision: i64,
        prefix: bool,
    ) -> PhpResult<&'a mut ZendClassObject<Txn>> {
        let v = TargetUnion::CreateRevision(revision);
        Self::compare(self_, &key, op, CompareTarget::Create, v, prefix)
    }

    /// Compares the key's mod revision (0 when the key does not exist).
    #[php(defaults(prefix = false))]
    pub fn if_mod_revision<'a>(
        self_: &'a mut ZendClassObject<Txn>,
        key: Bytes,
        op: &str,
        revision: i64,
        prefix: bool,
    ) -> PhpResult<&'a mut ZendClassObject<Txn>> {
        let v = TargetUnion::ModRevision(revision);
        Self::compare(self_, &key, op, CompareTarget::Mod, v, prefix)
    }

    /// Compares the ID of the lease the key is attached to (0 for none).
    #[php(defaults(prefix = false))]
    pub fn if_lease<'a>(
        self_: &'a mut ZendClassObject<Txn>,
        key: Bytes,
        op: &str,
        lease: i64,
        prefix: bool,
    ) -> PhpResult<&'a mut ZendClassObject<Txn>> {
        let v = TargetUnion::Lease(lease);
        Self::compare(self_, &key, op, CompareTarget::Lease, v, prefix)
    }

    /// Holds only while `lock` is still held by this grant (its key's create revision is the fencing token), so a holder that lost the lock cannot write; never holds when the lock is not acquired.
    pub fn if_held<'a>(
        self_: &'a mut ZendClassObject<Txn>,
        lock: &Lock,
    ) -> PhpResult<&'a mut ZendClassObject<Txn>> {
        let guard = lock.guard()?;
        self_.req.compare.push(guard);
        Ok(self_)
    }

    /// Operations to run when every comparison holds.
    pub fn then<'a>(
        self_: &'a mut ZendClassObject<Txn>,
        ops: &[&Op],
    ) -> PhpResult<&'a mut ZendClassObject<Txn>> {
        let ops = Self::ops(ops)?;
        self_.req.success.extend(ops);
        Ok(self_)
    }

    /// Operations to run when a comparison fails.
    #[php(name = "else")]
    pub fn otherwise<'a>(
        self_: &'a mut ZendClassObject<Txn>,
        ops: &[&Op],
    ) -> PhpResult<&'a mut ZendClassObject<Txn>> {
        let ops = Self::ops(ops)?;
        self_.req.failure.extend(ops);
        Ok(self_)
    }

    /// Sends the transaction; it runs atomically at one revision.
    pub fn commit(&self) -> PhpResult<TxnResult> {
        let Some(conn) = &self.conn else {
            return Err(value_error("a Txn is made with Client::txn()".into()));
        };
        let c = conn.client()?;
        let req = self.req.clone();
        let resp = runtime::block_on(async move { c.txn(req).await })?;
        self.last.record(&resp);
        let revision = resp.header.as_ref().map_or(0, |h| h.revision);
        Ok(TxnResult::new(resp, revision))
    }
}
