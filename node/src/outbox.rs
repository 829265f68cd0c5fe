//! A single-core queue with one waiting consumer: how a core hands frames to a connection's
//! writer and messages to a channel's sender without ever blocking the producer.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// Unbounded on purpose: producers are the tree core's request handling, which must not wait on
/// a slow consumer (that is how cross-core deadlocks start); back-pressure is applied where
/// requests enter (one outstanding-limited reader per connection), not here.
pub struct Outbox<T> {
    queue: RefCell<VecDeque<T>>,
    waker: Cell<Option<Waker>>,
    closed: Cell<bool>,
}

impl<T> Default for Outbox<T> {
    fn default() -> Self {
        Outbox { queue: RefCell::new(VecDeque::new()), waker: Cell::new(None), closed: Cell::new(false) }
    }
}

impl<T> Outbox<T> {
    pub fn push(&self, item: T) {
        self.queue.borrow_mut().push_back(item);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// No more items will come; the consumer ends once it has drained the rest.
    pub fn close(&self) {
        self.closed.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    pub fn len(&self) -> usize {
        self.queue.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.borrow().is_empty()
    }

    /// Waits for items and moves all of them into `into`; false once closed and empty.
    pub async fn drain(&self, into: &mut Vec<T>) -> bool {
        poll_fn(|cx| {
            let mut q = self.queue.borrow_mut();
            if !q.is_empty() {
                into.extend(q.drain(..));
                Poll::Ready(true)
            } else if self.closed.get() {
                Poll::Ready(false)
            } else {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}
