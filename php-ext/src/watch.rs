//! `Synod\Watch`: events queued by a runtime task, taken by PHP on its own
//! thread with `wait()` or `foreach`. No PHP value is touched off the PHP
//! thread: the task only hands over Rust data.

use std::collections::VecDeque;

use ext_php_rs::flags::ClassFlags;
use ext_php_rs::prelude::*;
use ext_php_rs::zend::ce;
use tokio::time::Instant;

use crate::args;
use crate::runtime::{self, ForkLocal};
use crate::values::Event;

/// A watch on a key or prefix. Made by Client::watch(); iterate it with foreach, or call wait().
#[php_class]
#[php(name = "Synod\\Watch")]
#[php(flags = ClassFlags::NoDynamicProperties)]
#[php(implements(ce = ce::iterator, stub = "\\Iterator"))]
#[derive(Default)]
pub struct Watch {
    inner: ForkLocal<synod_client::Watch>,
    /// Events received but not handed out yet.
    queue: VecDeque<Event>,
    /// The iterator's current event.
    current: Option<Event>,
    /// The position of the current event in the running foreach.
    position: i64,
    /// Revision of the last event handed out (or of creation).
    revision: i64,
    cancelled: bool,
}

impl Watch {
    pub fn new(inner: synod_client::Watch) -> Watch {
        Watch {
            revision: inner.created_revision,
            inner: ForkLocal::new(inner),
            ..Default::default()
        }
    }

    /// Fills the queue with at least one event, waiting until `deadline`
    /// (forever when None). Returns whether an event is queued.
    fn fill(&mut self, deadline: Option<Instant>) -> PhpResult<bool> {
        if !self.queue.is_empty() {
            return Ok(true);
        }
        if self.cancelled {
            return Ok(false);
        }
        let w = self
            .inner
            .live("a Watch is made with Client::watch()", "a watch")?;
        let queue = &mut self.queue;
        runtime::block_on(async {
            while queue.is_empty() {
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                // Progress notifications carry no events: keep waiting.
                let Some(b) = w.next(left).await? else { break };
                queue.extend(b.events.into_iter().map(Event::from));
                while let Some(b) = w.try_next() {
                    queue.extend(b.events.into_iter().map(Event::from));
                }
            }
            Ok(())
        })?;
        Ok(!self.queue.is_empty())
    }

    fn take(&mut self) -> Option<Event> {
        let e = self.queue.pop_front()?;
        self.revision = self.revision.max(e.get_revision());
        Some(e)
    }
}

fn deadline(timeout: Option<f64>) -> PhpResult<Option<Instant>> {
    Ok(args::timeout(timeout)?.map(|t| Instant::now() + t))
}

#[php_impl]
impl Watch {
    /// Waits up to `timeout` seconds (forever when null) for events and returns them; [] when none came in time. PHP signal handlers run only between calls, so a loop that must react to signals passes a timeout.
    pub fn wait(&mut self, timeout: Option<f64>) -> PhpResult<Vec<Event>> {
        let deadline = deadline(timeout)?;
        // A foreach's current event was handed out already.
        self.current = None;
        self.fill(deadline)?;
        let mut out = Vec::with_capacity(self.queue.len());
        while let Some(e) = self.take() {
            out.push(e);
        }
        Ok(out)
    }

    /// Stops the watch; later waits return [] and foreach ends.
    pub fn cancel(&mut self) {
        self.inner.cancel(|w| w.cancel());
        self.cancelled = true;
        self.queue.clear();
        self.current = None;
    }

    /// The revision of the last event handed out (before any: the store revision when the watch began).
    #[php(getter)]
    pub fn get_revision(&self) -> i64 {
        self.revision
    }

    /// The current event of a foreach.
    pub fn current(&self) -> Option<Event> {
        self.current.clone()
    }

    /// The position of the current event in this foreach, from 0.
    pub fn key(&self) -> i64 {
        self.position
    }

    /// Waits (without limit) for the next event of a foreach.
    pub fn next(&mut self) -> PhpResult<()> {
        self.position += 1;
        self.current = None;
        if self.fill(None)? {
            self.current = self.take();
        }
        Ok(())
    }

    /// Starts a foreach: waits for the next event not handed out yet (an
    /// earlier foreach that stopped with `break` had handed out its last one).
    pub fn rewind(&mut self) -> PhpResult<()> {
        self.next()?;
        self.position = 0;
        Ok(())
    }

    /// Whether a foreach has an event; false once the watch was cancelled.
    pub fn valid(&self) -> bool {
        self.current.is_some()
    }
}
