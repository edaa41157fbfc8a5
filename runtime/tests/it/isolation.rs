//! Names that try to slip past a policy, requests that try to reach another tenant, and
//! metrics that named every tenant. Findings of the hardening review (docs/api.md, "Names").

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
    andrew.create_branch("g", "feature").await;
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
    ragnor.create_branch("g", "feature").await;
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

/// Upstream answers with the graph's storage location in `uri`; a hosted tenant must not learn
/// where its data lives (a server path, a bucket), so the six answers that carry the field name
/// the graph's path in the API instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_names_where_the_data_lives() {
    let node = TestNode::start().await;
    let client = node.client();
    let root = node.root.display().to_string();
    let team = crate::support::example("team.pg");
    let answers = [
        client
            .post("/graphs", json!({"graph_id": "g", "schema_source": team}))
            .await
            .expect(201),
        client.get("/graphs").await.expect(200)["graphs"][0].clone(),
        client
            .post(
                "/graphs/g/load",
                json!({"data": crate::support::example("team.jsonl"), "mode": "overwrite"}),
            )
            .await
            .expect(200),
        client
            .post(
                "/graphs/g/schema/apply",
                json!({"schema_source": format!("{team}\nnode Project {{\n    name: String @key\n}}\n")}),
            )
            .await
            .expect(200),
        client
            .post("/graphs/g/branches", json!({"name": "feature"}))
            .await
            .expect(200),
        client.delete("/graphs/g/branches/feature").await.expect(200),
    ];
    for answer in answers {
        assert_eq!(answer["uri"], "/graphs/g", "{answer}");
        let text = answer.to_string();
        assert!(
            !text.contains(&root) && !text.contains("tenants/") && !text.contains(".omni"),
            "{text}"
        );
    }
}
