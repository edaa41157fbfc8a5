//! Fault injection and real-infrastructure harnesses for omnigraph-cloud's tests, chaos runs
//! and benchmarks: a real S3-compatible server (moto) on a loopback port, and a
//! fault-injecting S3 proxy in front of it.
//!
//! Depends on: nothing of ours (it talks S3 and HTTP). Used by: tests and benchmarks.

mod proxy;
mod s3_server;

pub use proxy::{ErrorRule, FaultProxy, Faults, HoldRule, Latency, Op, Stats};
pub use s3_server::{S3Server, S3ServerError, aws_env_for};
