//! Object storage for images: Amazon S3 or anything speaking its API (MinIO,
//! Cloudflare R2, Ceph), or a local directory for development and tests.
//! Objects are written whole and never changed (a new image gets a new key),
//! so a CDN in front may cache them forever.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;

use crate::StoreError;
use crate::error::Backend;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectsConfig {
    /// `s3://bucket` or `s3://bucket/prefix` (credentials, region and
    /// endpoint from the usual `AWS_*` variables), or a directory (a path or
    /// `file:///…` URL).
    pub url: String,
    /// Where clients fetch objects (a CDN in front of the bucket), e.g.
    /// `https://cdn.example.com/media`; empty: the bucket or directory itself.
    pub public_base_url: String,
}

impl Default for ObjectsConfig {
    fn default() -> Self {
        Self { url: ".local/objects".into(), public_base_url: String::new() }
    }
}

/// Where the objects live, as the configuration names it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    S3 { bucket: String, prefix: String },
    Directory(PathBuf),
}

impl ObjectsConfig {
    fn location(&self) -> Result<Location, String> {
        let url = self.url.trim();
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err("an s3:// URL needs a bucket, e.g. s3://foodfast-media".into());
            }
            return Ok(Location::S3 { bucket: bucket.into(), prefix: prefix.trim_matches('/').into() });
        }
        if let Some((scheme, _)) = url.split_once("://")
            && scheme != "file"
        {
            return Err(format!("{scheme}:// is not supported: use s3://bucket[/prefix] or a directory"));
        }
        let path = url.strip_prefix("file://").unwrap_or(url);
        if path.is_empty() {
            return Err("needs s3://bucket[/prefix] or a directory".into());
        }
        Ok(Location::Directory(PathBuf::from(path)))
    }

    /// Checks the URL's form (not that the bucket or directory exists).
    pub fn validate(&self) -> Result<(), String> {
        self.location().map(|_| ())
    }
}

#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    public_base_url: String,
}

impl Objects {
    /// Opens the bucket or directory (creating the directory).
    pub fn open(config: &ObjectsConfig) -> Result<Self, StoreError> {
        let invalid = |message: String| StoreError::InvalidQuery(format!("stores.objects.url: {message}"));
        let (store, base): (Arc<dyn ObjectStore>, String) = match config.location().map_err(invalid)? {
            Location::S3 { bucket, prefix } => {
                // Served to browsers (through a CDN) as the images they are, not as
                // downloads of `binary/octet-stream`.
                let client = object_store::ClientOptions::new()
                    .with_content_type_for_suffix("jpg", "image/jpeg")
                    .with_content_type_for_suffix("png", "image/png");
                // As `from_env` reads AWS_*, but after the client options, which
                // would otherwise replace those the environment set (AWS_ALLOW_HTTP).
                let mut s3 = object_store::aws::AmazonS3Builder::new().with_client_options(client);
                for (key, value) in std::env::vars_os() {
                    let (Some(key), Some(value)) = (key.to_str(), value.to_str()) else { continue };
                    if let Some(Ok(key)) = key.starts_with("AWS_").then(|| key.to_ascii_lowercase().parse()) {
                        s3 = s3.with_config(key, value);
                    }
                }
                let s3 = s3.with_bucket_name(&bucket).build().map_err(|err| unavailable(err.into()))?;
                // An S3-compatible store (AWS_ENDPOINT) serves its buckets path-style.
                let base = match std::env::var("AWS_ENDPOINT").or_else(|_| std::env::var("AWS_ENDPOINT_URL")) {
                    Ok(endpoint) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
                    Err(_) => format!("https://{bucket}.s3.amazonaws.com"),
                };
                if prefix.is_empty() {
                    (Arc::new(s3), base)
                } else {
                    (Arc::new(object_store::prefix::PrefixStore::new(s3, prefix.as_str())), format!("{base}/{prefix}"))
                }
            }
            Location::Directory(path) => {
                std::fs::create_dir_all(&path).map_err(|err| unavailable(err.into()))?;
                let path = path.canonicalize().map_err(|err| unavailable(err.into()))?;
                let local = object_store::local::LocalFileSystem::new_with_prefix(&path)
                    .map_err(|err| unavailable(err.into()))?;
                (Arc::new(local), format!("file://{}", path.display()))
            }
        };
        let public_base_url = match config.public_base_url.trim().trim_end_matches('/') {
            "" => base,
            given => given.to_owned(),
        };
        Ok(Self { store, public_base_url })
    }

    /// Writes `bytes` at `key` (whole: readers see all of it or nothing).
    #[tracing::instrument(target = "foodfast::trace", name = "Objects.put", skip_all, fields(otel.kind = "client", key))]
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.store.put(&Path::from(key), bytes.into()).await.map_err(StoreError::objects)?;
        Ok(())
    }

    #[tracing::instrument(target = "foodfast::trace", name = "Objects.get", skip_all, fields(otel.kind = "client", key))]
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let object = self.store.get(&Path::from(key)).await.map_err(StoreError::objects)?;
        Ok(object.bytes().await.map_err(StoreError::objects)?.to_vec())
    }

    #[tracing::instrument(target = "foodfast::trace", name = "Objects.delete", skip_all, fields(otel.kind = "client", key))]
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.store.delete(&Path::from(key)).await.map_err(StoreError::objects)
    }

    /// Where clients fetch the object at `key`.
    pub fn public_url(&self, key: &str) -> String {
        format!("{}/{key}", self.public_base_url)
    }

    /// Answers whether the bucket or directory can be reached (a missing
    /// probe object is an answer).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self.store.head(&Path::from("health/probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(StoreError::objects(err)),
        }
    }
}

fn unavailable(source: Box<dyn std::error::Error + Send + Sync>) -> StoreError {
    StoreError::Unavailable { backend: Backend::Objects, source }
}

impl StoreError {
    pub(crate) fn objects(err: object_store::Error) -> Self {
        match err {
            object_store::Error::NotFound { .. }
            | object_store::Error::InvalidPath { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::AlreadyExists { .. } => {
                StoreError::Query { backend: Backend::Objects, source: Box::new(err) }
            }
            other => unavailable(Box::new(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> ObjectsConfig {
        ObjectsConfig { url: url.into(), ..Default::default() }
    }

    #[test]
    fn urls_name_a_bucket_or_a_directory() {
        assert_eq!(
            config("s3://media/images/").location(),
            Ok(Location::S3 { bucket: "media".into(), prefix: "images".into() })
        );
        assert_eq!(config("s3://media").location(), Ok(Location::S3 { bucket: "media".into(), prefix: "".into() }));
        assert_eq!(config("file:///var/media").location(), Ok(Location::Directory("/var/media".into())));
        assert_eq!(config(".local/objects").location(), Ok(Location::Directory(".local/objects".into())));
        assert!(config("s3://").validate().is_err());
        assert!(config("gs://bucket").validate().unwrap_err().contains("gs:// is not supported"));
        assert!(config("").validate().is_err());
        assert!(ObjectsConfig::default().validate().is_ok(), "the default works");
    }

    #[tokio::test]
    async fn a_directory_keeps_objects_whole_until_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::open(&config(dir.path().join("media").to_str().unwrap())).unwrap();
        objects.ping().await.unwrap();
        objects.put("uploads/a/original", b"bytes".to_vec()).await.unwrap();
        assert_eq!(objects.get("uploads/a/original").await.unwrap(), b"bytes");
        let url = objects.public_url("uploads/a/original");
        assert_eq!(std::fs::read(url.strip_prefix("file://").unwrap()).unwrap(), b"bytes");
        objects.delete("uploads/a/original").await.unwrap();
        assert!(objects.get("uploads/a/original").await.is_err());

        let public =
            ObjectsConfig { public_base_url: "https://cdn.example/".into(), ..config(dir.path().to_str().unwrap()) };
        assert_eq!(Objects::open(&public).unwrap().public_url("images/x.jpg"), "https://cdn.example/images/x.jpg");
    }
}
