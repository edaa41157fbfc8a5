//! Several node processes on one storage root: a write sent to any node lands through the
//! graph's writer-lease holder, forwarded one hop; reads are answered everywhere.

mod failover;
mod forwarding;
mod membership;
mod placement;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::process::{Server, free_port};
use crate::support::{COUNT_PEOPLE, Client, INSERT_PERSON, PERMIT_ALL, eventually};

const TOKEN: &str = "cluster-test-token-acme";
const SECRET: &str = "cluster-test-secret-0123456789abcdef";

/// Node processes sharing a root, a cluster secret, tokens and a policy.
struct Cluster {
    dir: tempfile::TempDir,
    nodes: Vec<Member>,
    ttl_secs: u64,
    /// Extra TOML for every node's `[server]` section.
    extra: String,
    /// The first node's gossip port, every node's seed; `None`: no gossip (and so no
    /// placement: the first node asked to write a free graph takes it).
    seed: Option<u16>,
    /// Extra TOML for every node's `[cluster]` section.
    cluster_extra: String,
}

struct Member {
    server: Server,
    port: u16,
    client: Client,
}

impl Cluster {
    /// `count` nodes named `n0`, `n1`, ..., leases lasting `ttl_secs`, without gossip.
    async fn start(count: usize, ttl_secs: u64) -> Cluster {
        Cluster::start_with(count, ttl_secs, "").await
    }

    /// [`Cluster::start`], with `extra` TOML in every node's `[server]` section.
    async fn start_with(count: usize, ttl_secs: u64, extra: &str) -> Cluster {
        Cluster::launch(count, ttl_secs, extra, None, "").await
    }

    /// [`Cluster::start_with`], the nodes gossiping (membership and placement on).
    async fn start_gossiping(count: usize, ttl_secs: u64, extra: &str) -> Cluster {
        Cluster::launch(count, ttl_secs, extra, Some(free_udp_port()), "").await
    }

    /// [`Cluster::start_gossiping`], with `cluster_extra` TOML in every `[cluster]` section.
    async fn start_gossiping_with(count: usize, cluster_extra: &str) -> Cluster {
        Cluster::launch(count, 30, "", Some(free_udp_port()), cluster_extra).await
    }

    async fn launch(
        count: usize,
        ttl_secs: u64,
        extra: &str,
        seed: Option<u16>,
        cluster_extra: &str,
    ) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), SECRET).unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        std::fs::write(dir.path().join("policies/_default.cedar"), PERMIT_ALL).unwrap();
        let mut cluster = Cluster {
            dir,
            nodes: Vec::new(),
            ttl_secs,
            extra: extra.to_string(),
            seed,
            cluster_extra: cluster_extra.to_string(),
        };
        for _ in 0..count {
            cluster.add("serve").await;
        }
        cluster
    }

    /// Starts node `n{len}` with `roles` (e.g. `serve`, `read`).
    async fn add(&mut self, roles: &str) {
        let i = self.nodes.len();
        let port = free_port();
        let gossip = self.seed.map(|seed| {
            let own = if i == 0 { seed } else { free_udp_port() };
            (own, seed)
        });
        let node = NodeSpec {
            id: format!("n{i}"),
            roles: roles.to_string(),
            http: port,
            gossip,
        };
        let config = node_config(
            self.dir.path(),
            &node,
            self.ttl_secs,
            &self.extra,
            &self.cluster_extra,
        );
        let server = Server::start(&config, port).await;
        let client = Client::new(&format!("http://127.0.0.1:{port}"), Some(TOKEN))
            .with_metrics(server.client.metrics_base());
        self.nodes.push(Member {
            server,
            port,
            client,
        });
    }

    /// Creates `graph` through `node` and writes its first person there.
    async fn seed(&self, node: usize, graph: &str) {
        self.client(node).create_graph(graph).await;
        self.client(node)
            .post(&format!("/graphs/{graph}/mutate"), insert("Ann"))
            .await
            .expect(200);
    }

    /// Waits until every node's gossip lists every node.
    async fn converged(&self) {
        for node in 0..self.nodes.len() {
            let joined = eventually(Duration::from_secs(5), || async {
                let view = self.client(node).get("/admin/cluster").await.expect(200);
                view["members"].as_array().unwrap().len() == self.nodes.len()
            })
            .await;
            assert!(joined, "n{node} does not see every member within 5 s");
        }
    }

    fn client(&self, node: usize) -> &Client {
        &self.nodes[node].client
    }

    fn url(&self, node: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.nodes[node].port)
    }

    /// An insert of `name` posted to `node` with one extra header, and a token or none.
    async fn post_with(
        &self,
        node: usize,
        path: &str,
        token: Option<&str>,
        (name, value): (&str, &str),
        person: &str,
    ) -> reqwest::Response {
        let mut request = reqwest::Client::new()
            .post(self.url(node, path))
            .header(name, value)
            .json(&insert(person));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }
}

/// One node's id, roles, HTTP port, and gossip port with its seed's (`None`: no gossip).
struct NodeSpec {
    id: String,
    roles: String,
    http: u16,
    gossip: Option<(u16, u16)>,
}

pub(crate) use omnigraph_cloud_chaos::free_udp_port;

fn node_config(
    dir: &Path,
    node: &NodeSpec,
    ttl_secs: u64,
    extra: &str,
    cluster_extra: &str,
) -> PathBuf {
    let NodeSpec {
        id,
        roles,
        http: port,
        gossip,
    } = node;
    let path = dir.join(format!("{id}.toml"));
    let margin = (ttl_secs / 4).max(1);
    let gossip = match gossip {
        Some((own, seed)) => format!(
            "gossip_bind = \"127.0.0.1:{own}\"\nseeds = [\"127.0.0.1:{seed}\"]\n\
             gossip_interval = \"200ms\"\nrebalance_interval = \"1s\"\n"
        ),
        None => String::new(),
    };
    std::fs::write(
        &path,
        format!(
            "[node]\nid = \"{id}\"\nroles = [\"{roles}\"]\n\
             [server]\nbind = \"127.0.0.1:{port}\"\n{extra}\n\
             [storage]\nroot = \"file://{root}/data\"\n\
             [leases]\nttl = \"{ttl_secs}s\"\nsafety_margin = \"{margin}s\"\n\
             [cluster]\nsecret_file = \"{root}/secret\"\n{gossip}{cluster_extra}\n\
             [auth]\npolicy_dir = \"{root}/policies\"\n\
             [[auth.tokens]]\ntoken = \"{TOKEN}\"\nactor = \"alice\"\ntenant = \"acme\"\n",
            root = dir.display()
        ),
    )
    .unwrap();
    path
}

fn insert(name: &str) -> serde_json::Value {
    json!({"query": INSERT_PERSON, "params": {"name": name, "age": 1}})
}

const VERSION: &str = "x-omnigraph-manifest-version";
const EPOCH: &str = "x-omnigraph-lease-epoch";

/// A numeric header of a 2xx answer: where its read or write landed.
#[track_caller]
fn landed(resp: &crate::support::Resp, header: &str) -> u64 {
    resp.headers
        .get(header)
        .unwrap_or_else(|| panic!("{header} missing: {} {}", resp.status, resp.text))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The holder id a forwarded answer names, e.g. `n0-1234-abcdef`.
fn forwarded_to(resp: &crate::support::Resp) -> Option<String> {
    resp.headers
        .get("x-omnigraph-forwarded-to")
        .map(|value| value.to_str().unwrap().to_string())
}

/// Every JSON file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_some_and(|ext| ext == "json") {
            files.push(path);
        }
    }
    files
}

/// The index of the node that placement gives graph `graph` of tenant `acme` to, among
/// `n0`..`n{count-1}`, computed as every node computes it.
fn placed_on(graph: &str, count: usize) -> usize {
    use omnigraph_cloud_cluster::RepoKey;
    use omnigraph_cloud_config::{GraphId, TenantId};
    let names: Vec<String> = (0..count).map(|i| format!("n{i}")).collect();
    let key = RepoKey::new(TenantId::new("acme").unwrap(), GraphId::new(graph).unwrap());
    let owner = omnigraph_cloud_cluster::placement::owner(&names, &key).unwrap();
    names.iter().position(|name| name == owner).unwrap()
}

/// The names of every person on `main`.
async fn people(client: &Client) -> Vec<String> {
    let query = "query names() { match { $p: Person } return { $p.name as name } }";
    let body = client
        .post("/graphs/g/query", json!({"query": query}))
        .await
        .expect(200);
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["name"].as_str().unwrap().to_string())
        .collect()
}

/// The forwarded header for `path` (a POST without a credential... with the test token),
/// computed from the documented format, independently of the node's code.
fn sign(node: &str, path: &str) -> String {
    use aws_lc_rs::{digest, hmac};
    let now = omnigraph_cloud_actors::Clock::system().wall_ms();
    let credential = digest::digest(&digest::SHA256, format!("Bearer {TOKEN}").as_bytes());
    let message = format!(
        "v1\n{node}\n{now}\nPOST\n{path}\n{}",
        hex(credential.as_ref())
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
    let tag = hmac::sign(&key, message.as_bytes());
    format!("v1 {node} {now} {}", hex(tag.as_ref()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
