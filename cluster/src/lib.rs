//! Who owns what across omnigraph-cloud nodes. Today: the leases in object storage that say
//! which process may write, recover or compact a repo ([`lease`]), keyed by [`RepoKey`]; which
//! node should take a repo's free writer lease ([`placement`], not yet used by the node); the
//! clock they are timed by ([`Clock`]); the process identity a holder writes into them
//! ([`ProcessStamp`]); listing a store's prefix ([`list_under`]); and the requests it makes,
//! counted by whoever embeds it ([`OpCounter`]); and who is in the cluster, by gossip
//! ([`membership`]).
//!
//! This crate knows nothing of actors or HTTP: `actors` takes its leases and fences from it.

mod clock;
pub mod directory;
mod key;
pub mod lease;
mod listing;
pub mod membership;
mod ops;
pub mod owner;
pub mod placement;
mod process;

pub use clock::Clock;
pub use key::RepoKey;
pub use listing::{list_under, listing_version};
pub use ops::{OpCounter, StoreOp};
pub use process::ProcessStamp;
