//! `GET /images/{name}/history` and `history`/`image history`: entries newest first,
//! the image's id and tags on its own entry and its parent chain's on the next ones,
//! `<missing>` for base layers, layer sizes, and the docker CLI's columns and flags —
//! berth's output is compared with the real docker CLI's for every flag combination.

use berth_e2e::{Cli, Daemon};

#[test]
fn history_of_pulled_and_committed_images() {
    let d = Daemon::start();
    d.berth(&["pull", "redis"]).ok();
    let redis_id = d.request("GET", "/images/redis/json", None).json()["Id"].as_str().unwrap_or_default().to_string();
    d.berth(&["create", "--name", "src", "redis", "sh", "-c", "echo hi > /f"]).ok();
    d.berth(&["start", "-a", "src"]).ok();
    d.berth(&["commit", "-m", "my note", "src", "mine:1"]).ok();
    let mine = d.request("GET", "/images/mine:1/json", None).json()["Id"].as_str().unwrap_or_default().to_string();

    // The API: newest first; ids and tags down the parent chain, then <missing>.
    let h = d.request("GET", "/images/mine:1/history", None);
    assert_eq!(h.status, 200);
    let h = h.json();
    let items = h.as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 3, "{h}");
    assert_eq!((items[0]["Id"].as_str(), items[0]["Comment"].as_str()), (Some(mine.as_str()), Some("my note")));
    assert_eq!(items[0]["Tags"], serde_json::json!(["mine:1"]));
    assert_eq!(items[0]["CreatedBy"], "sh -c echo hi > /f");
    assert!(items[0]["Size"].as_i64().unwrap_or(0) > 0, "{h}");
    assert_eq!(items[1]["Id"].as_str(), Some(redis_id.as_str()));
    assert_eq!(items[1]["Tags"], serde_json::json!(["redis:latest"]));
    assert_eq!(items[1]["CreatedBy"], "COPY redis-server redis-cli /usr/local/bin/ # buildkit");
    assert_eq!(items[1]["Created"], 1_704_067_200);
    assert_eq!((items[2]["Id"].as_str(), &items[2]["Tags"]), (Some("<missing>"), &serde_json::Value::Null));
    assert!(items[2]["Size"].as_i64().unwrap_or(0) > 1_000_000, "{h}");

    // The CLIs print the same thing.
    let cases: &[&[&str]] = &[
        &["history", "redis"],
        &["image", "history", "redis"],
        &["history", "--no-trunc", "mine:1", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}"],
        &["history", "-H=false", "mine:1", "--format", "{{.ID}}|{{.CreatedAt}}|{{.Size}}"],
        &["history", "-H=false", "redis"],
        &["history", "-q", "mine:1"],
        &["history", "-q", "--no-trunc", "mine:1"],
        &["history", "--format", "json", "redis"],
        &["history", "--format", "table {{.ID}}\t{{.CreatedAt}}", "redis"],
    ];
    for args in cases {
        let ours = d.cli(Cli::Berth, args).ok();
        let theirs = d.cli(Cli::Docker, args).ok();
        assert_eq!(ours.stdout, theirs.stdout, "{args:?}");
    }
    let q = d.berth(&["history", "-q", "mine:1"]).ok();
    assert_eq!(q.lines(), [mine[7..19].to_string(), redis_id[7..19].to_string(), "<missing>".to_string()]);
    let t = d.berth(&["history", "redis"]).ok();
    let header: Vec<String> = t.lines()[0].split("  ").map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
    assert_eq!(header, ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]);

    for cli in [Cli::Berth, Cli::Docker] {
        d.cli(cli, &["history", "nosuch"]).code(1).stderr_has("No such image: nosuch:latest");
    }
    let r = d.request("GET", "/images/nosuch/history", None);
    assert_eq!(r.status, 404);
}
