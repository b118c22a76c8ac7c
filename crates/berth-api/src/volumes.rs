//! `/volumes` wire types: a volume as inspect, list and `system df` show it, the create
//! body, and the list and prune answers.

use serde::{Deserialize, Serialize};

use crate::Map;

/// A volume (`GET /volumes/{name}`; items of the list and of `system df`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Volume {
    /// RFC 3339, seconds (Go's `time.RFC3339`).
    pub created_at: String,
    pub driver: String,
    /// `null` when the volume has none, as Docker sends it.
    pub labels: Option<Map>,
    pub mountpoint: String,
    pub name: String,
    pub options: Option<Map>,
    pub scope: String,
    /// Only in `system df`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_data: Option<UsageData>,
}

/// `UsageData`: bytes used (-1 when not computed) and how many containers use it.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct UsageData {
    pub size: i64,
    pub ref_count: i64,
}

/// `POST /volumes/create`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeCreateBody {
    pub name: String,
    pub driver: String,
    #[serde(deserialize_with = "crate::null_default")]
    pub driver_opts: Map,
    #[serde(deserialize_with = "crate::null_default")]
    pub labels: Map,
}

/// `GET /volumes`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeListResponse {
    pub volumes: Vec<Volume>,
    pub warnings: Option<Vec<String>>,
}

/// `POST /volumes/prune`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumesPruneResponse {
    pub volumes_deleted: Option<Vec<String>>,
    pub space_reclaimed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_as_docker_sends_them() {
        let v = Volume {
            created_at: "2026-11-23T11:32:38Z".into(),
            driver: "local".into(),
            mountpoint: "/var/lib/berth/volumes/v/_data".into(),
            name: "v".into(),
            scope: "local".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"CreatedAt":"2026-11-23T11:32:38Z","Driver":"local","Labels":null,"Mountpoint":"/var/lib/berth/volumes/v/_data","Name":"v","Options":null,"Scope":"local"}"#
        );
        let b: VolumeCreateBody = serde_json::from_str(r#"{"Name":"x","Driver":"local","DriverOpts":null,"Labels":null}"#).unwrap();
        assert_eq!((b.name.as_str(), b.driver_opts.len()), ("x", 0));
        let l = VolumeListResponse::default();
        assert_eq!(serde_json::to_string(&l).unwrap(), r#"{"Volumes":[],"Warnings":null}"#);
    }
}
