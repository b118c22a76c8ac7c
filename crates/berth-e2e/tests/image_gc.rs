//! Garbage collection of the image store (docs/storage.md, "Remove" and "Recovery"):
//! `rmi` frees the layers and blobs only the removed image used and keeps the shared
//! ones; a daemon killed in the middle of a removal starts again into a consistent
//! store with the rest collected; `system df -v` shows SHARED SIZE / UNIQUE SIZE as
//! Docker does. Images sharing layers are made with `commit` on top of busybox.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use berth_e2e::{both, cells, Daemon};

fn names_in(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

fn layers(d: &Daemon) -> BTreeSet<String> {
    names_in(&d.data_root.join("image/layers"))
}

fn blobs(d: &Daemon) -> BTreeSet<String> {
    names_in(&d.data_root.join("image/blobs/sha256"))
}

fn image_id(d: &Daemon, name: &str) -> String {
    d.docker(&["image", "inspect", "-f", "{{.Id}}", name]).ok().out().trim().to_string()
}

/// busybox, and `mine` committed on top of it (one shared layer, one of its own).
fn busybox_and_mine(d: &Daemon) {
    d.docker(&["pull", "busybox"]).ok();
    d.docker(&["run", "--name", "gc-ctr", "busybox", "sh", "-c", "head -c 300000 /dev/urandom > /blob"]).ok();
    d.docker(&["commit", "gc-ctr", "mine"]).ok();
    d.docker(&["rm", "gc-ctr"]).ok();
}

both!(fn rmi_frees_what_only_it_used_and_keeps_shared_layers(d, cli) {
    busybox_and_mine(&d);
    let busybox_layers = {
        let l = layers(&d);
        assert_eq!(l.len(), 2, "{l:?}");
        l
    };
    let mine = image_id(&d, "mine");
    let blobs_with_mine = blobs(&d);
    assert!(blobs_with_mine.contains(mine.trim_start_matches("sha256:")));

    let out = d.cli(cli, &["rmi", "mine"]).ok();
    assert!(out.out().contains(&format!("Deleted: {mine}")), "{}", out.out());
    let left = layers(&d);
    assert_eq!(left.len(), 1, "only the shared busybox layer stays: {left:?}");
    assert!(left.is_subset(&busybox_layers));
    assert!(!blobs(&d).contains(mine.trim_start_matches("sha256:")), "mine's config blob is freed");
    d.cli(cli, &["run", "--rm", "busybox", "true"]).ok();

    d.cli(cli, &["rmi", "busybox"]).ok();
    assert!(layers(&d).is_empty(), "{:?}", layers(&d));
    assert!(blobs(&d).is_empty(), "{:?}", blobs(&d));
});

/// The state an `rmi mine` killed after it rewrote the references and dropped the
/// record, while it was removing the top layer (its `ok` already gone), leaves; the
/// next start collects the layer and the config blob and keeps busybox whole.
#[test]
fn a_removal_cut_by_kill_9_is_finished_at_the_next_start() {
    let mut d = Daemon::start();
    busybox_and_mine(&d);
    let mine = image_id(&d, "mine");
    let mine_hex = mine.trim_start_matches("sha256:").to_string();
    let busybox_id = image_id(&d, "busybox");
    let before_mine: BTreeSet<String> = layers(&d);
    d.kill9();

    let image = d.data_root.join("image");
    // 1. references first: every key pointing at mine goes.
    let refs_path = image.join("repositories.json");
    let mut refs: serde_json::Value = serde_json::from_slice(&fs::read(&refs_path).expect("refs")).expect("json");
    for repo in refs["Repositories"].as_object_mut().expect("repos").values_mut() {
        repo.as_object_mut().expect("refs").retain(|_, v| v.as_str() != Some(mine.as_str()));
    }
    fs::write(&refs_path, serde_json::to_vec(&refs).expect("json")).expect("write refs");
    // 2. the record.
    fs::remove_file(image.join("images").join(format!("{mine_hex}.json"))).expect("record");
    // 3. mid-removal of mine's top layer: its ok marker is gone, the rest is not.
    let layers_dir = d.data_root.join("image/layers");
    let top = before_mine
        .iter()
        .find(|l| layers_dir.join(l).join("diff/blob").is_file())
        .expect("mine's own layer (the one holding /blob)")
        .clone();
    fs::remove_file(layers_dir.join(&top).join("ok")).expect("ok marker");

    d.start_again();
    assert!(!layers(&d).contains(&top), "the half-removed layer is collected");
    assert_eq!(layers(&d).len(), 1, "{:?}", layers(&d));
    assert!(!blobs(&d).contains(&mine_hex), "the orphaned config blob is collected");
    let images = d.docker(&["images", "-a", "--format", "{{.Repository}}"]).ok();
    assert_eq!(images.lines(), vec!["busybox".to_string()]);
    assert_eq!(image_id(&d, "busybox"), busybox_id);
    d.docker(&["run", "--rm", "busybox", "true"]).ok();
    // And the same commit can be made again.
    busybox_and_mine(&d);
    d.docker(&["run", "--rm", "mine", "test", "-s", "/blob"]).ok();
}

both!(fn system_df_v_shows_shared_and_unique_sizes(d, cli) {
    busybox_and_mine(&d);
    d.docker(&["pull", "hello-world"]).ok();
    let out = d.cli(cli, &["system", "df", "-v"]).ok();
    let text = out.out().to_string();
    let lines: Vec<&str> = text.lines().collect();
    let head = lines.iter().position(|l| l.starts_with("REPOSITORY")).expect("images table");
    assert_eq!(
        cells(lines[head]),
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"],
        "{text}"
    );
    let row = |repo: &str| -> Vec<String> {
        lines[head + 1..]
            .iter()
            .take_while(|l| !l.is_empty())
            .map(|l| cells(l))
            .find(|c| c[0] == repo)
            .unwrap_or_else(|| panic!("no row for {repo}:\n{text}"))
    };
    let (busybox, mine, hello) = (row("busybox"), row("mine"), row("hello-world"));
    // Docker prints SIZE with 3 significant digits and SHARED / UNIQUE SIZE with 4:
    // the texts differ, the numbers agree to 3 digits.
    assert!(busybox[5].contains('.') || busybox[5].ends_with('B'), "{text}");
    let same = |a: &str, b: &str| {
        let (x, y) = (bytes(a), bytes(b));
        assert!((x - y).abs() <= x.max(y) * 0.005, "{a} vs {b}:\n{text}");
    };
    // busybox is all shared (mine is built on it); mine shares exactly busybox's size.
    same(&busybox[5], &busybox[4]);
    assert_eq!(busybox[6], "0B", "{text}");
    same(&mine[5], &busybox[4]);
    same(&mine[6], "300kB");
    assert_eq!(hello[5], "0B", "{text}");
    same(&hello[6], &hello[4]);
    // Cell for cell what the docker CLI prints from the same daemon (CREATED aside).
    let docker = d.docker(&["system", "df", "-v"]).ok();
    let table = |t: &str| -> Vec<Vec<String>> {
        t.lines()
            .skip_while(|l| !l.starts_with("REPOSITORY"))
            .take_while(|l| !l.is_empty())
            .map(|l| {
                let mut c = cells(l);
                c.remove(3);
                c
            })
            .collect()
    };
    assert_eq!(table(&text), table(docker.out()));
});

/// go-units' decimal sizes back to bytes ("1.982MB", "300kB", "0B").
fn bytes(s: &str) -> f64 {
    let i = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let n: f64 = s[..i].parse().unwrap_or_else(|_| panic!("size {s:?}"));
    let unit = match &s[i..] {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        u => panic!("unit {u:?} in {s:?}"),
    };
    n * unit
}

both!(fn a_replaced_tag_leaves_a_dangling_image_that_prune_frees(d, cli) {
    busybox_and_mine(&d);
    let old = image_id(&d, "mine");
    // The same tag again, on a new image: the old one is dangling, layers kept.
    busybox_and_mine(&d);
    let new = image_id(&d, "mine");
    assert_ne!(old, new);
    assert_eq!(layers(&d).len(), 3, "{:?}", layers(&d));
    let dangling = d.cli(cli, &["images", "-q", "--no-trunc", "--filter", "dangling=true"]).ok();
    assert_eq!(dangling.lines(), vec![old.clone()]);

    let out = d.cli(cli, &["image", "prune", "-f"]).ok();
    assert!(out.out().contains(&format!("deleted: {old}")), "{}", out.out());
    assert_eq!(layers(&d).len(), 2, "the old image's own layer is freed: {:?}", layers(&d));
    assert!(!blobs(&d).contains(old.trim_start_matches("sha256:")));
    assert!(blobs(&d).contains(new.trim_start_matches("sha256:")));
    d.cli(cli, &["run", "--rm", "mine", "test", "-s", "/blob"]).ok();
});
