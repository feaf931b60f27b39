//! Generated gRPC code for Tributary's public API (`v1`) and node-to-node API (`internal`), and the
//! single mapping between [`tributary_types::Error`] and [`tonic::Status`].

#![allow(clippy::all)]

pub mod v1 {
    tonic::include_proto!("tributary.v1");
}

pub mod internal {
    tonic::include_proto!("tributary.internal.v1");
}

pub mod signing;
mod status;
pub mod table;

pub use status::{describe_status, error_from_status, status_from_error};
