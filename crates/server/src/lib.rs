//! The FoodFast gRPC server: configuration, the assembled tonic server, and
//! the API handlers. `main.rs` is only the command line around it.

pub mod api;
pub mod config;
pub mod health;
pub mod server;
pub mod telemetry;
