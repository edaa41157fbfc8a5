//! Hostile and careless input: names that try to slip past a policy, requests that try to
//! reach another tenant, input that tries to exhaust the stack, schema changes the engine
//! cannot apply, and the operator listener. Each test is a finding of the hardening review.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{COUNT_PEOPLE, Client, INSERT_PERSON, PERMIT_ALL, TestNode};

/// Upstream's YAML policy: `main` is protected; the team changes unprotected branches only.
const TEAM_POLICY: &str = r#"
version: 1
groups:
  team: [andrew]
  admins: [ragnor]
protected_branches: [main]
rules:
  - id: team-read
    allow: { actors: { group: team }, actions: [read, export], branch_scope: any }
  - id: team-change-unprotected
    allow: { actors: { group: team }, actions: [change, load], branch_scope: unprotected }
  - id: team-branch
    allow: { actors: { group: team }, actions: [branch_create, branch_delete, branch_merge], target_branch_scope: unprotected }
  - id: admins-data
    allow: { actors: { group: admins }, actions: [read, export, change, load], branch_scope: any }
  - id: admins-branches
    allow: { actors: { group: admins }, actions: [branch_create, branch_delete, branch_merge, schema_apply], target_branch_scope: any }
  - id: admins-graphs
    allow: { actors: { group: admins }, actions: [graph_create, graph_delete, graph_list, admin] }
"#;

const TOKENS: &str = "[[auth.tokens]]\ntoken = \"t-andrew\"\nactor = \"andrew\"\ntenant = \"acme\"\n\
                      [[auth.tokens]]\ntoken = \"t-ragnor\"\nactor = \"ragnor\"\ntenant = \"acme\"\n\
                      [[auth.tokens]]\ntoken = \"t-bea\"\nactor = \"bea\"\ntenant = \"beta\"\n";

/// Spellings of `main` that are not `main`: whitespace, Unicode spaces and zero-width
/// characters, a Cyrillic look-alike, path tricks.
const NOT_MAIN: &[&str] = &[
    " main",
    "main ",
    "main\t",
    "main\n",
    "\u{a0}main",
    "main\u{2003}",
    "main\u{200b}",
    "\u{feff}main",
    "m\u{0430}in",
    "main/",
    "/main",
    "./main",
    "main/../main",
    "",
];

/// Every byte but unreserved ASCII percent-encoded, as a client puts a name in a URL.
fn encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn protected_node() -> TestNode {
    TestNode::start_with_policies(
        TOKENS,
        &[("acme.yaml", TEAM_POLICY), ("beta.cedar", PERMIT_ALL)],
    )
    .await
}

/// Every route that takes a branch, with `branch` in that place (method, path, body).
fn branch_requests(branch: &str) -> Vec<(Method, String, Option<Value>)> {
    let insert =
        json!({"query": INSERT_PERSON, "params": {"name": "sneaky", "age": 1}, "branch": branch});
    let row = "{\"type\":\"Person\",\"data\":{\"name\":\"sneaky\",\"age\":1}}";
    let enc = encode(branch);
    vec![
        (
            Method::POST,
            "/graphs/g/mutate".into(),
            Some(insert.clone()),
        ),
        (Method::POST, "/graphs/g/change".into(), Some(insert)),
        (
            Method::POST,
            "/graphs/g/load".into(),
            Some(json!({"data": row, "branch": branch})),
        ),
        (
            Method::POST,
            "/graphs/g/ingest".into(),
            Some(json!({"data": row, "branch": "feature", "from": branch})),
        ),
        (
            Method::POST,
            "/graphs/g/query".into(),
            Some(json!({"query": COUNT_PEOPLE, "branch": branch})),
        ),
        (
            Method::POST,
            "/graphs/g/read".into(),
            Some(json!({"query_source": COUNT_PEOPLE, "branch": branch})),
        ),
        (
            Method::POST,
            "/graphs/g/export".into(),
            Some(json!({"branch": branch})),
        ),
        (
            Method::GET,
            format!("/graphs/g/snapshot?branch={enc}"),
            None,
        ),
        (Method::GET, format!("/graphs/g/commits?branch={enc}"), None),
        (
            Method::POST,
            "/graphs/g/branches".into(),
            Some(json!({"name": branch, "from": "feature"})),
        ),
        (
            Method::POST,
            "/graphs/g/branches".into(),
            Some(json!({"name": "fresh", "from": branch})),
        ),
        (
            Method::POST,
            "/graphs/g/branches/merge".into(),
            Some(json!({"source": "feature", "target": branch})),
        ),
        (
            Method::POST,
            "/graphs/g/branches/merge".into(),
            Some(json!({"source": branch, "target": "feature"})),
        ),
        (Method::DELETE, format!("/graphs/g/branches/{enc}"), None),
    ]
}

async fn send(client: &Client, method: &Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    let resp = match (method.as_str(), body) {
        ("GET", _) => client.get(path).await,
        ("DELETE", _) => client.delete(path).await,
        (_, Some(body)) => client.post(path, body.clone()).await,
        (_, None) => client.post(path, json!({})).await,
    };
    (resp.status.as_u16(), resp.json)
}

/// Finding 1: a protected branch named with leading or trailing whitespace (or any other
/// spelling the engine would normalise) reached `main` past the policy. Every such name is
/// now refused at the edge with a 400 naming the field and the rule, on every route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_of_a_protected_branch_passes_the_policy() {
    let node = protected_node().await;
    let andrew = node.client_with_token("t-andrew");
    let ragnor = node.client_with_token("t-ragnor");
    ragnor.create_graph("g").await;
    andrew
        .post("/graphs/g/branches", json!({"name": "feature"}))
        .await
        .expect(200);
    // The plain name is refused by the policy, as before.
    andrew
        .post(
            "/graphs/g/mutate",
            json!({"query": INSERT_PERSON, "params": {"name": "x", "age": 1}, "branch": "main"}),
        )
        .await
        .expect_error(403, "forbidden", "on branch 'main'");

    for spelling in NOT_MAIN {
        for (method, path, body) in branch_requests(spelling) {
            let (status, body) = send(&andrew, &method, &path, body.as_ref()).await;
            if spelling.is_empty() && method == Method::DELETE {
                // An empty path segment matches no route at all.
                assert_eq!(status, 404, "{body}");
                continue;
            }
            assert_eq!(
                status, 400,
                "{method} {path} with branch {spelling:?} answered {status}: {body}"
            );
            let message = body["error"].as_str().unwrap_or_default();
            assert!(
                message.contains("invalid branch name") && message.contains("[A-Za-z0-9]"),
                "{method} {path}: the message names the rule: {message}"
            );
        }
    }
    // A different case is a different branch (names are case-sensitive): it does not exist.
    andrew
        .post(
            "/graphs/g/mutate",
            json!({"query": INSERT_PERSON, "params": {"name": "x", "age": 1}, "branch": "MAIN"}),
        )
        .await
        .expect(404);
    assert_eq!(
        ragnor.count_people("g", "main").await,
        0,
        "nothing reached main"
    );
    let branches = ragnor.get("/graphs/g/branches").await.expect(200);
    assert_eq!(branches["branches"], json!(["feature", "main"]));
    // Names the rule accepts still work end to end, slashes included.
    andrew
        .post("/graphs/g/branches", json!({"name": "review/new-hires"}))
        .await
        .expect(200);
    andrew
        .delete(&format!(
            "/graphs/g/branches/{}",
            encode("review/new-hires")
        ))
        .await
        .expect(200);
}

/// A YAML policy that protects a name no request can spell protects nothing: refused at load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_protecting_a_non_canonical_name_is_refused() {
    let policy = TEAM_POLICY.replace(
        "protected_branches: [main]",
        "protected_branches: [\" main\"]",
    );
    let dir = crate::support::policy_dir(&[("acme.yaml", &policy)]);
    let toml = format!(
        "auth.policy_dir = {:?}\n{TOKENS}",
        dir.path().display().to_string()
    );
    let uri = format!("file://{}", dir.path().join("data").display());
    let err = match TestNode::try_start_uri(&uri, &toml).await {
        Ok(_) => panic!("the node started with a policy it cannot enforce"),
        Err(err) => err.to_string(),
    };
    assert!(
        err.contains("protected_branches") && err.contains("invalid branch name"),
        "{err}"
    );
}

/// Tenant isolation over every route: a tenant with every permission in its own tenant
/// addresses another tenant's graph, by its name and by other spellings of it and of the
/// tenant; nothing answers but 400 or 404, and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenant_reaches_nothing_on_any_route() {
    let node = protected_node().await;
    let ragnor = node.client_with_token("t-ragnor");
    let bea = node.client_with_token("t-bea");
    ragnor.create_graph("g").await;
    ragnor.insert_person("g", "AcmeOnly", 1).await.expect(200);
    ragnor
        .post("/graphs/g/branches", json!({"name": "feature"}))
        .await
        .expect(200);
    let commits = ragnor.get("/graphs/g/commits").await.expect(200);
    let commit = commits["commits"][0]["graph_commit_id"]
        .as_str()
        .unwrap()
        .to_string();

    for graph in ["g", "G", "g%20", "%20g", "g%00", "..%2Fg", "%E2%80%8Bg"] {
        let insert = json!({"query": INSERT_PERSON, "params": {"name": "intruder", "age": 1}});
        let routes: Vec<(Method, String, Option<Value>)> = vec![
            (Method::GET, format!("/graphs/{graph}/snapshot"), None),
            (
                Method::POST,
                format!("/graphs/{graph}/query"),
                Some(json!({"query": COUNT_PEOPLE})),
            ),
            (
                Method::POST,
                format!("/graphs/{graph}/query"),
                Some(json!({"query": COUNT_PEOPLE, "snapshot": commit})),
            ),
            (
                Method::POST,
                format!("/graphs/{graph}/read"),
                Some(json!({"query_source": COUNT_PEOPLE})),
            ),
            (
                Method::POST,
                format!("/graphs/{graph}/mutate"),
                Some(insert.clone()),
            ),
            (
                Method::POST,
                format!("/graphs/{graph}/change"),
                Some(insert),
            ),
            (
                Method::POST,
                format!("/graphs/{graph}/load"),
                Some(
                    json!({"data": "{\"type\":\"Person\",\"data\":{\"name\":\"i\"}}", "mode": "overwrite"}),
                ),
            ),
            (
                Method::POST,
                format!("/graphs/{graph}/export"),
                Some(json!({})),
            ),
            (Method::GET, format!("/graphs/{graph}/schema"), None),
            (
                Method::POST,
                format!("/graphs/{graph}/schema/apply"),
                Some(json!({"schema_source": crate::support::schema()})),
            ),
            (Method::GET, format!("/graphs/{graph}/queries"), None),
            (
                Method::POST,
                format!("/graphs/{graph}/queries/q"),
                Some(json!({})),
            ),
            (Method::GET, format!("/graphs/{graph}/branches"), None),
            (
                Method::POST,
                format!("/graphs/{graph}/branches"),
                Some(json!({"name": "x"})),
            ),
            (
                Method::POST,
                format!("/graphs/{graph}/branches/merge"),
                Some(json!({"source": "feature"})),
            ),
            (
                Method::DELETE,
                format!("/graphs/{graph}/branches/feature"),
                None,
            ),
            (Method::GET, format!("/graphs/{graph}/commits"), None),
            (
                Method::GET,
                format!("/graphs/{graph}/commits/{commit}"),
                None,
            ),
            (
                Method::GET,
                format!("/admin/repos/acme/{graph}/maintenance"),
                None,
            ),
            (
                Method::GET,
                format!("/admin/repos/beta/{graph}/maintenance"),
                None,
            ),
            (Method::DELETE, format!("/graphs/{graph}"), None),
        ];
        for (method, path, body) in routes {
            let (status, body) = send(&bea, &method, &path, body.as_ref()).await;
            assert!(
                status == 404 || status == 400,
                "{method} {path} as another tenant answered {status}: {body}"
            );
            let text = body.to_string();
            assert!(!text.contains("AcmeOnly"), "{path} leaked data: {text}");
        }
    }
    for tenant in ["acme%20", "%20acme", "ACME", "acme%E2%80%8B", "_system"] {
        let (status, body) = send(
            &bea,
            &Method::GET,
            &format!("/admin/repos/{tenant}/g/maintenance"),
            None,
        )
        .await;
        assert!(status == 400 || status == 404, "{tenant}: {status} {body}");
    }
    // The other tenant's graph is whole; the intruder's own tenant has nothing.
    assert_eq!(ragnor.count_people("g", "main").await, 1);
    let branches = ragnor.get("/graphs/g/branches").await.expect(200);
    assert_eq!(branches["branches"], json!(["feature", "main"]));
    let listed = bea.get("/graphs").await.expect(200);
    assert_eq!(listed["graphs"], json!([]));
}

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
    let without_works_at = original.replace("edge WorksAt: Person -> Company", "");
    assert_ne!(without_works_at, original);
    let dropped = client
        .post(
            "/graphs/g/schema/apply",
            json!({"schema_source": without_works_at}),
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
            .expect_error(409, "conflict", "adding type 'WorksAt' needs a new table");
    }
    // Nothing was half-applied: the schema is still the one without the edge...
    let schema = client.get("/graphs/g/schema").await.expect(200);
    assert!(
        !schema["schema_source"]
            .as_str()
            .unwrap()
            .contains("WorksAt")
    );
    // ...and the graph still takes writes and other schema changes, such as the same edge
    // under a new name.
    let renamed = original.replace("edge WorksAt:", "edge EmployedBy:");
    client
        .post("/graphs/g/schema/apply", json!({"schema_source": renamed}))
        .await
        .expect(200);
    client.insert_person("g", "Ann", 30).await.expect(200);
    assert_eq!(client.count_people("g", "main").await, 1);
    // A dropped node type is refused the same way.
    let without_company = renamed
        .replace("node Company {\n    name: String @key\n}", "")
        .replace("edge EmployedBy: Person -> Company", "");
    client
        .post(
            "/graphs/g/schema/apply",
            json!({"schema_source": without_company}),
        )
        .await
        .expect(200);
    client
        .post("/graphs/g/schema/apply", json!({"schema_source": renamed}))
        .await
        .expect_error(409, "conflict", "adding type 'Company'");
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
    let without = original.replace("edge WorksAt: Person -> Company", "");
    db.apply_schema(&without).await.unwrap();
    let err = db.apply_schema(&original).await.unwrap_err().to_string();
    assert!(err.contains("already exists"), "{err}");
}

/// Finding 4: `/metrics` answered without a token on the public listener and named every
/// tenant and graph. It is served only on the operator listener now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_on_the_operator_listener_only() {
    let node = TestNode::start_permissive(TOKENS).await;
    let ragnor = node.client_with_token("t-ragnor");
    ragnor.create_graph("secret-graph").await;
    for client in [node.client(), ragnor.clone()] {
        let resp = client.get("/metrics").await;
        assert_eq!(resp.status, 404, "{}", resp.text);
        assert!(!resp.text.contains("acme") && !resp.text.contains("secret-graph"));
    }
    let operator = ragnor.metrics().await;
    assert_eq!(operator.status, 200);
    assert!(
        operator.text.contains("tenant=\"acme\""),
        "{}",
        operator.text
    );
    // The operator listener serves nothing else.
    let other = reqwest::get(format!("{}/graphs", node.metrics_base))
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    let doc = node.client().get("/openapi.json").await.expect(200);
    assert!(doc["paths"].get("/metrics").is_none());
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
    client
        .post("/graphs/g/branches", json!({"name": "team"}))
        .await
        .expect(200);
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
