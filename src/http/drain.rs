//! Drain: the per-worker signal that stops accepting and closes idle connections.
//!
//! Whoever runs the workers (the runtime) triggers each worker's [`Drain`] when the process
//! starts draining; that wakes every task waiting in [`Drain::wait`] (accept loops and idle
//! keep-alive reads), and connections answer the request in progress with `Connection: close`.
//! Per-core state: `Rc`, no locks, no cross-thread wakers.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// One worker's drain signal.
#[derive(Default)]
pub struct Drain {
    draining: Cell<bool>,
    /// Wakers of the tasks waiting; `None` marks a free slot (listed in `free`).
    waiters: RefCell<Vec<Option<Waker>>>,
    free: RefCell<Vec<usize>>,
}

/// Future returned by [`Drain::wait`]; frees its slot when dropped.
pub struct Wait<'a> {
    drain: &'a Drain,
    slot: Option<usize>,
}

// === impl Drain ===

impl Drain {
    /// A signal that has not fired.
    pub fn new() -> Drain {
        Drain::default()
    }

    /// Whether the worker is draining.
    #[inline]
    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }

    /// Starts draining and wakes every waiting task.
    pub fn trigger(&self) {
        self.draining.set(true);
        let wakers: Vec<_> = self.waiters.borrow_mut().drain(..).flatten().collect();
        self.free.borrow_mut().clear();
        for w in wakers {
            w.wake();
        }
    }

    /// Completes once draining starts.
    pub fn wait(&self) -> Wait<'_> {
        Wait { drain: self, slot: None }
    }
}

// === impl Wait ===

impl Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.drain.is_draining() {
            self.slot = None;
            return Poll::Ready(());
        }
        let mut waiters = self.drain.waiters.borrow_mut();
        match self.slot {
            Some(i) => match waiters.get_mut(i) {
                Some(Some(w)) if w.will_wake(cx.waker()) => {}
                Some(slot) => *slot = Some(cx.waker().clone()),
                None => {}
            },
            None => {
                let i = match self.drain.free.borrow_mut().pop() {
                    Some(i) => {
                        waiters[i] = Some(cx.waker().clone());
                        i
                    }
                    None => {
                        waiters.push(Some(cx.waker().clone()));
                        waiters.len() - 1
                    }
                };
                drop(waiters);
                self.slot = Some(i);
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(i) = self.slot.take() {
            if self.drain.is_draining() {
                return;
            }
            if let Some(slot) = self.drain.waiters.borrow_mut().get_mut(i) {
                *slot = None;
                self.drain.free.borrow_mut().push(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;
    use std::time::Duration;

    fn block_on(f: impl Future<Output = ()>) {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap().block_on(f);
    }

    #[test]
    fn abandoned_waits_give_their_slot_back() {
        block_on(async {
            let d = Drain::new();
            for _ in 0..100 {
                let _ = monoio::time::timeout(Duration::from_millis(0), d.wait()).await;
            }
            assert!(d.waiters.borrow().len() <= 1, "slots leak: {}", d.waiters.borrow().len());
        });
    }

    #[test]
    fn waiters_stay_pending_until_the_trigger_wakes_them() {
        block_on(async {
            let d = Rc::new(Drain::new());
            let woken = Rc::new(std::cell::Cell::new(0));
            let tasks: Vec<_> = (0..3)
                .map(|_| {
                    let (d, woken) = (d.clone(), woken.clone());
                    monoio::spawn(async move {
                        d.wait().await;
                        woken.set(woken.get() + 1);
                    })
                })
                .collect();
            monoio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(woken.get(), 0, "a wait completed before the trigger");
            d.trigger();
            for t in tasks {
                // A waiter that is never woken fails here instead of hanging the test.
                monoio::time::timeout(Duration::from_secs(1), t).await.expect("waiter woken by trigger");
            }
            assert_eq!(woken.get(), 3);
            // A wait that starts after the trigger completes at once.
            monoio::time::timeout(Duration::from_millis(50), d.wait()).await.expect("ready after trigger");
        });
    }
}
