//! Signed bundles: `{jwks, policies, actor allowlist}` delivered as one document, signed with
//! Ed25519, pulled from a URL or read from a file, and swapped in only once every part of it
//! has been verified and compiled. A refused bundle changes nothing.
//!
//! On the wire a bundle is an envelope:
//!
//! ```json
//! {"format": "omnigraph-bundle/1", "payload": "<base64 of the payload bytes>",
//!  "signature": "<base64 Ed25519 signature over those bytes>"}
//! ```
//!
//! and the payload is JSON: `{"version": 1, "serial": 7, "jwks": {"<issuer>": {"keys": [...]}},
//! "policies": {"<tenant>|_default": {"cedar": "..."} | {"yaml": "..."}},
//! "actor_allowlist": ["alice", ...], "limits": {"<tenant>": {"requests_per_second": 50}}}`
//! (`limits` takes the keys of `[limits.tenants.<tenant>]`, laid over the configured ones), and
//! `"tenants": {"<tenant>": {"state": "active"|"suspended", "tokens": [{"sha256", "actor"}],
//! "storage_root": "s3://..."}}` as a control plane publishes them ([`super::bundle_tenants`]). The signature covers the exact payload bytes, so no
//! canonical JSON is needed. `serial` must grow: an older signed bundle replayed is refused.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::jwk::JwkSet;
use omnigraph_cloud_config::{StorageRoot, TenantId, TenantLimitsOverride};
use serde::{Deserialize, Serialize};

use super::bundle_tenants::{self, BundleTenant, CompiledTenants};
use super::jwks::{self, VerifyKey};
use super::signing::SigningKey;
use crate::policy::{PolicyStore, PolicyText, TenantPolicy};

pub const BUNDLE_FORMAT: &str = "omnigraph-bundle/1";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    format: String,
    payload: String,
    signature: String,
}

/// The signed content.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundlePayload {
    pub version: u32,
    pub serial: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<String>,
    #[serde(default)]
    pub jwks: BTreeMap<String, JwkSet>,
    #[serde(default)]
    pub policies: BTreeMap<String, PolicyDocument>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_allowlist: Option<Vec<String>>,
    /// Tenants' limits, over the configured ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, TenantLimitsOverride>,
    /// Tenants' states and tokens (by hash).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tenants: BTreeMap<String, BundleTenant>,
}

/// One tenant's policy in a bundle: Cedar text or upstream's YAML form.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cedar: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yaml: Option<String>,
}

/// Why a bundle was refused. `reason()` is a metric label.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle is not a signed envelope ({0}); unsigned bundles are refused")]
    NotSigned(String),
    #[error("bundle signature does not verify against auth.bundle.public_key")]
    BadSignature,
    #[error("bundle payload is invalid: {0}")]
    Invalid(String),
    #[error("bundle serial {offered} is not newer than the bundle in force (serial {current})")]
    Rollback { offered: u64, current: u64 },
    #[error("cannot fetch bundle: {0}")]
    Unavailable(String),
}

impl BundleError {
    pub fn reason(&self) -> &'static str {
        match self {
            BundleError::NotSigned(_) => "unsigned",
            BundleError::BadSignature => "bad_signature",
            BundleError::Invalid(_) => "invalid",
            BundleError::Rollback { .. } => "rollback",
            BundleError::Unavailable(_) => "unavailable",
        }
    }
}

/// Signs a payload (JSON bytes, which must parse as a bundle payload) into an envelope.
pub fn sign(payload: &[u8], key: &SigningKey) -> Result<String, BundleError> {
    if !matches!(key, SigningKey::Ed25519(_)) {
        return Err(BundleError::Invalid(
            "bundles are signed with an Ed25519 key".into(),
        ));
    }
    parse_payload(payload)?;
    let signature = key
        .sign(payload)
        .map_err(|err| BundleError::Invalid(err.to_string()))?;
    let envelope = Envelope {
        format: BUNDLE_FORMAT.into(),
        payload: STANDARD.encode(payload),
        signature: STANDARD.encode(signature),
    };
    Ok(serde_json::to_string_pretty(&envelope).expect("the envelope serializes"))
}

/// Checks an envelope's signature and parses its payload. Returns the payload and its bytes.
pub fn open(
    envelope: &[u8],
    public_key: &[u8; 32],
) -> Result<(BundlePayload, Vec<u8>), BundleError> {
    let envelope: Envelope =
        serde_json::from_slice(envelope).map_err(|err| BundleError::NotSigned(err.to_string()))?;
    if envelope.format != BUNDLE_FORMAT {
        return Err(BundleError::NotSigned(format!(
            "format '{}', expected '{BUNDLE_FORMAT}'",
            envelope.format
        )));
    }
    let payload = STANDARD
        .decode(envelope.payload.trim())
        .map_err(|err| BundleError::NotSigned(format!("payload is not base64: {err}")))?;
    let signature = STANDARD
        .decode(envelope.signature.trim())
        .map_err(|_| BundleError::BadSignature)?;
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(&payload, &signature)
        .map_err(|_| BundleError::BadSignature)?;
    Ok((parse_payload(&payload)?, payload))
}

/// The tenants' own roots in a signed bundle, verified against `public_key`: what a command
/// run outside a node (`omnigraph-cloud usage`, `leases`) routes by.
pub fn tenant_roots(
    envelope: &[u8],
    public_key: &[u8; 32],
) -> Result<BTreeMap<TenantId, StorageRoot>, String> {
    let (payload, _) = open(envelope, public_key).map_err(|err| err.to_string())?;
    bundle_tenants::compile(&payload.tenants).map(|compiled| compiled.roots)
}

/// Verifies and compiles a bundle as a node would before swapping it in, without
/// installing anything; returns a one-line summary (for `omnigraph-cloud bundle verify`).
pub fn check(envelope: &[u8], public_key: &[u8; 32]) -> Result<String, BundleError> {
    let (payload, bytes) = open(envelope, public_key)?;
    let issuers: Vec<String> = payload.jwks.keys().cloned().collect();
    let known: HashSet<&str> = issuers.iter().map(String::as_str).collect();
    let prepared = prepare(payload, &bytes, &known)?;
    let mut tenants: Vec<&String> = prepared.policies.keys().collect();
    tenants.sort();
    Ok(format!(
        "serial {}; jwks for [{}]; policies for [{}]; actor allowlist: {}",
        prepared.serial,
        issuers.join(", "),
        tenants
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        prepared
            .allowlist
            .as_ref()
            .map(|actors| format!("{} actors", actors.len()))
            .unwrap_or_else(|| "none".into()),
    ))
}

/// The serial of a signed envelope's payload, unverified (to refuse publishing a rollback).
pub fn published_serial(envelope: &[u8]) -> Option<u64> {
    let envelope: Envelope = serde_json::from_slice(envelope).ok()?;
    let payload = STANDARD.decode(envelope.payload).ok()?;
    parse_payload(&payload).ok().map(|payload| payload.serial)
}

/// Parses a payload (JSON bytes) as a bundle payload, without any signature.
pub fn parse_payload(payload: &[u8]) -> Result<BundlePayload, BundleError> {
    let parsed: BundlePayload =
        serde_json::from_slice(payload).map_err(|err| BundleError::Invalid(err.to_string()))?;
    if parsed.version != 1 {
        return Err(BundleError::Invalid(format!(
            "version must be 1, not {}",
            parsed.version
        )));
    }
    Ok(parsed)
}

/// A verified bundle, compiled and ready to swap in.
pub(crate) struct Prepared {
    pub(crate) serial: u64,
    pub(crate) digest: [u8; 32],
    pub(crate) jwks: HashMap<String, HashMap<String, Arc<VerifyKey>>>,
    pub(crate) policies: HashMap<String, Arc<TenantPolicy>>,
    pub(crate) allowlist: Option<HashSet<String>>,
    pub(crate) tenants: CompiledTenants,
}

/// Compiles every part of a verified payload; any failure refuses the whole bundle.
pub(crate) fn prepare(
    payload: BundlePayload,
    bytes: &[u8],
    known_issuers: &HashSet<&str>,
) -> Result<Prepared, BundleError> {
    let mut jwks = HashMap::new();
    for (issuer, set) in payload.jwks {
        if !known_issuers.contains(issuer.as_str()) {
            return Err(BundleError::Invalid(format!(
                "jwks for issuer '{issuer}', which is not configured in [[auth.oidc]]"
            )));
        }
        let keys = jwks::parse_jwk_set(set)
            .map_err(|err| BundleError::Invalid(format!("jwks of '{issuer}': {err}")))?;
        jwks.insert(issuer, keys);
    }
    let mut texts = HashMap::new();
    for (tenant, document) in payload.policies {
        let text = match (document.cedar, document.yaml) {
            (Some(cedar), None) => PolicyText::Cedar(cedar),
            (None, Some(yaml)) => PolicyText::Yaml(yaml),
            _ => {
                return Err(BundleError::Invalid(format!(
                    "policy of '{tenant}' must have exactly one of cedar or yaml"
                )));
            }
        };
        texts.insert(tenant, text);
    }
    let mut tenants = bundle_tenants::compile(&payload.tenants).map_err(BundleError::Invalid)?;
    // An issuer this node configures stays its own: a tenant's binding of it is left out (and
    // the rest of the bundle, revocations among it, still comes into force).
    tenants.issuers.retain(|issuer, _| {
        let configured = known_issuers.contains(issuer.as_str());
        if configured {
            tracing::error!(%issuer, "a tenant binds an issuer this node configures in [[auth.oidc]]: binding left out");
        }
        !configured
    });
    let origin = format!("bundle serial {}", payload.serial);
    let policies = PolicyStore::compile_all(&texts, &origin).map_err(BundleError::Invalid)?;
    Ok(Prepared {
        serial: payload.serial,
        digest: super::static_tokens::sha256(bytes),
        jwks,
        policies,
        tenants,
        allowlist: payload.actor_allowlist.map(|actors| {
            actors
                .into_iter()
                .map(|actor| actor.trim().to_string())
                .collect()
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::signing::KeyKind;

    #[test]
    fn a_signature_covers_every_payload_byte() {
        let key = SigningKey::generate(KeyKind::Ed25519).unwrap();
        let public: [u8; 32] = STANDARD
            .decode(key.ed25519_public_base64().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let signed = sign(br#"{"version":1,"serial":3}"#, &key).unwrap();
        let (payload, _) = open(signed.as_bytes(), &public).unwrap();
        assert_eq!(payload.serial, 3);

        let mut envelope: Envelope = serde_json::from_str(&signed).unwrap();
        envelope.payload = STANDARD.encode(br#"{"version":1,"serial":4}"#);
        let tampered = serde_json::to_vec(&envelope).unwrap();
        assert!(matches!(
            open(&tampered, &public),
            Err(BundleError::BadSignature)
        ));
        assert!(matches!(
            open(br#"{"version":1,"serial":5}"#, &public),
            Err(BundleError::NotSigned(_))
        ));
        let other = SigningKey::generate(KeyKind::Ed25519).unwrap();
        let foreign = sign(br#"{"version":1,"serial":6}"#, &other).unwrap();
        assert!(matches!(
            open(foreign.as_bytes(), &public),
            Err(BundleError::BadSignature)
        ));
    }
}
