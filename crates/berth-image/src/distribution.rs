//! `GET /distribution/{name}/json` (`docker manifest inspect`'s daemon side, docker-py's
//! `inspect_distribution`): the registry's descriptor of what `name` points at and the
//! platforms it offers — an index's entries, or a single manifest's config platform.
//! Nothing is stored.

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::error::PullError;
use crate::manifest::{ImageConfig, Manifest, Platform, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST};
use crate::pull::{fetch_first_manifest, fetch_small_blob, Credentials, RegistryConfig};
use crate::reference::Reference;

/// The answer's `Descriptor`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DistDescriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// `{"Descriptor": …, "Platforms": […]}`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DistributionInspect {
    #[serde(rename = "Descriptor")]
    pub descriptor: DistDescriptor,
    #[serde(rename = "Platforms")]
    pub platforms: Vec<Platform>,
}

pub async fn inspect(
    reference: &Reference,
    cfg: &RegistryConfig,
    creds: Option<&Credentials>,
) -> Result<DistributionInspect, PullError> {
    let reference = reference.clone().with_default_tag();
    let tag_or_digest = reference.digest.clone().or_else(|| reference.tag.clone()).unwrap_or_else(|| "latest".into());
    let (client, body, ct) = fetch_first_manifest(&reference, cfg, creds, &tag_or_digest).await?;
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
    let manifest = Manifest::parse(ct.as_deref(), &body).map_err(PullError::Unsupported)?;
    let (media_type, platforms) = match manifest {
        Manifest::Index(idx) => {
            let mt = ct.clone().unwrap_or_else(|| MEDIA_OCI_INDEX.to_string());
            (mt, idx.manifests.iter().filter_map(|d| d.platform.clone()).collect())
        }
        Manifest::Image(m) => {
            let cfg_bytes = fetch_small_blob(&client, &m.config.digest, &reference).await?;
            let c: ImageConfig = serde_json::from_slice(&cfg_bytes)
                .map_err(|e| PullError::Registry(format!("invalid image config {}: {e}", m.config.digest)))?;
            let oci = m.media_type.as_deref() == Some(MEDIA_OCI_MANIFEST);
            let mt = ct.clone().unwrap_or_else(|| (if oci { MEDIA_OCI_MANIFEST } else { MEDIA_DOCKER_MANIFEST }).to_string());
            (mt, vec![Platform { architecture: c.architecture, os: c.os, variant: c.variant }])
        }
    };
    Ok(DistributionInspect {
        descriptor: DistDescriptor { media_type, digest, size: body.len() as u64 },
        platforms,
    })
}
