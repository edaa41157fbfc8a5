//! The whole user workflow, and the CLI 0.8's exact request shapes.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::support::{Client, TestNode, example, s3_backend};

/// Loaded records keyed by identity, comparable with an export: nodes by (type, key) and
/// edges by (edge, from, to), each with its properties (generated ids left out).
fn records(ndjson: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for line in ndjson.lines().filter(|line| !line.trim().is_empty()) {
        let record: Value = serde_json::from_str(line).unwrap();
        let mut data = record["data"].as_object().cloned().unwrap_or_default();
        data.remove("id");
        data.retain(|_, value| !value.is_null());
        let key = match record.get("type") {
            Some(kind) => format!(
                "{}:{}",
                kind.as_str().unwrap(),
                data["name"].as_str().unwrap()
            ),
            None => format!(
                "{}:{}->{}",
                record["edge"].as_str().unwrap(),
                record["from"].as_str().unwrap(),
                record["to"].as_str().unwrap()
            ),
        };
        out.insert(key, Value::Object(data));
    }
    out
}

async fn export(client: &Client, graph: &str, branch: &str) -> String {
    let response = client
        .post(
            &format!("/graphs/{graph}/export"),
            json!({"branch": branch}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text);
    assert_eq!(
        response.headers["content-type"],
        "application/x-ndjson; charset=utf-8"
    );
    response.text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_load_query_branch_mutate_merge_commits_export() {
    let node = TestNode::start().await;
    full_workflow(&node.client()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_on_s3() {
    let Some(s3) = s3_backend().await else { return };
    let node = TestNode::start_s3(&s3, "workflow", "").await;
    full_workflow(&node.client()).await;
    let stats = s3.proxy.stats();
    assert!(
        stats.by_graph.contains_key("default/knowledge"),
        "the engine's I/O went through S3: {stats:?}"
    );
}

/// Create, load, query, branch, load on the branch, mutate, merge, list commits, export and
/// compare with what was loaded, round-trip the export, and export's errors.
pub async fn full_workflow(client: &Client) {
    client.create_graph("knowledge").await;
    let data = example("team.jsonl");
    let loaded = client.load("knowledge", &data, "overwrite").await;
    let rows: u64 = loaded["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["rows_loaded"].as_u64().unwrap())
        .sum();
    assert_eq!(
        rows as usize,
        data.lines().filter(|l| !l.trim().is_empty()).count()
    );

    let gq = example("team.gq");
    let mentees = client
        .post(
            "/graphs/knowledge/query",
            json!({"query": gq, "name": "mentees_of", "params": {"name": "Grace"}}),
        )
        .await
        .expect(200);
    assert_eq!(mentees["row_count"], 2, "{mentees}");

    client.create_branch("knowledge", "feature").await;
    let on_branch = "{\"type\":\"Person\",\"data\":{\"name\":\"Mina\",\"age\":28}}\n{\"edge\":\"Mentors\",\"from\":\"Mina\",\"to\":\"Ada\"}";
    client
        .post(
            "/graphs/knowledge/load",
            json!({"data": on_branch, "branch": "feature"}),
        )
        .await
        .expect(200);
    client
        .post(
            "/graphs/knowledge/mutate",
            json!({"query": crate::support::INSERT_PERSON, "params": {"name": "Noor", "age": 41}, "branch": "feature"}),
        )
        .await
        .expect(200);
    let people_main = client.count_people("knowledge", "main").await;
    assert_eq!(
        client.count_people("knowledge", "feature").await,
        people_main + 2,
        "branch isolation"
    );

    let merged = client
        .post(
            "/graphs/knowledge/branches/merge",
            json!({"source": "feature", "target": "main"}),
        )
        .await
        .expect(200);
    assert_eq!(merged["outcome"], "fast_forward");
    assert_eq!(
        client.count_people("knowledge", "main").await,
        people_main + 2
    );

    let feature = client
        .get("/graphs/knowledge/commits?branch=feature")
        .await
        .expect(200);
    assert!(
        feature["commits"].as_array().unwrap().len() >= 4,
        "init, load, load, mutate: {feature}"
    );
    let commits = client
        .get("/graphs/knowledge/commits?branch=main")
        .await
        .expect(200);
    let commits = commits["commits"].as_array().unwrap();
    let head = commits.last().unwrap();
    assert!(
        head["merged_parent_commit_id"].is_string(),
        "the merge is main's head: {head}"
    );
    let versions: Vec<u64> = commits
        .iter()
        .map(|c| c["manifest_version"].as_u64().unwrap())
        .collect();
    assert!(
        versions.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {versions:?}"
    );

    // Export equals what was loaded, plus the branch's additions.
    let mut expected = records(&data);
    expected.extend(records(on_branch));
    expected.insert("Person:Noor".into(), json!({"name": "Noor", "age": 41}));
    let exported = export(client, "knowledge", "main").await;
    assert_eq!(records(&exported), expected);

    // And it round-trips through load into a new graph.
    client.create_graph("copy").await;
    client.load("copy", &exported, "overwrite").await;
    assert_eq!(records(&export(client, "copy", "main").await), expected);

    // Export errors come before the first byte.
    client
        .post("/graphs/knowledge/export", json!({"branch": "nope"}))
        .await
        .expect_error(404, "not_found", "branch 'nope'");
    client
        .post(
            "/graphs/knowledge/export",
            json!({"table_keys": ["node:Nope"]}),
        )
        .await
        .expect(400);
    let only_people = client
        .post(
            "/graphs/knowledge/export",
            json!({"type_names": ["Person"]}),
        )
        .await
        .text;
    assert!(
        only_people
            .lines()
            .all(|line| line.contains("\"type\":\"Person\"")),
        "{only_people}"
    );
}

/// Replays the requests the upstream `omnigraph` CLI 0.8 sends for its remote workflow
/// (legacy `/read` and `/change` bodies, `/load`, `/branches`, `/export`, `/commits`), with
/// the token in `Authorization: Bearer`, as `OMNIGRAPH_BEARER_TOKEN` makes it do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_cli_request_shapes() {
    let node = TestNode::start_permissive(
        "[[auth.tokens]]\ntoken = \"s3cret\"\nactor = \"act-andrew\"\ntenant = \"acme\"\n",
    )
    .await;
    let cli = node.client_with_token("s3cret");
    cli.create_graph("knowledge").await;
    replay_cli_workflow(&cli).await;
}

/// The same requests sent to a node that does not write the graph: every write is
/// forwarded to the node that does, and the CLI sees the same answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_cli_request_shapes_through_a_node_that_forwards() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "a-cluster-secret-of-at-least-32-bytes").unwrap();
    let toml = format!(
        "[[auth.tokens]]\ntoken = \"s3cret\"\nactor = \"act-andrew\"\ntenant = \"acme\"\n\
         [cluster]\nsecret_file = {:?}\n",
        secret.display().to_string()
    );
    let policies = crate::support::policy_dir(&[("_default.cedar", crate::support::PERMIT_ALL)]);
    let toml = format!(
        "auth.policy_dir = {:?}\n{toml}",
        policies.path().display().to_string()
    );
    let root = dir.path().join("data");
    std::fs::create_dir(&root).unwrap();
    let writer = TestNode::start_on(&root, &toml).await;
    let other = TestNode::start_on(&root, &toml).await;
    let holder = writer.client_with_token("s3cret");
    holder.create_graph("knowledge").await;
    // The writer takes the graph's lease with a first write.
    holder
        .post(
            "/graphs/knowledge/branches",
            json!({"from": "main", "name": "warm-up"}),
        )
        .await
        .expect(200);
    replay_cli_workflow(&other.client_with_token("s3cret")).await;
    assert!(
        other
            .client()
            .with_metrics(&other.metrics_base)
            .metric("omnigraph_forwards_total{outcome=\"answered\"}")
            .await
            >= 4.0,
        "the writes went through the writer"
    );
}

/// The CLI 0.8's requests after `graph create knowledge`, with their answers checked.
async fn replay_cli_workflow(cli: &crate::support::Client) {
    // omnigraph branch create --from main feature
    let created = cli
        .post(
            "/graphs/knowledge/branches",
            json!({"from": "main", "name": "feature"}),
        )
        .await
        .expect(200);
    assert_eq!(created["actor_id"], "act-andrew");
    // omnigraph load --data people.jsonl --mode merge --branch feature
    let loaded = cli
        .post("/graphs/knowledge/load", json!({"branch": "feature", "from": null, "mode": "merge", "data": example("team.jsonl")}))
        .await
        .expect(200);
    assert_eq!(loaded["uri"], "/graphs/knowledge");
    // omnigraph mutate -e '...' --params '{...}' --branch feature
    let changed = cli
        .post(
            "/graphs/knowledge/change",
            json!({"query_source": "query add($name: String, $age: I32) { insert Person { name: $name, age: $age } }",
                   "branch": "feature", "params": {"name": "Mina", "age": 28}}),
        )
        .await
        .expect(200);
    assert_eq!(changed["query_name"], "add");
    // omnigraph query --query team.gq get_person --params '{"name":"Mina"}' --branch feature
    let read = cli
        .post(
            "/graphs/knowledge/read",
            json!({"query_source": example("team.gq"), "query_name": "get_person", "params": {"name": "Mina"}, "branch": "feature"}),
        )
        .await
        .expect(200);
    assert_eq!(read["rows"], json!([{"p.name": "Mina", "p.age": 28}]));
    // omnigraph branch merge feature --into main
    cli.post(
        "/graphs/knowledge/branches/merge",
        json!({"source": "feature", "target": "main"}),
    )
    .await
    .expect(200);
    // omnigraph commit list --branch main ; commit show ID
    let commits = cli
        .get("/graphs/knowledge/commits?branch=main")
        .await
        .expect(200);
    let head = commits["commits"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(head["actor_id"], "act-andrew");
    let shown = cli
        .get(&format!(
            "/graphs/knowledge/commits/{}",
            head["graph_commit_id"].as_str().unwrap()
        ))
        .await
        .expect(200);
    assert_eq!(shown, head);
    // omnigraph snapshot ; schema show ; branch list ; export
    cli.get("/graphs/knowledge/snapshot?branch=main")
        .await
        .expect(200);
    cli.get("/graphs/knowledge/schema").await.expect(200);
    cli.get("/graphs/knowledge/branches").await.expect(200);
    let exported = cli
        .post(
            "/graphs/knowledge/export",
            json!({"branch": "main", "type_names": [], "table_keys": []}),
        )
        .await;
    assert!(exported.text.contains("\"name\":\"Mina\""));
    // omnigraph graphs list --server URL
    let graphs = cli.get("/graphs").await.expect(200);
    assert_eq!(graphs["graphs"][0]["graph_id"], "knowledge");
}

/// The README walkthrough's files (`examples/`) create, load and answer as the README says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_of_the_readme_work() {
    use crate::support::example;
    let node = TestNode::start().await;
    let client = node.client();
    client
        .post(
            "/graphs",
            json!({"graph_id": "knowledge", "schema_source": example("team.pg")}),
        )
        .await
        .expect(201);
    client
        .load("knowledge", &example("team.jsonl"), "overwrite")
        .await;
    let queries = example("team.gq");
    let ask = |name: &str, params: Value| {
        let body = json!({"query": queries, "name": name, "params": params});
        let client = client.clone();
        async move {
            // Rows in name order: the query states no order.
            let mut rows = client
                .post("/graphs/knowledge/query", body)
                .await
                .expect(200)["rows"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            rows.sort_by_key(|row| row.to_string());
            Value::Array(rows)
        }
    };
    assert_eq!(
        ask("mentees_of", json!({"name": "Grace"})).await,
        json!([{"p.name": "Ada", "p.age": 36}, {"p.name": "Linus", "p.age": 29}])
    );
    assert_eq!(
        ask("members_of", json!({"team": "Storage"})).await,
        json!([{"p.name": "Ada"}, {"p.name": "Linus"}])
    );
    assert_eq!(
        ask("get_person", json!({"name": "Barbara"})).await,
        json!([{"p.name": "Barbara", "p.age": 52}])
    );
}

/// The README's walkthrough, taken from the README itself and run by bash as written (the
/// node's address substituted), so that it cannot drift from what the node does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_runs_as_written() {
    let repo = crate::support::repository_root();
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let section = &readme[readme
        .find("## Five-minute walkthrough")
        .expect("walkthrough")..];
    let start = section.find("```sh\n").expect("a shell block") + "```sh\n".len();
    let script = &section[start..start + section[start..].find("```").unwrap()];
    let address = "S=http://127.0.0.1:8080\n";
    assert!(
        script.contains(address),
        "the walkthrough names the node's address"
    );

    let node = TestNode::start().await;
    let script = script.replace(address, &format!("S={}\n", node.base));
    let mut bash = std::process::Command::new("bash");
    bash.args(["-euo", "pipefail", "-c", &script])
        .current_dir(&repo);
    let output = tokio::task::spawn_blocking(move || bash.output())
        .await
        .unwrap()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Every command printed one JSON answer (the export, one line per record); none is an
    // error.
    let answers: Vec<Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|err| panic!("{err}: {stdout}"));
    for answer in &answers {
        assert!(answer.get("error").is_none(), "{answer}");
    }
    let [
        created,
        loaded,
        mentees,
        branched,
        added,
        merged,
        commits,
        export @ ..,
    ] = answers.as_slice()
    else {
        panic!("{} answers: {stdout}", answers.len());
    };
    assert_eq!(created["graph_id"], "knowledge");
    assert_eq!(
        loaded["tables"].as_array().map(Vec::len),
        Some(4),
        "{loaded}"
    );
    assert_eq!(mentees["row_count"], 2, "{mentees}");
    assert_eq!(branched["name"], "feature");
    assert_eq!(added["affected_nodes"], 1);
    assert_eq!(merged["outcome"], "fast_forward");
    assert!(
        commits["commits"].as_array().is_some_and(|c| c.len() >= 3),
        "{commits}"
    );
    let people = export.iter().filter(|r| r["type"] == "Person").count();
    assert_eq!(
        people, 5,
        "the four loaded and Mina, merged from the branch"
    );
}
