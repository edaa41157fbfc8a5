//! Local signing keys, for operators and tests: minting development JWTs
//! (`omnigraph-cloud auth mint-test-jwt`) and signing policy bundles (`bundle sign`).
//!
//! Keys are stored as PKCS#8 PEM, the form `openssl genpkey` writes. Nothing here is used to
//! verify a request: verification only ever sees public keys.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// A private key able to sign JWTs (and, for Ed25519, bundles).
pub enum SigningKey {
    Ed25519(Ed25519KeyPair),
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
}

/// Which kind of key to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Ed25519,
    Es256,
    Rs256,
}

impl KeyKind {
    pub fn parse(name: &str) -> Option<KeyKind> {
        match name {
            "EdDSA" | "Ed25519" | "ed25519" => Some(KeyKind::Ed25519),
            "ES256" | "es256" => Some(KeyKind::Es256),
            "RS256" | "rs256" => Some(KeyKind::Rs256),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

impl SigningKey {
    pub fn generate(kind: KeyKind) -> Result<SigningKey, KeyError> {
        let failed = |_| KeyError(format!("could not generate a {kind:?} key"));
        Ok(match kind {
            KeyKind::Ed25519 => SigningKey::Ed25519(Ed25519KeyPair::generate().map_err(failed)?),
            KeyKind::Es256 => SigningKey::Es256(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(failed)?,
            ),
            KeyKind::Rs256 => {
                SigningKey::Rs256(RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?)
            }
        })
    }

    /// Reads a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) holding an Ed25519, P-256 or RSA key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<SigningKey, KeyError> {
        let der = pem_decode(pem, "PRIVATE KEY")?;
        if let Ok(key) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der) {
            return Ok(SigningKey::Ed25519(key));
        }
        if let Ok(key) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der) {
            return Ok(SigningKey::Es256(key));
        }
        if let Ok(key) = RsaKeyPair::from_pkcs8(&der) {
            return Ok(SigningKey::Rs256(key));
        }
        Err(KeyError(
            "the PEM holds no Ed25519, P-256 or RSA private key in PKCS#8 form".into(),
        ))
    }

    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        use aws_lc_rs::encoding::AsDer;
        let failed = |_| KeyError("could not encode the key".into());
        let der: Vec<u8> = match self {
            SigningKey::Ed25519(key) => key.to_pkcs8().map_err(failed)?.as_ref().to_vec(),
            SigningKey::Es256(key) => key.to_pkcs8v1().map_err(failed)?.as_ref().to_vec(),
            SigningKey::Rs256(key) => key.as_der().map_err(failed)?.as_ref().to_vec(),
        };
        Ok(pem_encode(&der, "PRIVATE KEY"))
    }

    /// The JWS `alg` this key signs with.
    pub fn algorithm(&self) -> &'static str {
        match self {
            SigningKey::Ed25519(_) => "EdDSA",
            SigningKey::Es256(_) => "ES256",
            SigningKey::Rs256(_) => "RS256",
        }
    }

    /// The public half as a JWK (RFC 7517), with `kid`, `alg` and `use: sig`.
    pub fn public_jwk(&self, kid: &str) -> Value {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        match self {
            SigningKey::Ed25519(key) => json!({
                "kty": "OKP", "crv": "Ed25519", "x": b64(key.public_key().as_ref()),
                "kid": kid, "alg": "EdDSA", "use": "sig",
            }),
            SigningKey::Es256(key) => {
                // Uncompressed point: 0x04 || x || y.
                let point = key.public_key().as_ref();
                json!({
                    "kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]),
                    "kid": kid, "alg": "ES256", "use": "sig",
                })
            }
            SigningKey::Rs256(key) => {
                let public = key.public_key();
                json!({
                    "kty": "RSA",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                    "kid": kid, "alg": "RS256", "use": "sig",
                })
            }
        }
    }

    /// The raw Ed25519 public key, base64: the form `auth.bundle.public_key` takes.
    pub fn ed25519_public_base64(&self) -> Option<String> {
        match self {
            SigningKey::Ed25519(key) => Some(STANDARD.encode(key.public_key().as_ref())),
            _ => None,
        }
    }

    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let failed = |_| KeyError("signing failed".into());
        Ok(match self {
            SigningKey::Ed25519(key) => key.sign(message).as_ref().to_vec(),
            SigningKey::Es256(key) => key
                .sign(&SystemRandom::new(), message)
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            SigningKey::Rs256(key) => {
                let mut signature = vec![0u8; key.public_modulus_len()];
                key.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .map_err(failed)?;
                signature
            }
        })
    }

    /// A compact JWS over `claims`, with `kid` in the header.
    pub fn mint_jwt(&self, kid: &str, claims: &Value) -> Result<String, KeyError> {
        let header = json!({"alg": self.algorithm(), "typ": "JWT", "kid": kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.sign(signing_input.as_bytes())?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

fn pem_encode(der: &[u8], label: &str) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_decode(pem: &str, label: &str) -> Result<Vec<u8>, KeyError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .ok_or_else(|| KeyError(format!("not a PEM file with a '{begin}' line")))?;
    let rest = &pem[start + begin.len()..];
    let stop = rest
        .find(&end)
        .ok_or_else(|| KeyError(format!("the PEM has no '{end}' line")))?;
    let body: String = rest[..stop].split_whitespace().collect();
    STANDARD
        .decode(body)
        .map_err(|err| KeyError(format!("the PEM body is not base64: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_pem() {
        for kind in [KeyKind::Ed25519, KeyKind::Es256, KeyKind::Rs256] {
            let key = SigningKey::generate(kind).unwrap();
            let pem = key.to_pkcs8_pem().unwrap();
            let again = SigningKey::from_pkcs8_pem(&pem).unwrap();
            assert_eq!(key.public_jwk("k"), again.public_jwk("k"), "{kind:?}");
        }
        assert!(SigningKey::from_pkcs8_pem("garbage").is_err());
    }
}
