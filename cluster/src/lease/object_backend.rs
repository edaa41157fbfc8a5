//! The lease backend on an object store (S3 and compatible stores): versions are ETags,
//! conditional writes are `If-None-Match: *` and `If-Match`.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::LeaseError;
use super::backend::{CasOutcome, LeaseBackend, Stored, storage_error};
use crate::{list_under, listing_version};

pub struct ObjectStoreBackend {
    store: Arc<dyn ObjectStore>,
    base: ObjectPath,
}

impl ObjectStoreBackend {
    /// Leases under `base` (the storage root's prefix) of `store`.
    pub fn new(store: Arc<dyn ObjectStore>, base: ObjectPath) -> ObjectStoreBackend {
        ObjectStoreBackend { store, base }
    }

    fn path(&self, relative: &str) -> ObjectPath {
        relative
            .split('/')
            .fold(self.base.clone(), |path, part| path.join(part))
    }
}

#[async_trait]
impl LeaseBackend for ObjectStoreBackend {
    async fn read(&self, path: &str) -> Result<Option<Stored>, LeaseError> {
        let result = match self.store.get(&self.path(path)).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(err) => return Err(storage_error(err)),
        };
        let version = result.meta.e_tag.clone().ok_or_else(|| {
            LeaseError::Storage("the store returned no ETag for a lease object".into())
        })?;
        let bytes = result.bytes().await.map_err(storage_error)?;
        Ok(Some(Stored {
            bytes: bytes.to_vec(),
            version,
        }))
    }

    async fn write(
        &self,
        path: &str,
        bytes: Vec<u8>,
        expected: Option<String>,
    ) -> Result<CasOutcome, LeaseError> {
        let mode = match expected {
            None => PutMode::Create,
            Some(e_tag) => PutMode::Update(UpdateVersion {
                e_tag: Some(e_tag),
                version: None,
            }),
        };
        let path = self.path(path);
        let put = self.store.put_opts(
            &path,
            PutPayload::from(Bytes::from(bytes)),
            PutOptions::from(mode),
        );
        match put.await {
            Ok(result) => result.e_tag.map(CasOutcome::Written).ok_or_else(|| {
                LeaseError::Storage("the store returned no ETag for a lease write".into())
            }),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(CasOutcome::Conflict),
            // A create that lost the race to a takeover's update, or an update of an object
            // that was never there.
            Err(object_store::Error::NotFound { .. }) => Ok(CasOutcome::Conflict),
            Err(err) => Err(storage_error(err)),
        }
    }

    async fn list(&self, dir: &str) -> Result<Vec<(String, String)>, LeaseError> {
        let listed = list_under(self.store.as_ref(), &self.path(dir))
            .await
            .map_err(storage_error)?;
        Ok(listed
            .into_iter()
            .map(|(path, meta)| (format!("{dir}/{path}"), listing_version(&meta)))
            .collect())
    }
}
