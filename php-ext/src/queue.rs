//! `Synod\Queue` and `Synod\Job`: a face on the client's queue recipe. Both
//! objects hold plain data (endpoints, the queue's name, the claimed job);
//! the claim itself lives on the server, on a lease with the visibility
//! timeout, so nothing here must be cleaned up when a request or the
//! process ends: an unacknowledged job comes back by itself.

use ext_php_rs::binary::Binary;
use ext_php_rs::flags::ClassFlags;
use ext_php_rs::prelude::*;
use synod_client::recipes;

use crate::args::{self, Bytes};
use crate::client::KeyMap;
use crate::errors::to_php;
use crate::runtime::{self, Conn};
use crate::txn::value_error;

/// What a Queue or a Job needs to reach its queue again.
#[derive(Clone)]
struct Target {
    conn: Conn,
    name: Vec<u8>,
    max_attempts: i64,
}

impl Target {
    fn recipe(&self) -> PhpResult<recipes::Queue> {
        recipes::Queue::new(self.conn.client()?, &self.name, self.max_attempts).map_err(to_php)
    }
}

/// An ordered, at-least-once work queue stored as plain etcd keys (layout in the README): higher priority first, then first in, first out. Made by Client::queue().
#[php_class]
#[php(name = "Synod\\Queue")]
#[php(flags = ClassFlags::NoDynamicProperties)]
#[derive(Default)]
pub struct Queue {
    target: Option<Target>,
}

impl Queue {
    pub fn new(conn: &Conn, name: &[u8], max_attempts: i64) -> PhpResult<Queue> {
        let target = Target {
            conn: conn.clone(),
            name: name.to_vec(),
            max_attempts,
        };
        // Checks the name and max_attempts now.
        target.recipe()?;
        Ok(Queue {
            target: Some(target),
        })
    }

    fn target(&self) -> PhpResult<&Target> {
        self.target
            .as_ref()
            .ok_or_else(|| value_error("a Queue is made with Client::queue()".into()))
    }

    fn recipe(&self) -> PhpResult<recipes::Queue> {
        self.target()?.recipe()
    }
}

#[php_impl]
impl Queue {
    /// The queue's name.
    #[php(getter)]
    pub fn get_name(&self) -> Binary<u8> {
        Binary::from(
            self.target
                .as_ref()
                .map(|t| t.name.clone())
                .unwrap_or_default(),
        )
    }

    /// Deliveries of a job before it goes to the dead-letter queue.
    #[php(getter)]
    pub fn get_max_attempts(&self) -> i64 {
        self.target.as_ref().map_or(0, |t| t.max_attempts)
    }

    /// Adds a job and returns its id. Higher priorities are claimed first; with a `delay` in seconds, the job is claimable only once that time has passed. Payloads up to 1,570,816 bytes (etcd's 1.5 MiB request limit less 2 KiB for the keys).
    #[php(defaults(priority = 0, delay = 0.0))]
    pub fn push(&self, payload: Bytes, priority: i64, delay: f64) -> PhpResult<String> {
        let delay = recipes::job_delay(delay).map_err(to_php)?;
        let q = self.recipe()?;
        runtime::block_on(async move { q.push(&payload, priority, delay).await })
    }

    /// Waits up to `timeout` seconds (without limit when null; 0: only if one is claimable now) for a job and claims it for `visibility` seconds: unless acknowledged, released or extended in that time, it goes to another worker. Null when none came in time. Waits on a watch, not by polling.
    #[php(defaults(visibility = 30))]
    pub fn claim(&self, timeout: Option<f64>, visibility: i64) -> PhpResult<Option<Job>> {
        let wait = args::timeout(timeout)?;
        let target = self.target()?.clone();
        let q = target.recipe()?;
        let job = runtime::block_on(async move { q.claim(wait, visibility).await })?;
        Ok(job.map(|job| Job {
            target: Some(target),
            job: Some(job),
        }))
    }

    /// How many jobs are waiting or being worked on (ready, claimed and delayed; not the dead letters).
    pub fn size(&self) -> PhpResult<i64> {
        let q = self.recipe()?;
        runtime::block_on(async move { q.size().await })
    }

    /// How many jobs are where, at one revision: ['ready' => claimable now, 'claimed' => being worked on, 'delayed' => waiting for their time, 'dead' => in the dead-letter queue].
    pub fn stats(&self) -> PhpResult<Vec<(&'static str, i64)>> {
        let q = self.recipe()?;
        let s = runtime::block_on(async move { q.stats().await })?;
        Ok(vec![
            ("ready", s.ready),
            ("claimed", s.claimed),
            ("delayed", s.delayed),
            ("dead", s.dead),
        ])
    }

    /// The dead-letter queue as job id => payload, oldest first: jobs delivered maxAttempts times without an ack. At most `limit` (0: all).
    #[php(defaults(limit = 0))]
    pub fn dead_letters(&self, limit: i64) -> PhpResult<KeyMap> {
        let q = self.recipe()?;
        let dead = runtime::block_on(async move { q.dead(limit).await })?;
        Ok(KeyMap(
            dead.into_iter()
                .map(|d| (d.id.into_bytes(), d.payload))
                .collect(),
        ))
    }

    /// Puts a dead-letter job back in line (at the end of its priority) with its attempts counted from 0 again; false when there is no such dead job.
    pub fn requeue(&self, id: &str) -> PhpResult<bool> {
        let q = self.recipe()?;
        let id = id.to_string();
        runtime::block_on(async move { q.requeue(&id).await })
    }
}

/// A claimed job. Finish it with ack(), give it back with release(), or keep it longer with extend(); left alone, it goes to another worker when its visibility timeout runs out. Made by Queue::claim().
#[php_class]
#[php(name = "Synod\\Job")]
#[php(flags = ClassFlags::NoDynamicProperties)]
#[derive(Default)]
pub struct Job {
    target: Option<Target>,
    job: Option<recipes::Job>,
}

impl Job {
    fn run<T>(
        &mut self,
        op: impl AsyncFnOnce(&recipes::Queue, &mut recipes::Job) -> Result<T, synod_client::Error>,
    ) -> PhpResult<T> {
        let (Some(target), Some(job)) = (&self.target, &mut self.job) else {
            return Err(value_error("a Job is made by Queue::claim()".into()));
        };
        let q = target.recipe()?;
        runtime::block_on(async move { op(&q, job).await })
    }

    fn view<T: Default>(&self, f: impl FnOnce(&recipes::Job) -> T) -> T {
        self.job.as_ref().map(f).unwrap_or_default()
    }
}

#[php_impl]
impl Job {
    /// The job's id, as push() returned it.
    #[php(getter)]
    pub fn get_id(&self) -> String {
        self.view(|j| j.id.clone())
    }

    /// The payload given to push().
    #[php(getter)]
    pub fn get_payload(&self) -> Binary<u8> {
        Binary::from(self.view(|j| j.payload.clone()))
    }

    /// How many times the job was delivered, this time included (1 the first time).
    #[php(getter)]
    pub fn get_attempts(&self) -> i64 {
        self.view(|j| j.attempts)
    }

    /// The priority given to push().
    #[php(getter)]
    pub fn get_priority(&self) -> i64 {
        self.view(|j| j.priority)
    }

    /// Finishes the job: it is removed for good. JobLostException when the visibility timeout ran out and another worker claimed it (or finished it) meanwhile; a timeout that ran out with nobody else claiming still counts.
    pub fn ack(&mut self) -> PhpResult<()> {
        self.run(async |q, j| q.ack(j).await)
    }

    /// Gives the job back: claimable again at once in its old place, or after `delay` seconds (then in line from that time). A job that has had maxAttempts deliveries goes to the dead-letter queue instead. JobLostException as for ack().
    #[php(defaults(delay = 0.0))]
    pub fn release(&mut self, delay: f64) -> PhpResult<()> {
        let delay = recipes::job_delay(delay).map_err(to_php)?;
        self.run(async |q, j| q.release(j, delay).await.map(|_| ()))
    }

    /// Keeps the job claimed for `seconds` from now, instead of what was left of its visibility timeout. JobLostException as for ack().
    pub fn extend(&mut self, seconds: i64) -> PhpResult<()> {
        self.run(async |q, j| q.extend(j, seconds).await)
    }
}
