//! Integration tests of an omnigraph-cloud node over real HTTP on loopback ports.
//! One test binary for the crate, so that Lance is linked once.

mod actors;
mod auth;
mod cache;
mod cache_disk;
mod chaos;
mod cluster;
mod coalescer;
mod console;
mod control;
mod defects;
mod failpoints;
mod fencing;
mod input;
mod isolation;
mod leases;
mod limits;
mod openapi;
mod partition;
mod process;
mod routes;
mod stale;
mod storage;
mod support;
mod tenant_roots;
mod tenants;
mod usage;
mod warm;
mod workflow;
