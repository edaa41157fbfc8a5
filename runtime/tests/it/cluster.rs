//! Several node processes on one storage root: a write sent to any node lands through the
//! graph's writer-lease holder, forwarded one hop; reads are answered everywhere.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::process::{Server, free_port};
use crate::support::{Client, INSERT_PERSON, PERMIT_ALL, eventually};

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

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_sent_to_any_node_land_through_the_lease_holder() {
    let cluster = Cluster::start(3, 30).await;
    cluster.client(0).create_graph("g").await;
    let first = cluster
        .client(0)
        .post("/graphs/g/mutate", insert("Ann"))
        .await;
    assert_eq!(forwarded_to(&first), None, "n0 takes the free lease itself");
    first.expect(200);

    // n1 and n2 do not hold the lease: their writes are answered by n0.
    for (node, name) in [(1, "Bob"), (2, "Cid"), (1, "Dee")] {
        let resp = cluster
            .client(node)
            .post("/graphs/g/mutate", insert(name))
            .await;
        let holder = forwarded_to(&resp).expect("forwarded");
        assert!(holder.starts_with("n0-"), "{holder}");
        let body = resp.expect(200);
        assert_eq!(body["affected_nodes"], 1, "{body}");
    }
    // A load (the larger body limit) goes the same way.
    let data = r#"{"type":"Person","data":{"name":"Eve","age":5}}"#;
    let load = cluster
        .client(2)
        .post("/graphs/g/load", json!({"data": data, "mode": "append"}))
        .await;
    assert!(forwarded_to(&load).is_some());
    load.expect(200);

    // Read-your-writes on every node: each answers from its own handle.
    for node in 0..3 {
        assert_eq!(cluster.client(node).count_people("g", "main").await, 5);
    }
    assert_eq!(
        cluster
            .client(1)
            .metric("omnigraph_forwards_total{outcome=\"answered\"}")
            .await,
        2.0
    );
    assert_eq!(
        cluster
            .client(0)
            .metric("omnigraph_forwarded_received_total")
            .await,
        4.0
    );

    // A client that asks for the 421 gets it, naming the holder.
    let direct = cluster
        .post_with(
            1,
            "/graphs/g/mutate",
            Some(TOKEN),
            ("x-omnigraph-forward", "never"),
            "Fay",
        )
        .await;
    assert_eq!(direct.status(), 421);
    let body: serde_json::Value = direct.json().await.unwrap();
    assert_eq!(body["code"], "not_writer");
    assert!(body["error"].as_str().unwrap().contains("'n0-"), "{body}");

    // The caller's credential is verified again by the holder: a bad token is refused at
    // the node it reaches, and a forwarded header does not stand in for one.
    let forged = ("x-omnigraph-forwarded", "v1 n1-1-000000 0 00");
    let forged = cluster
        .post_with(0, "/graphs/g/mutate", None, forged, "Gus")
        .await;
    assert_eq!(forged.status(), 403);
    // A correctly signed forward to a node without the lease is answered 421 there, never
    // sent on again.
    let path = "/graphs/g/mutate";
    let mark = sign("n1-1-000000", path);
    let signed = cluster
        .post_with(
            2,
            path,
            Some(TOKEN),
            ("x-omnigraph-forwarded", &mark),
            "Hal",
        )
        .await;
    assert_eq!(signed.status(), 421);
    assert_eq!(
        cluster
            .client(2)
            .metric("omnigraph_forwarded_not_forwarded_again_total")
            .await,
        1.0
    );
    for node in 0..3 {
        assert_eq!(cluster.client(node).count_people("g", "main").await, 5);
    }

    // Graph lifecycle from any node: a delete sent to n2 is made by n0, which writes the graph.
    let deleted = cluster.client(2).delete("/graphs/g").await;
    assert!(forwarded_to(&deleted).is_some());
    deleted.expect(200);
    for node in 0..3 {
        cluster
            .client(node)
            .get("/graphs/g/snapshot")
            .await
            .expect(404);
    }
    let _ = &cluster.dir;
}

/// After kill -9 of the holder, writes through the other nodes succeed again once its lease
/// lapses, and every write answered 200 is in the graph.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_fail_over_when_the_holder_is_killed() {
    let ttl = 4;
    let mut cluster = Cluster::start(3, ttl).await;
    cluster.seed(0, "g").await;
    let forwarded = cluster
        .client(1)
        .post("/graphs/g/mutate", insert("Bob"))
        .await;
    assert!(forwarded_to(&forwarded).is_some());
    let (before_version, before_epoch) = (landed(&forwarded, VERSION), landed(&forwarded, EPOCH));
    forwarded.expect(200);

    let holder = cluster.nodes.remove(0);
    holder.server.signal("KILL");
    let killed = tokio::time::Instant::now();
    // Until the lease lapses, the survivors say the holder cannot be reached (503, nothing
    // written, Retry-After); then one of them takes the graph over.
    let mut acknowledged = vec!["Ann".to_string(), "Bob".to_string()];
    let mut indeterminate = Vec::new();
    let mut recovered = false;
    for attempt in 0.. {
        if killed.elapsed() > Duration::from_secs(3 * ttl + 5) {
            break;
        }
        let name = format!("after-{attempt}");
        let resp = cluster
            .client(attempt % 2)
            .post("/graphs/g/mutate", insert(&name))
            .await;
        match resp.status.as_u16() {
            200 => {
                // The new holder writes under a later epoch, past every earlier version.
                assert!(landed(&resp, EPOCH) > before_epoch);
                assert!(landed(&resp, VERSION) > before_version);
                acknowledged.push(name);
                recovered = true;
                break;
            }
            // Nothing sent (the holder is gone): safe to retry.
            503 if resp.headers.contains_key("retry-after") => {
                assert!(resp.text.contains("nothing was written"), "{}", resp.text);
            }
            // Sent on a connection the holder's death cut: the outcome is unknown.
            503 => {
                assert!(resp.text.contains("may or may not"), "{}", resp.text);
                indeterminate.push(name);
            }
            other => panic!("unexpected {other}: {}", resp.text),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "writes did not recover after the holder died");
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_secs(ttl + 4),
        "failover took {took:?} with a {ttl}s lease"
    );
    for node in 0..2 {
        let names = people(cluster.client(node)).await;
        for name in &acknowledged {
            assert!(
                names.contains(name),
                "{name} was acknowledged but is missing"
            );
        }
        for name in &names {
            assert!(
                acknowledged.contains(name) || indeterminate.contains(name),
                "{name} was never acknowledged"
            );
        }
    }
    drop(holder);
}

/// The members find each other through one seed, each sees the others' addresses and
/// roles, a draining member is seen draining, and a stopped one leaves every view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_see_each_other_and_a_drained_node_leaves() {
    let mut cluster = Cluster::start_gossiping(3, 30, "drain_delay = \"2s\"").await;
    let members = |view: &serde_json::Value| view["members"].as_array().unwrap().len();
    cluster.converged().await;
    cluster.seed(0, "g").await;
    let owner = placed_on("g", 3);
    for node in 0..3 {
        assert_eq!(cluster.client(node).count_people("g", "main").await, 1);
    }
    let view = cluster.client(1).get("/admin/cluster").await.expect(200);
    assert!(view["node"].as_str().unwrap().starts_with("n1-"), "{view}");
    assert_eq!(
        view["address"],
        format!("127.0.0.1:{}", cluster.nodes[1].port)
    );
    assert_eq!(view["state"], "ready");
    let n0 = &view["members"][0];
    assert_eq!(n0["node"], "n0");
    assert_eq!(n0["http"], format!("127.0.0.1:{}", cluster.nodes[0].port));
    assert_eq!(n0["roles"], json!(["serve"]));
    assert_eq!(n0["state"], "active");
    // The placement owner writes g; the others only read it.
    for node in 0..3 {
        let view = cluster.client(node).get("/admin/cluster").await.expect(200);
        let epoch = &view["warm"][0]["writer_epoch"];
        assert_eq!(epoch.is_u64(), node == owner, "n{node}: {view}");
    }
    // The gauge is sampled every second.
    let counted = eventually(Duration::from_secs(3), || async {
        let sample = "omnigraph_cluster_members{state=\"active\"}";
        cluster.client(1).metric_value(sample).await == Some(3.0)
    })
    .await;
    assert!(
        counted,
        "omnigraph_cluster_members counts the three active members"
    );

    let leaving = cluster.nodes.remove(2);
    leaving.server.signal("TERM");
    let seen_draining = eventually(Duration::from_secs(3), || async {
        let view = cluster.client(0).get("/admin/cluster").await.expect(200);
        view["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["node"] == "n2" && m["state"] == "draining")
    })
    .await;
    assert!(
        seen_draining,
        "the drain is announced before the node stops"
    );
    let stopped = tokio::task::spawn_blocking(move || leaving.server.wait_exit());
    assert!(stopped.await.unwrap().success());
    for node in 0..2 {
        let left = eventually(Duration::from_secs(10), || async {
            members(&cluster.client(node).get("/admin/cluster").await.expect(200)) == 2
        })
        .await;
        assert!(left, "n{node} still lists the stopped node after 10 s");
    }
    // A caller without a token sees nothing.
    let anonymous = reqwest::get(cluster.url(0, "/admin/cluster"))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // A member killed outright (no goodbye) leaves the view too, by the failure detector.
    let killed = cluster.nodes.remove(1);
    killed.server.signal("KILL");
    let gone = eventually(Duration::from_secs(10), || async {
        members(&cluster.client(0).get("/admin/cluster").await.expect(200)) == 1
    })
    .await;
    assert!(gone, "n0 still lists a killed node after 10 s");
    drop(killed);
}

/// With gossip, a free graph's writer lease goes to its placement owner wherever its first
/// write arrives, at the address the owner's node record in storage names; a read replica
/// never takes a lease and forwards every write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_graphs_go_to_their_placement_owner_and_replicas_forward() {
    let mut cluster = Cluster::start_gossiping(3, 30, "").await;
    cluster.add("read").await;
    cluster.converged().await;
    for node in 0..3 {
        let record = cluster
            .dir
            .path()
            .join(format!("data/_system/nodes/n{node}.json"));
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(record).unwrap()).unwrap();
        assert_eq!(
            record["address"],
            format!("127.0.0.1:{}", cluster.nodes[node].port)
        );
    }
    let graphs: Vec<String> = (0..9).map(|g| format!("p{g}")).collect();
    let mut owners = std::collections::BTreeSet::new();
    for (i, graph) in graphs.iter().enumerate() {
        let owner = placed_on(graph, 3);
        owners.insert(owner);
        // Created and first written through any node, the replica included.
        let entry = i % 4;
        cluster.client(entry).create_graph(graph).await;
        let path = format!("/graphs/{graph}/mutate");
        let first = cluster.client(entry).post(&path, insert("Ann")).await;
        let landed_on = forwarded_to(&first).unwrap_or_else(|| format!("n{entry}"));
        assert!(
            landed_on.starts_with(&format!("n{owner}")),
            "{graph}: {landed_on}"
        );
        first.expect(200);
        // Later writes through any node go to the holder, which is the owner.
        let second = cluster
            .client((entry + 1) % 4)
            .post(&path, insert("Bob"))
            .await;
        second.expect(200);
        for node in 0..4 {
            assert_eq!(cluster.client(node).count_people(graph, "main").await, 2);
        }
    }
    assert!(
        owners.len() > 1,
        "nine graphs spread over more than one node"
    );
    // The replica took no lease: it only reads.
    let replica = cluster.client(3).get("/admin/cluster").await.expect(200);
    let warm = replica["warm"].as_array().unwrap();
    assert_eq!(warm.len(), graphs.len());
    assert!(
        warm.iter().all(|graph| graph["writer_epoch"].is_null()),
        "{replica}"
    );
    for record in walk(&cluster.dir.path().join("data/_system/leases")) {
        let text = std::fs::read_to_string(&record).unwrap();
        assert!(
            !text.contains("\"holder\":\"n3-"),
            "{}: {text}",
            record.display()
        );
    }
}

/// A node joins: the graphs placement now gives it are handed over by their holders once
/// idle, a few per round, and their next writes land on it; the others stay where they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_takes_over_the_graphs_placed_on_it() {
    let mut cluster = Cluster::start_gossiping(2, 30, "").await;
    cluster.converged().await;
    let graphs: Vec<String> = (0..12).map(|g| format!("r{g}")).collect();
    // The node that answered: a forwarded answer names the holder (`n1-<pid>-<random>`) or,
    // for a free lease, the placement owner (`n1`).
    let landed = |resp: &crate::support::Resp, entry: usize| {
        let by = forwarded_to(resp).unwrap_or_else(|| format!("n{entry}"));
        format!("{}-", by.split('-').next().unwrap())
    };
    for graph in &graphs {
        cluster.client(0).create_graph(graph).await;
        let first = cluster
            .client(0)
            .post(&format!("/graphs/{graph}/mutate"), insert("Ann"))
            .await;
        let on = landed(&first, 0);
        assert!(
            on.starts_with(&format!("n{}-", placed_on(graph, 2))),
            "{graph}: {on}"
        );
        first.expect(200);
    }
    cluster.add("serve").await;
    cluster.converged().await;
    let movers: Vec<&String> = graphs.iter().filter(|g| placed_on(g, 3) == 2).collect();
    assert!(
        !movers.is_empty(),
        "some of twelve graphs move to the third node"
    );
    let mut i = 0;
    for graph in &graphs {
        let owner = placed_on(graph, 3);
        let moved = eventually(Duration::from_secs(15), || {
            i += 1;
            let name = format!("w{i}");
            let client = cluster.client(0).clone();
            let path = format!("/graphs/{graph}/mutate");
            async move {
                let resp = client.post(&path, insert(&name)).await;
                assert_eq!(resp.status, 200, "{}", resp.text);
                landed(&resp, 0).starts_with(&format!("n{owner}-"))
            }
        })
        .await;
        if !moved {
            let mut views = String::new();
            for node in 0..3 {
                let view = cluster.client(node).get("/admin/cluster").await.json;
                let misplaced = cluster
                    .client(node)
                    .metric_value("omnigraph_cluster_misplaced_graphs")
                    .await;
                views.push_str(&format!(
                    "n{node}: misplaced {misplaced:?} warm {}\n",
                    view["warm"]
                ));
            }
            panic!("{graph} did not reach its owner n{owner}\n{views}");
        }
    }
    let handoffs = cluster
        .client(0)
        .metric("omnigraph_cluster_handoffs_total")
        .await
        + cluster
            .client(1)
            .metric("omnigraph_cluster_handoffs_total")
            .await;
    assert_eq!(
        handoffs as usize,
        movers.len(),
        "only the moved graphs changed hands"
    );
}

/// With `cluster.reads = "owner"`, a read sent to a node that does not own the graph is
/// answered by the owner, and by the node itself when the owner is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_follow_placement_and_fall_back_when_the_owner_is_gone() {
    let mut cluster = Cluster::start_gossiping_with(2, "reads = \"owner\"").await;
    cluster.converged().await;
    // A graph placed on n1, written there.
    let graph = (0..)
        .map(|g| format!("o{g}"))
        .find(|graph| placed_on(graph, 2) == 1)
        .unwrap();
    cluster.seed(1, &graph).await;
    let query =
        json!({"query": "query total() { match { $p: Person } return { count($p) as total } }"});
    let path = format!("/graphs/{graph}/query");
    let routed = cluster.client(0).post(&path, query.clone()).await;
    assert_eq!(
        forwarded_to(&routed).as_deref(),
        Some("n1"),
        "{}",
        routed.text
    );
    assert_eq!(routed.expect(200)["rows"][0]["total"], 1);
    let snapshot = cluster
        .client(0)
        .get(&format!("/graphs/{graph}/snapshot"))
        .await;
    assert_eq!(forwarded_to(&snapshot).as_deref(), Some("n1"));
    snapshot.expect(200);
    // A routed read is authenticated before its body is read.
    let anonymous = Client::new(&format!("http://127.0.0.1:{}", cluster.nodes[0].port), None);
    anonymous
        .post(&path, query.clone())
        .await
        .expect_error(401, "unauthorized", "bearer");
    // The owner answers its own reads.
    let own = cluster.client(1).post(&path, query.clone()).await;
    assert_eq!(forwarded_to(&own), None);
    own.expect(200);
    // The owner killed: n0 answers from its own handle.
    let owner = cluster.nodes.remove(1);
    owner.server.signal("KILL");
    let local = cluster.client(0).post(&path, query).await;
    assert_eq!(forwarded_to(&local), None);
    assert_eq!(local.expect(200)["rows"][0]["total"], 1);
    drop(owner);
}

/// SIGTERM of the holder under load: `/readyz` turns 503 first, every request it accepted
/// gets its real answer, clients of the other nodes see no error (their writes go to the
/// holder until it closes its listener, then to whichever node takes the released lease),
/// and every lease it held ends released or taken over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_holder_hands_over_without_an_error() {
    let mut cluster = Cluster::start_with(3, 30, "drain_delay = \"1s\"").await;
    cluster.seed(0, "g").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = [1usize, 2, 1, 2]
        .into_iter()
        .enumerate()
        .map(|(w, node)| {
            let client = cluster.client(node).clone();
            let stop = std::sync::Arc::clone(&stop);
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let name = format!("w{w}-{i}");
                    let resp = client.post("/graphs/g/mutate", insert(&name)).await;
                    answers.push((name, resp.status.as_u16(), resp.text));
                }
                answers
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let holder = cluster.nodes.remove(0);
    let readyz = format!("http://127.0.0.1:{}/readyz", holder.port);
    holder.server.signal("TERM");
    let draining = reqwest::get(&readyz).await.unwrap().status();
    assert_eq!(draining, 503, "/readyz turns 503 as the drain begins");
    let status = tokio::task::spawn_blocking(move || holder.server.wait_exit())
        .await
        .unwrap();
    assert!(
        status.success(),
        "the drained node exits cleanly: {status:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut acknowledged = vec!["Ann".to_string()];
    for writer in writers {
        for (name, status, text) in writer.await.unwrap() {
            assert_eq!(status, 200, "{name}: {text}");
            acknowledged.push(name);
        }
    }
    assert!(
        acknowledged.len() > 10,
        "the load ran: {}",
        acknowledged.len()
    );
    let names = people(cluster.client(0)).await;
    for name in &acknowledged {
        assert!(
            names.contains(name),
            "{name} was acknowledged but is missing"
        );
    }
    assert_eq!(names.len(), acknowledged.len());
    // No lease is left held by the drained node.
    let leases = cluster.dir.path().join("data/_system/leases");
    for entry in walk(&leases) {
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&entry).unwrap()).unwrap();
        let holder = record["holder"].as_str().unwrap();
        assert!(
            !holder.starts_with("n0-") || record["released"] == true,
            "{} still held by {holder}",
            entry.display()
        );
    }
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

/// With gossip, writer leases hang off their holder's node lease (one write per node renews
/// them all). After kill -9 of the holder, its graphs move on once its node record expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_graphs_move_on_when_its_node_lease_lapses() {
    let ttl = 4;
    let mut cluster = Cluster::launch(3, ttl, "", Some(free_udp_port()), "").await;
    cluster.converged().await;
    let graph = (0..)
        .map(|g| format!("f{g}"))
        .find(|graph| placed_on(graph, 3) == 0)
        .unwrap();
    // Written through n1, made by n0, the owner.
    cluster.seed(1, &graph).await;
    let lease = cluster
        .dir
        .path()
        .join(format!("data/_system/leases/acme/{graph}/writer.json"));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&lease).unwrap()).unwrap();
    assert_eq!(
        record["node"]["node"], "n0",
        "the lease hangs off n0's node lease: {record}"
    );
    let first_epoch = record["epoch"].as_u64().unwrap();

    let holder = cluster.nodes.remove(0);
    holder.server.signal("KILL");
    let killed = tokio::time::Instant::now();
    let mut moved = None;
    for attempt in 0.. {
        if killed.elapsed() > Duration::from_secs(3 * ttl + 10) {
            break;
        }
        let resp = cluster
            .client(attempt % 2)
            .post(
                &format!("/graphs/{graph}/mutate"),
                insert(&format!("a{attempt}")),
            )
            .await;
        match resp.status.as_u16() {
            200 => {
                moved = Some((killed.elapsed(), landed(&resp, EPOCH)));
                break;
            }
            503 => {}
            other => panic!("unexpected {other}: {}", resp.text),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (took, epoch) = moved.expect("writes did not move on after the holder died");
    assert!(epoch > first_epoch);
    assert!(
        took <= Duration::from_secs(ttl + 6),
        "took {took:?} with a {ttl}s node lease"
    );
    drop(holder);
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

/// `deploy/local/cluster.sh` as a user runs it: three nodes on the documented ports start,
/// serve one graph from every node, and stop on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_three_node_cluster_starts_serves_and_stops() {
    let state = tempfile::tempdir().unwrap();
    let script = crate::support::repository_root().join("deploy/local/cluster.sh");
    let run = |command: &str| {
        std::process::Command::new(&script)
            .arg(command)
            .env("OMNIGRAPH_NODE_BIN", crate::process::BIN)
            .env("OMNIGRAPH_CLUSTER_DIR", state.path())
            .output()
            .unwrap()
    };
    let started = run("start");
    // Stop what the script started, whatever happens below.
    struct Stop<F: FnMut() -> std::process::Output>(F);
    impl<F: FnMut() -> std::process::Output> Drop for Stop<F> {
        fn drop(&mut self) {
            (self.0)();
        }
    }
    let _stop = Stop(|| run("stop"));
    assert!(
        started.status.success(),
        "{}{}",
        String::from_utf8_lossy(&started.stdout),
        String::from_utf8_lossy(&started.stderr)
    );
    let node = |port: u16| Client::new(&format!("http://127.0.0.1:{port}"), None);
    node(8082).create_graph("team").await;
    for (port, name) in [(8081, "Ann"), (8083, "Bob"), (8082, "Cid")] {
        node(port).insert_person("team", name, 1).await.expect(200);
    }
    for port in [8081, 8082, 8083] {
        assert_eq!(node(port).count_people("team", "main").await, 3);
        let joined = eventually(Duration::from_secs(5), || async {
            let view = node(port).get("/admin/cluster").await.expect(200);
            view["members"].as_array().unwrap().len() == 3
        })
        .await;
        assert!(joined, "node on {port} does not see three members");
    }
    let stopped = run("stop");
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    for i in 1..=3 {
        assert!(!state.path().join(format!("node-{i}.pid")).exists());
        assert!(
            reqwest::get(format!("http://127.0.0.1:808{i}/healthz"))
                .await
                .is_err()
        );
    }
}

/// Several nodes in one process (the embedded runtime): each with its own address, they
/// forward to each other like separate processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_embedded_in_one_process_forward_to_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let root = dir.path().join("data");
    std::fs::create_dir(&root).unwrap();
    let config = |id: &str| {
        format!(
            "[node]\nid = \"{id}\"\n[cluster]\nsecret_file = {:?}\n",
            secret.display().to_string()
        )
    };
    let a = crate::support::TestNode::start_on(&root, &config("a")).await;
    let b = crate::support::TestNode::start_on(&root, &config("b")).await;
    assert_ne!(a.node().local_addr(), b.node().local_addr());
    a.client().create_graph("g").await;
    a.client().insert_person("g", "Ann", 1).await.expect(200);
    let forwarded = b.client().insert_person("g", "Bob", 2).await;
    assert!(forwarded_to(&forwarded).unwrap().starts_with("a-"));
    forwarded.expect(200);
    assert_eq!(b.client().count_people("g", "main").await, 2);
}
