//! Stale-ok reads: a read that accepts a snapshot up to `max_staleness` old is served from the
//! last copies this node read of the graph's mutable objects (the `__manifest` listing that
//! says which version is the latest, the schema files), without asking the store again.
//!
//! Every mutable object a repo reads is kept as its *recent copy*, stamped with the time its
//! read was sent: at that moment it was the store's latest. A stale-ok request runs in a
//! [`scope`]: there, a recent copy young enough is served in place of a store request, and
//! every copy used, served or fetched, is *pinned* for the rest of the request, so the read
//! and the version reported for it come from the same listing. The request's snapshot is as
//! old as the oldest copy it used.
//!
//! On the graph's cache authority the live entries are always current, so a stale-ok read
//! there is a strong one, for free. Elsewhere the copies are dropped whenever this node writes
//! the repo, so a node reads its own writes even with stale-ok.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::mutable::Mutable;

tokio::task_local! {
    static SCOPE: Arc<Scope>;
}

struct Scope {
    max_staleness: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    pins: HashMap<String, Mutable>,
    /// When the oldest copy the request used was read from the store.
    oldest: Option<Instant>,
}

/// Runs `work`, a read that accepts a snapshot up to `max_staleness` old, and returns how old
/// the snapshot it used is: `None` if it used no copy (every answer it needed was current).
pub async fn scope<F: Future>(max_staleness: Duration, work: F) -> (F::Output, Option<Duration>) {
    let scope = Arc::new(Scope {
        max_staleness,
        state: Mutex::new(State::default()),
    });
    let output = SCOPE.scope(Arc::clone(&scope), work).await;
    let oldest = scope.state.lock().expect("stale scope lock").oldest;
    (output, oldest.map(|sent| sent.elapsed()))
}

/// The current request's stale-ok scope, to carry into work the request hands to another
/// task (an export's producer), which task-locals do not follow.
pub(crate) struct Carried(Option<Arc<Scope>>);

pub(crate) fn carried() -> Carried {
    Carried(SCOPE.try_with(Arc::clone).ok())
}

impl Carried {
    /// Runs `work` in the carried scope, if there was one.
    pub(crate) async fn run<F: Future>(self, work: F) -> F::Output {
        match self.0 {
            Some(scope) => SCOPE.scope(scope, work).await,
            None => work.await,
        }
    }
}

/// Whether the running request accepts a stale snapshot.
pub(crate) fn active() -> bool {
    SCOPE.try_with(|_| ()).is_ok()
}

/// What the request already used under `key`.
pub(crate) fn pinned(key: &str) -> Option<Mutable> {
    SCOPE
        .try_with(|scope| scope.state().pins.get(key).cloned())
        .ok()
        .flatten()
}

/// Serves `copy` (read from the store at `sent`) if the request accepts one that old, pinning
/// it for the rest of the request.
pub(crate) fn serve(key: &str, copy: Mutable, sent: Instant) -> Option<Mutable> {
    SCOPE
        .try_with(|scope| {
            if sent.elapsed() > scope.max_staleness {
                return None;
            }
            scope.used(key, &copy, sent);
            Some(copy)
        })
        .ok()
        .flatten()
}

/// `value` was just read from the store (the read sent at `sent`): the request uses it from
/// now on.
pub(crate) fn fetched(key: &str, value: &Mutable, sent: Instant) {
    let _ = SCOPE.try_with(|scope| scope.used(key, value, sent));
}

impl Scope {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("stale scope lock")
    }

    fn used(&self, key: &str, value: &Mutable, sent: Instant) {
        let mut state = self.state();
        state.pins.insert(key.to_string(), value.clone());
        state.oldest = Some(state.oldest.map_or(sent, |oldest| oldest.min(sent)));
    }
}
