//! `Synod\Election`, `Synod\LeaderObserver`, `Synod\LeaderChange`: a face on
//! the client's election recipe. The candidate lives in the runtime's
//! registry under (client, name), not in the PHP object, so a worker keeps
//! leading across requests until it resigns or exits; a child of fork
//! starts with an empty registry and never believes it leads.

use std::time::Duration;

use ext_php_rs::binary::Binary;
use ext_php_rs::flags::ClassFlags;
use ext_php_rs::prelude::*;
use ext_php_rs::zend::ce;
use synod_client::recipes;

use crate::args::{self, Bytes};
use crate::errors::to_php;
use crate::runtime::{self, Conn, ForkLocal};
use crate::txn::value_error;
use crate::values::KeyValue;

/// This process's candidate in a leader election, with etcd's key layout (so `etcdctl elect` takes part too). Made by Client::election().
#[php_class]
#[php(name = "Synod\\Election")]
#[php(flags = ClassFlags::NoDynamicProperties)]
#[derive(Default)]
pub struct Election {
    conn: Option<Conn>,
    name: Vec<u8>,
    ttl: i64,
}

impl Election {
    pub fn new(conn: &Conn, name: &[u8], ttl: i64) -> PhpResult<Election> {
        // Checks the name and ttl now; the registry's candidate is made on
        // first use.
        recipes::Election::new(conn.client()?, name, ttl).map_err(to_php)?;
        Ok(Election {
            conn: Some(conn.clone()),
            name: name.to_vec(),
            ttl,
        })
    }

    fn run<T>(
        &self,
        op: impl AsyncFnOnce(&mut recipes::Election) -> Result<T, synod_client::Error>,
    ) -> PhpResult<T> {
        let Some(conn) = &self.conn else {
            return Err(value_error(
                "an Election is made with Client::election()".into(),
            ));
        };
        let make = || {
            recipes::Election::new(conn.client()?, self.name.as_slice(), self.ttl).map_err(to_php)
        };
        runtime::with_election(conn, &self.name, make, op)?.map_err(to_php)
    }
}

#[php_impl]
impl Election {
    /// The election's name.
    #[php(getter)]
    pub fn get_name(&self) -> Binary<u8> {
        Binary::from(self.name.clone())
    }

    /// Stands with `value` and waits up to `timeout` seconds (without limit when null) to lead; false when the time ran out (the candidacy is then withdrawn). While leading, only updates the value.
    pub fn campaign(&self, value: Bytes, timeout: Option<f64>) -> PhpResult<bool> {
        let wait = args::timeout(timeout)?;
        let value = value.to_vec();
        self.run(async |e| e.campaign(value, wait).await)
    }

    /// Asks the server whether this process leads (its key exists and is the oldest).
    pub fn is_leader(&self) -> PhpResult<bool> {
        self.run(async |e| e.is_leader().await)
    }

    /// The leader's key and value, null when no one leads.
    pub fn leader(&self) -> PhpResult<Option<KeyValue>> {
        Ok(self.run(async |e| e.leader().await)?.map(KeyValue::from))
    }

    /// Announces a new value without another election; NotLeaderException when this process does not lead.
    pub fn proclaim(&self, value: Bytes) -> PhpResult<()> {
        let value = value.to_vec();
        self.run(async |e| e.proclaim(value).await)
    }

    /// Steps down so the next candidate leads (nothing to do when not leading).
    pub fn resign(&self) -> PhpResult<()> {
        self.run(async |e| e.resign().await).map(|_| ())
    }

    /// Leader changes from now on, beginning with the current leader (or its absence); also reports when no one leads.
    pub fn observe(&self) -> PhpResult<LeaderObserver> {
        let inner = self.run(async |e| e.observe().await)?;
        Ok(LeaderObserver {
            inner: ForkLocal::new(inner),
            ..Default::default()
        })
    }
}

/// Who leads an election as of a revision. Read-only.
#[php_class]
#[php(name = "Synod\\LeaderChange")]
#[php(flags = ClassFlags::NoDynamicProperties)]
#[derive(Clone, Default)]
pub struct LeaderChange {
    leader: Option<synod_client::mvccpb::KeyValue>,
    revision: i64,
}

#[php_impl]
impl LeaderChange {
    /// The leader's key and value; null when no one leads.
    #[php(getter)]
    pub fn get_leader(&self) -> Option<KeyValue> {
        self.leader.clone().map(KeyValue::from)
    }

    /// The leader's value; null when no one leads.
    #[php(getter)]
    pub fn get_value(&self) -> Option<Binary<u8>> {
        self.leader.as_ref().map(|l| Binary::from(l.value.clone()))
    }

    /// The store revision this answer is of.
    #[php(getter)]
    pub fn get_revision(&self) -> i64 {
        self.revision
    }
}

/// Leader changes of an election: wait() with a timeout, or foreach. Made by Election::observe().
#[php_class]
#[php(name = "Synod\\LeaderObserver")]
#[php(flags = ClassFlags::NoDynamicProperties)]
#[php(implements(ce = ce::iterator, stub = "\\Iterator"))]
#[derive(Default)]
pub struct LeaderObserver {
    inner: ForkLocal<recipes::Observer>,
    current: Option<LeaderChange>,
    position: i64,
    cancelled: bool,
}

impl LeaderObserver {
    fn next_change(&mut self, timeout: Option<Duration>) -> PhpResult<Option<LeaderChange>> {
        if self.cancelled {
            return Ok(None);
        }
        let observer = self.inner.live(
            "a LeaderObserver is made with Election::observe()",
            "an observer",
        )?;
        let change = runtime::block_on(observer.next(timeout))?;
        Ok(change.map(|c| LeaderChange {
            leader: c.leader,
            revision: c.revision,
        }))
    }
}

#[php_impl]
impl LeaderObserver {
    /// Waits up to `timeout` seconds (without limit when null) for the next change and returns it; null when none came in time or after cancel(). PHP signal handlers run only between calls, so a loop that must react to signals passes a timeout.
    pub fn wait(&mut self, timeout: Option<f64>) -> PhpResult<Option<LeaderChange>> {
        let timeout = args::timeout(timeout)?;
        self.current = None;
        self.next_change(timeout)
    }

    /// Stops observing; later waits return null and foreach ends.
    pub fn cancel(&mut self) {
        self.inner.cancel(|o| o.cancel());
        self.cancelled = true;
        self.current = None;
    }

    /// The current change of a foreach.
    pub fn current(&self) -> Option<LeaderChange> {
        self.current.clone()
    }

    /// The position of the current change in this foreach, from 0.
    pub fn key(&self) -> i64 {
        self.position
    }

    /// Waits (without limit) for the next change of a foreach.
    pub fn next(&mut self) -> PhpResult<()> {
        self.position += 1;
        self.current = self.next_change(None)?;
        Ok(())
    }

    /// Starts a foreach with the next change not handed out yet.
    pub fn rewind(&mut self) -> PhpResult<()> {
        self.next()?;
        self.position = 0;
        Ok(())
    }

    /// Whether a foreach has a change; false once cancelled.
    pub fn valid(&self) -> bool {
        self.current.is_some()
    }
}
