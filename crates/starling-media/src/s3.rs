//! The S3 adapter of the storage seam, for the distributed shape: every api
//! node and worker reads and writes the same bucket, so any node serves any
//! file.
//!
//! Built on `object_store` (Apache Arrow's object store client): SigV4
//! signing, retries with backoff, path-style requests to any S3-compatible
//! endpoint (AWS, MinIO, Garage, Ceph, s3s). Chosen over `aws-sdk-s3` (a
//! far larger build) and `rust-s3` (less kept); version 0.12 because it
//! shares reqwest 0.12 and ring with the rest of the tree.
//!
//! Objects are written with a single PUT (media files are at most the video
//! limit, 99 MiB, well under S3's 5 GiB single-PUT limit), the content type
//! as the object's `Content-Type`.

use std::time::Duration;

use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, ClientOptions, ObjectStore, PutOptions, PutPayload, RetryConfig,
};

use crate::storage::validate_key;
use crate::{MediaError, MediaStorage, StoredObject};

/// Where the bucket is and how to sign requests to it.
#[derive(Clone)]
pub struct S3Config {
    /// Base URL of the S3 endpoint, e.g. `http://127.0.0.1:9000` or
    /// `https://s3.eu-west-1.amazonaws.com`.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// Whether a plain `http://` endpoint is accepted (local servers only).
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// Media files in an S3-compatible bucket, optionally under a key prefix.
#[derive(Debug)]
pub struct S3Storage {
    store: AmazonS3,
    prefix: String,
}

/// How long one request may take (a 99 MiB PUT over a slow link included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

impl S3Storage {
    /// A client for the configured bucket. Does no I/O: a wrong endpoint or
    /// credentials show on the first request.
    pub fn new(cfg: &S3Config) -> Result<Self, MediaError> {
        let options = ClientOptions::new()
            .with_allow_http(cfg.allow_http)
            .with_timeout(REQUEST_TIMEOUT)
            .with_connect_timeout(Duration::from_secs(5));
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(60),
            ..RetryConfig::default()
        };
        let store = AmazonS3Builder::new()
            .with_endpoint(cfg.endpoint.trim_end_matches('/'))
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            .with_access_key_id(&cfg.access_key)
            .with_secret_access_key(&cfg.secret_key)
            .with_virtual_hosted_style_request(false)
            .with_allow_http(cfg.allow_http)
            .with_client_options(options)
            .with_retry(retry)
            .build()
            .map_err(|e| MediaError::Storage(format!("S3 configuration: {e}")))?;
        Ok(Self {
            store,
            prefix: String::new(),
        })
    }

    /// Puts every key under `prefix/` in the bucket (several deployments or
    /// test runs sharing one bucket). The prefix follows the key rules.
    pub fn with_prefix(mut self, prefix: &str) -> Result<Self, MediaError> {
        let prefix = prefix.trim_matches('/');
        if prefix.is_empty() {
            self.prefix.clear();
        } else {
            validate_key(prefix)?;
            self.prefix = format!("{prefix}/");
        }
        Ok(self)
    }

    fn path(&self, key: &str) -> Result<ObjectPath, MediaError> {
        validate_key(key)?;
        ObjectPath::parse(format!("{}{key}", self.prefix))
            .map_err(|e| MediaError::Storage(format!("invalid storage key {key:?}: {e}")))
    }
}

fn s3_error(what: &str, key: &str, e: object_store::Error) -> MediaError {
    MediaError::Storage(format!("S3 {what} {key}: {e}"))
}

#[async_trait::async_trait]
impl MediaStorage for S3Storage {
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<(), MediaError> {
        let path = self.path(key)?;
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, content_type.to_owned().into());
        let opts = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        self.store
            .put_opts(&path, PutPayload::from_bytes(bytes), opts)
            .await
            .map_err(|e| s3_error("put", key, e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<StoredObject>, MediaError> {
        let path = self.path(key)?;
        let result = match self.store.get(&path).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(s3_error("get", key, e)),
        };
        let content_type = result
            .attributes
            .get(&Attribute::ContentType)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        let bytes = match result.bytes().await {
            Ok(b) => b,
            // Deleted between the response's head and its body.
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(s3_error("get", key, e)),
        };
        Ok(Some(StoredObject {
            bytes,
            content_type,
        }))
    }

    async fn delete(&self, key: &str) -> Result<(), MediaError> {
        let path = self.path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(s3_error("delete", key, e)),
        }
    }
}
