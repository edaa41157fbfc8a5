//! Fault injection and real-infrastructure harnesses for omnigraph-cloud's tests, chaos runs
//! and benchmarks: a real S3-compatible server (moto) on a loopback port, and a
//! fault-injecting S3 proxy in front of it.
//!
//! Also the chaos harness: [`scenario`] runs a cluster of node processes under a seeded
//! schedule of faults, its clients ([`workload`]) record what they saw, and [`history`]
//! checks it.
//!
//! Depends on: nothing of ours (it talks S3 and HTTP, and runs the node binary). Used by:
//! tests, benchmarks and `og-chaos`.

pub mod history;
pub mod linearizable;
mod netns;
mod nodes;
mod proxy;
mod s3_server;
pub mod scenario;
pub mod simulation;
mod tmpfs;
mod workload;

pub use netns::Net;
pub use proxy::{ErrorRule, FaultProxy, Faults, HoldRule, Latency, Op, Stats};
pub use s3_server::{S3Server, S3ServerError, aws_env_for};
pub use scenario::{free_tcp_port, free_udp_port};
pub use tmpfs::Tmpfs;
