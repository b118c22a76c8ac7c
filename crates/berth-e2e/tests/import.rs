//! `docker import` (`POST /images/create?fromSrc=-`) through `berth`, the real `docker`
//! CLI and docker-py: an exported container imported back and run, gzip files, archives
//! larger than the daemon's JSON body cap, URLs fetched by the daemon (from 127.0.0.1),
//! `--change` and `--message`, the import event,
//! broken archives that must leave the store untouched; and `commit`'s `Parent`.

use std::fs;
use std::path::Path;

use berth_e2e::{Cli, Daemon};

fn arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn gzip_file(src: &Path, dst: &Path) {
    let out = fs::File::create(dst).expect("create gz");
    let st = std::process::Command::new("gzip")
        .arg("-c")
        .arg(src)
        .stdout(out)
        .status()
        .expect("run gzip");
    assert!(st.success());
}

/// The image store's entries (layers, records, blobs), sorted.
fn store_listing(d: &Daemon) -> Vec<String> {
    let root = d.dir().join("root/image");
    let mut out = Vec::new();
    for sub in ["layers", "images", "blobs/sha256", "ingest"] {
        if let Ok(rd) = fs::read_dir(root.join(sub)) {
            for e in rd.flatten() {
                out.push(format!("{sub}/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    out.sort();
    out
}

/// `berth export c | berth import - me/flat:1 --change 'CMD ["sh"]'` and the same
/// through docker: the image runs, has one layer, no parent, Docker's config and comment.
#[test]
fn import_an_export_through_stdin_and_run_it() {
    let d = Daemon::start();
    d.berth(&["run", "--name", "src", "busybox", "sh", "-c", "echo imported > /hello"]).ok();
    let tar = d.dir().join("src.tar");
    d.berth(&["export", "-o", &arg(&tar), "src"]).ok();
    let body = fs::read(&tar).expect("read export");
    for (cli, name) in [(Cli::Berth, "me/flat:1"), (Cli::Docker, "me/flat:2")] {
        let r = d.cli_input(cli, &["import", "-", name, "--change", r#"CMD ["sh"]"#], &body).ok();
        let id = r.stdout.trim().to_string();
        assert!(id.starts_with("sha256:") && id.len() == 71, "{r:?}");
        d.cli(cli, &["run", "--rm", name, "echo", "ok"]).ok().stdout_has("ok");
        d.cli(cli, &["run", "--rm", name, "cat", "/hello"]).ok().stdout_has("imported");
        let i = d.request("GET", &format!("/v1.47/images/{name}/json"), None).json();
        assert_eq!(i["Id"], id.as_str());
        assert_eq!(i["Config"]["Cmd"], serde_json::json!(["sh"]), "{i}");
        assert_eq!(i["Comment"], "Imported from -");
        assert_eq!(i["Parent"], "");
        assert_eq!(i["Os"], "linux");
        assert_eq!(i["Architecture"], "amd64");
        assert_eq!(i["RootFS"]["Layers"].as_array().map(Vec::len), Some(1), "{i}");
    }
    // --message becomes the comment; a change Docker does not allow is refused.
    d.docker(&["import", "-m", "my message", &arg(&tar), "me/msg"]).ok();
    let i = d.request("GET", "/v1.47/images/me/msg/json", None).json();
    assert_eq!(i["Comment"], "my message");
    for cli in [Cli::Berth, Cli::Docker] {
        d.cli(cli, &["import", "--change", "RUN true", &arg(&tar), "me/nope"])
            .code(1)
            .stderr_has("RUN is not a valid change command");
    }
    assert!(d.request("GET", "/v1.47/images/me/nope/json", None).status == 404);
}

/// A gzip file through `docker import file`, and an archive larger than the daemon's
/// 16 MiB JSON body cap (streamed, never buffered); each import is an `import` event.
#[test]
fn import_gzip_and_large_files() {
    let d = Daemon::start();
    let work = d.dir().join("work");
    fs::create_dir_all(work.join("tree/etc")).expect("mkdir");
    fs::write(work.join("tree/etc/hello"), "from gzip\n").expect("write");
    // 20 MiB of pseudo-random bytes: gzip cannot shrink it under the cap.
    let mut big = Vec::with_capacity(20 << 20);
    let mut x: u64 = 0x9e3779b97f4a7c15;
    while big.len() < 20 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        big.extend_from_slice(&x.to_le_bytes());
    }
    fs::write(work.join("tree/big"), &big).expect("write big");
    let tar = work.join("t.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(work.join("tree"))
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    let gz = work.join("t.tar.gz");
    gzip_file(&tar, &gz);
    assert!(fs::metadata(&gz).expect("gz").len() > 16 << 20);
    for (cli, name) in [(Cli::Docker, "me/gz:d"), (Cli::Berth, "me/gz:b")] {
        let id = d.cli(cli, &["import", &arg(&gz), name]).ok().stdout.trim().to_string();
        assert!(id.starts_with("sha256:"), "{id}");
        // No shell in this image: read the file back from a created container.
        d.cli(cli, &["create", "--name", &format!("c-{}", &name[6..]), name, "x"]).ok();
        let out = work.join(format!("hello-{}", &name[6..]));
        d.cli(cli, &["cp", &format!("c-{}:/etc/hello", &name[6..]), &arg(&out)]).ok();
        assert_eq!(fs::read_to_string(&out).expect("read"), "from gzip\n");
        let i = d.request("GET", &format!("/v1.47/images/{name}/json"), None).json();
        assert_eq!(i["Size"].as_i64(), Some((20 << 20) + 10), "{i}");
    }
    // Both imports are events of type image with action import.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let ev = d.request("GET", &format!("/v1.47/events?since=0&until={}", now + 1), None).text();
    let imports: Vec<serde_json::Value> = ev
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["Type"] == "image" && e["Action"] == "import")
        .collect();
    assert_eq!(imports.len(), 2, "{ev}");
    assert!(imports.iter().all(|e| e["Actor"]["ID"].as_str().is_some_and(|i| i.starts_with("sha256:"))));
    // bzip2, xz and zstd tars import too (Docker's DecompressStream), to the same
    // layer as the plain tar.
    let small = work.join("small.tar");
    let st = std::process::Command::new("tar").arg("-C").arg(work.join("tree")).arg("-cf").arg(&small).arg("etc").status().expect("tar");
    assert!(st.success());
    let plain = d.berth(&["import", &arg(&small), "me/plain"]).ok().stdout.trim().to_string();
    let layers = |name: &str| d.request("GET", &format!("/v1.47/images/{name}/json"), None).json()["RootFS"]["Layers"].clone();
    for tool in ["bzip2", "xz", "zstd"] {
        let packed = work.join(format!("small.tar.{tool}"));
        let out = std::process::Command::new(tool).arg("-c").arg(&small).output().expect(tool);
        assert!(out.status.success(), "{tool}");
        fs::write(&packed, &out.stdout).expect("write");
        let name = format!("me/{tool}");
        d.docker(&["import", &arg(&packed), &name]).ok();
        assert_eq!(layers(&name), layers(&plain), "{tool}");
    }
}

/// Archives that are not (compressed) tars fail with Go's texts and leave nothing in
/// the store: no image, no layer, no temp dir.
#[test]
fn broken_archives_leave_the_store_unchanged() {
    let d = Daemon::start();
    d.berth(&["pull", "busybox"]).ok();
    let work = d.dir().join("work");
    fs::create_dir_all(&work).expect("mkdir");
    let tar = work.join("ok.tar");
    d.berth(&["run", "--name", "src", "busybox", "true"]).ok();
    d.berth(&["export", "-o", &arg(&tar), "src"]).ok();
    let gz = work.join("ok.tar.gz");
    gzip_file(&tar, &gz);
    let gz_bytes = fs::read(&gz).expect("read gz");
    let mut garbage = vec![0x5au8; 4096];
    garbage[..4].copy_from_slice(b"junk");
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("garbage", garbage, "archive/tar: invalid tar header"),
        ("short", b"not a tar\n".to_vec(), "unexpected EOF"),
        ("cut.gz", gz_bytes[..gz_bytes.len() / 2].to_vec(), "unexpected EOF"),
    ];
    let before = store_listing(&d);
    for (file, body, text) in &cases {
        let p = work.join(file);
        fs::write(&p, body).expect("write case");
        for cli in [Cli::Berth, Cli::Docker] {
            d.cli(cli, &["import", &arg(&p), "me/broken"])
                .code(1)
                .stderr_has(&format!("Error response from daemon: {text}"));
        }
        let r = d.request("POST", "/v1.47/images/create?fromSrc=-&repo=me/broken", Some(&String::from_utf8_lossy(body)));
        assert_eq!(r.status, 400, "{file}: {}", r.text());
        assert_eq!(store_listing(&d), before, "{file}: the store changed");
    }
    assert_eq!(d.request("GET", "/v1.47/images/me/broken/json", None).status, 404);
}

/// Serves `body` with `status` to each of `n` requests on 127.0.0.1; returns the URL.
fn serve(status: &'static str, body: Vec<u8>, n: usize) -> String {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for _ in 0..n {
            let Ok((mut s, _)) = l.accept() else { return };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    format!("http://{addr}/rootfs.tar.gz")
}

/// `docker import URL` (and a source without a scheme, which is http): the daemon
/// fetches the archive; a URL that cannot be fetched fails with Docker's texts.
#[test]
fn import_from_a_url() {
    let d = Daemon::start();
    d.berth(&["run", "--name", "src", "busybox", "sh", "-c", "echo from-url > /hello"]).ok();
    let tar = d.dir().join("src.tar");
    d.berth(&["export", "-o", &arg(&tar), "src"]).ok();
    let gz = d.dir().join("src.tar.gz");
    gzip_file(&tar, &gz);
    let url = serve("200 OK", fs::read(&gz).expect("read gz"), 3);
    for (cli, name) in [(Cli::Docker, "me/url:d"), (Cli::Berth, "me/url:b")] {
        d.cli(cli, &["import", &url, name]).ok().stdout_has("sha256:");
        d.cli(cli, &["run", "--rm", name, "cat", "/hello"]).ok().stdout_has("from-url");
        let i = d.request("GET", &format!("/v1.47/images/{name}/json"), None).json();
        assert_eq!(i["Comment"], format!("Imported from {url}"));
    }
    // The API takes a source without a scheme as http (the CLIs take it for a file).
    let bare = url.trim_start_matches("http://");
    let r = d.request("POST", &format!("/v1.47/images/create?fromSrc={bare}&repo=me/url&tag=bare"), None);
    assert_eq!(r.status, 200);
    let lines: Vec<serde_json::Value> =
        r.text().lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines[0]["status"], format!("Downloading from {url}"), "{lines:?}");
    let id = lines.last().expect("last")["status"].as_str().expect("id").to_string();
    let i = d.request("GET", "/v1.47/images/me/url:bare/json", None).json();
    assert_eq!(i["Id"], id.as_str());
    assert_eq!(i["Comment"], format!("Imported from {bare}"));
    let missing = serve("404 Not Found", b"no such file\n".to_vec(), 2);
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let refused = format!("http://127.0.0.1:{port}/x.tar");
    for cli in [Cli::Berth, Cli::Docker] {
        d.cli(cli, &["import", &missing, "me/nourl"])
            .code(1)
            .stderr_has(&format!("failed to GET {missing} with status 404 Not Found: no such file"));
        d.cli(cli, &["import", &refused, "me/nourl"]).code(1).stderr_has(&format!("Get \"{refused}\": "));
    }
    // Not an archive at the URL: the error comes in the stream, nothing is stored.
    let before = store_listing(&d);
    let junk = serve("200 OK", vec![0x5a; 2048], 1);
    d.docker(&["import", &junk, "me/nourl"]).code(1).stderr_has("archive/tar: invalid tar header");
    assert_eq!(store_listing(&d), before);
}

/// `docker commit` records the container's image as the new image's `Parent`.
#[test]
fn commit_records_the_parent() {
    let d = Daemon::start();
    d.berth(&["run", "--name", "cc", "busybox", "sh", "-c", "echo x > /x"]).ok();
    let base = d.request("GET", "/v1.47/images/busybox/json", None).json()["Id"].clone();
    for (cli, name) in [(Cli::Berth, "me/c:b"), (Cli::Docker, "me/c:d")] {
        d.cli(cli, &["commit", "cc", name]).ok();
        d.cli(cli, &["image", "inspect", "-f", "{{.Parent}}", name])
            .ok()
            .stdout_has(base.as_str().expect("id"));
    }
    let list = d.request("GET", "/v1.47/images/json", None).json();
    let committed = list
        .as_array()
        .expect("list")
        .iter()
        .find(|i| i["RepoTags"].as_array().is_some_and(|t| t.iter().any(|t| t == "me/c:b")))
        .expect("committed image listed")
        .clone();
    assert_eq!(committed["ParentId"], base);
    assert_eq!(d.request("GET", "/v1.47/images/busybox/json", None).json()["Parent"], "");
    // A parent stays while images committed on it exist, even forced (Docker's hard
    // conflict); by tag it is only untagged.
    let base_id = base.as_str().expect("id").to_string();
    let short = &base_id["sha256:".len().."sha256:".len() + 12];
    d.berth(&["rm", "-f", "cc"]).ok();
    for cli in [Cli::Berth, Cli::Docker] {
        d.cli(cli, &["rmi", "-f", &base_id]).code(1).stderr_has(&format!(
            "conflict: unable to delete {short} (cannot be forced) - image has dependent child images"
        ));
    }
    d.berth(&["rmi", "busybox"]).ok().stdout_has("Untagged: busybox:latest").stdout_lacks("Deleted");
    assert_eq!(d.request("GET", &format!("/v1.47/images/{base_id}/json"), None).status, 200);
    d.berth(&["rmi", "me/c:b", "me/c:d"]).ok();
    d.berth(&["rmi", &base_id]).ok().stdout_has("Deleted");
}

/// docker-py's `import_image` from bytes, a file name and a stream, with changes.
#[test]
fn docker_py_imports_from_bytes_file_and_stream() {
    let d = Daemon::start();
    let work = d.dir().join("work");
    fs::create_dir_all(&work).expect("mkdir");
    let script = format!(
        r#"
import docker, io, json, tarfile
c = docker.APIClient(base_url="{host}")
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    data = b"A" * 600000
    info = tarfile.TarInfo("testdata"); info.size = len(data)
    t.addfile(info, io.BytesIO(data))
raw = buf.getvalue()
open("{work}/d.tar", "wb").write(raw)
ids = []
out = c.import_image_from_data(raw, repository="test/bytes", changes=["USER foobar", 'CMD ["echo"]'])
ids.append(json.loads(out.splitlines()[-1])["status"])
out = c.import_image(src="{work}/d.tar", repository="test/file")
ids.append(json.loads(out.splitlines()[-1])["status"])
with open("{work}/d.tar", "rb") as f:
    out = c.import_image(src=f, repository="test/stream")
ids.append(json.loads(out.splitlines()[-1])["status"])
i = c.inspect_image("test/bytes")
print(i["Config"]["Cmd"], i["Config"]["User"], i["Size"])
print(" ".join(ids))
"#,
        host = d.host(),
        work = work.display()
    );
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c").arg(&script);
    let r = berth_e2e::run_with_timeout(cmd, "python3 -c <docker-py import>".into(), std::time::Duration::from_secs(120)).ok();
    let lines = r.lines();
    assert_eq!(lines[0], "['echo'] foobar 600000", "{r:?}");
    let ids: Vec<&str> = lines[1].split(' ').collect();
    assert_eq!(ids.len(), 3, "{r:?}");
    assert!(ids.iter().all(|i| i.starts_with("sha256:")), "{r:?}");
    // The same tar with the same (empty) config: file and stream give the same layer.
    let layers = |n: &str| d.request("GET", &format!("/v1.47/images/{n}/json"), None).json()["RootFS"]["Layers"].clone();
    assert_eq!(layers("test/file"), layers("test/stream"));
    assert_eq!(layers("test/bytes"), layers("test/file"));
}
