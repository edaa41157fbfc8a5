//! The internal header a forwarded request carries: who forwarded it and when, signed with
//! the cluster's shared secret over the request's method, path and credential.
//!
//! `x-omnigraph-forwarded: v1 <node> <unix-ms> <hex HMAC-SHA256>`, the MAC over
//! `v1\n<node>\n<unix-ms>\n<METHOD>\n<path?query>\n<SHA-256 of Authorization>`. Binding the
//! credential's digest means a captured header cannot carry another caller's request; the
//! time bounds its replay. The header only says "this came from a node of this cluster":
//! the caller's own credential is still verified by the node that answers.

use aws_lc_rs::hmac;
use sha2::{Digest, Sha256};

pub(crate) const HEADER: &str = "x-omnigraph-forwarded";

/// The smallest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// How far a header's time may lie from the receiver's clock, either way.
const MAX_SKEW_MS: u64 = 60_000;

/// What a signature covers, apart from the forwarding node and time.
pub(crate) struct Signed<'a> {
    pub(crate) method: &'a str,
    pub(crate) path_and_query: &'a str,
    pub(crate) authorization: Option<&'a [u8]>,
}

/// The cluster's shared secret, as a MAC key.
pub(crate) struct ClusterKey(hmac::Key);

/// Why a forwarded header was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    Malformed,
    Expired,
    BadSignature,
}

impl ClusterKey {
    /// `None` when the secret is shorter than [`MIN_SECRET_BYTES`].
    pub(crate) fn new(secret: &[u8]) -> Option<ClusterKey> {
        (secret.len() >= MIN_SECRET_BYTES)
            .then(|| ClusterKey(hmac::Key::new(hmac::HMAC_SHA256, secret)))
    }

    /// The header value for a request `node` forwards at `now_ms`.
    pub(crate) fn sign(&self, node: &str, now_ms: u64, request: &Signed<'_>) -> String {
        let tag = hmac::sign(&self.0, &message(node, now_ms, request));
        format!("v1 {node} {now_ms} {}", hex::encode(tag.as_ref()))
    }

    /// The forwarding node named by a valid `header`, received at `now_ms`.
    pub(crate) fn verify(
        &self,
        header: &str,
        now_ms: u64,
        request: &Signed<'_>,
    ) -> Result<String, Refused> {
        let mut fields = header.split(' ');
        let (Some("v1"), Some(node), Some(at), Some(tag), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(Refused::Malformed);
        };
        let at: u64 = at.parse().map_err(|_| Refused::Malformed)?;
        let tag = hex::decode(tag).map_err(|_| Refused::Malformed)?;
        if node.is_empty() {
            return Err(Refused::Malformed);
        }
        if at.abs_diff(now_ms) > MAX_SKEW_MS {
            return Err(Refused::Expired);
        }
        hmac::verify(&self.0, &message(node, at, request), &tag)
            .map_err(|_| Refused::BadSignature)?;
        Ok(node.to_string())
    }
}

fn message(node: &str, at_ms: u64, request: &Signed<'_>) -> Vec<u8> {
    let credential = Sha256::digest(request.authorization.unwrap_or_default());
    format!(
        "v1\n{node}\n{at_ms}\n{}\n{}\n{}",
        request.method,
        request.path_and_query,
        hex::encode(credential)
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn request<'a>(path: &'a str, authorization: &'a [u8]) -> Signed<'a> {
        Signed {
            method: "POST",
            path_and_query: path,
            authorization: Some(authorization),
        }
    }

    #[test]
    fn a_signed_header_verifies_and_names_its_node() {
        let key = ClusterKey::new(SECRET).unwrap();
        let signed = request("/graphs/g/mutate?x=1", b"Bearer t");
        let header = key.sign("node-a-1-abc", 1_000_000, &signed);
        assert_eq!(
            key.verify(&header, 1_030_000, &signed),
            Ok("node-a-1-abc".into())
        );
    }

    #[test]
    fn anything_else_is_refused() {
        let key = ClusterKey::new(SECRET).unwrap();
        let signed = request("/graphs/g/mutate", b"Bearer t");
        let header = key.sign("a", 1_000_000, &signed);
        let other_key = ClusterKey::new(b"another secret of at least 32 bytes!").unwrap();
        assert_eq!(
            other_key.verify(&header, 1_000_000, &signed),
            Err(Refused::BadSignature)
        );
        for changed in [
            request("/graphs/h/mutate", b"Bearer t"),
            request("/graphs/g/mutate", b"Bearer u"),
            Signed {
                method: "DELETE",
                ..request("/graphs/g/mutate", b"Bearer t")
            },
        ] {
            assert_eq!(
                key.verify(&header, 1_000_000, &changed),
                Err(Refused::BadSignature)
            );
        }
        assert_eq!(
            key.verify(&header, 1_000_000 + MAX_SKEW_MS + 1, &signed),
            Err(Refused::Expired)
        );
        let forged_node = header.replacen(" a ", " b ", 1);
        assert_eq!(
            key.verify(&forged_node, 1_000_000, &signed),
            Err(Refused::BadSignature)
        );
        for malformed in [
            "",
            "v1",
            "v2 a 1 00",
            "v1 a x 00",
            "v1 a 1 zz",
            "v1  1 00",
            "v1 a 1 00 extra",
        ] {
            assert_eq!(
                key.verify(malformed, 1, &signed),
                Err(Refused::Malformed),
                "{malformed:?}"
            );
        }
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(ClusterKey::new(&SECRET[..31]).is_none());
    }
}
