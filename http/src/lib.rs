//! The HTTP API of an omnigraph-cloud node, wire-compatible with upstream
//! `omnigraph-server` 0.8: routes, request and response bodies, authentication, the error
//! body and its statuses, metrics and the OpenAPI document.
//!
//! Handlers are thin: authenticate, resolve the caller's repo through the actor registry,
//! call it, map the result. Nothing here opens a graph itself.
//!
//! Depends on: config, actors. Must not know: runtime.
//!
//! Inside, modules import downwards only: `principal`, `dto`, `error` and `query_name` at
//! the bottom; `policy` below `auth`; `state` wires auth, policy and the HTTP metrics; the
//! extractors and `routes` (the router and the OpenAPI document's paths, completed by
//! `openapi`'s modifiers) on top.

#![recursion_limit = "256"]

mod admission;
pub mod auth;
mod deadline;
mod dto;
mod error;
mod extract;
mod fair;
mod forward;
mod limits;
mod metrics;
mod nesting;
mod openapi;
pub mod policy;
mod principal;
mod query_input;
mod query_name;
mod routes;
mod stamp;
mod state;

pub use auth::{
    Auth, AuthTasks, IdentitySource, Principal, TokenVerifier, bundle, bundle_tenants,
    fetch_client, read_bundle, sha256_hex, signing,
};
pub use dto::ErrorOutput;
pub use error::ApiError;
pub use forward::{ForwardSetup, MIN_SECRET_BYTES};
pub use policy::{Access, Action, PolicyStore};
pub use routes::{ApiDoc, metrics_router, router};
pub use state::{AppState, BodyLimits, LiveLimits, NodeState, Readiness};
