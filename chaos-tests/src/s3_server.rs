//! A real S3-compatible server for tests: moto, started on a free loopback port and stopped
//! by PID when dropped.
//!
//! moto is installed by `scripts/test.sh` into a virtual environment
//! (`$HOME/.cache/omnigraph-cloud/moto-venv`, or `OMNIGRAPH_MOTO_VENV`). It is started through
//! `scripts/moto_serial.py`, which serves one request at a time: moto checks a conditional
//! write's precondition and then writes without a lock, so only a serial server guarantees one
//! winner among racing conditional writes.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use thiserror::Error;
use tokio::time::Instant;

#[derive(Debug, Error)]
pub enum S3ServerError {
    #[error(
        "moto is not installed at {venv}: run scripts/test.sh once (it creates the virtual \
         environment), or set OMNIGRAPH_MOTO_VENV"
    )]
    NotInstalled { venv: String },
    #[error("could not start moto: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("moto did not answer on {endpoint} within {waited:?}")]
    NotReady { endpoint: String, waited: Duration },
    #[error("creating bucket {bucket}: {message}")]
    Bucket { bucket: String, message: String },
}

/// A running moto server. Dropping it kills the process (by PID) and waits for it.
pub struct S3Server {
    child: Child,
    endpoint: String,
}

impl S3Server {
    /// Whether moto is installed where [`S3Server::start`] looks for it.
    pub fn available() -> bool {
        python().is_file() && script().is_file()
    }

    /// Starts moto on a free loopback port and waits until it answers.
    pub async fn start() -> Result<S3Server, S3ServerError> {
        if !S3Server::available() {
            return Err(S3ServerError::NotInstalled {
                venv: venv().display().to_string(),
            });
        }
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(python())
            .arg(script())
            .args(["127.0.0.1", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        server.wait_ready(Duration::from_secs(30)).await?;
        Ok(server)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Creates a bucket (moto needs no credentials for this).
    pub async fn create_bucket(&self, bucket: &str) -> Result<(), S3ServerError> {
        let response = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .map_err(|err| S3ServerError::Bucket {
                bucket: bucket.into(),
                message: err.to_string(),
            })?;
        if !response.status().is_success() {
            return Err(S3ServerError::Bucket {
                bucket: bucket.into(),
                message: format!("status {}", response.status()),
            });
        }
        Ok(())
    }

    /// The environment the engine and our object store read to reach this server.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        aws_env_for(&self.endpoint)
    }

    async fn wait_ready(&self, within: Duration) -> Result<(), S3ServerError> {
        let started = Instant::now();
        let client = reqwest::Client::new();
        while started.elapsed() < within {
            if client.get(&self.endpoint).send().await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(S3ServerError::NotReady {
            endpoint: self.endpoint.clone(),
            waited: within,
        })
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `AWS_*` variables for an S3-compatible endpoint with test credentials.
pub fn aws_env_for(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ENDPOINT_URL_S3", endpoint.into()),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_S3_FORCE_PATH_STYLE", "true".into()),
    ]
}

fn venv() -> PathBuf {
    if let Some(venv) = std::env::var_os("OMNIGRAPH_MOTO_VENV") {
        return PathBuf::from(venv);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    home.join(".cache/omnigraph-cloud/moto-venv")
}

fn python() -> PathBuf {
    venv().join("bin/python")
}

/// `OMNIGRAPH_MOTO_SCRIPT` (set by scripts/test.sh), else the script beside this crate.
fn script() -> PathBuf {
    std::env::var_os("OMNIGRAPH_MOTO_SCRIPT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/moto_serial.py")
        })
}
