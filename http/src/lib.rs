//! The HTTP API of an omnigraph-cloud node, wire-compatible with upstream
//! `omnigraph-server` 0.8: routes, request and response bodies, authentication, the error
//! body and its statuses, metrics and the OpenAPI document.
//!
//! Handlers are thin: authenticate, resolve the caller's repo through the actor registry,
//! call it, map the result. Nothing here opens a graph itself.
//!
//! Depends on: config, actors. Must not know: runtime.

#![recursion_limit = "256"]

pub mod auth;
mod dto;
mod error;
mod extract;
mod metrics;
mod nesting;
mod openapi;
pub mod policy;
mod query_input;
mod routes;
mod state;

pub use auth::{
    Auth, AuthTasks, IdentitySource, Principal, TokenVerifier, bundle, sha256_hex, signing,
};
pub use dto::ErrorOutput;
pub use error::ApiError;
pub use openapi::ApiDoc;
pub use policy::{Access, Action, PolicyStore};
pub use routes::{metrics_router, router};
pub use state::{AppState, BodyLimits};
