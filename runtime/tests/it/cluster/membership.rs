//! Membership by gossip, and the three-node cluster of `deploy/local/` as a user runs it.

use super::*;

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
