//! Tenant limits (docs/operations.md#limits): admission per tenant, read deadlines, and the
//! write queue's bound in bytes.

use std::time::Duration;

use tokio::time::Instant;

use futures::future::join_all;
use omnigraph_cloud_chaos::{Faults, Latency, Op};
use serde_json::json;

use crate::support::{
    COUNT_PEOPLE, Client, PERMIT_ALL, TWO_TENANTS, TestNode, policy_dir, s3_backend,
};

/// Sends `count` requests, `at_once` at a time, and returns their statuses and the first
/// refusal's `Retry-After` and body.
async fn hammer(
    client: &Client,
    count: usize,
    at_once: usize,
) -> (Vec<u16>, Option<(u64, String)>) {
    let mut statuses = Vec::new();
    let mut refusal = None;
    for _ in 0..count / at_once {
        for resp in join_all((0..at_once).map(|_| client.get("/graphs"))).await {
            if resp.status == 429 && refusal.is_none() {
                let retry = resp
                    .headers
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().parse().unwrap());
                refusal = Some((retry.expect("Retry-After on a 429"), resp.text.clone()));
            }
            statuses.push(resp.status.as_u16());
        }
    }
    (statuses, refusal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_far_over_its_rate_gets_429s_and_another_tenant_none() {
    let toml = format!("{TWO_TENANTS}[limits.tenants.acme]\nrequests_per_second = 4\nburst = 4\n");
    let node = TestNode::start_permissive(&toml).await;
    let (acme, globex) = (
        node.client_with_token("acme-token"),
        node.client_with_token("globex-token"),
    );
    let started = Instant::now();
    let ((noisy, refusal), (quiet, _)) =
        tokio::join!(hammer(&acme, 200, 8), hammer(&globex, 40, 4));
    let elapsed = started.elapsed().as_secs_f64();
    // What the bucket could admit in that time: its burst, and its rate since.
    let admissible = 4 + (4.0 * elapsed).ceil() as usize;
    let admitted = noisy.iter().filter(|s| **s == 200).count();
    assert!(noisy.iter().all(|s| *s == 200 || *s == 429), "{noisy:?}");
    assert!(
        admitted <= admissible,
        "{admitted} admitted in {elapsed:.1}s"
    );
    assert!(admitted >= 4, "the burst is admitted: {noisy:?}");
    assert!(
        quiet.iter().all(|s| *s == 200),
        "the quiet tenant was refused: {quiet:?}"
    );
    let (retry_after, body) = refusal.expect("a refusal");
    assert!(retry_after >= 1);
    assert!(
        body.contains("tenant 'acme'") && body.contains("limits.requests_per_second"),
        "{body}"
    );

    let refused = |tenant: &str| {
        format!("omnigraph_admission_refused_total{{tenant=\"{tenant}\",reason=\"rate\"}}")
    };
    assert_eq!(acme.metric(&refused("acme")).await, (200 - admitted) as f64);
    let text = acme.metrics().await.text;
    assert!(
        !text.contains("tenant=\"globex\",reason"),
        "globex was never refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_timeout_header_is_a_400_and_a_shorter_one_is_honoured() {
    let node = TestNode::start_permissive(TWO_TENANTS).await;
    let client = node.client_with_token("acme-token");
    client.create_graph("g").await;
    let query = json!({"query": COUNT_PEOPLE});
    for bad in ["0", "-5", "soon", "1.5"] {
        let resp = client
            .post_headers(
                "/graphs/g/query",
                query.clone(),
                &[("x-omnigraph-timeout-ms", bad)],
            )
            .await;
        let body = resp.expect(400);
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("x-omnigraph-timeout-ms"),
            "{body}"
        );
    }
    let ok = client
        .post_headers(
            "/graphs/g/query",
            query,
            &[("x-omnigraph-timeout-ms", "60000")],
        )
        .await;
    assert_eq!(ok.expect(200)["rows"][0]["total"], 0);
}

/// CPU time this test process has used (the node runs in it; nextest runs one test per
/// process).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_past_its_deadline_is_cancelled_and_answered_in_time() {
    let Some(s3) = s3_backend().await else { return };
    let policies = policy_dir(&[("_default.cedar", PERMIT_ALL)]);
    let toml = format!(
        "auth.policy_dir = {:?}\n{TWO_TENANTS}[cache]\nenabled = false\n\
         [limits.tenants.acme]\nquery_timeout = \"1s\"\n",
        policies.path().display().to_string()
    );
    let node = TestNode::start_s3(&s3, "deadline", &toml).await;
    let client = node.client_with_token("acme-token");
    client.create_graph("g").await;
    client.insert_person("g", "Ann", 30).await.expect(200);

    // Every GET of the store takes 2 s: no read can finish within its deadline.
    let slow = Latency {
        p50_ms: 2_000,
        jitter_ms: 0,
    };
    s3.proxy.set_faults(Faults {
        latency: [(Op::Get, slow)].into(),
        ..Default::default()
    });
    let query = json!({"query": COUNT_PEOPLE});
    for (header, deadline_ms, named) in [
        (Some("500"), 500, "x-omnigraph-timeout-ms"),
        (None, 1_000, "limits.query_timeout"),
    ] {
        let headers: Vec<(&str, &str)> = header
            .map(|h| ("x-omnigraph-timeout-ms", h))
            .into_iter()
            .collect();
        let sent = Instant::now();
        let resp = client
            .post_headers("/graphs/g/query", query.clone(), &headers)
            .await;
        let took = sent.elapsed();
        let body = resp.expect(504);
        assert_eq!(body["code"], "deadline_exceeded");
        assert!(body["error"].as_str().unwrap().contains(named), "{body}");
        assert!(
            took < Duration::from_millis(deadline_ms + 250),
            "answered after {took:?}"
        );
    }
    assert_eq!(
        client
            .metric("omnigraph_deadline_expired_total{tenant=\"acme\"}")
            .await,
        2.0
    );
    // The work was cancelled, not left running: the node is idle afterwards.
    let before = cpu_seconds();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_seconds() - before;
    assert!(used < 0.2, "{used:.2} s of CPU in 2 s after the deadlines");

    s3.proxy.set_faults(Faults::default());
    assert_eq!(client.count_people("g", "main").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_queue_full_in_bytes_refuses_with_429_and_applies_nothing_of_it() {
    let Some(s3) = s3_backend().await else { return };
    let node = TestNode::start_s3(&s3, "queue-bytes", "[writes]\nmax_queue_bytes = 100000\n").await;
    let client = node.client();
    client.create_graph("g").await;
    // Publishing is slow, so the loads sent meanwhile queue up behind the first.
    let slow = Latency {
        p50_ms: 300,
        jitter_ms: 0,
    };
    s3.proxy.set_faults(Faults {
        latency: [(Op::Put, slow)].into(),
        ..Default::default()
    });
    // Six loads of about 40 KB each, with names of their own.
    let load = |n: usize| {
        let rows: String = (0..800)
            .map(|i| {
                format!(
                    "{{\"type\":\"Person\",\"data\":{{\"name\":\"p{n}-{i:04}\",\"age\":{n}}}}}\n"
                )
            })
            .collect();
        client.post("/graphs/g/load", json!({"data": rows, "mode": "append"}))
    };
    let answers = join_all((0..6).map(load)).await;
    s3.proxy.set_faults(Faults::default());
    let mut landed = 0;
    for (n, resp) in answers.into_iter().enumerate() {
        let retry = resp.headers.get("retry-after").cloned();
        match resp.status.as_u16() {
            200 => landed += 1,
            429 => {
                assert!(retry.is_some(), "Retry-After on a 429");
                assert!(
                    resp.text.contains("writes.max_queue_bytes"),
                    "{}",
                    resp.text
                );
                let query = json!({"query": "query c($a: I32) { match { $p: Person { age: $a } } return { count($p) as total } }", "params": {"a": n}});
                let body = client.post("/graphs/g/query", query).await.expect(200);
                assert_eq!(
                    body["rows"][0]["total"], 0,
                    "nothing of refused load {n} landed"
                );
            }
            other => panic!("load {n}: {other} {}", resp.text),
        }
    }
    assert!((2..6).contains(&landed), "{landed} of 6 loads landed");
    assert_eq!(
        client.count_people("g", "main").await,
        (landed * 800) as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_heavy_traversal_past_its_deadline_is_cancelled_and_answered_in_time() {
    // Nothing else of the node's may use the CPU the test measures: no maintenance of the
    // graph just loaded, no usage metering.
    let node = TestNode::start_with(
        "[limits]\nquery_timeout = \"1s\"\n[maintenance]\nenabled = false\n[usage]\nenabled = false\n",
    )
    .await;
    let client = node.client();
    client.create_graph("chain").await;
    // 100,000 people in one mentoring chain: 99,999 edges.
    let people = 100_000;
    let mut data = String::new();
    for i in 0..people {
        data.push_str(&format!(
            "{{\"type\":\"Person\",\"data\":{{\"name\":\"p{i}\"}}}}\n"
        ));
    }
    for i in 1..people {
        data.push_str(&format!(
            "{{\"edge\":\"Mentors\",\"from\":\"p{}\",\"to\":\"p{i}\"}}\n",
            i - 1
        ));
    }
    client.load("chain", &data, "overwrite").await;
    // Everyone's mentees up to 60 hops away: six million paths (4.3 s of CPU to the end).
    let query = json!({"query": "query far() { match { $a: Person\n $a mentors{1,60} $b } \
                                 return { count($b) as reached } }"});
    let sent = Instant::now();
    let body = client.post("/graphs/chain/query", query).await.expect(504);
    let took = sent.elapsed();
    assert_eq!(body["code"], "deadline_exceeded", "{body}");
    assert!(
        took < Duration::from_millis(1_250),
        "answered after {took:?}"
    );
    // The engine computes for stretches between two awaits (up to about 0.8 s in this
    // traversal, debug build), and the cancelled work stops at its next await. Run to its end
    // the query takes over 4 s of CPU; cancelled, the node is idle a second after the answer.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = cpu_seconds();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_seconds() - before;
    assert!(
        used < 0.2,
        "{used:.2} s of CPU in 2 s, a second after the deadline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_past_its_call_timeout_answers_like_a_read_past_its_deadline() {
    let Some(s3) = s3_backend().await else { return };
    let node =
        TestNode::start_s3(&s3, "call-timeout", "[actors]\ncall_timeout = \"500ms\"\n").await;
    let client = node.client();
    client.create_graph("g").await;
    let slow = Latency {
        p50_ms: 1_500,
        jitter_ms: 0,
    };
    s3.proxy.set_faults(Faults {
        latency: [(Op::Put, slow)].into(),
        ..Default::default()
    });
    let resp = client.insert_person("g", "Ann", 30).await;
    assert!(
        resp.headers.get("retry-after").is_none(),
        "a write that may still land is not to be retried blindly"
    );
    let body = resp.expect_error(504, "deadline_exceeded", "actors.call_timeout");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("may still be applied")
    );
    s3.proxy.set_faults(Faults::default());
    // It was not cancelled: it lands.
    let landed = crate::support::eventually(Duration::from_secs(20), || {
        let client = client.clone();
        async move { client.count_people("g", "main").await == 1 }
    })
    .await;
    assert!(landed, "the write past its call timeout never landed");
}
