//! The idle clock and in-flight count of one repo, and the gate that makes eviction safe.
//!
//! Every request holds an [`ActivityGuard`] for as long as it uses the repo (a streamed
//! export holds it until the last byte). Eviction and deletion first *close* the gate: that
//! succeeds only when nothing is in flight, and once closed no new guard is handed out, so a
//! caller either got in before the close (and eviction waits for it) or is refused and goes
//! back to the registry for a fresh activation. Background work takes no guard and so never
//! keeps a repo warm, with one exception: the index build after a schema change holds one, so
//! that no second engine handle opens the graph while it writes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Debug)]
pub(crate) struct Activity {
    state: Mutex<GateState>,
    drained: Notify,
}

#[derive(Debug)]
struct GateState {
    in_flight: usize,
    closed: bool,
    last_release: Instant,
}

/// Proof that a request is using the repo; dropping it records activity.
#[derive(Debug)]
pub struct ActivityGuard {
    activity: Arc<Activity>,
}

impl Activity {
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            state: Mutex::new(GateState {
                in_flight: 0,
                closed: false,
                last_release: Instant::now(),
            }),
            drained: Notify::new(),
        })
    }

    /// Registers a request, unless the gate is closed.
    pub(crate) fn enter(self: &Arc<Self>) -> Option<ActivityGuard> {
        let mut state = self.state.lock().expect("activity lock poisoned");
        if state.closed {
            return None;
        }
        state.in_flight += 1;
        Some(ActivityGuard {
            activity: Arc::clone(self),
        })
    }

    /// Closes the gate if nothing is in flight and the repo has been idle for `idle_for`.
    pub(crate) fn close_if_idle(&self, idle_for: Duration) -> bool {
        self.close_if_idle_at(idle_for, Instant::now())
    }

    fn close_if_idle_at(&self, idle_for: Duration, now: Instant) -> bool {
        let mut state = self.state.lock().expect("activity lock poisoned");
        if state.closed {
            return true;
        }
        if state.in_flight == 0 && now.saturating_duration_since(state.last_release) >= idle_for {
            state.closed = true;
        }
        state.closed
    }

    /// When the last request ended, if none is in flight and the gate is open: what
    /// least-recently-used eviction orders by.
    pub(crate) fn idle_since(&self) -> Option<Instant> {
        let state = self.state.lock().expect("activity lock poisoned");
        (!state.closed && state.in_flight == 0).then_some(state.last_release)
    }

    /// Closes the gate if nothing is in flight, however recently (eviction under pressure).
    pub(crate) fn close_if_unused(&self) -> bool {
        let mut state = self.state.lock().expect("activity lock poisoned");
        if !state.closed && state.in_flight == 0 {
            state.closed = true;
            return true;
        }
        false
    }

    /// Closes the gate at once and waits until every request in flight has finished.
    pub(crate) async fn close_and_drain(&self) {
        loop {
            let notified = self.drained.notified();
            {
                let mut state = self.state.lock().expect("activity lock poisoned");
                state.closed = true;
                if state.in_flight == 0 {
                    return;
                }
            }
            notified.await;
        }
    }

    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.state.lock().expect("activity lock poisoned").in_flight
    }

    fn release(&self) {
        let mut state = self.state.lock().expect("activity lock poisoned");
        debug_assert!(
            state.in_flight > 0,
            "released more guards than were entered"
        );
        state.in_flight -= 1;
        state.last_release = Instant::now();
        if state.in_flight == 0 {
            self.drained.notify_waiters();
        }
    }
}

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        self.activity.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_only_when_idle_and_drained() {
        let activity = Activity::new();
        let idle_for = Duration::from_secs(10);
        let guard = activity.enter().unwrap();
        let later = Instant::now() + Duration::from_secs(100);
        assert!(
            !activity.close_if_idle_at(idle_for, later),
            "a request is in flight"
        );
        drop(guard);
        let released = Instant::now();
        assert!(
            !activity.close_if_idle_at(idle_for, released + Duration::from_secs(9)),
            "released less than idle_for ago"
        );
        assert!(activity.close_if_idle_at(idle_for, released + idle_for + Duration::from_secs(1)));
        assert!(activity.enter().is_none(), "a closed gate admits nobody");
    }

    #[test]
    fn an_unused_repo_closes_at_once_and_a_used_one_never() {
        let activity = Activity::new();
        let guard = activity.enter().unwrap();
        assert_eq!(activity.idle_since(), None, "in use");
        assert!(!activity.close_if_unused());
        drop(guard);
        assert!(activity.idle_since().is_some());
        assert!(activity.close_if_unused());
        assert!(!activity.close_if_unused(), "closed once");
        assert_eq!(activity.idle_since(), None, "closed");
        assert!(activity.enter().is_none());
    }

    #[tokio::test]
    async fn drain_waits_for_the_last_guard() {
        let activity = Activity::new();
        let guard = activity.enter().unwrap();
        let drainer = {
            let activity = Arc::clone(&activity);
            tokio::spawn(async move { activity.close_and_drain().await })
        };
        tokio::task::yield_now().await;
        assert!(activity.enter().is_none());
        assert!(!drainer.is_finished());
        drop(guard);
        drainer.await.unwrap();
        assert_eq!(activity.in_flight(), 0);
    }
}
