//! The control plane's state used by commands run outside a node: `omnigraph-cloud control
//! rebuild`, and the tenant routes `omnigraph-cloud usage` and `leases` read through.

use omnigraph_cloud_actors::{GraphStore, StoreMetrics};
use omnigraph_cloud_config::NodeConfig;
use omnigraph_cloud_http::bundle::BundleError;

use super::{Control, Operators, directory};

/// Opens the root `config` names for a command run outside a node, with the tenants that have
/// a root of their own routed there: as the control plane's tenant directory under the root
/// says, then as the bundle the config names says.
pub async fn open_root_for_command(config: &NodeConfig) -> Result<GraphStore, String> {
    let store = GraphStore::open(&config.storage.root, StoreMetrics::unregistered())
        .map_err(|err| err.to_string())?;
    let records = directory::load_all(&store)
        .await
        .map_err(|err| err.to_string())?;
    let mut roots = directory::tenant_roots(&records);
    if let Some(bundle) = &config.auth.bundle {
        let client = omnigraph_cloud_http::fetch_client().map_err(|err| err.to_string())?;
        // No bundle yet (or its URL unreachable): the directory's routes only. One that is
        // there but does not verify is an error.
        match omnigraph_cloud_http::read_bundle(&bundle.source, &client, Some(&store)).await {
            Ok(envelope) => {
                let from_bundle =
                    omnigraph_cloud_http::bundle::tenant_roots(&envelope, &bundle.public_key)
                        .map_err(|err| format!("auth.bundle: {err}"))?;
                roots.extend(from_bundle);
            }
            Err(BundleError::Unavailable(why)) => {
                tracing::warn!(%why, "no signed bundle: tenants' own roots from the directory only");
            }
            Err(err) => return Err(format!("auth.bundle: {err}")),
        }
    }
    store
        .set_tenant_roots(&roots)
        .map_err(|err| err.to_string())?;
    Ok(store)
}

/// `omnigraph-cloud control rebuild`: the control plane's state read back from the root named
/// by `config`, and its bundle published again.
pub async fn rebuild_control(config: &NodeConfig) -> Result<serde_json::Value, String> {
    let store = GraphStore::open(&config.storage.root, StoreMetrics::unregistered())
        .map_err(|err| err.to_string())?;
    let operators = Operators::load(&config.control)?;
    let control = Control::load(&config.control, operators, &config.limits, store)?;
    control.rebuild().await.map_err(|err| err.to_string())
}
