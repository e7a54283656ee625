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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl std::task::Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl Counting {
        fn woken(&self) -> usize {
            self.0.load(Ordering::Relaxed)
        }
    }

    /// Polls `f` once, as a runtime would, with `waker`.
    fn poll_with<F: Future>(f: Pin<&mut F>, waker: &Arc<Counting>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(&Waker::from(waker.clone())))
    }

    fn waiting(d: &Drain) -> usize {
        d.waiters.borrow().iter().flatten().count()
    }

    #[test]
    fn abandoned_waits_give_their_slot_back() {
        let (d, waker) = (Drain::new(), Arc::new(Counting::default()));
        for _ in 0..100 {
            let mut wait = std::pin::pin!(d.wait());
            assert!(poll_with(wait.as_mut(), &waker).is_pending());
            assert_eq!(waiting(&d), 1, "a pending wait holds a slot");
        }
        assert_eq!(waiting(&d), 0, "every abandoned wait gave its slot back");
        assert_eq!(d.waiters.borrow().len(), 1, "and the one slot was reused, not a new one pushed");
    }

    #[test]
    fn waiters_stay_pending_until_the_trigger_wakes_them() {
        let d = Drain::new();
        let wakers: Vec<Arc<Counting>> = (0..3).map(|_| Arc::default()).collect();
        let mut waits: Vec<_> = (0..3).map(|_| Box::pin(d.wait())).collect();
        for (w, k) in waits.iter_mut().zip(&wakers) {
            assert!(poll_with(w.as_mut(), k).is_pending());
        }
        // Polled again: still pending, still one slot each; a new waker (the task moved)
        // replaces the old one.
        let moved = Arc::new(Counting::default());
        assert!(poll_with(waits[0].as_mut(), &wakers[0]).is_pending());
        assert!(poll_with(waits[2].as_mut(), &moved).is_pending());
        assert_eq!(waiting(&d), 3);
        assert!(wakers.iter().chain([&moved]).all(|k| k.woken() == 0), "woken before the trigger");

        d.trigger();
        let woken: Vec<usize> = wakers.iter().chain([&moved]).map(|k| k.woken()).collect();
        assert_eq!(woken, [1, 1, 0, 1], "each waiting task woken once, through its latest waker");
        for w in &mut waits {
            assert!(poll_with(w.as_mut(), &moved).is_ready());
        }
        // A wait that starts after the trigger completes at once.
        assert!(poll_with(std::pin::pin!(d.wait()), &moved).is_ready());
    }
}
