//! Auth and policy overhead per request, measured side by side in one run: token
//! verification (static among 100 tokens; OIDC RS256, ES256, EdDSA), one Cedar decision
//! (allow and deny, upstream's YAML policy form), and OIDC + Cedar together, against a
//! no-auth baseline. Prints p50/p99 in microseconds.
//!
//! Run: `cargo run -p omnigraph-cloud --example auth_bench [-- --iterations N]`.
//! Results go to docs/benchmarks.md.

use omnigraph_cloud_config::{BranchName, GraphId, NodeConfig};
use omnigraph_cloud_http::signing::{KeyKind, SigningKey};
use omnigraph_cloud_http::{Access, Action, Auth, Principal};
use serde_json::json;
use tokio::time::Instant;

const ISSUER: &str = "https://idp.bench";

const POLICY: &str = r#"
version: 1
groups:
  team: [alice, bob, carol]
  admins: [carol]
protected_branches: [main]
rules:
  - id: team-read
    allow: { actors: { group: team }, actions: [read], branch_scope: any }
  - id: team-change
    allow: { actors: { group: team }, actions: [change], branch_scope: unprotected }
  - id: admins
    allow: { actors: { group: admins }, actions: [export, change], branch_scope: any }
  - id: admins-merge
    allow: { actors: { group: admins }, actions: [branch_merge], target_branch_scope: any }
"#;

fn percentiles(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    (at(0.50), at(0.99))
}

/// Runs `f` `iterations` times after a warm-up; per-call latency in µs.
fn measure(iterations: usize, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..iterations / 10 {
        f();
    }
    let samples = (0..iterations)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    percentiles(samples)
}

#[tokio::main]
async fn main() {
    let iterations: usize = std::env::args()
        .skip_while(|arg| arg != "--iterations")
        .nth(1)
        .map(|n| n.parse().expect("--iterations N"))
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<(&str, SigningKey)> = vec![
        ("rs", SigningKey::generate(KeyKind::Rs256).unwrap()),
        ("es", SigningKey::generate(KeyKind::Es256).unwrap()),
        ("ed", SigningKey::generate(KeyKind::Ed25519).unwrap()),
    ];
    let jwks =
        json!({"keys": keys.iter().map(|(kid, key)| key.public_jwk(kid)).collect::<Vec<_>>()});
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks.to_string()).unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(policies.join("acme.yaml"), POLICY).unwrap();
    let tokens: String = (0..100)
        .map(|i| {
            format!(
                "[[auth.tokens]]\ntoken = \"token-{i:03}\"\nactor = \"alice\"\ntenant = \"acme\"\n"
            )
        })
        .collect();
    let toml = format!(
        "[auth]\npolicy_dir = {:?}\n{tokens}[[auth.oidc]]\nissuer = \"{ISSUER}\"\naudiences = [\"omnigraph\"]\n\
         jwks_file = {:?}\ntenant_claim = \"org_id\"\n",
        policies.display().to_string(),
        jwks_path.display().to_string()
    );
    let config = NodeConfig::load(Some(&toml), std::iter::empty()).unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    let auth = Auth::start(&config.auth, &mut registry, None, None)
        .await
        .unwrap();
    let open = Auth::start(
        &NodeConfig::load(None, std::iter::empty()).unwrap().auth,
        &mut prometheus_client::registry::Registry::default(),
        None,
        None,
    )
    .await
    .unwrap();

    let now = omnigraph_cloud_cluster::Clock::system().wall_ms() / 1000;
    let claims = json!({"iss": ISSUER, "aud": "omnigraph", "sub": "alice", "org_id": "acme",
                        "iat": now, "exp": now + 3600});
    let bearer = |token: &str| format!("Bearer {token}");
    let graph = GraphId::new("g").unwrap();
    let (feature, main) = (BranchName::new("feature").unwrap(), BranchName::main());
    let allow = Access::graph(Action::Change, &graph).on_branch(&feature);
    let deny = Access::graph(Action::Change, &graph).on_branch(&main);

    let mut rows: Vec<(String, (f64, f64))> = Vec::new();
    let none_header = bearer("whatever");
    rows.push((
        "baseline: auth off".into(),
        measure(iterations, || {
            open.verifier.verify(Some(&none_header)).unwrap();
        }),
    ));
    let static_header = bearer("token-099");
    rows.push((
        "static token (100 configured)".into(),
        measure(iterations, || {
            auth.verifier.verify(Some(&static_header)).unwrap();
        }),
    ));
    for (kid, key) in &keys {
        let header = bearer(&key.mint_jwt(kid, &claims).unwrap());
        rows.push((
            format!("OIDC {}", key.algorithm()),
            measure(iterations, || {
                auth.verifier.verify(Some(&header)).unwrap();
            }),
        ));
    }
    let principal: Principal = auth.verifier.verify(Some(&static_header)).unwrap();
    rows.push((
        "Cedar decision (allow)".into(),
        measure(iterations, || {
            auth.policy.authorize(&principal, allow).unwrap();
        }),
    ));
    rows.push((
        "Cedar decision (deny)".into(),
        measure(iterations, || {
            auth.policy.authorize(&principal, deny).unwrap_err();
        }),
    ));
    let es_header = bearer(&keys[1].1.mint_jwt("es", &claims).unwrap());
    rows.push((
        "OIDC ES256 + Cedar (allow)".into(),
        measure(iterations, || {
            let principal = auth.verifier.verify(Some(&es_header)).unwrap();
            auth.policy.authorize(&principal, allow).unwrap();
        }),
    ));
    let rs_header = bearer(&keys[0].1.mint_jwt("rs", &claims).unwrap());
    rows.push((
        "OIDC RS256 + Cedar (allow)".into(),
        measure(iterations, || {
            let principal = auth.verifier.verify(Some(&rs_header)).unwrap();
            auth.policy.authorize(&principal, allow).unwrap();
        }),
    ));

    let baseline = rows[0].1.0.max(0.001);
    println!("auth + policy overhead per request, {iterations} iterations each");
    println!(
        "{:<32} {:>10} {:>10} {:>12}",
        "case", "p50 µs", "p99 µs", "p50 / base"
    );
    for (name, (p50, p99)) in &rows {
        println!(
            "{name:<32} {p50:>10.1} {p99:>10.1} {:>11.0}×",
            p50 / baseline
        );
    }
}
