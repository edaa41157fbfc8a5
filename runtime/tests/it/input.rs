//! Input that tries to exhaust the stack or that the engine cannot apply: deep nesting, large
//! schemas, a dropped type added back, loads and branches that would be half-applied.
//! Findings of the hardening review and of the API fuzzer (docs/known-engine-issues.md).

use serde_json::json;

use crate::support::TestNode;

/// The deepest nesting accepted (see `MAX_NESTING` in http/src/nesting.rs and docs/api.md).
const MAX_NESTING: usize = 32;

/// A read query whose match clause holds `clause` and returns `projection`; the frame
/// `query q() { match {` takes two levels.
fn read_query(clause: &str, projection: &str) -> String {
    format!("query q() {{ match {{ $p: Person {clause} }} return {{ {projection} }} }}")
}

/// `depth` levels of `open` around `inner`, closed by `close`.
fn nest(depth: usize, open: &str, inner: &str, close: &str) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

/// Each recursive rule of the query grammar, nested `depth` levels inside the query frame.
fn recursive_queries(depth: usize) -> Vec<(&'static str, &'static str, String)> {
    let call = |name: &str| {
        let filter = format!(
            "{} = \"a\"",
            nest(depth, &format!("{name}("), "$p.name", ", \"a\")")
        );
        read_query(&filter, "$p.name")
    };
    vec![
        (
            "not",
            "query",
            read_query(&nest(depth, "not { $p.name != \"zz\" ", "", "}"), "$p.name"),
        ),
        (
            "list literal",
            "query",
            read_query(
                &format!("$p.name = {}", nest(depth, "[", "\"a\"", "]")),
                "$p.name",
            ),
        ),
        ("search", "query", call("search")),
        ("fuzzy", "query", call("fuzzy")),
        ("match_text", "query", call("match_text")),
        ("bm25", "query", call("bm25")),
        (
            "aggregate",
            "query",
            read_query("", &nest(depth, "count(", "$p", ")")),
        ),
        (
            "rrf",
            "query",
            read_query(
                "",
                // Each level's bm25( ) opens one more bracket inside it.
                &nest(
                    depth - 1,
                    "rrf(bm25($p.name, \"a\"), bm25($p.name, \"a\"), ",
                    "1",
                    ")",
                ),
            ),
        ),
        (
            "nearest",
            "query",
            format!(
                "query q() {{ match {{ $p: Person }} return {{ $p.name }} order {{ {} }} }}",
                nest(depth, "nearest($p.name, ", "\"a\"", ")")
            ),
        ),
        (
            "insert list literal",
            "mutate",
            format!(
                "query m() {{ insert Person {{ name: \"deep\", age: {} }} }}",
                nest(depth, "[", "1", "]")
            ),
        ),
    ]
}

/// Finding 2: 2,000 nested `not { }` blocks (20 KB, read permission) overflowed a worker's
/// stack after parsing and aborted the node. Now every recursive rule of the grammar is
/// refused past `MAX_NESTING` levels with a 400. At exactly `MAX_NESTING` levels, on this
/// test's default 2 MiB worker stacks, a chain of `not` blocks runs through parse, type check,
/// planning and execution and answers rows; the other rules (which the engine's type checker
/// refuses when nested, after recursing to full depth) answer 200 or a 400 of the engine's own,
/// never a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_input_is_refused_and_the_limit_itself_runs() {
    let node = TestNode::start().await;
    let client = node.client();
    client.create_graph("g").await;
    client.insert_person("g", "Ann", 30).await.expect(200);

    // The rule's own frame takes two levels, the construct the rest.
    for (rule, route, query) in recursive_queries(MAX_NESTING - 2) {
        let resp = client
            .post(&format!("/graphs/g/{route}"), json!({"query": query}))
            .await;
        let status = resp.status.as_u16();
        assert!(
            status == 200 || status == 400,
            "{rule} at depth {MAX_NESTING}: {status} {}",
            resp.text
        );
        if status == 400 {
            assert!(
                !resp.text.contains("nest deeper"),
                "{rule}: depth {MAX_NESTING} itself is accepted: {}",
                resp.text
            );
        }
    }
    // The deepest `not` chain of valid clauses runs to the end and answers rows: an even
    // number of negations of "name is not zz" keeps Ann.
    let not_chain = recursive_queries(MAX_NESTING - 2).remove(0).2;
    let rows = client
        .post("/graphs/g/query", json!({"query": not_chain}))
        .await
        .expect(200);
    assert_eq!(rows["rows"], json!([{"p.name": "Ann"}]), "{rows}");

    for (rule, route, query) in recursive_queries(2_000) {
        let resp = client
            .post(&format!("/graphs/g/{route}"), json!({"query": query}))
            .await;
        assert_eq!(resp.status, 400, "{rule} at depth 2,000: {}", resp.text);
        assert!(
            resp.text
                .contains("query: brackets nest deeper than 32 levels"),
            "{rule}: {}",
            resp.text
        );
    }
    let schema = format!(
        "node Deep {{ name: String @key }}\n{}",
        nest(2_000, "{", "", "}")
    );
    for path in ["/graphs", "/graphs/g/schema/apply"] {
        client
            .post(path, json!({"graph_id": "deep", "schema_source": schema}))
            .await
            .expect_error(400, "bad_request", "schema_source: brackets nest deeper");
    }
    // The node is alive and its data whole.
    assert_eq!(client.count_people("g", "main").await, 1);
}

/// The schema language has no recursive rule; its size is bounded by the body limit. A
/// schema of many types and properties near that limit is answered, not crashed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_schema_is_answered() {
    let node = TestNode::start_with("[server]\nbody_limit_bytes = 262144\n").await;
    let client = node.client();
    let mut schema = String::new();
    let mut type_index = 0;
    while schema.len() < 200_000 {
        schema.push_str(&format!("node T{type_index} {{\n    key: String @key\n"));
        for property in 0..400 {
            schema.push_str(&format!("    p{property}: I64?\n"));
        }
        schema.push_str("}\n");
        type_index += 1;
    }
    let resp = client
        .post(
            "/graphs",
            json!({"graph_id": "big", "schema_source": schema}),
        )
        .await;
    assert!(
        resp.status == 201 || resp.status.is_client_error(),
        "{} {}",
        resp.status,
        resp.text
    );
    // A property named like a column the engine adds itself is the schema's fault: 400.
    let clashing = "node Thing {\n    id: String @key\n}\n";
    client
        .post(
            "/graphs",
            json!({"graph_id": "clash", "schema_source": clashing}),
        )
        .await
        .expect_error(400, "bad_request", "Duplicate field name");
    // Past the body limit: 413, before anything is parsed.
    let huge = "x".repeat(300_000);
    client
        .post(
            "/graphs",
            json!({"graph_id": "huge", "schema_source": huge}),
        )
        .await
        .expect(413);
    client.create_graph("g").await;
}

/// Finding 3: dropping an edge type and adding it back answered 500 "Dataset already exists"
/// on every later attempt. Now the re-add is refused with a 409 that says what happened and
/// what to do, before anything is written, and the graph keeps evolving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_adding_a_dropped_type_is_a_clear_conflict_and_the_graph_keeps_evolving() {
    let node = TestNode::start().await;
    let client = node.client();
    client.create_graph("g").await;
    let original = crate::support::schema();
    let without_member_of = original.replace("edge MemberOf: Person -> Team", "");
    assert_ne!(without_member_of, original);
    let dropped = client
        .post(
            "/graphs/g/schema/apply",
            json!({"schema_source": without_member_of}),
        )
        .await
        .expect(200);
    assert!(
        dropped["steps"].to_string().contains("drop_type"),
        "{dropped}"
    );

    for _ in 0..2 {
        client
            .post("/graphs/g/schema/apply", json!({"schema_source": original}))
            .await
            .expect_error(409, "conflict", "adding type 'MemberOf' needs a new table");
    }
    // Nothing was half-applied: the schema is still the one without the edge...
    let schema = client.get("/graphs/g/schema").await.expect(200);
    assert!(
        !schema["schema_source"]
            .as_str()
            .unwrap()
            .contains("MemberOf")
    );
    // ...and the graph still takes writes and other schema changes, such as the same edge
    // under a new name.
    let renamed = original.replace("edge MemberOf:", "edge BelongsTo:");
    client
        .post("/graphs/g/schema/apply", json!({"schema_source": renamed}))
        .await
        .expect(200);
    client.insert_person("g", "Ann", 30).await.expect(200);
    assert_eq!(client.count_people("g", "main").await, 1);
    // A dropped node type is refused the same way.
    let without_team = renamed
        .replace("node Team {\n    name: String @key\n}", "")
        .replace("edge BelongsTo: Person -> Team", "");
    client
        .post(
            "/graphs/g/schema/apply",
            json!({"schema_source": without_team}),
        )
        .await
        .expect(200);
    client
        .post("/graphs/g/schema/apply", json!({"schema_source": renamed}))
        .await
        .expect_error(409, "conflict", "adding type 'Team'");
}

/// The defect itself, on the engine alone: the guard above exists because this fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_fails_to_re_add_a_dropped_type() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("g").display().to_string();
    let original = crate::support::schema();
    let db = omnigraph::db::Omnigraph::init(&uri, &original)
        .await
        .unwrap();
    let without = original.replace("edge MemberOf: Person -> Team", "");
    db.apply_schema(&without).await.unwrap();
    let err = db.apply_schema(&original).await.unwrap_err().to_string();
    assert!(err.contains("already exists"), "{err}");
}

/// Found by the API fuzzer: a load with `from` whose records do not parse answered 400 but
/// left its new branch behind. Nothing of a refused load remains now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_load_leaves_no_branch_behind() {
    let node = TestNode::start().await;
    let client = node.client();
    client.create_graph("g").await;
    for data in ["garbage[", "{\"type\":\"Nope\",\"data\":{}}"] {
        client
            .post(
                "/graphs/g/load",
                json!({"data": data, "from": "main", "branch": "fresh"}),
            )
            .await
            .expect(400);
        let branches = client.get("/graphs/g/branches").await.expect(200);
        assert_eq!(branches["branches"], json!(["main"]), "{data}");
    }
    // The same load with good records creates the branch.
    client
        .post(
            "/graphs/g/load",
            json!({"data": "{\"type\":\"Person\",\"data\":{\"name\":\"Ann\",\"age\":1}}",
                   "from": "main", "branch": "fresh"}),
        )
        .await
        .expect(200);
    assert_eq!(client.count_people("g", "fresh").await, 1);
}

/// Found by the API fuzzer: with a branch `0/0`, creating `0` answered 500 (engine 0.8 keeps a
/// branch's manifest in a directory named after it, so `0` and `0/0` collide in storage).
/// A name that is a folder of another branch's, or has one as its folder, is a 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_cannot_also_be_a_folder_of_branches() {
    let node = TestNode::start().await;
    let client = node.client();
    client.create_graph("g").await;
    client
        .post("/graphs/g/branches", json!({"name": "0/0"}))
        .await
        .expect(200);
    client
        .post("/graphs/g/branches", json!({"name": "0"}))
        .await
        .expect_error(409, "conflict", "while branch '0/0' exists");
    client.create_branch("g", "team").await;
    client
        .post("/graphs/g/branches", json!({"name": "team/a"}))
        .await
        .expect_error(409, "conflict", "while branch 'team' exists");
    client
        .post(
            "/graphs/g/load",
            json!({"data": "{\"type\":\"Person\",\"data\":{\"name\":\"Ann\"}}", "from": "main", "branch": "team/b"}),
        )
        .await
        .expect_error(409, "conflict", "folder");
    let branches = client.get("/graphs/g/branches").await.expect(200);
    assert_eq!(branches["branches"], json!(["0/0", "main", "team"]));
    // Siblings under one folder are fine.
    client
        .post("/graphs/g/branches", json!({"name": "0/1"}))
        .await
        .expect(200);
}
