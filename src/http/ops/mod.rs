//! One file per operation; each takes parsed inputs and returns a response or an [`ApiError`].
//!
//! [`ApiError`]: super::problem::ApiError

pub mod admin;
pub mod catalog;
pub mod edge;
pub mod extras;
pub mod fans;
pub mod health;
pub mod hls;
pub mod jwks;
pub mod license;
pub mod lyrics;
pub mod manifest;
pub mod offline;
pub mod play_token;
pub mod purchase;
pub mod sales;
pub mod segment;
pub mod web;
