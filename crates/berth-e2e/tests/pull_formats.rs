//! Pull variants and the image list's filters, through both CLIs: `--platform` out of
//! a multi-platform index (and Docker's errors for a platform that is not there), `pull
//! -a` against a real registry holding several tags, pull by digest with `images
//! --digests`, and `images --filter dangling/reference/before/since/label`.

use berth_e2e::registry::{Auth, TestRegistry};
use berth_e2e::{both, registry};

both!(fn pull_platform_from_index(d, cli) {
    d.cli(cli, &["pull", "--platform", "linux/arm64", "alpine"]).ok().stdout_has("Pull complete");
    let arch = d.cli(cli, &["image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", "alpine"]).ok();
    assert_eq!(arch.out(), "linux/arm64");
    // The host's platform again: a different image for the same tag.
    d.cli(cli, &["pull", "alpine"]).ok();
    let arch = d.cli(cli, &["image", "inspect", "-f", "{{.Architecture}}", "alpine"]).ok();
    assert_eq!(arch.out(), "amd64");
    d.cli(cli, &["pull", "--platform", "linux/s390x", "alpine"])
        .code(1)
        .stderr_has("no matching manifest for linux/s390x in the manifest list entries");
    // A single-platform image is checked against its config.
    d.cli(cli, &["pull", "--platform", "linux/arm64", &format!("{}/test/busybox", registry())])
        .code(1)
        .stderr_has("does not match the specified platform: wanted linux/arm64, actual: linux/amd64");
});

both!(fn pull_all_tags(d, cli) {
    let reg = TestRegistry::start(Auth::None, false, false);
    let addr = reg.addr();
    reg.seed(&addr, "test/busybox", "me/multi:1.0", false);
    reg.seed(&addr, "test/busybox", "me/multi:2.0", false);
    let repo = format!("{addr}/me/multi");
    let r = d.cli(cli, &["pull", "-a", &repo]).ok();
    let r = r
        .stdout_has("1.0: Pulling from me/multi")
        .stdout_has("2.0: Pulling from me/multi")
        .stdout_has(&format!("Status: Downloaded newer image for {repo}\n"))
        .stdout_lacks("Using default tag");
    assert_eq!(r.lines().last().map(String::as_str), Some(repo.as_str()), "{r:?}");
    let tags = d.cli(cli, &["images", "--format", "{{.Tag}}", &repo]).ok();
    let mut tags = tags.lines();
    tags.sort();
    assert_eq!(tags, ["1.0", "2.0"]);
    d.cli(cli, &["pull", "-a", &repo]).ok().stdout_has(&format!("Status: Image is up to date for {repo}\n"));
    d.cli(cli, &["pull", "-a", &format!("{repo}:1.0")]).code(1).stderr_has("tag can't be used with --all-tags/-a");
});

both!(fn pull_by_digest_and_list_digests(d, cli) {
    let image = format!("{}/test/busybox", registry());
    d.cli(cli, &["pull", &image]).ok();
    let digest = d.cli(cli, &["image", "inspect", "-f", "{{index .RepoDigests 0}}", &image]).ok();
    let digest = digest.out().to_string();
    assert!(digest.starts_with(&format!("{image}@sha256:")), "{digest}");
    d.cli(cli, &["rmi", &image]).ok();
    d.cli(cli, &["pull", &digest]).ok().stdout_has(&format!("Status: Downloaded newer image for {digest}"));
    let dg = digest.split_once('@').map(|(_, d)| d.to_string()).unwrap_or_default();
    let r = d.cli(cli, &["images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}"]).ok();
    assert_eq!(r.lines(), [format!("{image} <none> {dg}")]);
});

both!(fn images_filters(d, cli) {
    d.cli(cli, &["pull", "alpine"]).ok();
    d.cli(cli, &["pull", "busybox"]).ok();
    d.cli(cli, &["tag", "busybox", "me/bb:1"]).ok();
    d.cli(cli, &["create", "--name", "c1", "busybox", "true"]).ok();
    d.cli(cli, &["commit", "--change", "LABEL berth.test=yes", "c1", "me/lab:1"]).ok();
    // Committing the same tag again leaves the first image dangling.
    d.cli(cli, &["commit", "--change", "LABEL berth.test=again", "c1", "me/lab:1"]).ok();
    let list = |filters: &[&str]| -> Vec<String> {
        let mut args = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        for f in filters {
            args.push("--filter");
            args.push(f);
        }
        let mut l = d.cli(cli, &args).ok().lines();
        l.sort();
        l
    };
    assert_eq!(list(&["reference=alp*"]), ["alpine:latest"]);
    assert_eq!(list(&["reference=me/*"]), ["me/bb:1", "me/lab:1"]);
    assert_eq!(list(&["reference=me/bb:*"]), ["me/bb:1"]);
    assert_eq!(list(&["dangling=true"]), ["<none>:<none>"]);
    assert_eq!(list(&["label=berth.test=again"]), ["me/lab:1"]);
    assert_eq!(list(&["label=berth.test"]).len(), 2);
    assert_eq!(list(&["since=alpine", "reference=me/lab"]), ["me/lab:1"]);
    assert!(list(&["before=me/lab:1"]).contains(&"alpine:latest".to_string()));
    d.cli(cli, &["images", "--filter", "dangling=maybe"]).code(1).stderr_has("invalid filter 'dangling=maybe'");
    d.cli(cli, &["images", "--filter", "foo=bar"]).code(1).stderr_has("invalid filter 'foo'");
    d.cli(cli, &["images", "--filter", "before=nosuchimage"]).code(1).stderr_has("No such image: nosuchimage");
});

#[test]
fn distribution_inspect() {
    let d = berth_e2e::Daemon::start();
    let r = d.request("GET", "/distribution/alpine:latest/json", None);
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(v["Descriptor"]["mediaType"], "application/vnd.oci.image.index.v1+json", "{v}");
    assert!(v["Descriptor"]["digest"].as_str().unwrap_or("").starts_with("sha256:"), "{v}");
    let platforms = v["Platforms"].as_array().cloned().unwrap_or_default();
    assert!(platforms.contains(&serde_json::json!({"architecture": "amd64", "os": "linux"})), "{v}");
    assert!(platforms.contains(&serde_json::json!({"architecture": "arm64", "os": "linux", "variant": "v8"})), "{v}");
    let r = d.request("GET", &format!("/distribution/{}/test/busybox:latest/json", registry()), None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["Platforms"], serde_json::json!([{"architecture": "amd64", "os": "linux"}]));
    let r = d.request("GET", &format!("/distribution/{}/test/nosuch:latest/json", registry()), None);
    assert_eq!(r.status, 404, "{r:?}");
    // Nothing was stored.
    assert_eq!(d.request("GET", "/images/json", None).json(), serde_json::json!([]));
}

both!(fn zstd_layers_pull_run_and_push_back_unchanged(d, cli) {
    let reg = TestRegistry::start(Auth::None, false, false);
    let addr = reg.addr();
    reg.seed_with(&addr, "test/busybox", "me/zbox:1", false, &["--format", "oci", "--dest-compress-format", "zstd", "--dest-compress-level", "3"]);
    let image = format!("{addr}/me/zbox:1");
    d.cli(cli, &["pull", &image]).ok().stdout_has("Pull complete");
    d.cli(cli, &["run", "--rm", &image, "echo", "zstd-ok"]).ok().stdout_has("zstd-ok");
    // Pushed back elsewhere, the zstd blobs and the OCI manifest go up as they came.
    let other = TestRegistry::start(Auth::None, false, false);
    let target = format!("{}/me/zbox:1", other.addr());
    d.cli(cli, &["tag", &image, &target]).ok();
    let pushed = d.cli(cli, &["push", &target]).ok();
    let digest = |r: &str| -> String {
        let out = std::process::Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{r}")])
            .output()
            .expect("run skopeo inspect");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (a, b) = (digest(&image), digest(&target));
    assert_eq!(a, b);
    assert!(a.contains("application/vnd.oci.image.layer.v1.tar+zstd"), "{a}");
    pushed.stdout_has("1: digest: sha256:");
});
