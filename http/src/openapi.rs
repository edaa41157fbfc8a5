//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{admin, branches, data, graphs, schema, system};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "omnigraph-cloud",
        description = "Managed OmniGraph data plane. Wire-compatible with omnigraph-server 0.8 \
                       under /graphs/{graph_id}/..., plus graph management. The tenant is \
                       resolved from the bearer token."
    ),
    paths(
        system::healthz, system::openapi,
        graphs::list, graphs::create, graphs::delete,
        data::snapshot, data::query, data::read, data::mutate, data::change,
        data::load, data::ingest, data::export,
        schema::get, schema::apply, schema::catalog, schema::invoke,
        branches::list, branches::create, branches::delete, branches::merge,
        branches::commits, branches::commit,
        admin::maintenance,
    ),
    components(schemas(crate::dto::ErrorOutput)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
