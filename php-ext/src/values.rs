//! Read-only results: `Synod\KeyValue`, `Synod\Event`, `Synod\TxnResult`.
//! Their properties have getters only, so PHP can read them (and
//! `var_dump` shows them) but not change them.

use ext_php_rs::binary::Binary;
use ext_php_rs::convert::IntoZval;
use ext_php_rs::flags::ClassFlags;
use ext_php_rs::flags::DataType;
use ext_php_rs::prelude::*;
use ext_php_rs::types::Zval;
use synod_client::mvccpb;
use synod_client::pb::response_op::Response;
use synod_client::pb::TxnResponse;

/// A key with its value and etcd's metadata.
#[php_class]
#[php(name = "Synod\\KeyValue")]
#[php(flags = ClassFlags::NoDynamicProperties)]
#[derive(Clone, Default)]
pub struct KeyValue {
    kv: mvccpb::KeyValue,
}

impl From<mvccpb::KeyValue> for KeyValue {
    fn from(kv: mvccpb::KeyValue) -> Self {
        KeyValue { kv }
    }
}

#[php_impl]
impl KeyValue {
    /// The key.
    #[php(getter)]
    pub fn get_key(&self) -> Binary<u8> {
        Binary::from(self.kv.key.clone())
    }

    /// The value.
    #[php(getter)]
    pub fn get_value(&self) -> Binary<u8> {
        Binary::from(self.kv.value.clone())
    }

    /// Revision of the write that created the key (since its last delete).
    #[php(getter)]
    pub fn get_create_revision(&self) -> i64 {
        self.kv.create_revision
    }

    /// Revision of the last write to the key.
    #[php(getter)]
    pub fn get_mod_revision(&self) -> i64 {
        self.kv.mod_revision
    }

    /// Number of writes since the key was created.
    #[php(getter)]
    pub fn get_version(&self) -> i64 {
        self.kv.version
    }

    /// ID of the lease the key is attached to, 0 for none.
    #[php(getter)]
    pub fn get_lease(&self) -> i64 {
        self.kv.lease
    }
}

/// One change seen by a watch.
#[php_class]
#[php(name = "Synod\\Event")]
#[php(flags = ClassFlags::NoDynamicProperties)]
#[derive(Clone, Default)]
pub struct Event {
    delete: bool,
    kv: KeyValue,
    prev: Option<KeyValue>,
}

impl From<mvccpb::Event> for Event {
    fn from(e: mvccpb::Event) -> Self {
        Event {
            delete: e.r#type == mvccpb::event::EventType::Delete as i32,
            kv: e.kv.unwrap_or_default().into(),
            prev: e.prev_kv.map(KeyValue::from),
        }
    }
}

#[php_impl]
impl Event {
    pub const PUT: &'static str = "PUT";
    pub const DELETE: &'static str = "DELETE";

    /// Event::PUT or Event::DELETE.
    #[php(getter)]
    pub fn get_type(&self) -> &'static str {
        if self.delete {
            Self::DELETE
        } else {
            Self::PUT
        }
    }

    /// The key that changed.
    #[php(getter)]
    pub fn get_key(&self) -> Binary<u8> {
        self.kv.get_key()
    }

    /// The new value; empty for a delete.
    #[php(getter)]
    pub fn get_value(&self) -> Binary<u8> {
        self.kv.get_value()
    }

    /// The value before the change, when the watch asked for previous values and there was one.
    #[php(getter)]
    pub fn get_prev_value(&self) -> Option<Binary<u8>> {
        self.prev.as_ref().map(KeyValue::get_value)
    }

    /// Revision of the change.
    #[php(getter)]
    pub fn get_revision(&self) -> i64 {
        self.kv.kv.mod_revision
    }

    /// The key's state after the change (for a delete: key and revision only).
    #[php(getter)]
    pub fn get_kv(&self) -> KeyValue {
        self.kv.clone()
    }

    /// The key's state before the change, when asked for and present.
    #[php(getter)]
    pub fn get_prev_kv(&self) -> Option<KeyValue> {
        self.prev.clone()
    }
}

/// What one operation of a transaction returned.
#[derive(Clone)]
pub enum OpResult {
    /// A get: the keys found.
    Range(Vec<KeyValue>),
    /// A put: the revision of the transaction.
    Put(i64),
    /// A delete: how many keys were deleted.
    Delete(i64),
    Txn(TxnResult),
}

impl IntoZval for OpResult {
    const TYPE: DataType = DataType::Mixed;
    const NULLABLE: bool = false;

    fn set_zval(self, zv: &mut Zval, persistent: bool) -> ext_php_rs::error::Result<()> {
        match self {
            OpResult::Range(kvs) => kvs.set_zval(zv, persistent),
            OpResult::Put(rev) | OpResult::Delete(rev) => rev.set_zval(zv, persistent),
            OpResult::Txn(t) => t.set_zval(zv, persistent),
        }
    }
}

/// The outcome of a transaction.
#[php_class]
#[php(name = "Synod\\TxnResult")]
#[php(flags = ClassFlags::NoDynamicProperties)]
#[derive(Clone, Default)]
pub struct TxnResult {
    succeeded: bool,
    revision: i64,
    responses: Vec<OpResult>,
}

impl TxnResult {
    pub fn new(resp: TxnResponse, revision: i64) -> Self {
        let responses = resp
            .responses
            .into_iter()
            .filter_map(|r| r.response)
            .map(|r| match r {
                Response::ResponseRange(r) => {
                    OpResult::Range(r.kvs.into_iter().map(KeyValue::from).collect())
                }
                Response::ResponsePut(_) => OpResult::Put(revision),
                Response::ResponseDeleteRange(d) => OpResult::Delete(d.deleted),
                Response::ResponseTxn(t) => OpResult::Txn(TxnResult::new(t, revision)),
            })
            .collect();
        TxnResult {
            succeeded: resp.succeeded,
            revision,
            responses,
        }
    }
}

#[php_impl]
impl TxnResult {
    /// Whether every comparison held, so the `then` operations ran.
    #[php(getter)]
    pub fn get_succeeded(&self) -> bool {
        self.succeeded
    }

    /// The store revision after the transaction.
    #[php(getter)]
    pub fn get_revision(&self) -> i64 {
        self.revision
    }

    /// One entry per operation that ran: KeyValue[] for a get, the revision for a put, the count for a delete, a TxnResult for a nested transaction.
    #[php(getter)]
    pub fn get_responses(&self) -> Vec<OpResult> {
        self.responses.clone()
    }
}
