//! `push` through both CLIs against real Debian `docker-registry` instances
//! (berth_e2e::registry): a pulled image goes up byte for byte (same manifest and blob
//! digests as the fixture registry serves), a second push finds every layer there, a
//! committed image is pushed, pulled back and run, a second repository mounts the
//! layers, and a push whose registry dies midway fails cleanly and succeeds when run
//! again.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use berth_e2e::registry::{Auth, TestRegistry, PASSWORD, USER};
use berth_e2e::{both, registry, run_with_input, Cli, Daemon};

fn login(d: &Daemon, cli: Cli, addr: &str) {
    let (cmd, shown) = d.cli_command(cli, &["login", "-u", USER, "--password-stdin", addr]);
    run_with_input(cmd, shown, PASSWORD.as_bytes(), Duration::from_secs(60)).ok();
}

/// `curl` a manifest (any kind) from a registry; `creds` for basic auth, `-k` for TLS.
fn manifest(base: &str, repo: &str, r: &str, creds: bool) -> Vec<u8> {
    let mut c = Command::new("curl");
    c.args(["-sfk", "-H", "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"]);
    if creds {
        c.arg("-u").arg(format!("{USER}:{PASSWORD}"));
    }
    let out = c.arg(format!("{base}/v2/{repo}/manifests/{r}")).output().unwrap();
    assert!(out.status.success(), "curl {base} {repo} {r}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

both!(fn push_pulled_image_gives_identical_digests(d, cli) {
    let reg = TestRegistry::start(Auth::Basic, true, false);
    let addr = reg.addr();
    login(&d, cli, &addr);
    d.cli(cli, &["pull", "alpine"]).ok();
    let target = format!("{addr}/me/alpine:1.0");
    d.cli(cli, &["tag", "alpine", &target]).ok();
    let r = d.cli(cli, &["push", &target]).ok();
    let r = r
        .stdout_has(&format!("The push refers to repository [{addr}/me/alpine]"))
        .stdout_has("Pushed")
        .stdout_has("1.0: digest: sha256:");
    // The fixture's amd64 manifest, byte for byte: same manifest and blob digests.
    let fixture = manifest(&format!("http://{}", registry()), "library/alpine", "sha256:74eb5827fc54837bd1d9b48ea20d3617d8cd15961bfbe7e55d2148b394991852", false);
    let pushed = manifest(&format!("https://{addr}"), "me/alpine", "1.0", true);
    assert_eq!(String::from_utf8_lossy(&pushed), String::from_utf8_lossy(&fixture));
    let digest = "sha256:74eb5827fc54837bd1d9b48ea20d3617d8cd15961bfbe7e55d2148b394991852";
    r.stdout_has(&format!("1.0: digest: {digest} size: {}", fixture.len()));
    let rd = d.cli(cli, &["image", "inspect", "-f", "{{json .RepoDigests}}", "alpine"]).ok();
    rd.stdout_has(&format!("{addr}/me/alpine@{digest}"));
    // Again: every layer is already there.
    d.cli(cli, &["push", &target]).ok().stdout_has("Layer already exists").stdout_lacks("Pushed");
    // Without a login the registry refuses.
    d.cli(cli, &["logout", &addr]).ok();
    d.cli(cli, &["push", &target]).code(1);
    // An unknown tag is Docker's error.
    login(&d, cli, &addr);
    d.cli(cli, &["push", &format!("{addr}/me/nosuch:1")])
        .code(1)
        .stderr_has(&format!("An image does not exist locally with the tag: {addr}/me/nosuch"));
});

both!(fn push_committed_image_and_mount_across_repositories(d, cli) {
    let reg = TestRegistry::start(Auth::None, false, false);
    let addr = reg.addr();
    let base = format!("{}/test/busybox", registry());
    d.cli(cli, &["run", "--name", "c1", &base, "sh", "-c", "echo made-here > /made"]).ok();
    let target = format!("{addr}/me/made:1");
    d.cli(cli, &["commit", "--change", "CMD [\"cat\", \"/made\"]", "c1", &target]).ok();
    let r = d.cli(cli, &["push", &target]).ok();
    assert_eq!(r.stdout.matches("Pushed").count(), 2, "{r:?}");
    let id = d.cli(cli, &["image", "inspect", "-f", "{{.Id}}", &target]).ok().out().to_string();
    d.cli(cli, &["rm", "c1"]).ok();
    d.cli(cli, &["rmi", &target]).ok();
    d.cli(cli, &["pull", &target]).ok();
    assert_eq!(d.cli(cli, &["image", "inspect", "-f", "{{.Id}}", &target]).ok().out(), id);
    d.cli(cli, &["run", "--rm", &target]).ok().stdout_has("made-here");
    // The same image in another repository of the same registry: layers mounted.
    let other = format!("{addr}/other/made:1");
    d.cli(cli, &["tag", &target, &other]).ok();
    let r = d.cli(cli, &["push", &other]).ok();
    r.stdout_has("Mounted from me/made").stdout_lacks("Pushed");
});

#[test]
fn push_interrupted_midway_fails_cleanly_then_succeeds() {
    let mut reg = TestRegistry::start(Auth::None, false, false);
    let addr = reg.addr();
    let d = Daemon::start();
    let base = format!("{}/test/busybox", registry());
    // 24 MiB of random bytes: the upload outlasts the moment the test freezes the registry.
    d.berth(&["run", "--name", "big", &base, "sh", "-c", "head -c 25165824 /dev/urandom > /big"]).ok();
    let target = format!("{addr}/me/big:1");
    d.berth(&["commit", "big", &target]).ok();
    // Through the API, to see the progress lines a CLI off a terminal does not print:
    // once bytes are going up, the registry is frozen (the upload hangs mid-blob), then
    // killed (the connection resets, retries are refused).
    let sock = d.host().trim_start_matches("unix://").to_string();
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    write!(
        s,
        "POST /images/{addr}/me/big/push?tag=1 HTTP/1.1\r\nHost: x\r\nX-Registry-Auth: e30=\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("\"Pushing\"") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    reg.freeze();
    reg.kill();
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 || String::from_utf8_lossy(&seen).contains("errorDetail") {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(text.contains("Retrying in 1 second"), "{text}");
    assert!(text.contains("errorDetail"), "{text}");
    assert!(!text.contains("digest: sha256:"), "{text}");
    let rd = d.berth(&["image", "inspect", "-f", "{{json .RepoDigests}}", &target]).ok();
    assert_eq!(rd.out(), "[]");
    let ingest = d.dir().join("root/image/ingest");
    let left: Vec<_> = std::fs::read_dir(&ingest).map(|r| r.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "left in ingest/: {left:?}");
    reg.restart();
    let r = d.docker(&["push", &target]).ok();
    r.stdout_has("1: digest: sha256:");
    d.berth(&["image", "inspect", "-f", "{{json .RepoDigests}}", &target]).ok().stdout_has(&format!("{addr}/me/big@sha256:"));
}
