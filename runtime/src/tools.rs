//! Operator helpers: `auth hash-token`, `auth mint-test-jwt`, `bundle keygen|sign|verify`.
//! They work offline on local files; none of them talks to a node.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use clap::{Args, Subcommand};
use omnigraph_cloud_http::bundle;
use omnigraph_cloud_http::sha256_hex;
use omnigraph_cloud_http::signing::{KeyKind, SigningKey};
use serde_json::{Map, Value, json};

#[derive(Subcommand)]
pub enum AuthCommand {
    /// Prints the SHA-256 of a token, the value `token_sha256` takes, so config files need
    /// not hold the secret. Reads the token from stdin when not given.
    HashToken { token: Option<String> },
    /// Mints a JWT signed with a local key, for development and tests only. Creates the key
    /// (PKCS#8 PEM) if the file does not exist; `--jwks-out` writes the matching JWKS for
    /// an issuer's `jwks_file`.
    MintTestJwt(MintArgs),
}

#[derive(Subcommand)]
pub enum BundleCommand {
    /// Creates an Ed25519 signing key (PKCS#8 PEM, mode 0600) and prints its public key,
    /// the value of `auth.bundle.public_key`.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Signs a bundle payload (JSON: version, serial, jwks, policies, actor_allowlist).
    Sign {
        #[arg(long)]
        key: PathBuf,
        /// The payload JSON file.
        payload: PathBuf,
        /// Where to write the signed bundle (stdout if omitted).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Signs a bundle payload and writes it to the storage root of `--config`, where nodes
    /// with `auth.bundle.source = "root"` read it.
    Publish {
        #[arg(long)]
        key: PathBuf,
        /// The node configuration naming the storage root.
        #[arg(long, env = "OMNIGRAPH_CLOUD_CONFIG")]
        config: Option<PathBuf>,
        /// The payload JSON file.
        payload: PathBuf,
    },
    /// Verifies a signed bundle against a public key and compiles its contents, as a node
    /// would before swapping it in.
    Verify {
        /// Base64 Ed25519 public key, as in `auth.bundle.public_key`.
        #[arg(long)]
        public_key: String,
        bundle: PathBuf,
    },
}

pub fn auth(command: AuthCommand) -> ExitCode {
    report(match command {
        AuthCommand::HashToken { token } => hash_token(token),
        AuthCommand::MintTestJwt(args) => mint(args),
    })
}

pub fn bundle(command: BundleCommand) -> ExitCode {
    report(match command {
        BundleCommand::Keygen { out } => keygen(&out),
        BundleCommand::Sign { key, payload, out } => sign(&key, &payload, out.as_deref()),
        BundleCommand::Verify { public_key, bundle } => verify(&public_key, &bundle),
        BundleCommand::Publish {
            key,
            config,
            payload,
        } => crate::publish::publish(config.as_deref(), &key, &payload),
    })
}

fn report(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn hash_token(token: Option<String>) -> Result<(), String> {
    let token = match token {
        Some(token) => token,
        None => {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .map_err(|err| format!("cannot read the token from stdin: {err}"))?;
            input
        }
    };
    if token.trim().is_empty() {
        return Err("the token is blank".into());
    }
    outln!("{}", sha256_hex(&token));
    Ok(())
}

#[derive(Args)]
pub struct MintArgs {
    /// Private key file; created with `--alg` if missing.
    #[arg(long, default_value = "omnigraph-dev-key.pem")]
    key: PathBuf,
    /// Algorithm of a new key: EdDSA, ES256 or RS256.
    #[arg(long, default_value = "EdDSA")]
    alg: String,
    #[arg(long, default_value = "dev")]
    kid: String,
    #[arg(long, default_value = "http://localhost/dev-issuer")]
    issuer: String,
    #[arg(long, default_value = "omnigraph")]
    audience: String,
    /// The actor (`sub` claim).
    #[arg(long)]
    sub: String,
    /// Extra claims as NAME=VALUE; VALUE is parsed as JSON when it can be
    /// (e.g. `--claim org_id=acme --claim 'groups=["team"]'`).
    #[arg(long = "claim")]
    claims: Vec<String>,
    /// Lifetime, e.g. 1h or 15m.
    #[arg(long, default_value = "1h")]
    ttl: String,
    /// Writes the public JWKS here.
    #[arg(long)]
    jwks_out: Option<PathBuf>,
}

fn mint(args: MintArgs) -> Result<(), String> {
    let key = load_or_create_key(&args.key, &args.alg)?;
    let ttl: Duration = humantime::parse_duration(&args.ttl)
        .map_err(|_| format!("--ttl {}: expected a duration such as 1h", args.ttl))?;
    let now = omnigraph_cloud_cluster::Clock::system().wall_ms() / 1000;
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(args.issuer));
    claims.insert("aud".into(), json!(args.audience));
    claims.insert("sub".into(), json!(args.sub));
    claims.insert("iat".into(), json!(now));
    claims.insert("nbf".into(), json!(now));
    claims.insert("exp".into(), json!(now + ttl.as_secs()));
    for claim in &args.claims {
        let (name, value) = claim
            .split_once('=')
            .ok_or_else(|| format!("--claim {claim}: expected NAME=VALUE"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        claims.insert(name.to_string(), value);
    }
    if let Some(path) = &args.jwks_out {
        let jwks = json!({"keys": [key.public_jwk(&args.kid)]});
        std::fs::write(path, serde_json::to_string_pretty(&jwks).expect("json"))
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        eprintln!("wrote JWKS to {}", path.display());
    }
    let token = key
        .mint_jwt(&args.kid, &Value::Object(claims))
        .map_err(|err| err.to_string())?;
    outln!("{token}");
    Ok(())
}

fn load_or_create_key(path: &Path, alg: &str) -> Result<SigningKey, String> {
    if path.exists() {
        let pem = std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        return SigningKey::from_pkcs8_pem(&pem)
            .map_err(|err| format!("{}: {err}", path.display()));
    }
    let kind = KeyKind::parse(alg)
        .ok_or_else(|| format!("--alg {alg}: expected EdDSA, ES256 or RS256"))?;
    let key = SigningKey::generate(kind).map_err(|err| err.to_string())?;
    write_private(path, &key.to_pkcs8_pem().map_err(|err| err.to_string())?)?;
    eprintln!("created {} key {}", key.algorithm(), path.display());
    Ok(key)
}

fn write_private(path: &Path, contents: &str) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|err| format!("cannot create {}: {err}", path.display()))?;
    file.write_all(contents.as_bytes())
        .map_err(|err| format!("cannot write {}: {err}", path.display()))
}

fn keygen(out: &Path) -> Result<(), String> {
    let key = SigningKey::generate(KeyKind::Ed25519).map_err(|err| err.to_string())?;
    write_private(out, &key.to_pkcs8_pem().map_err(|err| err.to_string())?)?;
    eprintln!(
        "wrote Ed25519 signing key to {}; public key:",
        out.display()
    );
    outln!("{}", key.ed25519_public_base64().expect("an Ed25519 key"));
    Ok(())
}

fn sign(key: &Path, payload: &Path, out: Option<&Path>) -> Result<(), String> {
    let key = crate::publish::read_signing_key(key)?;
    let bytes = std::fs::read(payload)
        .map_err(|err| format!("cannot read {}: {err}", payload.display()))?;
    let signed = bundle::sign(&bytes, &key).map_err(|err| err.to_string())?;
    match out {
        Some(path) => std::fs::write(path, signed)
            .map_err(|err| format!("cannot write {}: {err}", path.display())),
        None => {
            outln!("{signed}");
            Ok(())
        }
    }
}

fn verify(public_key: &str, path: &Path) -> Result<(), String> {
    let key: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(public_key.trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or("--public-key: expected base64 of a 32-byte Ed25519 public key")?;
    let bytes =
        std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let summary = bundle::check(&bytes, &key).map_err(|err| err.to_string())?;
    outln!("{}: signature ok; {summary}", path.display());
    Ok(())
}
