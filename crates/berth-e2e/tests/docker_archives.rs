//! Archives written by a real Docker engine (`docker save` of Docker 20.10, kept in
//! fixtures/docker-interop/ with Docker's own view of them in expected.json; made by
//! `scripts/docker-interop.sh --regen`, README there) loaded into berthd through both
//! CLIs: Docker's load lines, the same ids, tags, parents, configs and layers as
//! Docker's inspect, the files of every layer (a repeated layer stored as a symlink, a
//! symlink inside a layer). And the other way: `berth save` of those images gives an
//! archive with exactly the members of Docker's (names, kinds, symlink targets,
//! contents), which is what Docker's load reads. No Docker is needed here.

use berth_e2e::{both, Cli, Daemon};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/docker-interop").join(name)
}

fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("expected.json")).expect("read expected.json");
    serde_json::from_str(&text).expect("parse expected.json")
}

fn strs(v: &serde_json::Value) -> Vec<String> {
    v.as_array().cloned().unwrap_or_default().iter().filter_map(|x| x.as_str().map(str::to_string)).collect()
}

/// The image facts Docker's inspect gave (expected.json's shape) as berthd reports them.
fn facts(d: &Daemon, name: &str) -> serde_json::Value {
    let r = d.request("GET", &format!("/images/{name}/json"), None);
    assert_eq!(r.status, 200, "{name}: {}", r.text());
    let v = r.json();
    let mut tags = strs(&v["RepoTags"]);
    tags.sort();
    let c = &v["Config"];
    serde_json::json!({
        "Id": v["Id"], "RepoTags": tags, "Parent": v["Parent"], "Comment": v["Comment"], "Author": v["Author"],
        "Created": v["Created"], "Architecture": v["Architecture"], "Os": v["Os"], "Layers": v["RootFS"]["Layers"],
        "Config": {"Env": c["Env"], "Cmd": c["Cmd"], "Entrypoint": c["Entrypoint"], "WorkingDir": c["WorkingDir"],
            "Labels": c["Labels"], "User": c["User"]},
    })
}

/// An archive's members by name: (kind, symlink target, content). manifest.json is its
/// sorted list of images and a `layer.tar` its content through any symlink ("Layer",
/// no target): Docker writes images in Go's random map order, which decides which
/// directory of a shared layer holds the file and which links to it.
fn members(data: &[u8]) -> BTreeMap<String, (String, String, Vec<u8>)> {
    let mut raw = BTreeMap::new();
    let mut ar = tar::Archive::new(data);
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let name = e.path().expect("path").to_string_lossy().trim_end_matches('/').to_string();
        let kind = format!("{:?}", e.header().entry_type());
        let link = e.link_name().expect("link").map(|l| l.to_string_lossy().into_owned()).unwrap_or_default();
        let mut content = Vec::new();
        e.read_to_end(&mut content).expect("read member");
        if name == "manifest.json" {
            let items: Vec<serde_json::Value> = serde_json::from_slice(&content).expect("manifest.json");
            let mut items: Vec<String> = items.iter().map(|i| i.to_string()).collect();
            items.sort();
            content = items.join("\n").into_bytes();
        }
        raw.insert(name, (kind, link, content));
    }
    let mut out = raw.clone();
    for (name, m) in out.iter_mut() {
        if name.ends_with("/layer.tar") {
            let mut cur = raw[name].clone();
            for _ in 0..8 {
                if cur.0 != "Symlink" {
                    break;
                }
                // Docker's links are `../<dir>/layer.tar`, relative to the link's directory.
                cur = raw[cur.1.trim_start_matches("../")].clone();
            }
            *m = ("Layer".into(), String::new(), cur.2);
        }
    }
    out
}

/// The symlinked `layer.tar`s of an archive and their targets.
fn symlinks(data: &[u8]) -> Vec<(String, String)> {
    let mut ar = tar::Archive::new(data);
    let mut out = Vec::new();
    for e in ar.entries().expect("entries") {
        let e = e.expect("entry");
        if e.header().entry_type() == tar::EntryType::Symlink {
            let name = e.path().expect("path").to_string_lossy().into_owned();
            let link = e.link_name().expect("link").map(|l| l.to_string_lossy().into_owned()).unwrap_or_default();
            out.push((name, link));
        }
    }
    out
}

fn remove_all(d: &Daemon) {
    for _ in 0..3 {
        let ids = d.berth(&["images", "-aq"]).ok().lines();
        if ids.is_empty() {
            return;
        }
        let mut args = vec!["rmi", "-f"];
        args.extend(ids.iter().map(String::as_str));
        d.berth(&args);
    }
}

both!(fn docker_made_archives_load_as_in_docker(d, cli) {
    let want = expected();
    for archive in ["docker-multi.tar", "docker-app.tar", "docker-byid.tar"] {
        remove_all(&d);
        let path = fixture(archive).to_string_lossy().into_owned();
        let r = d.cli(cli, &["load", "-i", &path]).ok();
        assert_eq!(r.lines(), strs(&want["load_lines"][archive]), "{archive}: Docker's load lines");
        if archive == "docker-byid.tar" {
            let id = want["images"][2]["Id"].as_str().unwrap_or_default();
            assert!(d.request("GET", &format!("/images/{id}/json"), None).json()["RepoTags"].as_array().is_some_and(|t| t.is_empty()));
        }
    }
    // Docker's view of every image of the multi-image archive, field by field.
    remove_all(&d);
    let path = fixture("docker-multi.tar").to_string_lossy().into_owned();
    d.cli(cli, &["load", "-i", &path]).ok();
    for img in want["images"].as_array().cloned().unwrap_or_default() {
        let name = strs(&img["RepoTags"])[0].clone();
        assert_eq!(facts(&d, &name), img, "{name}: berthd's inspect vs Docker's");
    }
    // Sizes as Docker 20.10 showed them for these images (`docker images`: 101B and
    // 61B): regular files plus symlinks' target lengths.
    for (name, size) in [("interop/app:1", 101), ("interop/base:1", 61)] {
        assert_eq!(d.request("GET", &format!("/images/{name}/json"), None).json()["Size"], size, "{name}");
    }
    // Every layer's files, through a container (the images have no shell of their
    // own: the host's static busybox is mounted in).
    let out = d
        .cli(cli, &["run", "--rm", "--network", "none", "-v", "/bin/busybox:/bin/busybox:ro", "interop/app:1", "/bin/busybox", "sh", "-c",
            "cat /etc/passwd /greeting.txt /srv/app/dir/one.txt /srv/data/base.txt; readlink /srv/link; cat /srv/link; echo $GREETING $APP; pwd"])
        .ok();
    assert_eq!(
        out.lines(),
        ["root:x:0:0:root:/root:/bin/sh", "hello from docker", "one", "base file", "data/base.txt", "base file", "hello /srv/app", "/srv/app"]
    );
    d.cli(cli, &["run", "--rm", "--network", "none", "-v", "/bin/busybox:/bin/busybox:ro", "interop/child:1", "/bin/busybox", "sh", "-c", "echo $COMMITTED"])
        .ok()
        .stdout_has("1");
});

/// `berth save` of images loaded from Docker's archives gives Docker's archives back,
/// member for member: the v1 directory names and `json` files, the repeated layer as
/// a symlink, `repositories`, and manifest.json with its `Parent` link.
#[test]
fn berth_save_writes_dockers_archive_structure() {
    let d = Daemon::start();
    let want = expected();
    let multi = fixture("docker-multi.tar").to_string_lossy().into_owned();
    d.berth(&["load", "-i", &multi]).ok();
    let app_id = want["images"][2]["Id"].as_str().unwrap_or_default().to_string();
    let cases: [(&str, Vec<&str>); 3] = [
        ("docker-app.tar", vec!["interop/app:1"]),
        ("docker-multi.tar", vec!["interop/base:1", "interop/child:1", "interop/app"]),
        ("docker-byid.tar", vec![&app_id[7..19]]),
    ];
    for (archive, names) in cases {
        for cli in [Cli::Berth, Cli::Docker] {
            let out = d.dir().join("saved.tar");
            let o = out.to_string_lossy().into_owned();
            let mut args = vec!["save", "-o", &o];
            args.extend(names.iter().copied());
            d.cli(cli, &args).ok();
            let got = members(&std::fs::read(&out).expect("read saved"));
            let docker = members(&std::fs::read(fixture(archive)).expect("read fixture"));
            assert_eq!(got.keys().collect::<Vec<_>>(), docker.keys().collect::<Vec<_>>(), "{archive}: member names");
            for (name, m) in &docker {
                assert_eq!(&got[name], m, "{archive}: member {name}");
            }
        }
    }
    // The structure Docker's load relies on, spelled out once: every manifest entry's
    // config and layers are in the archive, a symlinked layer points at a real one.
    let data = std::fs::read(fixture("docker-multi.tar")).expect("read fixture");
    let m = members(&data);
    let manifest: Vec<serde_json::Value> =
        String::from_utf8_lossy(&m["manifest.json"].2).lines().map(|l| serde_json::from_str(l).expect("item")).collect();
    assert_eq!(manifest.len(), 3);
    for item in &manifest {
        assert!(m.contains_key(item["Config"].as_str().unwrap_or_default()));
        for l in strs(&item["Layers"]) {
            assert_eq!(m[&l].0, "Layer", "{l}");
            let dir = l.trim_end_matches("/layer.tar");
            assert_eq!(m[&format!("{dir}/VERSION")].2, b"1.0");
            let json: serde_json::Value = serde_json::from_slice(&m[&format!("{dir}/json")].2).expect("layer json");
            assert_eq!(json["id"], serde_json::json!(dir));
        }
    }
    let saved_multi = d.dir().join("multi.tar");
    let o = saved_multi.to_string_lossy().into_owned();
    d.berth(&["save", "-o", &o, "interop/base:1", "interop/child:1", "interop/app"]).ok();
    let saved = std::fs::read(&saved_multi).expect("read");
    let raw_kinds: BTreeMap<String, bool> = {
        let mut ar = tar::Archive::new(&saved[..]);
        ar.entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                (e.path().expect("path").to_string_lossy().into_owned(), e.header().entry_type() == tar::EntryType::Regular)
            })
            .collect()
    };
    // Docker links the app's repeated layer, and the base layer wherever another
    // directory has it (the child's top, the app's bottom); Berth as many, each to a
    // real file.
    let links = symlinks(&saved);
    assert_eq!(links.len(), symlinks(&data).len(), "{links:?}");
    assert_eq!(links.len(), 3, "{links:?}");
    for (name, target) in links {
        assert!(target.starts_with("../") && raw_kinds.get(target.trim_start_matches("../")) == Some(&true), "{name} → {target}");
    }
    let child = manifest.iter().find(|i| strs(&i["RepoTags"]) == ["interop/child:1"]).expect("child item");
    assert_eq!(child["Parent"], want["images"][0]["Id"]);

    // `docker save | gzip` (bzip2, xz, zstd) loads as it is, as with Docker; each image
    // is one `load` event, by id.
    d.berth(&["rmi", "interop/app:latest"]).ok();
    for tool in ["gzip", "bzip2", "xz", "zstd"] {
        let z = Command::new(tool).args(["-c", "-q"]).arg(fixture("docker-app.tar")).output().expect("run the compressor");
        assert!(z.status.success(), "{tool}");
        d.berth(&["rmi", "interop/app:1"]).ok();
        d.cli_input(Cli::Docker, &["load"], &z.stdout).ok().stdout_has("Loaded image: interop/app:1");
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|t| t.as_secs()).unwrap_or(0);
    let ev = d.request("GET", &format!("/events?since=0&until={}&filters=%7B%22event%22%3A%5B%22load%22%5D%7D", now + 1), None).text();
    let loads: Vec<serde_json::Value> = ev.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert_eq!(loads.len(), 7, "3 images of docker-multi.tar, then the app 4 times: {ev}");
    let last = &loads[6];
    assert_eq!((&last["id"], &last["Actor"]["Attributes"]["name"]), (&serde_json::json!(app_id), &serde_json::json!(app_id)));
    assert_eq!(last["Actor"]["Attributes"]["org.example.fixture"], "interop");
}
