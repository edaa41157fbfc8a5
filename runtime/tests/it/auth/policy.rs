//! Cedar policies: the matrix of actors, actions and branches, and tenant boundaries.

use super::*;

/// Upstream's policy shape: a team, admins, main protected.
const TEAM_POLICY: &str = r#"
version: 1
groups:
  team: [act-andrew, act-bruno, act-ragnor]
  admins: [act-ragnor]
protected_branches: [main]
rules:
  - id: team-read
    allow: { actors: { group: team }, actions: [read], branch_scope: any }
  - id: team-change-unprotected
    allow: { actors: { group: team }, actions: [change], branch_scope: unprotected }
  - id: team-branch
    allow: { actors: { group: team }, actions: [branch_create], target_branch_scope: unprotected }
  - id: admins-export
    allow: { actors: { group: admins }, actions: [export, change], branch_scope: any }
  - id: admins-protected
    allow: { actors: { group: admins }, actions: [branch_merge, branch_delete, schema_apply], target_branch_scope: any }
  - id: admins-graphs
    allow: { actors: { group: admins }, actions: [graph_create, graph_delete, graph_list] }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cedar_matrix_of_actors_actions_and_branches() {
    let tokens = ["act-andrew", "act-ragnor", "act-zed"]
        .iter()
        .map(|actor| {
            format!(
                "[[auth.tokens]]\ntoken = \"t-{actor}\"\nactor = \"{actor}\"\ntenant = \"acme\"\n"
            )
        })
        .collect::<String>()
        + "[[auth.tokens]]\ntoken = \"t-beta\"\nactor = \"bea\"\ntenant = \"beta\"\n";
    let node = TestNode::start_with_policies(&tokens, &[("acme.yaml", TEAM_POLICY)]).await;
    let andrew = node.client_with_token("t-act-andrew");
    let ragnor = node.client_with_token("t-act-ragnor");
    let zed = node.client_with_token("t-act-zed");

    andrew
        .post(
            "/graphs",
            json!({"graph_id": "g", "schema_source": crate::support::schema()}),
        )
        .await
        .expect_error(
            403,
            "forbidden",
            "policy denied action 'graph_create' for actor 'act-andrew'",
        );
    ragnor.create_graph("g").await;
    andrew
        .post(
            "/graphs/g/branches",
            json!({"name": "feature", "from": "main"}),
        )
        .await
        .expect(200);

    let insert = |branch: &str, name: &str| json!({"query": INSERT_PERSON, "params": {"name": name, "age": 1}, "branch": branch});
    let query = |branch: &str| json!({"query": crate::support::COUNT_PEOPLE, "branch": branch});
    let export = |branch: &str| json!({"branch": branch});
    // (actor, method path, body, expected status, message fragment)
    let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
        ("act-andrew", "/graphs/g/query", query("main"), 200, ""),
        ("act-andrew", "/graphs/g/query", query("feature"), 200, ""),
        (
            "act-andrew",
            "/graphs/g/mutate",
            insert("feature", "A1"),
            200,
            "",
        ),
        (
            "act-andrew",
            "/graphs/g/mutate",
            insert("main", "A2"),
            403,
            "policy denied action 'change' on branch 'main' for actor 'act-andrew'",
        ),
        (
            "act-andrew",
            "/graphs/g/export",
            export("feature"),
            403,
            "action 'export'",
        ),
        (
            "act-andrew",
            "/graphs/g/branches/merge",
            json!({"source": "feature", "target": "main"}),
            403,
            "policy denied action 'branch_merge' on branch 'feature' targeting branch 'main'",
        ),
        (
            "act-andrew",
            "/graphs/g/branches",
            json!({"name": "main2", "from": "main"}),
            200,
            "",
        ),
        (
            "act-andrew",
            "/graphs/g/schema/apply",
            json!({"schema_source": crate::support::schema()}),
            403,
            "action 'schema_apply'",
        ),
        (
            "act-ragnor",
            "/graphs/g/mutate",
            insert("main", "R1"),
            200,
            "",
        ),
        ("act-ragnor", "/graphs/g/export", export("main"), 200, ""),
        (
            "act-ragnor",
            "/graphs/g/branches/merge",
            json!({"source": "feature", "target": "main"}),
            200,
            "",
        ),
        (
            "act-zed",
            "/graphs/g/query",
            query("main"),
            403,
            "policy denied action 'read' for unknown actor 'act-zed'",
        ),
    ];
    for (actor, path, body, status, needle) in cases {
        let client = node.client_with_token(&format!("t-{actor}"));
        let resp = client.post(path, body).await;
        if status == 200 {
            assert_eq!(resp.status, 200, "{actor} {path}: {}", resp.text);
        } else {
            resp.expect_error(status, "forbidden", needle);
        }
    }
    andrew
        .delete("/graphs/g/branches/main2")
        .await
        .expect_error(
            403,
            "forbidden",
            "action 'branch_delete' targeting branch 'main2'",
        );
    ragnor.delete("/graphs/g/branches/main2").await.expect(200);
    zed.get("/graphs/g/snapshot").await.expect(403);
    // The merge by the admin brought andrew's feature insert into main.
    assert_eq!(ragnor.count_people("g", "main").await, 2);

    // A tenant without a policy: reads pass (here: to a 404), nothing else.
    let bea = node.client_with_token("t-beta");
    bea.get("/graphs/g/snapshot")
        .await
        .expect_error(404, "not_found", "g");
    bea.post(
        "/graphs",
        json!({"graph_id": "b", "schema_source": crate::support::schema()}),
    )
    .await
    .expect_error(
        403,
        "forbidden",
        "tenant 'beta' has no policy: authenticated actors may only read",
    );
    let text = node.client().metrics().await.text;
    assert!(
        text.contains("omnigraph_auth_policy_denials_total{action=\"change\"} 1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_cannot_grant_another_tenants_resources() {
    // acme's policy tries to reach globex by name; globex's own actors have no policy.
    let greedy = "permit (principal, action, resource);\n\
                  permit (principal, action, resource in Omnigraph::Tenant::\"globex\");";
    let tokens = "[[auth.tokens]]\ntoken = \"t-ann\"\nactor = \"ann\"\ntenant = \"acme\"\n\
                  [[auth.tokens]]\ntoken = \"t-gus\"\nactor = \"gus\"\ntenant = \"globex\"\n";
    let node = TestNode::start_with_policies(
        tokens,
        &[("acme.cedar", greedy), ("globex.cedar", PERMIT_ALL)],
    )
    .await;
    let ann = node.client_with_token("t-ann");
    let gus = node.client_with_token("t-gus");
    gus.create_graph("vault").await;
    gus.insert_person("vault", "Secret", 1).await.expect(200);
    ann.get("/graphs/vault/snapshot")
        .await
        .expect_error(404, "not_found", "vault");
    ann.delete("/graphs/vault").await.expect(404);
    assert!(
        ann.get("/graphs").await.expect(200)["graphs"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(gus.count_people("vault", "main").await, 1);
}
