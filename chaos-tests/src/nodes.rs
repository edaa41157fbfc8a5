//! The node processes of a chaos run: their configuration, and starting, stopping, pausing
//! and killing them. Nodes run on loopback ports, or each in a network namespace of its own
//! when the run can make them ([`Net`]), so that a node can be cut off from the others.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::workload::TOKEN;
use crate::{Net, Tmpfs, free_tcp_port, free_udp_port};

/// The port a node serves on inside its namespace, and gossips on.
const NS_PORT: u16 = 8080;
const NS_GOSSIP: u16 = 7946;

/// Where the nodes of a run live.
pub(crate) struct Layout<'a> {
    /// The run's directory: configurations, logs, the cluster secret, the policies.
    pub(crate) dir: &'a Path,
    pub(crate) net: Option<&'a Net>,
    /// Each node's cache disk, or none.
    pub(crate) disks: &'a [Tmpfs],
    /// Node 0's gossip port on loopback (without namespaces).
    pub(crate) seed_port: u16,
}

pub(crate) struct Node {
    config: PathBuf,
    /// Where clients reach it: `http://host:port`.
    pub(crate) base: String,
    log: PathBuf,
    /// The store's address and credentials: its own proxy.
    env: Vec<(&'static str, String)>,
    netns: Option<String>,
    pub(crate) child: Option<Child>,
}

impl Drop for Node {
    /// A run that ends early (a panic) leaves no process behind.
    fn drop(&mut self) {
        self.kill();
    }
}

impl Node {
    /// Node `i`, reaching the store with `env`; its configuration written, not started.
    pub(crate) fn configure(i: usize, layout: &Layout, env: Vec<(&'static str, String)>) -> Node {
        // (bind, advertise, gossip bind, seed, where clients reach it)
        let (bind, advertise, gossip, seed, base) = match layout.net {
            Some(net) => {
                let own = net.cluster_ip(i);
                (
                    format!("0.0.0.0:{NS_PORT}"),
                    format!("advertise = \"{own}:{NS_PORT}\"\n"),
                    format!("{own}:{NS_GOSSIP}"),
                    format!("{}:{NS_GOSSIP}", net.cluster_ip(0)),
                    format!("http://{}:{NS_PORT}", net.client_ip(i)),
                )
            }
            None => {
                let port = free_tcp_port();
                let gossip = if i == 0 {
                    layout.seed_port
                } else {
                    free_udp_port()
                };
                (
                    format!("127.0.0.1:{port}"),
                    String::new(),
                    format!("127.0.0.1:{gossip}"),
                    format!("127.0.0.1:{}", layout.seed_port),
                    format!("http://127.0.0.1:{port}"),
                )
            }
        };
        let cache = layout.disks.get(i).map_or_else(String::new, |disk| {
            format!(
                "[cache]\ndir = \"{}\"\nmemory_bytes = 16777216\ndisk_bytes = 268435456\n",
                disk.path().display()
            )
        });
        let dir = layout.dir.display();
        let config = layout.dir.join(format!("n{i}.toml"));
        std::fs::write(
            &config,
            format!(
                "[node]\nid = \"n{i}\"\n\
                 [server]\nbind = \"{bind}\"\nmetrics_bind = \"off\"\nshutdown_grace = \"5s\"\n\
                 [storage]\nroot = \"s3://chaos/run\"\n\
                 [leases]\nttl = \"6s\"\nsafety_margin = \"2s\"\n\
                 [cluster]\n{advertise}secret_file = \"{dir}/secret\"\ngossip_bind = \"{gossip}\"\n\
                 seeds = [\"{seed}\"]\ngossip_interval = \"200ms\"\n\
                 [usage]\nenabled = false\n[auth]\npolicy_dir = \"{dir}/policies\"\n\
                 [[auth.tokens]]\ntoken = \"{TOKEN}\"\nactor = \"chaos\"\ntenant = \"chaos\"\n{cache}"
            ),
        )
        .unwrap();
        Node {
            config,
            base,
            log: layout.dir.join(format!("n{i}.log")),
            env,
            netns: layout.net.map(|net| net.ns(i)),
            child: None,
        }
    }

    pub(crate) fn start(&mut self, binary: &Path) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("node log");
        // `ip netns exec` execs the node, so the child is the node itself.
        let mut command = match &self.netns {
            Some(ns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", ns]).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let child = command
            .args(["serve", "--config"])
            .arg(&self.config)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("node starts");
        self.child = Some(child);
    }

    /// kill -9, and reap it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and wait for the node to stop (its shutdown grace is 5 s; kill -9 after 10).
    pub(crate) async fn stop(&mut self) {
        self.signal("-TERM");
        let Some(mut child) = self.child.take() else {
            return;
        };
        for _ in 0..100 {
            if child.try_wait().is_ok_and(|status| status.is_some()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    pub(crate) fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
        }
    }
}
