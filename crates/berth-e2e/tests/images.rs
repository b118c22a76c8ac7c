//! Images through the CLI: pull of each manifest kind, images table, tag, rmi.
//! Every case runs through both `berth` and the real `docker` CLI.

use berth_e2e::{both, cells, is_hex, registry};

both!(fn pull_multi_platform_index(d, cli) {
    let r = d.cli(cli, &["pull", "alpine"]).ok();
    let r = r
        .stdout_has("Using default tag: latest")
        .stdout_has("latest: Pulling from library/alpine")
        .stdout_has("Pull complete")
        .stdout_has("Digest: sha256:")
        .stdout_has("Status: Downloaded newer image for alpine:latest");
    assert_eq!(r.lines().last().map(String::as_str), Some("docker.io/library/alpine:latest"), "{r:?}");
    // The amd64 manifest was chosen out of the index.
    let arch = d.cli(cli, &["image", "inspect", "-f", "{{.Architecture}} {{.Os}}", "alpine"]).ok();
    assert_eq!(arch.out(), "amd64 linux");
    let again = d.cli(cli, &["pull", "alpine"]).ok();
    again.stdout_has("Status: Image is up to date for alpine:latest").stdout_lacks("Pull complete");
});

both!(fn pull_oci_manifest(d, cli) {
    d.cli(cli, &["pull", "busybox"])
        .ok()
        .stdout_has("latest: Pulling from library/busybox")
        .stdout_has("Status: Downloaded newer image for busybox:latest");
    d.cli(cli, &["run", "--rm", "busybox", "sh", "-c", "echo ok"]).ok().stdout_has("ok\n");
});

both!(fn pull_two_layers(d, cli) {
    let r = d.cli(cli, &["pull", "redis"]).ok();
    assert_eq!(r.stdout.matches("Pull complete").count(), 2, "{r:?}");
    let hist = d.cli(cli, &["image", "inspect", "-f", "{{len .RootFS.Layers}}", "redis"]).ok();
    assert_eq!(hist.out(), "2");
    d.cli(cli, &["run", "--rm", "redis", "redis-server", "--version"]).ok().stdout_has("Redis server v=");
    let cfg = d.cli(cli, &["image", "inspect", "-f", "{{json .Config.Cmd}} {{json .Config.ExposedPorts}}", "redis"]).ok();
    assert_eq!(cfg.out(), r#"["redis-server","--protected-mode","no"] {"6379/tcp":{}}"#);
    // alpine shares redis's first layer.
    d.cli(cli, &["pull", "alpine"]).ok().stdout_has("Already exists");
});

both!(fn pull_non_hub_registry(d, cli) {
    let reference = format!("{}/test/busybox", registry());
    let r = d.cli(cli, &["pull", &reference]).ok();
    r.stdout_has("latest: Pulling from test/busybox")
        .stdout_has(&format!("Status: Downloaded newer image for {reference}:latest"))
        .stdout_has(&format!("\n{reference}:latest\n"));
    let images = d.cli(cli, &["images", "--format", "{{.Repository}}:{{.Tag}}"]).ok();
    assert_eq!(images.lines(), vec![format!("{reference}:latest")]);
    d.cli(cli, &["pull", &format!("{}/test/nosuch", registry())])
        .code(1)
        .stderr_has(&format!("manifest for {}/test/nosuch:latest not found", registry()));
});

both!(fn images_table_and_quiet(d, cli) {
    d.cli(cli, &["pull", "hello-world"]).ok();
    d.cli(cli, &["pull", "busybox"]).ok();
    let r = d.cli(cli, &["images"]).ok();
    let lines = r.lines();
    assert_eq!(cells(&lines[0]), ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], "{r:?}");
    assert_eq!(lines.len(), 3, "{r:?}");
    for (repo, line) in [("busybox", &lines[1..]), ("hello-world", &lines[1..])] {
        let row = line.iter().find(|l| cells(l)[0] == repo).unwrap_or_else(|| panic!("no {repo}: {r:?}"));
        let c = cells(row);
        assert_eq!(c.len(), 5, "{r:?}");
        assert_eq!(c[1], "latest");
        assert!(is_hex(&c[2], 12), "{r:?}");
        assert!(c[4].ends_with("B"), "{r:?}");
    }
    let q = d.cli(cli, &["images", "-q"]).ok();
    assert_eq!(q.lines().len(), 2, "{q:?}");
    assert!(q.lines().iter().all(|l| is_hex(l, 12)), "{q:?}");
    // The reference CLI renders the same table from the same answer.
    let reference = d.docker(&["images", "--format", "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Size}}"]).ok();
    let ours = d.cli(cli, &["images", "--format", "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Size}}"]).ok();
    assert_eq!(ours.stdout, reference.stdout);
});

both!(fn tag_and_untag(d, cli) {
    d.cli(cli, &["pull", "alpine"]).ok();
    let r = d.cli(cli, &["tag", "alpine", "myalpine:v1"]).ok();
    assert_eq!(r.stdout, "", "{r:?}");
    let images = d.cli(cli, &["images"]).ok();
    let row = images.lines().into_iter().find(|l| l.starts_with("myalpine ")).unwrap_or_else(|| panic!("{images:?}"));
    assert_eq!(cells(&row)[1], "v1");
    let ids = d.cli(cli, &["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]).ok();
    let id_of = |name: &str| ids.lines().into_iter().find(|l| l.starts_with(name)).map(|l| l.split(' ').nth(1).unwrap_or_default().to_string());
    assert_eq!(id_of("myalpine:v1"), id_of("alpine:latest"), "{ids:?}");

    let r = d.cli(cli, &["rmi", "myalpine:v1"]).ok();
    assert_eq!(r.stdout, "Untagged: myalpine:v1\n", "{r:?}");
    d.cli(cli, &["images"]).ok().stdout_lacks("myalpine");
    d.cli(cli, &["rmi", "nosuchimage"]).code(1).stderr_has("No such image: nosuchimage:latest");
});

both!(fn rmi_image_in_use_conflicts(d, cli) {
    d.cli(cli, &["run", "hello-world"]).ok();
    d.cli(cli, &["rmi", "hello-world"])
        .code(1)
        .stderr_has(r#"conflict: unable to remove repository reference "hello-world" (must force) - container "#)
        .stderr_has(" is using its referenced image ");
    // After removing the container the image goes, with its tag and digest.
    let ids = d.cli(cli, &["ps", "-a", "-q"]).ok().stdout;
    for id in ids.lines() {
        d.cli(cli, &["rm", id]).ok();
    }
    let r = d.cli(cli, &["rmi", "hello-world"]).ok();
    r.stdout_has("Untagged: hello-world:latest").stdout_has("Deleted: sha256:");
    assert!(d.cli(cli, &["images", "-q"]).ok().out().is_empty());
});
