//! The S3 backend of the tests: moto behind the fault-injecting proxy.

use omnigraph_cloud_chaos::{FaultProxy, S3Server};

/// A real S3 server (moto, serving one request at a time) behind the fault-injecting proxy,
/// a fresh bucket, and the `AWS_*` environment pointing at the proxy.
///
/// The engine reads its S3 settings from the process environment, so S3 tests of one process
/// hold a lock for their whole run (nextest gives each test its own process anyway).
pub struct S3Backend {
    pub proxy: FaultProxy,
    pub bucket: String,
    _server: S3Server,
    _env: tokio::sync::OwnedMutexGuard<()>,
}

impl S3Backend {
    /// Another bucket on the same server, behind the same proxy.
    pub async fn create_bucket(&self, bucket: &str) {
        self._server
            .create_bucket(bucket)
            .await
            .expect("bucket created");
    }
}

/// The S3 backend, or `None` (with a note) when moto is not installed and S3 tests are not
/// required. `scripts/test.sh` installs moto and sets `OMNIGRAPH_TEST_S3=require`.
pub async fn s3_backend() -> Option<S3Backend> {
    static ENV_LOCK: std::sync::OnceLock<std::sync::Arc<tokio::sync::Mutex<()>>> =
        std::sync::OnceLock::new();
    let required = std::env::var("OMNIGRAPH_TEST_S3").is_ok_and(|value| value == "require");
    if !S3Server::available() {
        assert!(
            !required,
            "OMNIGRAPH_TEST_S3=require but moto is not installed (run scripts/test.sh)"
        );
        eprintln!("skipping: moto is not installed; run scripts/test.sh to install it");
        return None;
    }
    let env = ENV_LOCK
        .get_or_init(Default::default)
        .clone()
        .lock_owned()
        .await;
    let server = S3Server::start().await.expect("moto starts");
    let bucket = format!("og-test-{}", std::process::id());
    server.create_bucket(&bucket).await.expect("bucket created");
    let proxy = FaultProxy::start("127.0.0.1:0".parse().unwrap(), server.endpoint())
        .await
        .expect("proxy starts");
    for (name, value) in omnigraph_cloud_chaos::aws_env_for(&proxy.endpoint()) {
        // SAFETY: S3 tests hold ENV_LOCK for their whole run, and no other test in this
        // process reads these variables.
        unsafe { std::env::set_var(name, value) };
    }
    Some(S3Backend {
        proxy,
        bucket,
        _server: server,
        _env: env,
    })
}
