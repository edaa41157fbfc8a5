//! `[cluster]`: how this node works with the other nodes on its storage root
//! (docs/cluster.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// How this node takes part in a cluster of nodes sharing one storage root.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// The `host:port` other nodes reach this node's HTTP API at, written into the writer
    /// leases it takes. Default: `server.bind` (its actual port when that is 0); required
    /// when `server.bind` listens on every address.
    pub advertise: Option<String>,
    /// A file holding the secret the nodes share (at least 32 bytes). With it, a write that
    /// reaches a node without the graph's writer lease is forwarded to the holder; without
    /// it, it is answered 421 naming the holder.
    pub secret_file: Option<PathBuf>,
    /// Membership by gossip; `None` (the default) for a node that gossips with nobody.
    pub gossip: Option<GossipConfig>,
    /// How often a gossiping node hands over graphs placement moved elsewhere. Default 10s.
    pub rebalance_interval: Duration,
    /// The largest share of its warm graphs a node hands over per interval. Default 0.1.
    pub rebalance_max_share: f64,
    /// Whether reads go to the graph's placement owner (for its warm caches), falling back to
    /// this node when the owner cannot answer. Default false: reads are answered here.
    pub reads_to_owner: bool,
}

/// How a node finds the others: UDP gossip (chitchat) seeded from a list of addresses or DNS
/// names. The gossip is unauthenticated: keep its port on a private network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipConfig {
    /// The UDP address gossip listens on.
    pub bind: SocketAddr,
    /// The address other nodes gossip with this one at. Default `bind`; required when `bind`
    /// listens on every address.
    pub advertise: SocketAddr,
    /// `host:port` of other nodes (a DNS name may resolve to several, e.g. a Kubernetes
    /// headless service), resolved again while the node runs.
    pub seeds: Vec<String>,
    /// Nodes gossip only with nodes of the same cluster name.
    pub name: String,
    /// How often the node gossips.
    pub interval: Duration,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    pub advertise: String,
    pub secret_file: String,
    pub gossip_bind: String,
    pub gossip_advertise: String,
    pub seeds: Vec<String>,
    pub name: String,
    pub gossip_interval: String,
    pub rebalance_interval: String,
    pub rebalance_max_share: f64,
    pub reads: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        validate_cluster(ClusterSection::default(), ([127, 0, 0, 1], 8080).into())
            .expect("the default [cluster] section is valid")
    }
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            advertise: String::new(),
            secret_file: String::new(),
            gossip_bind: String::new(),
            gossip_advertise: String::new(),
            seeds: Vec::new(),
            name: "omnigraph".into(),
            gossip_interval: "500ms".into(),
            rebalance_interval: "10s".into(),
            rebalance_max_share: 0.1,
            reads: "local".into(),
        }
    }
}

pub(crate) fn validate_cluster(
    section: ClusterSection,
    bind: SocketAddr,
) -> Result<ClusterConfig, ConfigError> {
    let advertise = section.advertise.trim();
    let advertise = if advertise.is_empty() {
        None
    } else {
        Some(parse_host_port("cluster.advertise", advertise)?)
    };
    let secret_file = section.secret_file.trim();
    let secret_file = (!secret_file.is_empty()).then(|| PathBuf::from(secret_file));
    if secret_file.is_some() && advertise.is_none() && bind.ip().is_unspecified() {
        return Err(ConfigError::invalid(
            "cluster.advertise",
            "",
            &format!(
                "the address other nodes reach this one at (host:port): server.bind \
                 ({bind}) listens on every address, so it cannot name one"
            ),
        ));
    }
    let gossip = validate_gossip(&section)?;
    let share = section.rebalance_max_share;
    if !(share > 0.0 && share <= 1.0) {
        return Err(ConfigError::invalid(
            "cluster.rebalance_max_share",
            &share.to_string(),
            "a share greater than 0 and at most 1, such as 0.1",
        ));
    }
    Ok(ClusterConfig {
        advertise,
        secret_file,
        gossip,
        rebalance_interval: crate::parse::duration(
            "cluster.rebalance_interval",
            &section.rebalance_interval,
            true,
        )?,
        rebalance_max_share: share,
        reads_to_owner: match section.reads.as_str() {
            "local" => false,
            "owner" => true,
            other => {
                return Err(ConfigError::invalid(
                    "cluster.reads",
                    other,
                    "\"local\" (answer reads here) or \"owner\" (send them to the graph's \
                     placement owner, falling back to here)",
                ));
            }
        },
    })
}

fn validate_gossip(section: &ClusterSection) -> Result<Option<GossipConfig>, ConfigError> {
    let bind = section.gossip_bind.trim();
    if bind.is_empty() || bind == "off" {
        return Ok(None);
    }
    let address = |key: &str, value: &str| {
        value
            .parse::<SocketAddr>()
            .map_err(|_| ConfigError::invalid(key, value, "an IP:port such as 10.0.0.5:7946"))
    };
    let bind = address("cluster.gossip_bind", bind)?;
    let advertise = match section.gossip_advertise.trim() {
        "" if bind.ip().is_unspecified() => {
            return Err(ConfigError::invalid(
                "cluster.gossip_advertise",
                "",
                &format!(
                    "the address other nodes gossip with this one at: cluster.gossip_bind \
                     ({bind}) listens on every address, so it cannot name one"
                ),
            ));
        }
        "" => bind,
        raw => address("cluster.gossip_advertise", raw)?,
    };
    let mut seeds = Vec::new();
    for seed in &section.seeds {
        let seed = seed.trim();
        seeds.push(parse_host_port("cluster.seeds", seed)?);
    }
    let name = section.name.trim();
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ConfigError::invalid(
            "cluster.name",
            name,
            "1 to 64 letters, digits, '-' or '_'",
        ));
    }
    Ok(Some(GossipConfig {
        bind,
        advertise,
        seeds,
        name: name.to_string(),
        interval: crate::parse::duration(
            "cluster.gossip_interval",
            &section.gossip_interval,
            true,
        )?,
    }))
}

/// `host:port`, the host a DNS name or an IP address (IPv6 in brackets).
fn parse_host_port(key: &str, value: &str) -> Result<String, ConfigError> {
    let invalid = || {
        ConfigError::invalid(
            key,
            value,
            "host:port, such as 10.0.0.5:8080 or node-1.omnigraph:8080",
        )
    };
    if value.parse::<SocketAddr>().is_ok() {
        return Ok(value.to_string());
    }
    let (host, port) = value.rsplit_once(':').ok_or_else(invalid)?;
    let port_ok = port.parse::<u16>().is_ok_and(|port| port > 0);
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|label| !label.is_empty() && label.len() <= 63)
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if port_ok && host_ok {
        Ok(value.to_string())
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(advertise: &str, secret_file: &str) -> ClusterSection {
        ClusterSection {
            advertise: advertise.into(),
            secret_file: secret_file.into(),
            ..ClusterSection::default()
        }
    }

    #[test]
    fn gossip_is_off_unless_bound_and_checks_its_keys() {
        let bind: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(
            validate_cluster(section("", ""), bind).unwrap().gossip,
            None
        );
        let gossip = |bind_: &str, advertise: &str, seeds: &[&str], name: &str| ClusterSection {
            gossip_bind: bind_.into(),
            gossip_advertise: advertise.into(),
            seeds: seeds.iter().map(|s| s.to_string()).collect(),
            name: name.into(),
            ..ClusterSection::default()
        };
        let config = validate_cluster(
            gossip(
                "127.0.0.1:7946",
                "",
                &["127.0.0.1:7947", "og-headless.ns.svc:7946"],
                "prod",
            ),
            bind,
        )
        .unwrap()
        .gossip
        .unwrap();
        assert_eq!(config.advertise, config.bind);
        assert_eq!(config.seeds.len(), 2);
        assert_eq!(config.interval, Duration::from_millis(500));
        for (bad, key) in [
            (
                gossip("0.0.0.0:7946", "", &[], "prod"),
                "cluster.gossip_advertise",
            ),
            (gossip("nowhere", "", &[], "prod"), "cluster.gossip_bind"),
            (
                gossip("127.0.0.1:7946", "", &["no port"], "prod"),
                "cluster.seeds",
            ),
            (gossip("127.0.0.1:7946", "", &[], "a b"), "cluster.name"),
        ] {
            let err = validate_cluster(bad, bind).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn addresses_are_host_and_port() {
        let bind: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        for good in ["10.0.0.5:8080", "[::1]:8080", "node-1.omnigraph.svc:8080"] {
            let config = validate_cluster(section(good, ""), bind).unwrap();
            assert_eq!(config.advertise.as_deref(), Some(good));
        }
        for bad in [
            "10.0.0.5",
            ":8080",
            "node:0",
            "no de:80",
            "a..b:80",
            "node:http",
        ] {
            assert!(
                validate_cluster(section(bad, ""), bind).is_err(),
                "{bad} must be refused"
            );
        }
    }

    #[test]
    fn forwarding_from_a_wildcard_bind_needs_an_address() {
        let wildcard: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let err = validate_cluster(section("", "/etc/secret"), wildcard).unwrap_err();
        assert!(err.to_string().contains("cluster.advertise"), "{err}");
        // Without a secret nothing is forwarded, so no address is needed.
        assert!(validate_cluster(section("", ""), wildcard).is_ok());
        let config = validate_cluster(section("10.0.0.5:8080", "/etc/secret"), wildcard).unwrap();
        assert_eq!(config.secret_file, Some(PathBuf::from("/etc/secret")));
    }
}
