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
    /// The latest version in each `__manifest` version listing the request used, by prefix.
    manifest_versions: HashMap<String, u64>,
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

/// The `__manifest` version the request read: the latest in the one version listing of a
/// `__manifest` it used. `None` if it used none (the cache authority answers from its live
/// entries, which are not pinned) or several.
pub(crate) fn manifest_version() -> Option<u64> {
    SCOPE
        .try_with(|scope| {
            let state = scope.state();
            let mut versions = state.manifest_versions.values();
            match (versions.next(), versions.next()) {
                (Some(version), None) => Some(*version),
                _ => None,
            }
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
        if let Some((prefix, version)) = manifest_listing(key, value) {
            state.manifest_versions.insert(prefix.to_string(), version);
        }
    }
}

/// For a listing of a `__manifest` dataset's versions (`…/__manifest/_versions`, or a
/// branch's `…/__manifest/tree/<branch>/_versions`): its prefix and the latest version in it.
fn manifest_listing<'k>(key: &'k str, value: &Mutable) -> Option<(&'k str, u64)> {
    let subject = key.strip_prefix("list:")?;
    let prefix = subject
        .split_once('>')
        .map_or(subject, |(prefix, _)| prefix);
    if !prefix.ends_with("/_versions") || !prefix.contains("/__manifest") {
        return None;
    }
    let Mutable::List(entries) = value else {
        return None;
    };
    let latest = entries
        .iter()
        .filter_map(|meta| meta.location.filename().and_then(manifest_file_version))
        .max()?;
    Some((prefix, latest))
}

/// The version a Lance manifest file names: `{version}.manifest`, or, in the scheme that
/// lists the newest first, `{u64::MAX - version}` padded to 20 digits. Detached versions
/// (`d…`) and other files name none.
fn manifest_file_version(name: &str) -> Option<u64> {
    let number = name.strip_suffix(".manifest")?;
    let value: u64 = number.parse().ok()?;
    Some(if number.len() == 20 {
        u64::MAX - value
    } else {
        value
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_files_name_their_version_in_both_schemes() {
        assert_eq!(manifest_file_version("7.manifest"), Some(7));
        let newest_first = format!("{:020}.manifest", u64::MAX - 7);
        assert_eq!(manifest_file_version(&newest_first), Some(7));
        assert_eq!(manifest_file_version("d12.manifest"), None);
        assert_eq!(manifest_file_version("latest_version_hint.json"), None);
    }
}
