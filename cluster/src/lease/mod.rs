//! Leases in object storage: who may write a repo, recover it or compact it, with no
//! coordinator but the store's conditional writes.
//!
//! A lease is one small JSON object per (repo, kind) at
//! `{root}/_system/leases/{tenant}/{graph}/{kind}.json`, holding the holder's id, an epoch and
//! an expiry (wall-clock milliseconds). The protocol:
//!
//! - **acquire**: create-if-absent (epoch 1); or, over a lease that is expired or released,
//!   update-if-match on the version read, with the epoch bumped (a takeover). Of any number of
//!   racers exactly one write succeeds: the others' preconditions fail.
//! - **renew**: update-if-match on the version the holder last wrote, same epoch, later expiry.
//!   A failed precondition means someone took the lease over: the holder has lost it.
//! - **release**: update-if-match to a record marked released, so that the next acquirer need
//!   not wait for the expiry. Object stores have no conditional delete, so leases are never
//!   deleted (a deleted lease could be recreated at epoch 1 and reuse an epoch).
//! - **validate**: a read that confirms the store still holds exactly the version this holder
//!   wrote. Every destructive step (deleting files, restoring a dataset) validates first.
//!
//! Every write carries a fresh nonce: S3-compatible stores use the MD5 of the content as ETag,
//! so two writes of identical bytes would share an ETag and an old value written back could
//! satisfy a stale compare-and-swap.
//!
//! **Self-fencing.** A holder acts only until its *deadline*: the instant its last successful
//! write was sent, plus the TTL, minus a safety margin, measured on its own monotonic clock.
//! Others may take over once their wall clock passes the recorded expiry. As long as clocks
//! disagree by less than the margin, the holder has stopped before anyone else can start.
//!
//! Files: [`record`] (what a lease is), [`store`] (the protocol), [`invariants`] (checked
//! before every write), [`codec`] (paths and the JSON record), and the backends behind
//! [`LeaseBackend`]: [`ObjectStoreBackend`] (S3 and compatible stores, ETags),
//! [`LocalBackend`] (`file://` roots, `flock`) and [`MemoryBackend`] (tests, simulation).

mod backend;
mod codec;
mod invariants;
mod local;
mod memory;
mod node;
mod object_backend;
mod record;
mod store;

pub use backend::{CasOutcome, LeaseBackend, Stored};
pub(crate) use codec::nonce;
pub use codec::{LEASE_DIR, ListedLease};
pub use local::{LocalBackend, read_locked, write_locked};
pub use memory::MemoryBackend;
pub use node::{NodeLeases, NodeRecord};
pub(crate) use node::{read_node_record, record_path};
pub use object_backend::ObjectStoreBackend;
pub use record::{
    Acquired, Lease, LeaseError, LeaseKind, LeaseLost, LeaseRecord, LeaseTiming, NodeTie,
};
pub use store::LeaseStore;

#[cfg(test)]
pub(crate) mod tests;
