//! berth-image owns everything about images below the engine: Docker image references
//! and their normalisation, the on-disk content store (blobs, unpacked layers shared by
//! chain id, image records, the reference map; see docs/storage.md), the registry
//! client (v2 API, token/basic auth, mirrors, insecure registries), pulling with
//! Docker's progress stream, and unpacking layer tars into overlayfs lower directories.
//! It must not use HTTP server crates; it knows nothing about containers except what
//! `ImageStore::remove` is told through its `used_by` callback.

#![forbid(unsafe_code)]

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::type_complexity))]

pub mod auth;
pub mod distribution;
pub mod error;
pub mod fetch;
pub mod manifest;
mod pipeline;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
pub mod search;
pub mod saveload;
pub mod store;
pub mod unpack;

pub use auth::{AuthConfig, LoginError};
pub use error::{ErrorKind, PullError, ReferenceError, ReferenceErrorKind, StoreError, UnpackError};
pub use manifest::{ContainerConfig, ImageConfig};
pub use pull::{pull, pull_with, Credentials, DownloadRetry, Progress, PullOptions, RegistryConfig};
pub use push::{push, PushError, PushEvent, PushOptions};
pub use reference::Reference;
pub use store::{chain_id, Image, ImageStore, RemoveItem};
