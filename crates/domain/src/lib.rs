//! FoodFast's rules as plain types and functions: no I/O, no clock, no storage or transport types.
//!
//! Handlers validate input with [`validation`], then ask these modules what to do; the store and the
//! server only carry the answers.

/// `as_str` and `parse` for an enum of unit variants and their stored names.
macro_rules! names {
    ($ty:ty { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name),* }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($name => Some(Self::$variant),)* _ => None }
            }
        }
    };
}

pub mod access;
pub mod account;
pub mod address;
pub mod announcement;
pub mod backoff;
pub mod device;
pub mod dispatch;
pub mod eta;
pub mod geo;
pub mod hours;
pub mod media;
pub mod menu;
pub mod money;
pub mod names;
pub mod notification;
pub mod order;
pub mod ping;
pub mod pricing;
pub mod restaurant;
pub mod support;
pub mod validation;
pub mod zones;
