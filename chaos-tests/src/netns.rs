//! Network namespaces for tests and chaos runs of several nodes (needs root and `ip`): each
//! node in a namespace of its own, with a link to a bridge for node-to-node traffic (HTTP
//! forwards and UDP gossip) and a point-to-point link to the root namespace for everything
//! else (clients, the store). Cutting a node's bridge link partitions it from the other nodes
//! and from nothing else.

use std::process::{Command, Stdio};

/// The namespaces, links and bridge of one test or run, removed when dropped.
pub struct Net {
    tag: String,
    subnet: u8,
    nodes: usize,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[track_caller]
fn ip_ok(args: &[&str]) {
    assert!(ip(args), "ip {}", args.join(" "));
}

impl Net {
    /// `None` when namespaces cannot be made here (not root, or no `ip`).
    pub fn build(nodes: usize) -> Option<Net> {
        let tag = format!("{:04x}", fastrand::u16(..));
        let net = Net {
            subnet: fastrand::u8(1..250),
            tag,
            nodes: 0,
        };
        if !ip(&["link", "add", &net.bridge(), "type", "bridge"]) {
            return None;
        }
        let mut net = net;
        let bridge_ip = format!("10.213.{}.254/24", net.subnet);
        ip_ok(&["addr", "add", &bridge_ip, "dev", &net.bridge()]);
        ip_ok(&["link", "set", &net.bridge(), "up"]);
        for i in 0..nodes {
            let ns = net.ns(i);
            ip_ok(&["netns", "add", &ns]);
            net.nodes += 1;
            ip_ok(&["-n", &ns, "link", "set", "lo", "up"]);
            // The cluster link, on the bridge.
            let (outer, inner) = (format!("ogc{}{i}", net.tag), format!("ogC{}{i}", net.tag));
            ip_ok(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ]);
            ip_ok(&["link", "set", &inner, "netns", &ns]);
            ip_ok(&["link", "set", &outer, "master", &net.bridge()]);
            ip_ok(&["link", "set", &outer, "up"]);
            let cluster_ip = format!("{}/24", net.cluster_ip(i));
            ip_ok(&["-n", &ns, "addr", "add", &cluster_ip, "dev", &inner]);
            ip_ok(&["-n", &ns, "link", "set", &inner, "up"]);
            // The test's own link to the node.
            let (outer, inner) = (format!("ogx{}{i}", net.tag), format!("ogX{}{i}", net.tag));
            ip_ok(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ]);
            ip_ok(&["link", "set", &inner, "netns", &ns]);
            ip_ok(&[
                "addr",
                "add",
                &format!("{}/30", net.host_ip(i)),
                "dev",
                &outer,
            ]);
            ip_ok(&["link", "set", &outer, "up"]);
            ip_ok(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/30", net.client_ip(i)),
                "dev",
                &inner,
            ]);
            ip_ok(&["-n", &ns, "link", "set", &inner, "up"]);
        }
        Some(net)
    }

    fn bridge(&self) -> String {
        format!("ogb{}", self.tag)
    }

    pub fn ns(&self, node: usize) -> String {
        format!("og{}n{node}", self.tag)
    }

    pub fn cluster_ip(&self, node: usize) -> String {
        format!("10.213.{}.{}", self.subnet, node + 1)
    }

    pub fn client_ip(&self, node: usize) -> String {
        format!("10.214.{}.{}", self.subnet, 4 * node as u8 + 2)
    }

    /// The root namespace's end of `node`'s own link: where a service for that node alone
    /// (its store proxy) listens.
    pub fn host_ip(&self, node: usize) -> String {
        format!("10.214.{}.{}", self.subnet, 4 * node as u8 + 1)
    }

    /// Cuts (or restores) `node`'s link to the other nodes.
    pub fn cut(&self, node: usize, cut: bool) {
        let link = format!("ogc{}{node}", self.tag);
        ip_ok(&["link", "set", &link, if cut { "down" } else { "up" }]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for i in 0..self.nodes {
            // Removing a namespace removes the links inside it, and so their peers.
            ip(&["netns", "del", &self.ns(i)]);
        }
        ip(&["link", "del", &self.bridge()]);
    }
}
