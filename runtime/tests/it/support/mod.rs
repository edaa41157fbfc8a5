//! Test harness: real nodes on loopback ports, real HTTP clients, the repository's `examples/`.

mod s3;

pub use s3::{S3Backend, s3_backend};

use std::path::{Path, PathBuf};
use std::time::Duration;

use omnigraph_cloud::{Node, NodeError};
use omnigraph_cloud_config::{NodeConfig, StorageRoot};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

/// The repository's root. Read at run time, as the runner sets `CARGO_MANIFEST_DIR`: a target
/// directory may be shared by clones.
pub fn repository_root() -> PathBuf {
    let manifest_dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    Path::new(&manifest_dir).join("..")
}

/// A file of the repository's `examples/` (the README walkthrough's schema, data, queries).
pub fn example(name: &str) -> String {
    let path = repository_root().join("examples").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("example {}: {err}", path.display()))
}

/// The examples' schema: `Person` (name, age), `Team`, and the edges `Mentors` and `MemberOf`.
pub fn schema() -> String {
    example("team.pg")
}

pub const INSERT_PERSON: &str =
    "query insert_person($name: String, $age: I32) { insert Person { name: $name, age: $age } }";
pub const GET_PERSON: &str = "query get_person($name: String) { match { $p: Person { name: $name } } return { $p.name, $p.age } }";
pub const COUNT_PEOPLE: &str =
    "query total() { match { $p: Person } return { count($p) as total } }";

/// Static tokens of two tenants: `acme-token` (actor ann, tenant acme) and `globex-token`
/// (actor bob, tenant globex).
pub const TWO_TENANTS: &str = "[[auth.tokens]]\ntoken = \"acme-token\"\nactor = \"ann\"\ntenant = \"acme\"\n\
                               [[auth.tokens]]\ntoken = \"globex-token\"\nactor = \"bob\"\ntenant = \"globex\"\n";

/// A node serving on a loopback port, with its storage root in a temporary directory.
pub struct TestNode {
    pub node: Option<Node>,
    pub base: String,
    /// The operator listener (`/metrics`).
    pub metrics_base: String,
    pub root: PathBuf,
    _dir: Option<TempDir>,
    _policies: Option<TempDir>,
}

/// A Cedar policy granting every action to every authenticated actor of the tenant.
pub const PERMIT_ALL: &str = "permit (principal, action, resource);";

impl TestNode {
    /// A node without authentication (tenant `default`).
    pub async fn start() -> TestNode {
        TestNode::start_with("").await
    }

    /// A node with extra TOML configuration on a fresh root.
    pub async fn start_with(extra_toml: &str) -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let mut node = TestNode::start_on(&root, extra_toml).await;
        node._dir = Some(dir);
        node
    }

    /// A node with static tokens and a `_default` policy granting everything, for tests
    /// about something other than authorization.
    pub async fn start_permissive(extra_toml: &str) -> TestNode {
        TestNode::start_with_policies(extra_toml, &[("_default.cedar", PERMIT_ALL)]).await
    }

    /// A node whose `auth.policy_dir` holds `files` (name, content).
    pub async fn start_with_policies(extra_toml: &str, files: &[(&str, &str)]) -> TestNode {
        let policies = policy_dir(files);
        let toml = format!(
            "auth.policy_dir = {:?}\n{extra_toml}",
            policies.path().display().to_string()
        );
        let mut node = TestNode::start_with(&toml).await;
        node._policies = Some(policies);
        node
    }

    /// A node on an existing root (the caller keeps the directory alive).
    pub async fn start_on(root: &Path, extra_toml: &str) -> TestNode {
        let uri = format!("file://{}", root.display());
        let mut node = TestNode::try_start_uri(&uri, extra_toml)
            .await
            .expect("node starts");
        node.root = root.to_path_buf();
        node
    }

    /// A node on the S3 backend's bucket, under `prefix`.
    pub async fn start_s3(backend: &S3Backend, prefix: &str, extra_toml: &str) -> TestNode {
        let uri = format!("s3://{}/{prefix}", backend.bucket);
        TestNode::try_start_uri(&uri, extra_toml)
            .await
            .expect("node starts on S3")
    }

    /// Starts a node on a storage root URI; the error is the node's own start-up error.
    pub async fn try_start_uri(uri: &str, extra_toml: &str) -> Result<TestNode, NodeError> {
        init_test_logging();
        let mut config =
            NodeConfig::load(Some(extra_toml), std::iter::empty()).expect("test config");
        config.storage.root = StorageRoot::parse(uri).expect("test storage root");
        config.server.bind = "127.0.0.1:0".parse().unwrap();
        config.server.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
        let node = Node::start(config).await?;
        Ok(TestNode {
            base: format!("http://{}", node.local_addr()),
            metrics_base: format!("http://{}", node.metrics_addr().expect("metrics listener")),
            node: Some(node),
            root: PathBuf::new(),
            _dir: None,
            _policies: None,
        })
    }

    pub fn client(&self) -> Client {
        Client::new(&self.base, None).with_metrics(&self.metrics_base)
    }

    pub fn client_with_token(&self, token: &str) -> Client {
        Client::new(&self.base, Some(token)).with_metrics(&self.metrics_base)
    }

    pub fn node(&self) -> &Node {
        self.node.as_ref().expect("node running")
    }

    pub async fn shutdown(&mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown().await.expect("clean shutdown");
        }
    }
}

/// A directory holding policy files (name, content).
pub fn policy_dir(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    dir
}

#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    /// The node's operator listener, where `/metrics` is served.
    metrics_base: Option<String>,
}

/// A response, with its body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Resp {
    /// Asserts the status and returns the JSON body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        self.json
    }

    /// Asserts an error response: status, `code` and a message containing `needle`.
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str, needle: &str) -> Value {
        let body = self.expect(status);
        assert_eq!(body["code"], code, "{body}");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "error {message:?} lacks {needle:?}"
        );
        body
    }
}

impl Client {
    pub fn new(base: &str, token: Option<&str>) -> Client {
        Client {
            base: base.to_string(),
            token: token.map(str::to_string),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
            metrics_base: None,
        }
    }

    /// The same client, reading metrics from the operator listener at `base`.
    pub fn with_metrics(mut self, base: &str) -> Client {
        self.metrics_base = Some(base.to_string());
        self
    }

    /// The operator listener's base URL.
    pub fn metrics_base(&self) -> &str {
        self.metrics_base
            .as_deref()
            .expect("client knows the node's operator listener")
    }

    /// The operator listener's `/metrics` response.
    pub async fn metrics(&self) -> Resp {
        let base = self
            .metrics_base
            .as_deref()
            .expect("client knows the node's operator listener");
        self.send(self.http.get(format!("{base}/metrics"))).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(self.http.post(self.url(path)).json(&body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.send(self.http.put(self.url(path)).json(&body)).await
    }

    /// A GET carrying extra headers.
    pub async fn get_headers(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut request = self.http.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request).await
    }

    /// A POST carrying extra headers.
    pub async fn post_headers(&self, path: &str, body: Value, headers: &[(&str, &str)]) -> Resp {
        let mut request = self.http.post(self.url(path)).json(&body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Resp {
        let mut request = self.http.post(self.url(path)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        self.send(request).await
    }

    /// A POST whose transport failure (the server died) is `None` rather than a panic.
    pub fn post_or_fail(
        &self,
        path: &str,
        body: Value,
    ) -> impl std::future::Future<Output = Option<u16>> + use<> {
        let request = self.http.post(self.url(path)).json(&body);
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        async move {
            request
                .send()
                .await
                .ok()
                .map(|response| response.status().as_u16())
        }
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(self.http.delete(self.url(path))).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn send(&self, mut request: reqwest::RequestBuilder) -> Resp {
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body read");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            json,
        }
    }

    // --- shorthands for the common calls ---

    pub async fn create_graph(&self, graph: &str) {
        self.post(
            "/graphs",
            json!({"graph_id": graph, "schema_source": schema()}),
        )
        .await
        .expect(201);
    }

    pub async fn create_branch(&self, graph: &str, name: &str) {
        self.post(&format!("/graphs/{graph}/branches"), json!({"name": name}))
            .await
            .expect(200);
    }

    pub async fn load(&self, graph: &str, data: &str, mode: &str) -> Value {
        self.post(
            &format!("/graphs/{graph}/load"),
            json!({"data": data, "mode": mode}),
        )
        .await
        .expect(200)
    }

    pub async fn insert_person(&self, graph: &str, name: &str, age: i64) -> Resp {
        self.post(
            &format!("/graphs/{graph}/mutate"),
            json!({"query": INSERT_PERSON, "params": {"name": name, "age": age}}),
        )
        .await
    }

    /// Inserts a person, retrying until it answers 200 or `within` has passed (a write that
    /// waits for a lease to lapse); whether it was written.
    pub async fn insert_person_within(
        &self,
        graph: &str,
        name: &str,
        age: i64,
        within: Duration,
    ) -> bool {
        eventually(within, || async {
            self.insert_person(graph, name, age).await.status == 200
        })
        .await
    }

    /// Inserts a person; the status, or the transport error when the server is gone.
    pub async fn try_insert_person(
        &self,
        graph: &str,
        name: &str,
        age: i64,
    ) -> Result<u16, reqwest::Error> {
        let request = self
            .http
            .post(self.url(&format!("/graphs/{graph}/mutate")))
            .json(&json!({"query": INSERT_PERSON, "params": {"name": name, "age": age}}));
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        Ok(request.send().await?.status().as_u16())
    }

    pub async fn count_people(&self, graph: &str, branch: &str) -> i64 {
        let body = self
            .post(
                &format!("/graphs/{graph}/query"),
                json!({"query": COUNT_PEOPLE, "branch": branch}),
            )
            .await
            .expect(200);
        body["rows"][0]["total"].as_i64().expect("count")
    }

    /// Writes the history the restart tests check: graph `kept` with `Ann` on main, and a
    /// branch `feature` that adds `Ben`.
    pub async fn seed_kept_graph(&self) {
        self.create_graph("kept").await;
        self.insert_person("kept", "Ann", 30).await.expect(200);
        self.create_branch("kept", "feature").await;
        let ben = json!({"query": INSERT_PERSON, "params": {"name": "Ben", "age": 3}, "branch": "feature"});
        self.post("/graphs/kept/mutate", ben).await.expect(200);
    }

    /// Asserts that the history of [`Client::seed_kept_graph`] is all there.
    pub async fn assert_kept_graph(&self) {
        assert_eq!(
            self.get("/graphs").await.expect(200)["graphs"][0]["graph_id"],
            "kept"
        );
        assert_eq!(
            self.get("/graphs/kept/branches").await.expect(200),
            json!({"branches": ["feature", "main"]})
        );
        assert_eq!(self.count_people("kept", "main").await, 1);
        assert_eq!(self.count_people("kept", "feature").await, 2);
    }

    /// Sends `count` single inserts at once (names `{prefix}{i}`); their statuses.
    pub async fn insert_concurrently(&self, graph: &str, prefix: &str, count: usize) -> Vec<u16> {
        let inserts = (0..count).map(|i| {
            let name = format!("{prefix}{i}");
            async move { self.insert_person(graph, &name, 1).await.status.as_u16() }
        });
        futures::future::join_all(inserts).await
    }

    /// The value of a metric sample line, e.g. `omnigraph_repo_activations_total`.
    pub async fn metric(&self, sample: &str) -> f64 {
        let text = self.metrics().await.text;
        sample_value(&text, sample)
            .unwrap_or_else(|| panic!("metric {sample} not found in:\n{text}"))
    }

    /// The value of a metric sample line, or `None` while the series does not exist yet.
    pub async fn metric_value(&self, sample: &str) -> Option<f64> {
        sample_value(&self.metrics().await.text, sample)
    }
}

fn sample_value(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
}

/// Polls `check` every 50 ms until it returns true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Node logs go to the test's captured output, filtered by `RUST_LOG` (default `warn`).
fn init_test_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
