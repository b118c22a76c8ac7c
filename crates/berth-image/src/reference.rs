//! Image references: Docker's grammar and its normalisation onto Docker Hub. The pure
//! code lives in `berth_api::reference`, shared with the CLI; this module re-exports it
//! so that the store, the registry client and the engine name it from here.

pub use berth_api::reference::{is_full_hex_id, Reference, ReferenceError, DOCKER_HUB_DOMAIN};
