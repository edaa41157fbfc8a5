//! The JWKS cache: each trusted issuer's public keys, by source, with the time each source
//! last refreshed successfully.
//!
//! Requests only ever read the cache (one atomic load). Sources are refreshed by background
//! tasks: a file is re-read, a URL re-fetched, a bundle re-synced. When a refresh fails the
//! keys already held stay in use (degraded mode, with a warning and a metric) until
//! `jwks_stale_max` after that source's last success; past it the source's keys are refused
//! and tokens they would verify get a 401 saying why (fail closed).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, PublicKeyUse};
use tokio::time::Instant;

/// Where a set of keys came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum KeySource {
    Url,
    File,
    Bundle,
}

impl KeySource {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            KeySource::Url => "url",
            KeySource::File => "file",
            KeySource::Bundle => "bundle",
        }
    }
}

/// One verification key.
pub(crate) struct VerifyKey {
    pub(crate) key: DecodingKey,
    /// The JWK's own `alg`, when it names one: a token must then use exactly that.
    pub(crate) alg: Option<String>,
    pub(crate) family: KeyFamily,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyFamily {
    Rsa,
    Ec,
    Okp,
}

#[derive(Clone)]
struct SourceKeys {
    keys: HashMap<String, Arc<VerifyKey>>,
    refreshed: Instant,
}

#[derive(Clone, Default)]
struct IssuerKeys {
    sources: HashMap<KeySource, SourceKeys>,
}

/// Why no key could be used for a token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LookupError {
    /// No source has ever delivered keys for this issuer.
    NoKeys,
    UnknownKid(String),
    /// The token names no `kid` and the issuer has several keys.
    NoKid(usize),
    /// The key exists, but only in sources past `jwks_stale_max`.
    Stale {
        source: KeySource,
        age: Duration,
    },
}

pub(crate) struct KeyCache {
    issuers: HashMap<String, ArcSwap<IssuerKeys>>,
    stale_max: Duration,
}

impl KeyCache {
    pub(crate) fn new<'a>(
        issuers: impl IntoIterator<Item = &'a str>,
        stale_max: Duration,
    ) -> KeyCache {
        KeyCache {
            issuers: issuers
                .into_iter()
                .map(|issuer| (issuer.to_string(), ArcSwap::default()))
                .collect(),
            stale_max,
        }
    }

    pub(crate) fn stale_max(&self) -> Duration {
        self.stale_max
    }

    /// The key for `kid` (or the only key, when the token names none), from a source that is
    /// not past `jwks_stale_max`.
    pub(crate) fn lookup(
        &self,
        issuer: &str,
        kid: Option<&str>,
    ) -> Result<Arc<VerifyKey>, LookupError> {
        let Some(slot) = self.issuers.get(issuer) else {
            return Err(LookupError::NoKeys);
        };
        let keys = slot.load();
        if keys.sources.is_empty() {
            return Err(LookupError::NoKeys);
        }
        let mut stale: Option<(KeySource, Duration)> = None;
        let mut sources: Vec<_> = keys.sources.iter().collect();
        sources.sort_by_key(|(source, _)| **source);
        match kid {
            Some(kid) => {
                for (source, held) in sources {
                    if let Some(key) = held.keys.get(kid) {
                        let age = held.refreshed.elapsed();
                        if age <= self.stale_max {
                            return Ok(key.clone());
                        }
                        stale.get_or_insert((*source, age));
                    }
                }
                match stale {
                    Some((source, age)) => Err(LookupError::Stale { source, age }),
                    None => Err(LookupError::UnknownKid(kid.to_string())),
                }
            }
            None => {
                let mut fresh = Vec::new();
                for (source, held) in sources {
                    let age = held.refreshed.elapsed();
                    if age <= self.stale_max {
                        fresh.extend(held.keys.values().cloned());
                    } else if !held.keys.is_empty() {
                        stale.get_or_insert((*source, age));
                    }
                }
                match (fresh.len(), stale) {
                    (1, _) => Ok(fresh.remove(0)),
                    (0, Some((source, age))) => Err(LookupError::Stale { source, age }),
                    (0, None) => Err(LookupError::NoKeys),
                    (count, _) => Err(LookupError::NoKid(count)),
                }
            }
        }
    }

    /// Installs a successful refresh of one source.
    pub(crate) fn replace(
        &self,
        issuer: &str,
        source: KeySource,
        keys: HashMap<String, Arc<VerifyKey>>,
    ) {
        if let Some(slot) = self.issuers.get(issuer) {
            slot.rcu(|current| {
                let mut next = IssuerKeys::clone(current);
                next.sources.insert(
                    source,
                    SourceKeys {
                        keys: keys.clone(),
                        refreshed: Instant::now(),
                    },
                );
                next
            });
        }
    }

    /// Drops a source's keys (a new bundle no longer carries this issuer).
    pub(crate) fn remove(&self, issuer: &str, source: KeySource) {
        if let Some(slot) = self.issuers.get(issuer) {
            slot.rcu(|current| {
                let mut next = IssuerKeys::clone(current);
                next.sources.remove(&source);
                next
            });
        }
    }

    pub(crate) fn issuers(&self) -> impl Iterator<Item = &str> {
        self.issuers.keys().map(String::as_str)
    }
}

/// Parses a JWKS document into verification keys by `kid`. Symmetric (`oct`) keys and keys
/// marked for encryption are refused; a key without `kid` is kept under the empty id.
pub(crate) fn parse_jwks(document: &[u8]) -> Result<HashMap<String, Arc<VerifyKey>>, String> {
    let set: JwkSet =
        serde_json::from_slice(document).map_err(|err| format!("not a JWKS document: {err}"))?;
    parse_jwk_set(set)
}

pub(crate) fn parse_jwk_set(set: JwkSet) -> Result<HashMap<String, Arc<VerifyKey>>, String> {
    let mut keys = HashMap::new();
    for jwk in set.keys {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let kid = jwk.common.key_id.clone().unwrap_or_default();
        let key = verify_key(&jwk).map_err(|err| format!("key '{kid}': {err}"))?;
        if keys.insert(kid.clone(), Arc::new(key)).is_some() {
            return Err(format!("key id '{kid}' appears twice"));
        }
    }
    Ok(keys)
}

fn verify_key(jwk: &Jwk) -> Result<VerifyKey, String> {
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyFamily::Rsa,
        AlgorithmParameters::EllipticCurve(_) => KeyFamily::Ec,
        AlgorithmParameters::OctetKeyPair(_) => KeyFamily::Okp,
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric (oct) keys are not accepted".into());
        }
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|err| err.to_string())?;
    Ok(VerifyKey {
        key,
        alg: jwk.common.key_algorithm.map(|alg| alg.to_string()),
        family,
    })
}
