//! Who is in the cluster: UDP gossip (chitchat's scuttlebutt reconciliation with a phi-accrual
//! failure detector), each node publishing its card: id, generation, HTTP address, roles and
//! state (`active` / `draining`).
//!
//! Membership is a hint, never the truth about who writes what (the leases in object storage
//! are): it is unauthenticated, so nothing read from it decides where a caller's credential
//! is sent. The request path reads an immutable snapshot ([`Membership::view`]), swapped in
//! by a background task whenever the live set or a card changes; it never waits on gossip.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use chitchat::transport::UdpTransport;
use chitchat::{
    ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, NodeState, ProtocolVersion,
    spawn_chitchat,
};
use omnigraph_cloud_config::GossipConfig;
use serde::Serialize;
use thiserror::Error;
use tokio::task::JoinHandle;
use tracing::{info, warn};

const KEY_HTTP: &str = "http";
const KEY_ROLES: &str = "roles";
const KEY_STATE: &str = "state";

/// Whether a member takes new work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    Active,
    /// Shutting down: finishing what it accepted, handing its graphs over.
    Draining,
}

impl MemberState {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Active => "active",
            MemberState::Draining => "draining",
        }
    }

    fn parse(value: &str) -> Option<MemberState> {
        match value {
            "active" => Some(MemberState::Active),
            "draining" => Some(MemberState::Draining),
            _ => None,
        }
    }
}

/// What a node says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    /// The node id (`node.id`, else the host name).
    pub node: String,
    /// `host:port` of its HTTP API, when it has one to advertise.
    pub http: Option<String>,
    /// Its roles, e.g. `serve`, `worker`.
    pub roles: Vec<String>,
}

/// One live member as the gossip last described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub node: String,
    /// Grows with every start of the node: a restarted node is a new generation.
    pub generation: u64,
    pub gossip: SocketAddr,
    pub http: Option<String>,
    pub roles: Vec<String>,
    pub state: MemberState,
}

/// An immutable snapshot of the live members, sorted by node id.
#[derive(Debug, Clone, Default, Serialize)]
pub struct View {
    pub members: Vec<Member>,
}

impl View {
    /// How many members are in `state`.
    pub fn count(&self, state: MemberState) -> usize {
        self.members.iter().filter(|m| m.state == state).count()
    }
}

#[derive(Debug, Error)]
pub enum MembershipError {
    #[error("gossip could not start on {bind}: {message}")]
    Start { bind: SocketAddr, message: String },
}

/// This node's membership: its gossip server and the view it keeps.
pub struct Membership {
    handle: ChitchatHandle,
    view: Arc<ArcSwap<View>>,
    watcher: JoinHandle<()>,
}

impl Membership {
    /// Starts gossiping as `card`, generation `generation` (e.g. the start time in
    /// milliseconds: it must grow across restarts of the node).
    pub async fn join(
        config: &GossipConfig,
        card: Card,
        generation: u64,
    ) -> Result<Membership, MembershipError> {
        let id = ChitchatId::new(card.node.clone(), generation, config.advertise);
        let chitchat = ChitchatConfig {
            chitchat_id: id,
            cluster_id: config.name.clone(),
            gossip_interval: config.interval,
            listen_addr: config.bind,
            seed_nodes: config.seeds.clone(),
            failure_detector_config: failure_detector(config.interval),
            // Long enough for every member to see a key's deletion; cards are small.
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: ProtocolVersion::V0,
        };
        let mut initial = vec![
            (KEY_ROLES.to_string(), card.roles.join(",")),
            (
                KEY_STATE.to_string(),
                MemberState::Active.as_str().to_string(),
            ),
        ];
        if let Some(http) = &card.http {
            initial.push((KEY_HTTP.to_string(), http.clone()));
        }
        let handle = spawn_chitchat(chitchat, initial, &UdpTransport)
            .await
            .map_err(|err| MembershipError::Start {
                bind: config.bind,
                message: format!("{err:#}"),
            })?;
        let mut live = handle.chitchat().lock().await.live_nodes_watcher();
        let view = Arc::new(ArcSwap::from_pointee(view_of(&live.borrow_and_update())));
        let published = Arc::clone(&view);
        let watcher = tokio::spawn(async move {
            while live.changed().await.is_ok() {
                let next = view_of(&live.borrow_and_update());
                let before = published.load();
                if next.members.len() != before.members.len() {
                    info!(members = next.members.len(), "cluster membership changed");
                }
                published.store(Arc::new(next));
            }
        });
        info!(node = %card.node, gossip = %config.advertise, seeds = ?config.seeds, "joined the cluster's gossip");
        Ok(Membership {
            handle,
            view,
            watcher,
        })
    }

    /// The live members now, this node included once the gossip has started.
    pub fn view(&self) -> Arc<View> {
        self.view.load_full()
    }

    /// Publishes this node's state (e.g. `draining` as a shutdown begins).
    pub async fn set_state(&self, state: MemberState) {
        self.handle
            .with_chitchat(|chitchat| chitchat.self_node_state().set(KEY_STATE, state.as_str()))
            .await;
    }

    /// Stops gossiping. The others notice the silence and drop this node from their views.
    pub fn leave(&self) {
        self.watcher.abort();
        if let Err(err) = self.handle.initiate_shutdown() {
            warn!(error = %err, "gossip did not stop cleanly");
        }
    }
}

/// Phi-accrual detection tuned to the gossip interval: a silent member is judged dead within
/// a few seconds, and forgotten after a minute.
fn failure_detector(interval: Duration) -> FailureDetectorConfig {
    FailureDetectorConfig {
        initial_interval: interval,
        max_interval: interval * 4,
        dead_node_grace_period: Duration::from_secs(60),
        ..FailureDetectorConfig::default()
    }
}

fn view_of(live: &BTreeMap<ChitchatId, NodeState>) -> View {
    let mut members: Vec<Member> = live
        .iter()
        .map(|(id, state)| Member {
            node: id.node_id.to_string(),
            generation: id.generation_id,
            gossip: id.gossip_advertise_addr,
            http: state.get(KEY_HTTP).map(str::to_string),
            roles: state
                .get(KEY_ROLES)
                .map(|roles| {
                    roles
                        .split(',')
                        .filter(|role| !role.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            state: state
                .get(KEY_STATE)
                .and_then(MemberState::parse)
                .unwrap_or(MemberState::Active),
        })
        .collect();
    members.sort_by(|a, b| (&a.node, a.generation).cmp(&(&b.node, b.generation)));
    View { members }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(port: u16, seeds: &[u16]) -> GossipConfig {
        let bind: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        GossipConfig {
            bind,
            advertise: bind,
            seeds: seeds.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
            name: "test".into(),
            interval: Duration::from_millis(100),
        }
    }

    fn free_udp_port() -> u16 {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn card(node: &str) -> Card {
        Card {
            node: node.into(),
            http: Some(format!("{node}.local:8080")),
            roles: vec!["serve".into()],
        }
    }

    async fn until(membership: &Membership, what: impl Fn(&View) -> bool) -> bool {
        for _ in 0..100 {
            if what(&membership.view()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Three members on loopback find each other from one seed, see a drain, and drop a
    /// member that leaves.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn members_find_each_other_see_states_and_departures() {
        let ports = [free_udp_port(), free_udp_port(), free_udp_port()];
        let a = Membership::join(&config(ports[0], &[]), card("a"), 1)
            .await
            .unwrap();
        let b = Membership::join(&config(ports[1], &ports[..1]), card("b"), 1)
            .await
            .unwrap();
        let c = Membership::join(&config(ports[2], &ports[..1]), card("c"), 1)
            .await
            .unwrap();
        for member in [&a, &b, &c] {
            assert!(until(member, |view| view.members.len() == 3).await);
        }
        let seen = c.view();
        let b_card = seen.members.iter().find(|m| m.node == "b").unwrap();
        assert_eq!(b_card.http.as_deref(), Some("b.local:8080"));
        assert_eq!(b_card.roles, ["serve"]);
        assert_eq!(b_card.state, MemberState::Active);

        b.set_state(MemberState::Draining).await;
        assert!(until(&a, |view| view.count(MemberState::Draining) == 1).await);
        b.leave();
        assert!(until(&a, |view| view.members.len() == 2).await);
        assert!(until(&c, |view| view.members.iter().all(|m| m.node != "b")).await);
        a.leave();
        c.leave();
    }
}
