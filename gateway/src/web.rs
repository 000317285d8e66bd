//! The browser pages of `web/` (built into `web/dist` by `make web`), read
//! once at start and served from memory at the gateway's root, and the
//! contract's descriptor set, from which the pages build their grpc-web
//! clients. Only files read at start are served: no path from a request
//! ever reaches the file system.

use std::collections::HashMap;
use std::path::Path;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, header};

/// Where the contract's `FileDescriptorSet` is served (binary protobuf).
pub const DESCRIPTORS_PATH: &str = "/api/v1/descriptors";
/// Bounds on what a pages directory may hold.
const MAX_FILES: usize = 64;
const MAX_TOTAL_BYTES: u64 = 16 * 1024 * 1024;
/// Pages call only their own origin; images may come from the CDN.
const PAGE_POLICY: &str = "default-src 'self'; img-src 'self' https: data:; object-src 'none'; base-uri 'none'; \
                           form-action 'self'; frame-ancestors 'none'";

#[derive(Default)]
pub struct WebPages {
    files: HashMap<String, (HeaderValue, Bytes)>,
}

impl WebPages {
    /// Reads every page, script and style sheet under `dir`.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let mut pages = Self::default();
        let mut total = 0;
        pages.read_dir(dir, "", &mut total)?;
        if let Some(index) = pages.files.get("/index.html").cloned() {
            pages.files.insert("/".into(), index);
        }
        Ok(pages)
    }

    fn read_dir(&mut self, dir: &Path, prefix: &str, total: &mut u64) -> Result<(), String> {
        let failed = |err: std::io::Error| format!("{}: {err}", dir.display());
        for entry in std::fs::read_dir(dir).map_err(failed)? {
            let entry = entry.map_err(failed)?;
            let name = entry.file_name().into_string().map_err(|name| format!("{name:?} is not UTF-8"))?;
            let path = format!("{prefix}/{name}");
            if entry.file_type().map_err(failed)?.is_dir() {
                self.read_dir(&entry.path(), &path, total)?;
                continue;
            }
            let Some(content_type) = content_type(&name) else { continue };
            let bytes = std::fs::read(entry.path()).map_err(failed)?;
            *total += bytes.len() as u64;
            if self.files.len() == MAX_FILES || *total > MAX_TOTAL_BYTES {
                return Err(format!("{}: more than {MAX_FILES} files or {MAX_TOTAL_BYTES} bytes", dir.display()));
            }
            self.files.insert(path, (HeaderValue::from_static(content_type), bytes.into()));
        }
        Ok(())
    }

    pub fn contains(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }

    /// The file at `path`, if one was read.
    pub fn get(&self, path: &str) -> Option<Response> {
        let (content_type, bytes) = self.files.get(path)?;
        let mut response = (
            [
                (header::CONTENT_TYPE, content_type.clone()),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
                (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            ],
            bytes.clone(),
        )
            .into_response();
        if content_type.as_bytes().starts_with(b"text/html") {
            response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_POLICY));
        }
        Some(response)
    }
}

/// The contract, for clients that build their stubs at run time.
pub fn descriptors() -> Response {
    let content_type = HeaderValue::from_static("application/x-protobuf");
    ([(header::CONTENT_TYPE, content_type)], Bytes::from_static(foodfast_api::FILE_DESCRIPTOR_SET)).into_response()
}

fn content_type(name: &str) -> Option<&'static str> {
    Some(match name.rsplit_once('.')?.1 {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_served_by_their_path_and_the_index_at_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("assets")).unwrap();
        std::fs::write(dir.path().join("index.html"), "<h1>FoodFast</h1>").unwrap();
        std::fs::write(dir.path().join("assets/app.js"), "console.log(1)").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not served").unwrap();
        let pages = WebPages::load(dir.path()).unwrap();

        let root = pages.get("/").unwrap();
        assert_eq!(root.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(root.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        let script = pages.get("/assets/app.js").unwrap();
        assert_eq!(script.headers()[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert!(!script.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        for missing in ["/notes.txt", "/assets/../index.html", "/missing.html", "/assets"] {
            assert!(pages.get(missing).is_none(), "{missing}");
        }
    }

    #[test]
    fn a_directory_past_the_limits_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for n in 0..=MAX_FILES {
            std::fs::write(dir.path().join(format!("{n}.js")), "1").unwrap();
        }
        let refused = WebPages::load(dir.path()).err().expect("too many files");
        assert!(refused.contains("more than"), "{refused}");
        assert!(WebPages::load(&dir.path().join("absent")).is_err());
    }
}
