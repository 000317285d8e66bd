//! The FoodFast contract as Rust: tonic clients and servers for every
//! `foodfast.v1` service, and the encoded file descriptor set of `proto/`.

pub mod v1 {
    tonic::include_proto!("foodfast.v1");
}

/// `google.api` messages referenced by the REST annotations.
pub mod google {
    pub mod api {
        tonic::include_proto!("google.api");
    }
}

/// The encoded `FileDescriptorSet` of every file under `proto/`, for server
/// reflection and the gateway's JSON transcoding.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("foodfast_descriptor");
