//! The FoodFast gateway: browsers and plain HTTP clients reach the gRPC
//! services through it. Every REST route comes from the `google.api.http`
//! annotations of the contract's descriptor set, never from a handler
//! written per route.

pub mod config;
pub mod errors;
pub mod grpc_web;
pub mod limits;
pub mod openapi;
pub mod rest;
pub mod routes;
pub mod telemetry;
pub mod transcode;
pub mod upstream;
pub mod web;
