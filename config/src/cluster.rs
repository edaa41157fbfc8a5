//! `[cluster]`: how this node works with the other nodes on its storage root
//! (docs/cluster.md).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// How this node takes part in a cluster of nodes sharing one storage root.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterConfig {
    /// The `host:port` other nodes reach this node's HTTP API at, written into the writer
    /// leases it takes. Default: `server.bind` (its actual port when that is 0); required
    /// when `server.bind` listens on every address.
    pub advertise: Option<String>,
    /// A file holding the secret the nodes share (at least 32 bytes). With it, a write that
    /// reaches a node without the graph's writer lease is forwarded to the holder; without
    /// it, it is answered 421 naming the holder.
    pub secret_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    pub advertise: String,
    pub secret_file: String,
}

pub(crate) fn validate_cluster(
    section: ClusterSection,
    bind: SocketAddr,
) -> Result<ClusterConfig, ConfigError> {
    let advertise = section.advertise.trim();
    let advertise = if advertise.is_empty() {
        None
    } else {
        Some(parse_advertise(advertise)?)
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
    Ok(ClusterConfig {
        advertise,
        secret_file,
    })
}

/// `host:port`, the host a DNS name or an IP address (IPv6 in brackets).
fn parse_advertise(value: &str) -> Result<String, ConfigError> {
    let invalid = || {
        ConfigError::invalid(
            "cluster.advertise",
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
