//! `save`/`load` (`GET /images/get`, `GET /images/{name}/get`, `POST /images/load`)
//! through berth and the real docker CLI: a save → rmi → load round trip keeps every
//! image id, the saved `layer.tar`s hash to the images' diff ids (pulled layers and a
//! committed one), and broken or lying archives (a swapped layer, names that leave the
//! archive, a cut stream, no manifest) fail with nothing left in the store.

use berth_e2e::{both, Cli, Daemon};
use std::path::Path;
use std::process::Command;

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().expect("run sh");
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn id_of(d: &Daemon, name: &str) -> String {
    d.request("GET", &format!("/images/{name}/json"), None).json()["Id"].as_str().unwrap_or_default().to_string()
}

fn diff_ids(d: &Daemon, name: &str) -> Vec<String> {
    let v = d.request("GET", &format!("/images/{name}/json"), None).json();
    v["RootFS"]["Layers"].as_array().cloned().unwrap_or_default().iter().filter_map(|x| x.as_str().map(str::to_string)).collect()
}

/// Entries of the image store's layers/ and ingest/ (what a failed load must not change).
fn store_listing(d: &Daemon) -> Vec<String> {
    let mut v = Vec::new();
    for sub in ["layers", "ingest", "images"] {
        if let Ok(rd) = std::fs::read_dir(d.data_root.join("image").join(sub)) {
            v.extend(rd.flatten().map(|e| format!("{sub}/{}", e.file_name().to_string_lossy())));
        }
    }
    v.sort();
    v
}

both!(fn save_rmi_load_round_trip_keeps_ids_and_layer_digests(d, cli) {
    d.cli(cli, &["pull", "busybox"]).ok();
    d.cli(cli, &["pull", "redis"]).ok();
    d.cli(cli, &["run", "--name", "src", "busybox", "sh", "-c", "echo made > /f"]).ok();
    d.cli(cli, &["commit", "src", "mine:1"]).ok();
    d.cli(cli, &["rm", "src"]).ok();
    let names = ["busybox:latest", "redis:latest", "mine:1"];
    let ids: Vec<String> = names.iter().map(|n| id_of(&d, n)).collect();
    let archive = d.dir().join("all.tar");
    let a = archive.to_string_lossy().into_owned();
    d.cli(cli, &["save", "-o", &a, "busybox", "redis", "mine:1"]).ok();

    // Every saved layer.tar is byte-exact: its sha256 is the image's diff id (a layer
    // met again in another directory is a symlink to the first copy, as in Docker's).
    let manifest: serde_json::Value = serde_json::from_str(&sh(&format!("tar -xOf {a} manifest.json"))).expect("manifest.json");
    let symlinks: std::collections::HashMap<String, String> = sh(&format!("tar -tvf {a}"))
        .lines()
        .filter(|l| l.starts_with('l'))
        .filter_map(|l| {
            let (name, target) = l.split_once(" -> ")?;
            let name = name.rsplit(' ').next()?.to_string();
            let dir = name.rsplit_once('/')?.0;
            let target = target.strip_prefix("../").map(str::to_string).unwrap_or_else(|| format!("{dir}/{target}"));
            Some((name, target))
        })
        .collect();
    let items = manifest.as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 3, "{manifest}");
    for (item, name) in items.iter().zip(names) {
        assert_eq!(item["RepoTags"], serde_json::json!([name]));
        let layers: Vec<String> = item["Layers"].as_array().cloned().unwrap_or_default().iter().filter_map(|x| x.as_str().map(str::to_string)).collect();
        let want = diff_ids(&d, name);
        assert_eq!(layers.len(), want.len());
        for (l, diff) in layers.iter().zip(&want) {
            let member = symlinks.get(l).unwrap_or(l);
            let sum = sh(&format!("tar -xOf {a} {member} | sha256sum"));
            assert_eq!(format!("sha256:{}", &sum[..64]), *diff, "{name} {l}");
        }
    }
    // The single-image endpoint gives the same image.
    let one = d.request("GET", "/images/busybox/get", None);
    assert_eq!(one.status, 200);

    d.cli(cli, &["rmi", "mine:1", "busybox", "redis"]).ok();
    assert!(d.cli(cli, &["images", "-q"]).ok().lines().is_empty());
    let r = d.cli(cli, &["load", "-i", &a]).ok();
    assert_eq!(r.lines(), ["Loaded image: busybox:latest", "Loaded image: redis:latest", "Loaded image: mine:1"]);
    let back: Vec<String> = names.iter().map(|n| id_of(&d, n)).collect();
    assert_eq!(back, ids);
    assert_eq!(d.cli(cli, &["run", "--rm", "mine:1", "cat", "/f"]).ok().stdout, "made\n");
    // Loading again from stdin: the same images, the same messages; -q prints them too.
    let data = std::fs::read(&archive).expect("read archive");
    let r = d.cli_input(cli, &["load"], &data).ok();
    assert_eq!(r.lines().len(), 3, "{}", r.out());
    d.cli_input(cli, &["load", "-q"], &data).ok().stdout_has("Loaded image: mine:1");
    // An image saved by id has no tags; loading it says so.
    let by_id = d.dir().join("byid.tar");
    d.cli(cli, &["save", "-o", &by_id.to_string_lossy(), &ids[2][7..19]]).ok();
    d.cli(cli, &["rmi", "mine:1"]).ok();
    d.cli(cli, &["load", "-i", &by_id.to_string_lossy()]).ok().stdout_has(&format!("Loaded image ID: {}", ids[2]));
    assert!(!store_listing(&d).iter().any(|p| p.starts_with("ingest/")));

    d.cli(cli, &["save", "-o", &a, "nosuch"]).code(1).stderr_has("No such image: nosuch:latest");
});

#[test]
fn broken_or_lying_archives_leave_the_store_as_it_was() {
    let d = Daemon::start();
    d.berth(&["pull", "busybox"]).ok();
    d.berth(&["pull", "redis"]).ok();
    let dir = d.dir().join("x");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let x = dir.to_string_lossy().into_owned();
    d.berth(&["save", "-o", &format!("{x}/good.tar"), "redis"]).ok();
    let manifest: serde_json::Value = serde_json::from_str(&sh(&format!("tar -xOf {x}/good.tar manifest.json"))).expect("manifest");
    let top = manifest[0]["Layers"][1].as_str().unwrap_or_default().to_string();
    d.berth(&["rmi", "redis"]).ok();
    let before = store_listing(&d);

    // 1. The second layer swapped for another tar: its diff id does not match.
    sh(&format!("mkdir {x}/swap && tar -C {x}/swap -xf {x}/good.tar && tar -C /etc -cf {x}/swap/{top} hostname && tar -C {x}/swap -cf {x}/swapped.tar ."));
    // 2. Names that leave the archive.
    sh(&format!("cd {x} && echo '[]' > manifest.json && tar -cPf {x}/evil.tar --transform 's,^,../../,' manifest.json"));
    // 3. A cut stream, 4. no manifest at all.
    sh(&format!("head -c 3000000 {x}/good.tar > {x}/cut.tar && tar -C /etc -cf {x}/plain.tar hostname"));
    let cases = [
        ("swapped.tar", "invalid diffID for layer 1: expected"),
        ("evil.tar", "leaves the archive"),
        ("cut.tar", "invalid archive"),
        ("plain.tar", "open manifest.json: no such file or directory"),
    ];
    for cli in [Cli::Berth, Cli::Docker] {
        for (file, want) in cases {
            let data = std::fs::read(Path::new(&x).join(file)).expect("read");
            d.cli_input(cli, &["load"], &data).code(1).stderr_has(want);
            assert_eq!(store_listing(&d), before, "{file}");
            assert!(d.request("GET", "/images/redis/json", None).status == 404, "{file}");
        }
    }
    // The good archive still loads.
    let data = std::fs::read(Path::new(&x).join("good.tar")).expect("read");
    d.cli_input(Cli::Berth, &["load"], &data).ok().stdout_has("Loaded image: redis:latest");
}

/// A daemon killed (SIGKILL) in the middle of a load leaves nothing behind: the
/// restarted daemon's store drops the partial ingest files, and the image is not there.
#[test]
fn a_load_cut_by_a_daemon_kill_leaves_nothing() {
    use std::io::Write;
    let mut d = Daemon::start();
    d.berth(&["pull", "redis"]).ok();
    let file = d.dir().join("redis.tar");
    d.berth(&["save", "-o", &file.to_string_lossy(), "redis"]).ok();
    d.berth(&["rmi", "redis"]).ok();
    let before = store_listing(&d);
    let data = std::fs::read(&file).expect("read archive");
    let mut s = std::os::unix::net::UnixStream::connect(&d.sock).expect("connect");
    write!(s, "POST /images/load?quiet=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n", data.len())
        .expect("write head");
    // More than the first layer: it is in an ingest file when the daemon dies.
    s.write_all(&data[..data.len() * 2 / 3]).expect("write body");
    berth_e2e::wait_until(std::time::Duration::from_secs(20), "an ingest file", || {
        store_listing(&d).iter().any(|p| p.starts_with("ingest/")).then_some(())
    });
    d.kill9();
    drop(s);
    d.start_again();
    assert_eq!(store_listing(&d), before);
    assert_eq!(d.request("GET", "/images/redis/json", None).status, 404);
    // The archive loads in full afterwards.
    d.cli_input(Cli::Berth, &["load"], &data).ok().stdout_has("Loaded image: redis:latest");
}
