//! The write coalescer of one repo: group commit without artificial delay.
//!
//! Every write of a graph ends in one compare-and-swap on its `__manifest`, so one publish per
//! request caps a hot graph at a few writes per second and makes concurrent writers fight.
//! Instead, while one publish is in flight, arriving writes wait in this queue, and the next
//! publish takes as many of them as can share it:
//!
//! - *Insert-only mutations* of the same branch and actor (every statement an `insert` whose
//!   values are parameters or `now()`) are combined into one generated mutation, each
//!   request's parameters renamed `r{i}_{name}` so that they cannot collide. One insert
//!   affects exactly one node or edge, so each caller's own counts are known in advance.
//! - Everything else (updates, deletes, loads, schema, branch operations, merges) runs alone.
//!   A batch never jumps over an exclusive write that arrived before its members, and an
//!   exclusive write never jumps over the writes before it.
//!
//! A batch whose statements are all node inserts (no `now()`, no key twice) is published as
//! one merge-mode load instead: the engine's keyed insert is an upsert by key, exactly what a
//! merge load does, and a load costs a constant number of object-store round trips where a
//! mutation pays one listing per statement (measured: 32 inserts, 41 LISTs; a 128-row load,
//! 10). On S3 that is the difference between a few hundred milliseconds and tens of seconds.
//!
//! A combined mutation is atomic: if it fails, nothing was published, and it is split in halves
//! that are tried again until the failing requests run alone, with their original text, and
//! get their own errors. A publish lost to another writer (`manifest_conflict`) is retried after
//! a refresh, a bounded number of times (inserts do not depend on what they read). Callers are
//! answered only after the publish that holds their write returned.
//!
//! Without any delay, concurrent writers split into two cohorts that take turns; so the
//! publish after a batch waits, briefly and boundedly, for the writers it answered
//! ([`gather`]).
//!
//! Files: [`queue`] (what waits and what the next publish takes), [`gather`] (how long the
//! next publish waits), [`plan`] (whether a write
//! can share a publish), [`rewrite`] (a batch as one engine call), [`publish`] (running it and
//! answering every caller), [`target`] (what publishing needs of the engine, behind the
//! [`Publisher`](target::Publisher) trait).

mod gather;
mod plan;
mod publish;
mod queue;
mod rewrite;
mod target;

pub(crate) use gather::Gather;
pub(crate) use publish::execute;
pub(crate) use queue::{Coalescer, Unit};
pub(crate) use target::{Publication, Publisher};

#[cfg(test)]
mod publish_tests;
#[cfg(test)]
mod tests;
