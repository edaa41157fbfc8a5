//! The S3 client of a root, configured as the engine configures its own.

use object_store::RetryConfig;
use object_store::aws::AmazonS3Builder;

use crate::RepoError;

/// Builds an S3 client the way the engine does, so that both see the same store.
pub(super) fn store_from_env(bucket: &str) -> Result<object_store::aws::AmazonS3, RepoError> {
    // As Lance's defaults: a few retries, so that an unreachable store fails fast (503)
    // rather than holding requests for minutes.
    let retry = RetryConfig {
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(30),
        ..RetryConfig::default()
    };
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry);
    let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .ok()
        .filter(|value| !value.trim().is_empty());
    if let Some(endpoint) = endpoint {
        if endpoint.starts_with("http://") {
            builder = builder.with_allow_http(true);
        }
        builder = builder.with_endpoint(endpoint);
    }
    if env_truthy("AWS_ALLOW_HTTP") {
        builder = builder.with_allow_http(true);
    }
    if env_truthy("AWS_S3_FORCE_PATH_STYLE") {
        builder = builder.with_virtual_hosted_style_request(false);
    }
    if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
        builder = builder.with_region("us-east-1");
    }
    Ok(builder.build()?)
}

fn env_truthy(name: &str) -> bool {
    matches!(
        std::env::var(name).as_deref(),
        Ok("1" | "true" | "TRUE" | "True" | "yes" | "YES" | "on" | "ON")
    )
}
