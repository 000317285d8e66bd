//! The object store's S3 backend, against an S3-compatible server the test
//! runs (moto's, from `make tools`), as it would run against Amazon S3 or
//! MinIO: objects are written whole, read back, served at their public URL
//! and deleted. One test: it sets the process's AWS_* variables.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use foodfast_store::objects::{Objects, ObjectsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct S3Server(Child);

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A plain HTTP/1.1 request to the server; the status line and headers, and the body.
async fn http(port: u16, method: &str, path: &str, body: &str) -> (String, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let length = body.len();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n{body}"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP answer") + 4;
    let head = String::from_utf8_lossy(&answer[..split]).to_string();
    (head, answer[split..].to_vec())
}

#[tokio::test]
async fn objects_round_trip_through_an_s3_compatible_server() {
    let moto = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.local/venv/bin/moto_server");
    assert!(moto.exists(), "{} is missing: run `make tools`", moto.display());
    let port = foodfast_testkit::free_port();
    let _server = S3Server(
        Command::new(&moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    foodfast_testkit::wait_for_port(port, Duration::from_secs(60));
    let (created, _) = http(port, "PUT", "/foodfast-media", "").await;
    assert!(created.contains(" 200 "), "{created}");
    // Images are public, as a bucket behind a CDN is.
    let public_read = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::foodfast-media/*"}]}"#;
    let (policy, _) = http(port, "PUT", "/foodfast-media?policy", public_read).await;
    assert!(policy.contains(" 20"), "{policy}");
    // SAFETY: the only test of this binary, before anything reads the environment.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_ENDPOINT", format!("http://127.0.0.1:{port}"));
        std::env::set_var("AWS_ALLOW_HTTP", "true");
    }

    let objects =
        Objects::open(&ObjectsConfig { url: "s3://foodfast-media/images".into(), ..Default::default() }).unwrap();
    objects.ping().await.unwrap();
    let photo = b"\x89PNG not really, but bytes".to_vec();
    objects.put("menu_item/a/b.jpg", photo.clone()).await.unwrap();
    assert_eq!(objects.get("menu_item/a/b.jpg").await.unwrap(), photo);

    let url = objects.public_url("menu_item/a/b.jpg");
    assert_eq!(url, format!("http://127.0.0.1:{port}/foodfast-media/images/menu_item/a/b.jpg"));
    let (head, served) = http(port, "GET", url.trim_start_matches(&format!("http://127.0.0.1:{port}")), "").await;
    assert!(head.lines().next().unwrap().contains(" 200 "), "{head}");
    assert_eq!(served, photo, "the public URL serves the object under the bucket's prefix");
    assert!(head.to_ascii_lowercase().contains("content-type: image/jpeg"), "served as an image: {head}");

    objects.delete("menu_item/a/b.jpg").await.unwrap();
    assert!(objects.get("menu_item/a/b.jpg").await.is_err(), "deleted");
    let cdn = ObjectsConfig { url: "s3://foodfast-media".into(), public_base_url: "https://cdn.example".into() };
    assert_eq!(Objects::open(&cdn).unwrap().public_url("x.jpg"), "https://cdn.example/x.jpg");
}
