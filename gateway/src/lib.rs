//! The FoodFast gateway: browsers and plain HTTP clients reach the gRPC
//! services through it. Every REST route comes from the `google.api.http`
//! annotations of the contract's descriptor set, never from a handler
//! written per route; the one exception is the image upload (`upload`), a
//! client stream, which HTTP has no generic mapping for.

pub mod config;
pub mod errors;
pub mod grpc_web;
pub mod limits;
pub mod openapi;
pub mod rest;
pub mod routes;
pub mod telemetry;
pub mod transcode;
pub mod upload;
pub mod upstream;
pub mod web;
