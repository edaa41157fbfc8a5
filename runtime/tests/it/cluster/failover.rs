//! A holder that goes away: kill -9 (with and without node leases) and a drain under load.

use super::*;

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
    // The signal is handled asynchronously: /readyz turns 503 once the drain has begun.
    let draining = crate::support::eventually(Duration::from_millis(900), || {
        let readyz = readyz.clone();
        async move { reqwest::get(&readyz).await.is_ok_and(|r| r.status() == 503) }
    })
    .await;
    assert!(draining, "/readyz turns 503 as the drain begins");
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
