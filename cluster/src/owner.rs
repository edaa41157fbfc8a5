//! Which node should take a repo's *free* writer lease: the placement owner among the
//! members that take writes, as this node's gossip sees them, at the address the owner's
//! node record in storage names.
//!
//! The lease stays the truth: a held lease is honoured whatever placement says, and a node
//! asked to write a graph whose lease another node holds forwards to that holder. Placement
//! only decides who takes a lease nobody holds, so that graphs spread over the nodes by hash
//! rather than by where their first request happened to arrive.

use std::sync::Arc;

use async_trait::async_trait;

use crate::RepoKey;
use crate::directory::NodeDirectory;
use crate::membership::{MemberState, Membership};
use crate::placement;

/// Where a free writer lease should go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// This node takes it.
    Here,
    /// Another node should: writes go there.
    Elsewhere { node: String, address: String },
    /// No node that takes writes is known (this one is a read replica); the reason says why.
    Nowhere(String),
}

/// Decides [`Placed`] for a repo. The request path calls it only when this node holds no
/// live writer lease for the repo.
#[async_trait]
pub trait Placement: Send + Sync + 'static {
    async fn place(&self, key: &RepoKey) -> Placed;

    /// Whether this node may take writer leases at all (not a read replica).
    fn takes_writes(&self) -> bool;
}

/// A read replica outside any gossip: it never takes a writer lease, and knows no node that
/// does.
pub struct ReadOnly;

#[async_trait]
impl Placement for ReadOnly {
    fn takes_writes(&self) -> bool {
        false
    }

    async fn place(&self, _key: &RepoKey) -> Placed {
        Placed::Nowhere(
            "this node is a read replica and takes no writes, and it gossips with no cluster \
             that would name a node that does"
                .into(),
        )
    }
}

/// Placement over the gossip's active members with the `serve` role.
pub struct GossipPlacement {
    membership: Arc<Membership>,
    directory: Arc<NodeDirectory>,
    /// This node's name, as its card says.
    me: String,
    /// Whether this node takes writes (the `serve` role).
    takes_writes: bool,
}

impl GossipPlacement {
    pub fn new(
        membership: Arc<Membership>,
        directory: Arc<NodeDirectory>,
        me: String,
        takes_writes: bool,
    ) -> GossipPlacement {
        GossipPlacement {
            membership,
            directory,
            me,
            takes_writes,
        }
    }

    /// When the owner cannot be told or reached: this node if it takes writes.
    fn fallback(&self, why: String) -> Placed {
        if self.takes_writes {
            Placed::Here
        } else {
            Placed::Nowhere(why)
        }
    }
}

#[async_trait]
impl Placement for GossipPlacement {
    fn takes_writes(&self) -> bool {
        self.takes_writes
    }

    async fn place(&self, key: &RepoKey) -> Placed {
        let view = self.membership.view();
        let writers: Vec<_> = view
            .members
            .iter()
            .filter(|m| m.state == MemberState::Active && m.roles.iter().any(|r| r == "serve"))
            .collect();
        let names: Vec<&str> = writers.iter().map(|m| m.node.as_str()).collect();
        let Some(owner) = placement::owner(&names, key) else {
            return self.fallback("no active member of the cluster takes writes".into());
        };
        if *owner == self.me {
            return Placed::Here;
        }
        // A restarted node can show twice for a moment: its newest generation counts.
        let Some(member) = writers
            .iter()
            .filter(|m| m.node == *owner)
            .max_by_key(|m| m.generation)
        else {
            return self.fallback(format!("the placement owner '{owner}' left the view"));
        };
        // The address comes from storage, and only for the generation gossip shows live.
        match self.directory.lookup(owner).await {
            Ok(Some(record))
                if record.generation == member.generation
                    && record.is_live_at(self.directory.now_ms()) =>
            {
                Placed::Elsewhere {
                    node: record.node,
                    address: record.address,
                }
            }
            Ok(_) => self.fallback(format!(
                "the placement owner '{owner}' has no live node record in storage"
            )),
            Err(err) => self.fallback(format!(
                "the placement owner '{owner}''s node record could not be read ({err})"
            )),
        }
    }
}
