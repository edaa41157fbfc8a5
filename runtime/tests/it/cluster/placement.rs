//! Placement: free graphs go to their owner, replicas forward, a joining node takes its share.

use super::*;

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
