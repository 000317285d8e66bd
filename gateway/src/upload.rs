//! `POST /api/v1/uploads`: `MediaService.UploadImage`, the contract's one
//! client stream, for HTTP clients (browsers have no client streams over
//! grpc-web either). The body is the image itself; its `Content-Type` and
//! `Content-Length` are the metadata's type and size, and the query gives the
//! rest (`targetKind`, `targetId`, optional `fileName` and `sha256`). The body
//! is passed on in chunks as it arrives, never held whole, and as fast as the
//! server takes it. Answers 202 Accepted with the job (`{"jobId"}`) and its
//! `Location`, which GetUploadJob serves.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use foodfast_api::v1 as pb;
use foodfast_api::v1::upload_image_request::Payload;
use futures::{Stream, StreamExt};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use prost::Message;
use prost_reflect::{DescriptorPool, Kind, MessageDescriptor, MethodDescriptor};
use serde_json::{Map, Value};
use tonic::Code;

use crate::transcode;
use crate::upstream::Upstream;

/// Where uploads are posted.
pub const PATH: &str = "/api/v1/uploads";

/// The image types UploadMetadata.content_type takes.
pub const CONTENT_TYPES: [&str; 3] = ["image/jpeg", "image/png", "image/webp"];

/// Metadata fields the request's headers fill, by JSON name.
pub const HEADER_FIELDS: [&str; 2] = ["contentType", "totalSizeBytes"];

/// Pieces of the body sent upstream: one message per network read would
/// be many small messages; a whole image would be held in memory.
const CHUNK_BYTES: usize = 256 * 1024;

/// The upload method of the contract.
#[derive(Debug, Clone)]
pub struct Upload {
    method: MethodDescriptor,
}

impl Upload {
    pub fn new(pool: &DescriptorPool) -> Self {
        let method = pool
            .get_service_by_name("foodfast.v1.MediaService")
            .and_then(|service| service.methods().find(|method| method.name() == "UploadImage"))
            .expect("the contract has MediaService.UploadImage");
        Self { method }
    }

    pub fn method(&self) -> &MethodDescriptor {
        &self.method
    }

    /// `UploadMetadata`, the stream's first message.
    pub fn metadata(&self) -> MessageDescriptor {
        match self.method.input().get_field_by_name("metadata").map(|field| field.kind()) {
            Some(Kind::Message(metadata)) => metadata,
            _ => unreachable!("UploadImageRequest.metadata is an UploadMetadata"),
        }
    }

    /// Streams the request's body to the server as one upload.
    pub async fn call(&self, upstream: &Upstream, parts: &Parts, body: Body) -> Response {
        let metadata = match self.metadata_of(parts) {
            Ok(metadata) => metadata,
            Err(response) => return *response,
        };
        let first = pb::UploadImageRequest { payload: Some(Payload::Metadata(metadata)) };
        let chunks = chunks(body).map(|chunk| pb::UploadImageRequest { payload: Some(Payload::Chunk(chunk.into())) });
        let messages = futures::stream::iter([first]).chain(chunks).map(|message| message.encode_to_vec());
        let mut call = tonic::Request::new(messages);
        *call.metadata_mut() = crate::rest::metadata(&parts.headers);
        let path = format!("/{}/{}", self.method.parent_service().full_name(), self.method.name());
        // No deadline of the gateway's: the server ends uploads that stall (media.upload_timeout).
        let answered = upstream.client_streaming(&path, call).await;
        crate::rest::json_answer(self.method.output(), &path, answered, accepted)
    }

    /// The metadata from the headers and the query; a 4xx answer if they do not make one.
    fn metadata_of(&self, parts: &Parts) -> Result<pb::UploadMetadata, Box<Response>> {
        let header = |name| parts.headers.get(name).and_then(|value: &HeaderValue| value.to_str().ok());
        let Some(size) = header(header::CONTENT_LENGTH).and_then(|length| length.trim().parse::<u64>().ok()) else {
            let message = "an upload needs Content-Length: the exact size of the image in bytes";
            return Err(Box::new(crate::rest::error(Code::InvalidArgument, StatusCode::LENGTH_REQUIRED, message)));
        };
        let content_type = header(header::CONTENT_TYPE)
            .map(|value| value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
            .unwrap_or_default();
        let given = Map::from_iter([
            (HEADER_FIELDS[0].to_string(), Value::String(content_type)),
            (HEADER_FIELDS[1].to_string(), Value::String(size.to_string())),
        ]);
        let metadata = transcode::query_message(self.metadata(), parts.uri.query().unwrap_or(""), given)
            .map_err(|err| Box::new(crate::rest::request_error(&err)))?;
        Ok(metadata.transcode_to().expect("a message of UploadMetadata's descriptor is an UploadMetadata"))
    }
}

fn accepted(json: Value) -> Response {
    let location = json["jobId"].as_str().and_then(|id| HeaderValue::from_str(&format!("{PATH}/{id}")).ok());
    let mut response = (StatusCode::ACCEPTED, axum::Json(json)).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// The body in pieces of [`CHUNK_BYTES`] (the last may be shorter). A body
/// that breaks off ends the pieces early: the server then refuses the upload
/// as shorter than its Content-Length.
fn chunks(body: Body) -> impl Stream<Item = Bytes> + Send {
    let start = (body.into_data_stream(), BytesMut::new(), false);
    futures::stream::unfold(start, |(mut data, mut pending, mut ended)| async move {
        while !ended && pending.len() < CHUNK_BYTES {
            match data.next().await {
                Some(Ok(bytes)) => pending.extend_from_slice(&bytes),
                Some(Err(err)) => {
                    tracing::debug!(%err, "an upload's body broke off");
                    ended = true;
                }
                None => ended = true,
            }
        }
        if pending.is_empty() {
            return None;
        }
        let chunk = pending.split_to(pending.len().min(CHUNK_BYTES)).freeze();
        Some((chunk, (data, pending, ended)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload() -> Upload {
        Upload::new(crate::routes::RouteTable::from_descriptor_set(foodfast_api::FILE_DESCRIPTOR_SET).unwrap().pool())
    }

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut request = http::Request::post(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_metadata_comes_from_the_headers_and_the_query() {
        let metadata = upload()
            .metadata_of(&parts(
                "/api/v1/uploads?targetKind=IMAGE_TARGET_KIND_MENU_ITEM&target_id=i1&fileName=p%201.png",
                &[("content-type", "Image/PNG; q=1"), ("content-length", "2048")],
            ))
            .unwrap();
        assert_eq!(metadata.target_kind(), pb::ImageTargetKind::MenuItem);
        assert_eq!((metadata.target_id.as_str(), metadata.file_name.as_str()), ("i1", "p 1.png"));
        assert_eq!((metadata.content_type.as_str(), metadata.total_size_bytes), ("image/png", 2048));
    }

    #[test]
    fn a_missing_length_or_a_header_field_in_the_query_is_refused() {
        let no_length = upload().metadata_of(&parts("/api/v1/uploads?targetId=i1", &[])).unwrap_err();
        assert_eq!(no_length.status(), StatusCode::LENGTH_REQUIRED);
        let in_query =
            upload().metadata_of(&parts("/api/v1/uploads?total_size_bytes=1", &[("content-length", "2")])).unwrap_err();
        assert_eq!(in_query.status(), StatusCode::BAD_REQUEST);
        let unknown =
            upload().metadata_of(&parts("/api/v1/uploads?colour=red", &[("content-length", "2")])).unwrap_err();
        assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn the_body_goes_on_in_pieces_of_at_most_the_chunk_size() {
        let pieces = (0..6).map(|i| Ok::<_, std::io::Error>(Bytes::from(vec![i as u8; 100 * 1024])));
        let body = Body::from_stream(futures::stream::iter(pieces));
        let chunks: Vec<Bytes> = chunks(body).collect().await;
        let sizes: Vec<usize> = chunks.iter().map(Bytes::len).collect();
        assert_eq!(sizes, [CHUNK_BYTES, CHUNK_BYTES, 600 * 1024 - 2 * CHUNK_BYTES]);
        let joined: Vec<u8> = chunks.concat();
        assert_eq!(joined, (0..6u8).flat_map(|i| vec![i; 100 * 1024]).collect::<Vec<_>>());
    }
}
