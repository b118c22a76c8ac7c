//! `docker build` (the classic builder, `POST /build`) through `berth`, the real
//! `docker` CLI (which falls back to the classic builder without buildx) and docker-py:
//! FROM/RUN/CMD run afterwards, the cache (hits on a rebuild, after a daemon restart,
//! a miss after a copied file changed), multi-stage with `COPY --from` and `--target`,
//! build args, `.dockerignore`, heredocs, ONBUILD, the image config and history Docker
//! writes, a failing RUN (its code and text) and a bad Dockerfile that leaves the store
//! unchanged.

use std::fs;
use std::path::{Path, PathBuf};

use berth_e2e::{Cli, Daemon};

fn write_ctx(d: &Daemon, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = d.dir().join(name);
    let _ = fs::remove_dir_all(&dir);
    for (f, body) in files {
        let p = dir.join(f);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, body).expect("write");
    }
    dir
}

fn arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn image_count(d: &Daemon) -> usize {
    d.request("GET", "/v1.47/images/json?all=1", None).json().as_array().map(Vec::len).unwrap_or(0)
}

/// The image's config blob (history included), read from the store.
fn config_blob(d: &Daemon, name: &str) -> serde_json::Value {
    let i = d.request("GET", &format!("/v1.47/images/{name}/json"), None).json();
    let id = i["Id"].as_str().expect("id").trim_start_matches("sha256:").to_string();
    let raw = fs::read(d.dir().join("root/image/blobs/sha256").join(id)).expect("config blob");
    serde_json::from_slice(&raw).expect("config json")
}

const HELLO: &str = "FROM busybox\nCOPY greeting.txt /greeting\nRUN cat /greeting > /copy && echo built\nCMD [\"cat\", \"/copy\"]\n";

/// FROM/COPY/RUN/CMD through both CLIs: Docker's output shape, the image runs, a
/// rebuild takes every step from the cache (also after a daemon restart), and editing
/// the copied file misses from the COPY on.
#[test]
fn build_run_rebuild_from_cache_and_miss_after_an_edit() {
    let mut d = Daemon::start();
    for (cli, tag) in [(Cli::Berth, "me/hello:berth"), (Cli::Docker, "me/hello:docker")] {
        let ctx = write_ctx(&d, &format!("ctx-{tag}").replace([':', '/'], "-"), &[("Dockerfile", HELLO), ("greeting.txt", &format!("hello from {tag}\n"))]);
        let r = d.cli(cli, &["build", "-t", tag, &arg(&ctx)]).ok();
        let built = r.lines().iter().find_map(|l| l.strip_prefix("Successfully built ").map(String::from)).expect("id");
        r.stdout_has("Sending build context to Docker daemon")
            .stdout_has("Step 1/4 : FROM busybox\n")
            .stdout_has("Step 2/4 : COPY greeting.txt /greeting\n")
            .stdout_has("Step 3/4 : RUN cat /greeting > /copy && echo built\n")
            .stdout_has(" ---> Running in ")
            .stdout_has("built\nRemoving intermediate container ")
            .stdout_has("Step 4/4 : CMD [\"cat\", \"/copy\"]\n")
            .stdout_has("Successfully built ")
            .stdout_has(&format!("Successfully tagged {tag}\n"));
        d.cli(cli, &["run", "--rm", tag]).ok().stdout_has("hello");
        // Rebuild: all from the cache, same image.
        let r = d.cli(cli, &["build", "-t", tag, &arg(&ctx)]).ok();
        assert_eq!(r.stdout.matches(" ---> Using cache\n").count(), 3, "{r:?}");
        r.stdout_lacks("Running in").stdout_has(&format!("Successfully built {built}\n"));
        // An edit of the copied file: COPY and everything after it run again.
        let changed = format!("changed for {tag}\n");
        fs::write(ctx.join("greeting.txt"), &changed).expect("edit");
        let r = d.cli(cli, &["build", "-t", tag, &arg(&ctx)]).ok();
        r.stdout_lacks("Using cache").stdout_has("Running in");
        d.cli(cli, &["run", "--rm", tag]).ok().stdout_has("changed");
        // A touch (mtime only) is still a hit.
        fs::write(ctx.join("greeting.txt"), &changed).expect("rewrite");
        let r = d.cli(cli, &["build", "-t", tag, &arg(&ctx)]).ok();
        assert_eq!(r.stdout.matches("Using cache").count(), 3, "{r:?}");
    }
    // No intermediate container is left behind, and no context: small contexts were
    // unpacked into the daemon's own tmpfs (`<exec-root>/builder`), emptied after.
    assert_eq!(d.berth(&["ps", "-aq"]).ok().stdout.trim(), "");
    let tmpfs = d.exec_root.join("builder");
    let mounts = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let line = mounts.lines().find(|l| l.split(' ').nth(4) == Some(tmpfs.to_str().expect("utf8"))).expect("the tmpfs is mounted");
    assert!(line.contains(" - tmpfs ") && line.contains("size=262144k"), "{line}");
    assert_eq!(fs::read_dir(&tmpfs).expect("ls").count(), 0, "contexts left in the tmpfs");
    let disk_tmp = d.data_root.join("builder/tmp");
    assert_eq!(fs::read_dir(&disk_tmp).map(|r| r.count()).unwrap_or(0), 0, "build dirs left on disk");
    // `images` leaves out the intermediate images (untagged parents), `-a` lists them,
    // as Docker's.
    for cli in [Cli::Berth, Cli::Docker] {
        let shown = d.cli(cli, &["images", "-q"]).ok().stdout.lines().count();
        let all = d.cli(cli, &["images", "-aq"]).ok().stdout.lines().count();
        assert!(all > shown, "images -a {all} vs images {shown}");
        d.cli(cli, &["images"]).ok().stdout_has("me/hello");
    }
    // The image: busybox's layer + COPY + RUN, a parent, Docker's config.
    let i = d.request("GET", "/v1.47/images/me/hello:berth/json", None).json();
    assert_eq!(i["RootFS"]["Layers"].as_array().map(Vec::len), Some(3), "{i}");
    assert!(i["Parent"].as_str().is_some_and(|p| p.starts_with("sha256:")), "{i}");
    assert_eq!(i["Config"]["Cmd"], serde_json::json!(["cat", "/copy"]));
    // The cache is on disk: a restarted daemon still hits.
    d.restart();
    let ctx = d.dir().join("ctx-me-hello-berth");
    let r = d.berth(&["build", "-t", "me/hello:berth", &arg(&ctx)]).ok();
    assert_eq!(r.stdout.matches("Using cache").count(), 3, "{r:?}");
    // --no-cache runs everything again; -q prints only the id.
    let r = d.berth(&["build", "--no-cache", "-q", &arg(&ctx)]).ok();
    assert!(r.stdout.trim().starts_with("sha256:") && r.stdout.lines().count() == 1, "{r:?}");
    // builder prune forgets the cache: the next build misses.
    d.docker(&["builder", "prune", "-f"]).ok().stdout_has("Deleted build cache objects:").stdout_has("Total reclaimed space: 0B");
    d.berth(&["builder", "prune", "-f"]).ok().stdout_lacks("Deleted").stdout_has("Total reclaimed space: 0B");
    let r = d.berth(&["build", &arg(&ctx)]).ok();
    r.stdout_lacks("Using cache");
}

/// Multi-stage: a busybox binary copied out of a build stage, `--target`, ARGs before
/// FROM, build args (and the warning for an unused one), `.dockerignore` with an
/// exception, through both CLIs.
#[test]
fn multi_stage_target_build_args_and_dockerignore() {
    let d = Daemon::start();
    let df = "ARG BASE=busybox\n\
FROM $BASE AS tools\n\
RUN mkdir -p /out && cp /bin/busybox /out/busybox-static\n\
FROM tools AS test\n\
RUN echo testing-stage > /t\n\
FROM busybox\n\
ARG V=default\n\
COPY --from=tools /out/busybox-static /usr/local/bin/busybox\n\
COPY . /ctx/\n\
RUN echo \"v=$V\" > /v.txt\n\
CMD [\"/usr/local/bin/busybox\", \"cat\", \"/v.txt\"]\n";
    let ctx = write_ctx(
        &d,
        "ms",
        &[
            ("Dockerfile", df),
            (".dockerignore", "*.secret\n!keep.secret\nsub/skip\n"),
            ("a.secret", "no"),
            ("keep.secret", "yes"),
            ("b.txt", "b"),
            ("sub/skip", "no"),
            ("sub/ok", "ok"),
        ],
    );
    for (cli, tag) in [(Cli::Berth, "ms:berth"), (Cli::Docker, "ms:docker")] {
        let r = d.cli(cli, &["build", "-t", tag, "--build-arg", "V=7", "--build-arg", "UNUSED=1", &arg(&ctx)]).ok();
        r.stdout_has("Step 1/8 : FROM $BASE AS tools")
            .stdout_lacks("testing-stage")
            .stdout_has("[Warning] One or more build-args [UNUSED] were not consumed");
        d.cli(cli, &["run", "--rm", tag]).ok().stdout_has("v=7");
        let ls = d.cli(cli, &["run", "--rm", tag, "find", "/ctx", "-type", "f"]).ok();
        ls.stdout_has("/ctx/b.txt").stdout_has("/ctx/keep.secret").stdout_has("/ctx/sub/ok").stdout_lacks("a.secret").stdout_lacks("skip");
        // The target stage: only what it needs (tools and test).
        let t = format!("{tag}-test");
        let r = d.cli(cli, &["build", "--target", "test", "-t", &t, &arg(&ctx)]).ok();
        r.stdout_has("Step 4/4 : RUN echo testing-stage > /t").stdout_lacks("COPY");
        d.cli(cli, &["run", "--rm", &t, "cat", "/t"]).ok().stdout_has("testing-stage");
        d.cli(cli, &["build", "--target", "nope", &arg(&ctx)]).code(1).stderr_has("failed to reach build target nope in Dockerfile");
    }
    // The default value when no build arg is given.
    d.berth(&["build", "-t", "ms:default", &arg(&ctx)]).ok();
    d.berth(&["run", "--rm", "ms:default"]).ok().stdout_has("v=default");
}

/// A failing RUN: its output, Docker's message and exit code, its container left
/// (rm without forcerm); a Dockerfile with an unknown instruction: Docker's parse error
/// and nothing added to the store.
#[test]
fn failing_run_and_bad_dockerfile() {
    let d = Daemon::start();
    d.berth(&["pull", "busybox"]).ok();
    for cli in [Cli::Berth, Cli::Docker] {
        let ctx = write_ctx(&d, "fail", &[("Dockerfile", "FROM busybox\nRUN echo bad && exit 3\n")]);
        d.cli(cli, &["build", &arg(&ctx)])
            .code(3)
            .stdout_has("bad\n")
            .stderr_has("The command '/bin/sh -c echo bad && exit 3' returned a non-zero code: 3");
        let before = image_count(&d);
        let ctx = write_ctx(&d, "bad", &[("Dockerfile", "FROM busybox\n\nRUNN x\n")]);
        d.cli(cli, &["build", "-t", "never", &arg(&ctx)])
            .code(1)
            .stderr_has("dockerfile parse error on line 3: unknown instruction: RUNN");
        assert_eq!(image_count(&d), before);
        assert_eq!(d.request("GET", "/v1.47/images/never/json", None).status, 404);
    }
    // A bad tag: refused before anything is built (the CLIs check it themselves, the
    // API answers 400).
    for cli in [Cli::Berth, Cli::Docker] {
        d.cli(cli, &["build", "-t", "BAD", &arg(&d.dir().join("bad"))])
            .code(125)
            .stderr_has("invalid reference format: repository name (library/BAD) must be lowercase");
    }
    let r = d.request("POST", "/v1.47/build?t=BAD", None);
    assert_eq!(r.status, 400, "{r:?}");
    // The failed RUN's containers stayed (Docker's rm=true, forcerm=false).
    assert_eq!(d.berth(&["ps", "-aq"]).ok().lines().len(), 2);
    // --force-rm removes it too.
    let ctx = write_ctx(&d, "fail2", &[("Dockerfile", "FROM busybox\nRUN exit 5\n")]);
    d.berth(&["build", "--force-rm", &arg(&ctx)]).code(5);
    assert_eq!(d.berth(&["ps", "-aq"]).ok().lines().len(), 2);
}

/// Heredocs (RUN and COPY), ONBUILD triggers run in a child build, every config
/// instruction as Docker writes it into the image config, and the history.
#[test]
fn heredocs_onbuild_config_and_history() {
    let d = Daemon::start();
    let df = r#"FROM busybox
MAINTAINER someone <x@y>
ARG V=1
ENV A=1 B="two words"
LABEL k=v
EXPOSE 80 53/udp
WORKDIR /app/sub
RUN <<EOF
echo line1 > /app/run.txt
echo "a=$A" >> /app/run.txt
EOF
COPY <<EOF /app/copied.txt
copied $A
EOF
COPY --chown=nobody:nogroup --chmod=640 f.txt owned.txt
USER nobody
VOLUME ["/data"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=3 CMD true
ONBUILD RUN echo triggered > /tmp/trigger
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/run.txt"]
"#;
    let ctx = write_ctx(&d, "cfg", &[("Dockerfile", df), ("f.txt", "f")]);
    d.docker(&["build", "--build-arg", "V=2", "-t", "cfg", &arg(&ctx)]).ok();
    d.berth(&["run", "--rm", "cfg"]).ok().stdout_has("line1\na=1");
    d.berth(&["run", "--rm", "cfg", "cat /app/copied.txt"]).ok().stdout_has("copied 1");
    d.berth(&["run", "--rm", "cfg", "ls -ln /app/sub/owned.txt"]).ok().stdout_has("-rw-r-----    1 65534    65534");
    let i = d.request("GET", "/v1.47/images/cfg/json", None).json();
    let c = &i["Config"];
    let env: Vec<&str> = c["Env"].as_array().expect("env").iter().filter_map(|e| e.as_str()).filter(|e| !e.starts_with("PATH=")).collect();
    assert_eq!(env, ["A=1", "B=two words"], "{c}");
    assert_eq!(c["Labels"], serde_json::json!({"k": "v"}));
    assert_eq!(c["ExposedPorts"], serde_json::json!({"53/udp": {}, "80/tcp": {}}));
    assert_eq!(c["WorkingDir"], "/app/sub");
    assert_eq!(c["User"], "nobody");
    assert_eq!(c["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(c["StopSignal"], "SIGINT");
    assert_eq!(c["OnBuild"], serde_json::json!(["RUN echo triggered > /tmp/trigger"]));
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c["Cmd"], serde_json::json!(["cat /app/run.txt"]));
    assert_eq!(i["Author"], "someone <x@y>");
    let blob = config_blob(&d, "cfg");
    // Healthcheck as Docker writes it into the image config (durations in ns).
    assert_eq!(blob["config"]["Healthcheck"], serde_json::json!({"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000i64, "Retries": 3}));
    let h: Vec<&serde_json::Value> = blob["history"].as_array().expect("history").iter().collect();
    let by = |needle: &str| h.iter().find(|e| e["created_by"].as_str().is_some_and(|s| s.contains(needle))).copied().unwrap_or_else(|| panic!("{needle} in {h:?}"));
    assert_eq!(by("#(nop)  CMD")["created_by"], "/bin/sh -c #(nop)  CMD [\"cat /app/run.txt\"]");
    assert_eq!(by("#(nop)  CMD")["empty_layer"], true);
    assert!(by("echo line1")["created_by"].as_str().is_some_and(|s| s.starts_with("|1 V=2 /bin/sh -c ")), "{h:?}");
    assert!(by("echo line1").get("empty_layer").is_none());
    // ONBUILD: the trigger runs in a build FROM this image, not in its own.
    let child = write_ctx(&d, "child", &[("Dockerfile", "FROM cfg\nCMD [\"cat /tmp/trigger\"]\n")]);
    d.berth(&["build", "-t", "child", &arg(&child)]).ok().stdout_has("# Executing 1 build trigger");
    d.berth(&["run", "--rm", "child"]).ok().stdout_has("triggered");
    d.berth(&["run", "--rm", "cfg", "test -e /tmp/trigger || echo absent"]).ok().stdout_has("absent");
    let ci = d.request("GET", "/v1.47/images/child/json", None).json();
    assert_eq!(ci["Config"]["OnBuild"], serde_json::Value::Null, "{ci}");
}

/// `-f -`, a Dockerfile outside the context, a Dockerfile on stdin (`build -`) and a
/// tar on stdin, `--iidfile`, `--label`.
#[test]
fn dockerfile_locations_and_stdin() {
    let d = Daemon::start();
    let ctx = write_ctx(&d, "loc", &[("a.txt", "from-context\n"), ("sub/Other", "FROM busybox\nCOPY a.txt /a\n")]);
    let outside = d.dir().join("outside.Dockerfile");
    fs::write(&outside, "FROM busybox\nCOPY a.txt /b\n").expect("write");
    for cli in [Cli::Berth, Cli::Docker] {
        d.cli(cli, &["build", "-f", &arg(&ctx.join("sub/Other")), "-t", "loc1", &arg(&ctx)]).ok();
        d.cli(cli, &["run", "--rm", "loc1", "cat", "/a"]).ok().stdout_has("from-context");
        d.cli(cli, &["build", "-f", &arg(&outside), "-t", "loc2", &arg(&ctx)]).ok();
        d.cli(cli, &["run", "--rm", "loc2", "cat", "/b"]).ok().stdout_has("from-context");
        d.cli_input(cli, &["build", "-f", "-", "-t", "loc3", &arg(&ctx)], b"FROM busybox\nCOPY a.txt /c\n").ok();
        d.cli(cli, &["run", "--rm", "loc3", "cat", "/c"]).ok().stdout_has("from-context");
        d.cli_input(cli, &["build", "-t", "loc4", "-"], b"FROM busybox\nRUN echo stdin > /d\n").ok();
        d.cli(cli, &["run", "--rm", "loc4", "cat", "/d"]).ok().stdout_has("stdin");
        let iid = d.dir().join("iid");
        d.cli(cli, &["build", "--label", "a=b", "--iidfile", &arg(&iid), "-f", &arg(&outside), &arg(&ctx)]).ok();
        let id = fs::read_to_string(&iid).expect("iidfile");
        let i = d.request("GET", &format!("/v1.47/images/{id}/json"), None).json();
        assert_eq!(i["Config"]["Labels"]["a"], "b", "{i}");
    }
    // A tar on stdin.
    let tar_path = d.dir().join("ctx.tar");
    let st = std::process::Command::new("tar").arg("-C").arg(&ctx).arg("-cf").arg(&tar_path).arg(".").status().expect("tar");
    assert!(st.success());
    let body = fs::read(&tar_path).expect("read tar");
    d.cli_input(Cli::Berth, &["build", "-f", "sub/Other", "-t", "loc5", "-"], &body).ok();
    d.berth(&["run", "--rm", "loc5", "cat", "/a"]).ok().stdout_has("from-context");
    // Compressed tars on stdin, as Docker's daemon takes them (the CLI passes them on
    // as they are): gzip, bzip2, xz, zstd.
    for (tool, cli) in [("gzip", Cli::Docker), ("bzip2", Cli::Docker), ("xz", Cli::Berth), ("zstd", Cli::Docker)] {
        let out = std::process::Command::new(tool).arg("-c").arg(&tar_path).output().expect(tool);
        assert!(out.status.success(), "{tool}");
        let tag = format!("loc-{tool}");
        d.cli_input(cli, &["build", "-f", "sub/Other", "-t", &tag, "-"], &out.stdout).ok();
        d.cli(cli, &["run", "--rm", &tag, "cat", "/a"]).ok().stdout_has("from-context");
    }
}

/// docker-py's `images.build`: the image and the log stream, a failing build raises
/// BuildError with Docker's text, and `buildargs`/`labels` reach the image.
#[test]
fn docker_py_builds() {
    let d = Daemon::start();
    let ctx = write_ctx(&d, "py", &[("Dockerfile", "FROM busybox\nARG V\nRUN echo \"v=$V\" > /v\nCMD [\"cat\", \"/v\"]\n")]);
    let fail = write_ctx(&d, "pyfail", &[("Dockerfile", "FROM busybox\nRUN exit 2\n")]);
    let script = format!(
        r#"import docker
c = docker.DockerClient(base_url="{host}")
img, logs = c.images.build(path="{ctx}", tag="py:1", buildargs={{"V": "9"}}, labels={{"l": "x"}})
logs = list(logs)
assert any("Successfully built" in l.get("stream", "") for l in logs), logs
assert "py:1" in img.tags, img.tags
assert img.labels == {{"l": "x"}}, img.labels
print(c.containers.run("py:1", remove=True).decode().strip())
try:
    c.images.build(path="{fail}")
    raise SystemExit("no error")
except docker.errors.BuildError as e:
    print("ERR:" + str(e))
"#,
        host = d.host(),
        ctx = arg(&ctx),
        fail = arg(&fail)
    );
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c").arg(&script);
    berth_e2e::run_with_timeout(cmd, "python3 -c <docker-py build>".into(), std::time::Duration::from_secs(180))
        .ok()
        .stdout_has("v=9")
        .stdout_has("ERR:The command '/bin/sh -c exit 2' returned a non-zero code: 2");
}

/// ADD: a local tar (plain and gzip) extracted, a URL fetched from a server this test
/// starts on 127.0.0.1 (mode 0600, as Docker); `--cache-from` takes hits only from the
/// images it names (and their ancestors).
#[test]
fn add_archives_urls_and_cache_from() {
    let d = Daemon::start();
    let srv_dir = d.dir().join("www");
    fs::create_dir_all(&srv_dir).expect("mkdir");
    fs::write(srv_dir.join("remote.txt"), "from-url\n").expect("write");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut server = std::process::Command::new("python3")
        .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
        .arg(&srv_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("http server");
    berth_e2e::wait_until(std::time::Duration::from_secs(10), "http server", || std::net::TcpStream::connect(("127.0.0.1", port)).ok());
    let ctx = write_ctx(&d, "add", &[("in/a.txt", "a\n"), ("in/sub/b.txt", "b\n")]);
    for (name, flags) in [("t.tar", "-cf"), ("t.tgz", "-czf")] {
        let st = std::process::Command::new("tar").arg(flags).arg(ctx.join(name)).arg("-C").arg(ctx.join("in")).arg(".").status().expect("tar");
        assert!(st.success());
    }
    let df = format!("FROM busybox\nADD t.tar /x/\nADD t.tgz /y\nADD http://127.0.0.1:{port}/remote.txt /dl/\nCOPY t.tar /z/\n");
    fs::write(ctx.join("Dockerfile"), df).expect("write");
    d.berth(&["build", "-t", "add", &arg(&ctx)]).ok();
    let out = d.berth(&["run", "--rm", "add", "sh", "-c", "cat /x/a.txt /x/sub/b.txt /y/a.txt /dl/remote.txt; stat -c %a /dl/remote.txt; ls /z"]).ok();
    assert_eq!(out.stdout, "a\nb\na\nfrom-url\n600\nt.tar\n", "{out:?}");
    let _ = server.kill();
    let _ = server.wait();
    // --cache-from: the image just built (and its ancestors) may serve hits; an
    // unrelated image may not.
    let ctx2 = write_ctx(&d, "cf", &[("Dockerfile", "FROM busybox\nRUN echo cf > /cf\nCMD [\"cat\", \"/cf\"]\n")]);
    d.berth(&["build", "-t", "cf:1", &arg(&ctx2)]).ok();
    let r = d.docker(&["build", "--cache-from", "cf:1", &arg(&ctx2)]).ok();
    assert_eq!(r.stdout.matches("Using cache").count(), 2, "{r:?}");
    let r = d.docker(&["build", "--cache-from", "busybox", &arg(&ctx2)]).ok();
    r.stdout_lacks("Using cache");
}

/// `--cache-from` an image that carries no local cache entries (saved, removed, the
/// build cache pruned, loaded back: what a pulled image is): its history serves every
/// step (Docker's parent-chain + `created_by` matching), the last step is the source
/// image itself; an edited COPY source misses from there on. Config-only steps make a
/// container as Docker's classic builder does (`Running in`, then removed); COPY none.
#[test]
fn cache_from_an_image_without_cache_entries() {
    let d = Daemon::start();
    for cli in [Cli::Berth, Cli::Docker] {
        let tag = format!("cfsrc:{}", if cli == Cli::Berth { "berth" } else { "docker" });
        let df = "FROM busybox\nENV A=1\nCOPY f.txt /f.txt\nRUN cat /f.txt > /g\nCMD [\"cat\", \"/g\"]\n";
        let body = format!("from {tag}\n");
        let ctx = write_ctx(&d, &format!("cf-{}", tag.replace(':', "-")), &[("Dockerfile", df), ("f.txt", &body)]);
        let r = d.cli(cli, &["build", "-t", &tag, &arg(&ctx)]).ok();
        // Config-only steps: Docker's lines, a container made and removed; COPY: none.
        let step = |n: usize| {
            r.stdout.split(&format!("Step {n}/5 : ")).nth(1).and_then(|s| s.split(&format!("Step {}/5", n + 1)).next()).unwrap_or_default().to_string()
        };
        let env_step = step(2);
        let lines: Vec<&str> = env_step.lines().collect();
        if cli == Cli::Berth {
            // (The second round hits the first's ENV.)
            assert_eq!(lines.len(), 4, "{r:?}");
            let ctr = lines[1].strip_prefix(" ---> Running in ").expect("Running in");
            assert_eq!(lines[2], format!("Removing intermediate container {ctr}"), "{r:?}");
            assert!(lines[3].starts_with(" ---> ") && lines[3].len() == 18, "{r:?}");
        }
        assert!(!step(3).contains("Running in"), "{r:?}");
        assert!(step(5).contains("Running in") && step(5).contains("Removing intermediate container"), "{r:?}");
        let img = |name: &str| d.request("GET", &format!("/v1.47/images/{name}/json"), None).json();
        let src = img(&tag)["Id"].as_str().expect("id").to_string();
        let tar = d.dir().join(format!("{}.tar", tag.replace(':', "-")));
        d.cli(cli, &["save", "-o", &arg(&tar), &tag]).ok();
        d.cli(cli, &["rmi", &tag]).ok();
        d.cli(cli, &["builder", "prune", "-f"]).ok();
        d.cli(cli, &["load", "-i", &arg(&tar)]).ok();
        assert_eq!(img(&tag)["Parent"].as_str().unwrap_or_default(), "", "a loaded image has no parent");
        // Without --cache-from nothing is cached any more; with it every step hits
        // and the result is the loaded image.
        let r = d.cli(cli, &["build", "--cache-from", &tag, "-t", "cf-out", &arg(&ctx)]).ok();
        assert_eq!(r.stdout.matches(" ---> Using cache\n").count(), 4, "{r:?}");
        r.stdout_lacks("Running in").stdout_has(&format!("Successfully built {}\n", &src.trim_start_matches("sha256:")[..12]));
        d.cli(cli, &["run", "--rm", "cf-out"]).ok().stdout_has(&body);
        // The restored intermediate images carry the source's history prefix.
        let h = d.request("GET", "/v1.47/images/cf-out/history", None).json();
        assert_eq!(h.as_array().map(Vec::len), d.request("GET", "/v1.47/images/busybox/history", None).json().as_array().map(|a| a.len() + 4), "{h}");
        // An edited COPY source: ENV still hits, COPY and RUN run, CMD too.
        fs::write(ctx.join("f.txt"), "edited\n").expect("edit");
        let r = d.cli(cli, &["build", "--cache-from", &tag, "-t", "cf-out", &arg(&ctx)]).ok();
        assert_eq!(r.stdout.matches(" ---> Using cache\n").count(), 1, "{r:?}");
        r.stdout_has("Running in");
        d.cli(cli, &["run", "--rm", "cf-out"]).ok().stdout_has("edited");
        // An unrelated source serves nothing.
        fs::write(ctx.join("f.txt"), &body).expect("restore");
        d.cli(cli, &["builder", "prune", "-f"]).ok();
        let r = d.cli(cli, &["build", "--cache-from", "busybox", &arg(&ctx)]).ok();
        r.stdout_lacks("Using cache");
    }
}
