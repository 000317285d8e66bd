//! FoodFast's rules as plain types and functions: no I/O, no clock, no storage or transport types.
//!
//! Handlers validate input with [`validation`], then ask these modules what to do; the store and the
//! server only carry the answers.

pub mod access;
pub mod account;
pub mod address;
pub mod announcement;
pub mod device;
pub mod dispatch;
pub mod eta;
pub mod geo;
pub mod hours;
pub mod menu;
pub mod money;
pub mod names;
pub mod notification;
pub mod order;
pub mod ping;
pub mod pricing;
pub mod restaurant;
pub mod validation;
pub mod zones;
