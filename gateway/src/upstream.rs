//! Calls to the gRPC server with messages the gateway already encoded: a
//! codec that passes protobuf bytes through, so one client serves every
//! method of the descriptor set.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Buf, BufMut};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

/// Encoded protobuf messages in both directions.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// The gRPC server, reached over a few HTTP/2 connections (each
/// multiplexed), taken in turn.
#[derive(Clone)]
pub struct Upstream {
    channels: Arc<[Channel]>,
    next: Arc<AtomicUsize>,
    /// Largest message accepted from the server.
    max_response_bytes: usize,
}

impl Upstream {
    pub fn new(channels: Vec<Channel>, max_response_bytes: usize) -> Self {
        assert!(!channels.is_empty(), "at least one upstream connection");
        Self { channels: channels.into(), next: Arc::default(), max_response_bytes }
    }

    /// The next connection's channel.
    pub fn channel(&self) -> Channel {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        self.channels[turn % self.channels.len()].clone()
    }

    /// A client ready to call, and the method's path (`/package.Service/Method`).
    async fn ready(&self, path: &str) -> Result<(tonic::client::Grpc<Channel>, http::uri::PathAndQuery), Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel()).max_decoding_message_size(self.max_response_bytes);
        grpc.ready().await.map_err(|err| Status::unavailable(format!("the FoodFast server is unreachable: {err}")))?;
        let path = path.parse().map_err(|_| Status::internal(format!("bad method path {path:?}")))?;
        Ok((grpc, path))
    }

    /// Calls the unary method at `path`.
    pub async fn unary(
        &self,
        path: &str,
        request: tonic::Request<Vec<u8>>,
    ) -> Result<tonic::Response<Vec<u8>>, Status> {
        let (mut grpc, path) = self.ready(path).await?;
        grpc.unary(request, path, RawCodec).await.map_err(|status| self.own_error(status))
    }

    /// The gateway's own name for a failure of its own: tonic refuses an
    /// answer past `max_response_bytes` as OUT_OF_RANGE, which would read as
    /// the client's mistake (HTTP 400).
    pub fn own_error(&self, status: Status) -> Status {
        if status.code() == tonic::Code::OutOfRange && status.message().starts_with("Error, decoded message length") {
            return Status::internal(format!(
                "the server's answer is larger than the gateway takes (http.max_response_bytes, {} bytes)",
                self.max_response_bytes
            ));
        }
        status
    }

    /// Calls the server-streaming method at `path`.
    pub async fn server_streaming(
        &self,
        path: &str,
        request: tonic::Request<Vec<u8>>,
    ) -> Result<tonic::Response<tonic::codec::Streaming<Vec<u8>>>, Status> {
        let (mut grpc, path) = self.ready(path).await?;
        grpc.server_streaming(request, path, RawCodec).await
    }

    /// Calls the client-streaming method at `path`, sending the messages as
    /// the server takes them (HTTP/2 flow control paces `messages`).
    pub async fn client_streaming(
        &self,
        path: &str,
        request: tonic::Request<impl futures::Stream<Item = Vec<u8>> + Send + 'static>,
    ) -> Result<tonic::Response<Vec<u8>>, Status> {
        let (mut grpc, path) = self.ready(path).await?;
        grpc.client_streaming(request, path, RawCodec).await
    }
}
