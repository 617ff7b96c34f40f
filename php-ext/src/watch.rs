//! `Synod\Watch`: events queued by a runtime task, taken by PHP on its own
//! thread with `wait()` or `foreach`. No PHP value is touched off the PHP
//! thread: the task only hands over Rust data. `Feed` is the part every
//! such stream of events shares (also `Synod\ServiceWatch`).

use std::collections::VecDeque;
use std::time::Duration;

use ext_php_rs::flags::ClassFlags;
use ext_php_rs::prelude::*;
use ext_php_rs::zend::ce;
use tokio::time::Instant;

use crate::args;
use crate::runtime::{self, ForkLocal};
use crate::values::Event;

/// A runtime-bound source of events a `Feed` hands to PHP.
pub trait Stream {
    type Event: Clone;
    /// Names the factory, for an object made without one.
    const MADE_BY: &'static str;
    /// Names the kind of stream, for a child of fork.
    const WHAT: &'static str;

    /// Waits up to `left` (without limit when None) for events; none when
    /// the time ran out.
    async fn pull(
        &mut self,
        left: Option<Duration>,
    ) -> Result<Vec<Self::Event>, synod_client::Error>;

    fn revision(e: &Self::Event) -> i64;

    fn cancel(&mut self);
}

impl Stream for synod_client::Watch {
    type Event = Event;
    const MADE_BY: &'static str = "a Watch is made with Client::watch()";
    const WHAT: &'static str = "a watch";

    async fn pull(&mut self, left: Option<Duration>) -> Result<Vec<Event>, synod_client::Error> {
        let deadline = left.map(|l| Instant::now() + l);
        let mut out = Vec::new();
        while out.is_empty() {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            // Progress notifications carry no events: keep waiting.
            let Some(b) = self.next(left).await? else {
                break;
            };
            out.extend(b.events.into_iter().map(Event::from));
            while let Some(b) = self.try_next() {
                out.extend(b.events.into_iter().map(Event::from));
            }
        }
        Ok(out)
    }

    fn revision(e: &Event) -> i64 {
        e.get_revision()
    }

    fn cancel(&mut self) {
        synod_client::Watch::cancel(self);
    }
}

/// What a PHP stream of events keeps: the stream, the events received but
/// not handed out yet, and the state of a running foreach.
pub struct Feed<S: Stream> {
    inner: ForkLocal<S>,
    queue: VecDeque<S::Event>,
    /// The iterator's current event.
    current: Option<S::Event>,
    /// The position of the current event in the running foreach.
    position: i64,
    /// Revision of the last event handed out (or of the start).
    revision: i64,
    cancelled: bool,
}

impl<S: Stream> Default for Feed<S> {
    fn default() -> Self {
        Feed {
            inner: ForkLocal::default(),
            queue: VecDeque::new(),
            current: None,
            position: 0,
            revision: 0,
            cancelled: false,
        }
    }
}

impl<S: Stream> Feed<S> {
    pub fn new(inner: S, revision: i64) -> Self {
        Feed {
            inner: ForkLocal::new(inner),
            revision,
            ..Default::default()
        }
    }

    pub fn live(&mut self) -> PhpResult<&mut S> {
        self.inner.live(S::MADE_BY, S::WHAT)
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
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let s = self.live()?;
        let events = runtime::block_on(s.pull(left))?;
        self.queue.extend(events);
        Ok(!self.queue.is_empty())
    }

    fn take(&mut self) -> Option<S::Event> {
        let e = self.queue.pop_front()?;
        self.revision = self.revision.max(S::revision(&e));
        Some(e)
    }

    /// Waits up to `timeout` seconds (forever when null) for events and
    /// returns them.
    pub fn wait(&mut self, timeout: Option<f64>) -> PhpResult<Vec<S::Event>> {
        let deadline = args::timeout(timeout)?.map(|t| Instant::now() + t);
        // A foreach's current event was handed out already.
        self.current = None;
        self.fill(deadline)?;
        let mut out = Vec::with_capacity(self.queue.len());
        while let Some(e) = self.take() {
            out.push(e);
        }
        Ok(out)
    }

    pub fn cancel(&mut self) {
        self.inner.cancel(|s| s.cancel());
        self.cancelled = true;
        self.queue.clear();
        self.current = None;
    }

    pub fn revision(&self) -> i64 {
        self.revision
    }

    pub fn current(&self) -> Option<S::Event> {
        self.current.clone()
    }

    pub fn key(&self) -> i64 {
        self.position
    }

    pub fn next(&mut self) -> PhpResult<()> {
        self.position += 1;
        self.current = None;
        if self.fill(None)? {
            self.current = self.take();
        }
        Ok(())
    }

    /// Starts a foreach with the next event not handed out yet (an earlier
    /// foreach that stopped with `break` had handed out its last one).
    pub fn rewind(&mut self) -> PhpResult<()> {
        self.next()?;
        self.position = 0;
        Ok(())
    }

    pub fn valid(&self) -> bool {
        self.current.is_some()
    }
}

/// A watch on a key or prefix. Made by Client::watch(); iterate it with foreach, or call wait().
#[php_class]
#[php(name = "Synod\\Watch")]
#[php(flags = ClassFlags::NoDynamicProperties)]
#[php(implements(ce = ce::iterator, stub = "\\Iterator"))]
#[derive(Default)]
pub struct Watch {
    feed: Feed<synod_client::Watch>,
}

impl Watch {
    pub fn new(inner: synod_client::Watch) -> Watch {
        let revision = inner.created_revision;
        Watch {
            feed: Feed::new(inner, revision),
        }
    }
}

#[php_impl]
impl Watch {
    /// Waits up to `timeout` seconds (forever when null) for events and returns them; [] when none came in time. PHP signal handlers run only between calls, so a loop that must react to signals passes a timeout.
    pub fn wait(&mut self, timeout: Option<f64>) -> PhpResult<Vec<Event>> {
        self.feed.wait(timeout)
    }

    /// Stops the watch; later waits return [] and foreach ends.
    pub fn cancel(&mut self) {
        self.feed.cancel();
    }

    /// The revision of the last event handed out (before any: the store revision when the watch began).
    #[php(getter)]
    pub fn get_revision(&self) -> i64 {
        self.feed.revision()
    }

    /// The current event of a foreach.
    pub fn current(&self) -> Option<Event> {
        self.feed.current()
    }

    /// The position of the current event in this foreach, from 0.
    pub fn key(&self) -> i64 {
        self.feed.key()
    }

    /// Waits (without limit) for the next event of a foreach.
    pub fn next(&mut self) -> PhpResult<()> {
        self.feed.next()
    }

    /// Starts a foreach: waits for the next event not handed out yet (an
    /// earlier foreach that stopped with `break` had handed out its last one).
    pub fn rewind(&mut self) -> PhpResult<()> {
        self.feed.rewind()
    }

    /// Whether a foreach has an event; false once the watch was cancelled.
    pub fn valid(&self) -> bool {
        self.feed.valid()
    }
}
