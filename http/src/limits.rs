//! Request body limits, shared by the router and the forwarding middleware.

/// Request body limits, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Every route but `/load` and `/ingest`.
    pub default: usize,
    /// `/load` and `/ingest`.
    pub load: usize,
}
