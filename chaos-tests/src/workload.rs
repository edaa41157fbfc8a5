//! The clients of a chaos run and the history they record. Each client, from its own seed,
//! picks a node and one of:
//!
//! - an insert of a new id on `main` (half the time);
//! - a count of `main`, which asks for its version (`x-omnigraph-read-version: confirm`);
//! - an export of `main`, whose ids the checker holds against what was acknowledged before;
//! - a load of three new ids into `main` in one request (all of it lands, or none);
//! - a branch: created from `main`, two ids inserted on it, then merged into `main`.
//!
//! Every id is new (`c{client}-{n}`, `l{client}-{n}-{k}`), so that where an id is found says
//! which write put it there.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::history::{FinalState, Operation};

pub(crate) const TOKEN: &str = "chaos-token";
pub(crate) const GRAPH: &str = "chaos";
const INSERT: &str = "query ins($name: String) { insert Person { name: $name } }";
const COUNT: &str = "query n() { match { $p: Person } return { count($p) as n } }";
const ALL: &str = "query all() { match { $p: Person } return { $p.name } }";

/// What the clients share: where the nodes are, the run's clock and the history.
#[derive(Clone)]
pub(crate) struct Workload {
    pub(crate) http: reqwest::Client,
    /// Each node's `http://host:port`.
    pub(crate) bases: Vec<String>,
    pub(crate) started: Instant,
    pub(crate) history: Arc<Mutex<Vec<Operation>>>,
}

/// One answer: status (0 when none came), the stamps, and the body.
struct Answer {
    status: u16,
    version: Option<u64>,
    epoch: Option<u64>,
    body: Value,
}

impl Workload {
    /// Starts `clients` clients until `deadline`, each on its own stream of `seed`.
    pub(crate) fn spawn(&self, seed: u64, clients: u32, deadline: Instant) -> Vec<JoinHandle<()>> {
        (0..clients)
            .map(|client| {
                let workload = self.clone();
                let rng = fastrand::Rng::with_seed(seed ^ ((u64::from(client) + 1) * 0x9E37));
                tokio::spawn(async move { workload.client(client, rng, deadline).await })
            })
            .collect()
    }

    async fn client(self, client: u32, mut rng: fastrand::Rng, deadline: Instant) {
        let mut n = 0;
        while Instant::now() < deadline {
            n += 1;
            let port = rng.usize(..self.bases.len());
            let draw = rng.f64();
            let op = |op: &str| Operation {
                client,
                op: op.into(),
                graph: GRAPH.into(),
                branch: "main".into(),
                ..Operation::default()
            };
            if draw < 0.50 {
                self.insert(port, op("insert"), format!("c{client}-{n}"))
                    .await;
            } else if draw < 0.65 {
                self.send(port, op("read"), "query", json!({"query": COUNT}), true)
                    .await;
            } else if draw < 0.73 {
                self.export(port, op("export")).await;
            } else if draw < 0.86 {
                let ids: Vec<String> = (0..3).map(|k| format!("l{client}-{n}-{k}")).collect();
                let data: String = ids
                    .iter()
                    .map(|id| format!("{}\n", json!({"type": "Person", "data": {"name": id}})))
                    .collect();
                let body = json!({"branch": "main", "mode": "merge", "data": data});
                let mut load = op("load");
                load.ids = ids;
                self.send(port, load, "load", body, false).await;
            } else {
                self.branch(port, &op, client, n).await;
            }
        }
    }

    /// A branch from `main`, two inserts on it, and its merge into `main`; the inserts and
    /// the merge go to nodes of their own.
    async fn branch(&self, port: usize, op: &impl Fn(&str) -> Operation, client: u32, n: u32) {
        let name = format!("b{client}-{n}");
        let mut create = op("branch");
        create.branch = name.clone();
        let body = json!({"name": name, "from": "main"});
        if !self.send(port, create, "branches", body, false).await {
            return;
        }
        for k in 0..2 {
            let mut insert = op("insert");
            insert.branch = name.clone();
            let port = (port + k + 1) % self.bases.len();
            self.insert(port, insert, format!("c{client}-{n}-{k}"))
                .await;
        }
        let mut merge = op("merge");
        merge.source = Some(name.clone());
        let body = json!({"source": name, "target": "main"});
        let invoke_ms = self.now_ms();
        let answer = self.call(port, "branches/merge", body, false).await;
        merge.outcome = answer.body["outcome"].as_str().map(str::to_string);
        self.record(merge, invoke_ms, &answer);
    }

    async fn insert(&self, port: usize, mut op: Operation, id: String) {
        let body = json!({"query": INSERT, "params": {"name": id}, "branch": op.branch});
        op.id = Some(id);
        self.send(port, op, "mutate", body, false).await;
    }

    async fn export(&self, port: usize, mut op: Operation) {
        let invoke_ms = self.now_ms();
        let answer = self
            .call(port, "export", json!({"branch": op.branch}), true)
            .await;
        if let Some(text) = answer.body.as_str() {
            op.ids = text
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .filter(|row| row["type"] == "Person")
                .filter_map(|row| row["data"]["name"].as_str().map(str::to_string))
                .collect();
        }
        self.record(op, invoke_ms, &answer);
    }

    /// Sends `body` to the graph's `route`, records the operation; whether it was answered
    /// 2xx.
    async fn send(
        &self,
        port: usize,
        op: Operation,
        route: &str,
        body: Value,
        confirm: bool,
    ) -> bool {
        let invoke_ms = self.now_ms();
        let answer = self.call(port, route, body, confirm).await;
        self.record(op, invoke_ms, &answer);
        (200..300).contains(&answer.status)
    }

    fn record(&self, mut op: Operation, invoke_ms: u64, answer: &Answer) {
        op.invoke_ms = invoke_ms;
        op.return_ms = self.now_ms();
        op.status = answer.status;
        op.version = answer.version;
        op.epoch = answer
            .epoch
            .filter(|_| op.op != "read" && op.op != "export");
        self.history.lock().unwrap().push(op);
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    async fn call(&self, port: usize, route: &str, body: Value, confirm: bool) -> Answer {
        let mut request = self
            .http
            .post(format!("{}/graphs/{GRAPH}/{route}", self.bases[port]))
            .bearer_auth(TOKEN)
            .json(&body);
        if confirm {
            request = request.header("x-omnigraph-read-version", "confirm");
        }
        let Ok(response) = request.send().await else {
            return Answer {
                status: 0,
                version: None,
                epoch: None,
                body: Value::Null,
            };
        };
        let status = response.status().as_u16();
        let header = |name: &str| -> Option<u64> {
            response.headers().get(name)?.to_str().ok()?.parse().ok()
        };
        let (version, epoch) = (
            header("x-omnigraph-manifest-version"),
            header("x-omnigraph-lease-epoch"),
        );
        // A body cut off (a node killed mid-answer) is no answer at all.
        let body = match response.text().await {
            Ok(text) if route == "export" => Value::String(text),
            Ok(text) => serde_json::from_str(&text).unwrap_or(Value::Null),
            Err(_) => {
                return Answer {
                    status: 0,
                    version: None,
                    epoch: None,
                    body: Value::Null,
                };
            }
        };
        Answer {
            status,
            version,
            epoch,
            body,
        }
    }
}

/// Every name on `main` and on each branch the history created, read once the cluster is
/// healed (retried while it settles).
pub(crate) async fn final_state(
    http: &reqwest::Client,
    base: &str,
    history: &[Operation],
) -> FinalState {
    let branches: BTreeSet<&str> = history
        .iter()
        .filter(|op| op.op == "branch" && (200..300).contains(&op.status))
        .map(|op| op.branch.as_str())
        .chain(["main"])
        .collect();
    let mut state = FinalState::new();
    for branch in branches {
        state.insert(branch.to_string(), names_on(http, base, branch).await);
    }
    state
}

async fn names_on(http: &reqwest::Client, base: &str, branch: &str) -> BTreeSet<String> {
    for _ in 0..60 {
        if let Ok(response) = http
            .post(format!("{base}/graphs/{GRAPH}/query"))
            .bearer_auth(TOKEN)
            .json(&json!({"query": ALL, "branch": branch}))
            .send()
            .await
            && response.status().is_success()
            && let Ok(body) = response.json::<Value>().await
        {
            return body["rows"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|row| row["p.name"].as_str().map(str::to_string))
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the healed cluster never answered the final read of {branch}");
}
