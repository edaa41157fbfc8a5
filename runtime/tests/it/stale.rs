//! Stale-ok reads (docs/api.md#consistency): served from the last copies a node read, never
//! older than the caller allows, refused where they make no sense, never the default.
//!
//! Two nodes share one root on S3 (moto behind the counting proxy): the writer holds the
//! graph's writer lease, the reader does not, so the reader's strong reads ask the store for
//! the latest version every time and its stale-ok reads may skip that.

use std::time::Duration;

use omnigraph_cloud_chaos::Op;
use serde_json::json;

use crate::support::{Client, GET_PERSON, Resp, TestNode, example, s3_backend};

const QUIET: &str = "[maintenance]\ninterval = \"1h\"\n";
const STALE_OK: (&str, &str) = ("x-omnigraph-consistency", "stale-ok");

async fn find(client: &Client, name: &str, headers: &[(&str, &str)]) -> Resp {
    let query = json!({"query": GET_PERSON, "params": {"name": name}});
    client.post_headers("/graphs/g/query", query, headers).await
}

fn header(resp: &Resp, name: &str) -> Option<u64> {
    resp.headers
        .get(name)
        .map(|value| value.to_str().unwrap().parse().unwrap())
}

/// The rows of a stale-ok answer, its snapshot version, and its age (checked against `max`).
fn stale_answer(resp: Resp, max_ms: u64) -> (usize, u64, u64) {
    let version = header(&resp, "x-omnigraph-snapshot-version").expect("a snapshot version");
    let age = header(&resp, "x-omnigraph-snapshot-age-ms").expect("a snapshot age");
    assert!(
        age <= max_ms,
        "a snapshot {age} ms old, {max_ms} ms allowed"
    );
    assert!(
        resp.headers.get("x-omnigraph-manifest-version").is_none(),
        "a stale read does not claim the latest version"
    );
    let rows = resp.expect(200)["rows"].as_array().unwrap().len();
    (rows, version, age)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_ok_read_serves_the_last_copy_within_its_bound_and_only_when_asked() {
    let Some(s3) = s3_backend().await else { return };
    let writer = TestNode::start_s3(&s3, "stale", QUIET).await;
    let reader = TestNode::start_s3(&s3, "stale", QUIET).await;
    let (w, r) = (writer.client(), reader.client());
    w.create_graph("g").await;
    w.load("g", &example("team.jsonl"), "overwrite").await;
    let v1 = w.get("/graphs/g/snapshot").await.expect(200)["manifest_version"]
        .as_u64()
        .unwrap();
    // A strong read on the reader: it asks the store, and keeps what it read.
    find(&r, "Ada", &[]).await.expect(200);

    // Stale-ok within a minute: the same snapshot, and no listing of the graph at all.
    let minute = [STALE_OK, ("x-omnigraph-max-staleness-ms", "60000")];
    s3.proxy.reset_stats();
    let (rows, version, _) = stale_answer(find(&r, "Ada", &minute).await, 60_000);
    assert_eq!((rows, version), (1, v1));
    let by_op = s3.proxy.stats().by_graph.get("default/g").cloned();
    let lists = by_op.unwrap_or_default().get(&Op::List).copied();
    assert_eq!(
        lists, None,
        "a stale-ok read asked the store for the latest"
    );

    // The writer moves on; within its bound the stale read still answers from the old
    // snapshot, and says so.
    w.insert_person("g", "Zed", 30).await.expect(200);
    let (rows, version, _) = stale_answer(find(&r, "Zed", &minute).await, 60_000);
    assert_eq!(
        (rows, version),
        (0, v1),
        "the copy is younger than a minute"
    );
    // Never the default: a read without the header sees the write.
    let strong = find(&r, "Zed", &[]).await;
    assert!(strong.headers.get("x-omnigraph-snapshot-age-ms").is_none());
    assert_eq!(strong.expect(200)["rows"].as_array().unwrap().len(), 1);

    // A tight bound: the copies kept by that strong read are too old after 300 ms, so the
    // read asks the store and sees the next write.
    w.insert_person("g", "Yan", 31).await.expect(200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tight = [STALE_OK, ("x-omnigraph-max-staleness-ms", "200")];
    let (rows, version, _) = stale_answer(find(&r, "Yan", &tight).await, 200);
    assert_eq!(rows, 1, "a copy older than the bound was served");
    assert!(version > v1);

    // Snapshot and export take it too.
    let snapshot = r.get_headers("/graphs/g/snapshot", &minute).await;
    assert_eq!(
        header(&snapshot, "x-omnigraph-snapshot-version"),
        Some(version)
    );
    assert_eq!(
        snapshot.expect(200)["manifest_version"].as_u64(),
        Some(version)
    );
    let export = r.post_headers("/graphs/g/export", json!({}), &minute).await;
    assert_eq!(
        header(&export, "x-omnigraph-snapshot-version"),
        Some(version)
    );
    assert_eq!(export.status, 200);
    assert!(export.text.contains("Yan"), "{}", export.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_ok_is_refused_on_writes_and_bad_values() {
    let node = TestNode::start().await;
    let client = node.client();
    client.create_graph("g").await;
    let insert = json!({"query": crate::support::INSERT_PERSON, "params": {"name": "A", "age": 1}});
    client
        .post_headers("/graphs/g/mutate", insert.clone(), &[STALE_OK])
        .await
        .expect_error(400, "bad_request", "reads only");
    client
        .get_headers("/graphs/g/commits", &[STALE_OK])
        .await
        .expect_error(400, "bad_request", "reads only");
    let query = |headers: &'static [(&'static str, &'static str)]| {
        let client = client.clone();
        async move { find(&client, "A", headers).await }
    };
    query(&[("x-omnigraph-consistency", "eventual")])
        .await
        .expect_error(400, "bad_request", "'stale-ok'");
    query(&[("x-omnigraph-max-staleness-ms", "100")])
        .await
        .expect_error(400, "bad_request", "only with");
    query(&[STALE_OK, ("x-omnigraph-max-staleness-ms", "soon")])
        .await
        .expect_error(400, "bad_request", "milliseconds");
    query(&[STALE_OK, ("x-omnigraph-read-version", "confirm")])
        .await
        .expect_error(400, "bad_request", "cannot confirm");
    // Nothing of the refused write landed; a strong read is the default.
    let strong = query(&[("x-omnigraph-consistency", "strong")]).await;
    assert!(strong.headers.get("x-omnigraph-snapshot-age-ms").is_none());
    assert_eq!(strong.expect(200)["rows"].as_array().unwrap().len(), 0);
}
