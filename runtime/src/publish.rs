//! `omnigraph-cloud bundle publish`: signs a bundle payload and writes it to the storage root,
//! `{root}/_system/auth/bundle.json`, where nodes with `auth.bundle.source = "root"` read it
//! (docs/control-plane.md#tenants-in-the-bundle).

use std::path::Path;

use omnigraph_cloud_actors::{GraphStore, StoreMetrics};
use omnigraph_cloud_config::ROOT_BUNDLE_PATH;
use omnigraph_cloud_http::bundle;
use omnigraph_cloud_http::signing::SigningKey;

/// A signing key from a PKCS#8 PEM file.
pub(crate) fn read_signing_key(path: &Path) -> Result<SigningKey, String> {
    let pem = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|err| format!("{}: {err}", path.display()))
}

/// Publishes `payload` signed with `key` to the root `config` names. A serial not above the
/// one published already is refused: nodes would refuse it as a rollback.
pub(crate) fn publish(config: Option<&Path>, key: &Path, payload: &Path) -> Result<(), String> {
    let config = crate::load_config(config)?;
    let key = read_signing_key(key)?;
    let bytes = std::fs::read(payload)
        .map_err(|err| format!("cannot read {}: {err}", payload.display()))?;
    let serial = bundle::parse_payload(&bytes)
        .map_err(|err| err.to_string())?
        .serial;
    let signed = bundle::sign(&bytes, &key).map_err(|err| err.to_string())?;
    let store = GraphStore::open(&config.storage.root, StoreMetrics::unregistered())
        .map_err(|err| err.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let current = store
            .get_system_object_versioned(ROOT_BUNDLE_PATH)
            .await
            .map_err(|err| err.to_string())?;
        if let Some((envelope, _)) = &current
            && let Some(published) = bundle::published_serial(envelope)
            && serial <= published
        {
            return Err(format!(
                "serial {serial} is not above the published bundle's ({published}); nodes \
                 would refuse it"
            ));
        }
        // Only over the bundle checked above: one published meanwhile (by a control plane)
        // is not replaced.
        let written = store
            .put_system_object_if(
                ROOT_BUNDLE_PATH,
                signed.into_bytes(),
                current.map(|(_, version)| version),
            )
            .await
            .map_err(|err| err.to_string())?;
        if !written {
            return Err(
                "another bundle was published while this one was; nothing written: run the \
                 command again"
                    .into(),
            );
        }
        eprintln!(
            "published bundle serial {serial} to {}/{ROOT_BUNDLE_PATH}",
            config.storage.root.display_uri()
        );
        Ok(())
    })
}
