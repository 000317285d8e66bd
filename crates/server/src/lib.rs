//! The FoodFast gRPC server: configuration, the assembled tonic server, and
//! the API handlers. `main.rs` is only the command line around it.

pub mod admission;
pub mod announcements;
pub mod api;
pub mod auth;
pub mod config;
pub mod convert;
pub mod dispatcher;
pub mod error;
pub mod health;
pub mod jitter;
pub mod media;
pub mod notifier;
pub mod policy;
pub mod seed;
pub mod server;
pub mod settlement;
pub mod telemetry;
pub mod tracking;
pub mod unanswered;
