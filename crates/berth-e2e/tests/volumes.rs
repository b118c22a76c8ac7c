//! Volumes end to end, through `berth` and the real docker CLI: named volumes shared by
//! containers and kept across daemon restarts (and kill -9), copy-up from an image's
//! content and `VOLUME`s, `--volumes-from`, `rm -v`, the in-use 409, prune with and
//! without `--all` and label filters, `--mount` forms and errors, `cp` into and out of
//! volume paths, `system df`, and the `/volumes` API's answers.

use std::fs;

use berth_e2e::{Cli, Daemon};

const CLIS: [Cli; 2] = [Cli::Berth, Cli::Docker];

fn tag(cli: Cli) -> &'static str {
    match cli {
        Cli::Berth => "b",
        Cli::Docker => "d",
    }
}

#[test]
fn named_volume_is_shared_and_survives_restarts() {
    let mut d = Daemon::start();
    for cli in CLIS {
        let v = format!("data-{}", tag(cli));
        d.cli(cli, &["volume", "create", "--label", "app=web", &v]).ok().stdout_has(&v);
        // Create is idempotent for an existing name.
        d.cli(cli, &["volume", "create", &v]).ok();
        d.cli(cli, &["run", "--rm", "-v", &format!("{v}:/data"), "busybox", "sh", "-c", "echo hi > /data/f"]).ok();
        let r = d.cli(cli, &["run", "--rm", "-v", &format!("{v}:/data:ro"), "busybox", "cat", "/data/f"]).ok();
        assert_eq!(r.out().trim(), "hi");
        // A read-only mount refuses writes.
        d.cli(cli, &["run", "--rm", "-v", &format!("{v}:/data:ro"), "busybox", "touch", "/data/g"]).code(1);
        let ls = d.cli(cli, &["volume", "ls"]).ok();
        let lines = ls.lines();
        assert_eq!(lines[0], "DRIVER    VOLUME NAME", "{}", ls.out());
        assert!(lines.contains(&format!("local     {v}")), "{}", ls.out());
        let ins = d.cli(cli, &["volume", "inspect", "-f", "{{.Driver}} {{.Scope}} {{.Labels}} {{.Mountpoint}}", &v]).ok();
        let want = format!("local local map[app:web] {}", d.dir().join("root/volumes").join(&v).join("_data").display());
        assert!(ins.out().trim().ends_with("_data") && ins.out().contains("local local map[app:web]"), "{} vs {want}", ins.out());
    }
    // The inspect `Mounts` entry, exactly as Docker shows it.
    d.docker(&["create", "--name", "mc", "-v", "data-d:/data", "busybox", "true"]).ok();
    let m = &d.inspect("mc")["Mounts"][0];
    assert_eq!(m["Type"], "volume");
    assert_eq!(m["Name"], "data-d");
    assert!(m["Source"].as_str().unwrap_or("").ends_with("/volumes/data-d/_data"), "{m}");
    assert_eq!((m["Destination"].as_str(), m["Driver"].as_str(), m["Mode"].as_str()), (Some("/data"), Some("local"), Some("z")));
    assert_eq!((m["RW"].as_bool(), m["Propagation"].as_str()), (Some(true), Some("")));
    d.docker(&["rm", "mc"]).ok();
    // A daemon restart and a kill -9 keep volumes and their data.
    d.restart();
    d.kill9();
    d.start_again();
    for cli in CLIS {
        let v = format!("data-{}", tag(cli));
        d.cli(cli, &["volume", "ls", "-q"]).ok().stdout_has(&v);
        let r = d.cli(cli, &["run", "--rm", "-v", &format!("{v}:/data"), "busybox", "cat", "/data/f"]).ok();
        assert_eq!(r.out().trim(), "hi");
    }
}

#[test]
fn copy_up_from_image_content_and_volume_instructions() {
    let d = Daemon::start();
    for cli in CLIS {
        let t = tag(cli);
        // An empty named volume over an image path gets the image's content.
        let v = format!("etc-{t}");
        let r = d.cli(cli, &["run", "--rm", "-v", &format!("{v}:/etc"), "busybox", "cat", "/etc/passwd"]).ok();
        assert!(r.out().contains("root:x:0:0"), "{}", r.out());
        // ... unless `nocopy`.
        let r = d.cli(cli, &["run", "--rm", "-v", &format!("empty-{t}:/etc:nocopy"), "busybox", "ls", "-A", "/etc"]).ok();
        assert_eq!(r.out(), "");
        // An image `VOLUME` (added by commit --change) gets an anonymous volume
        // initialised from the image, the directory's owner and mode included.
        let src = format!("src-{t}");
        d.cli(cli, &["run", "--name", &src, "busybox", "sh", "-c", "mkdir /seed && echo seeded > /seed/x && chown 123:45 /seed && chmod 1750 /seed"]).ok();
        let img = format!("withvol-{t}");
        d.cli(cli, &["commit", "--change", "VOLUME /seed", &src, &img]).ok();
        let c = format!("user-{t}");
        let r = d.cli(cli, &["run", "--name", &c, &img, "sh", "-c", "cat /seed/x; stat -c '%a %u:%g' /seed"]).ok();
        assert_eq!(r.lines(), ["seeded", "1750 123:45"]);
        let m = &d.inspect(&c)["Mounts"][0];
        let name = m["Name"].as_str().unwrap_or("").to_string();
        assert!(name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()), "{m}");
        assert_eq!((m["Type"].as_str(), m["Mode"].as_str(), m["Destination"].as_str()), (Some("volume"), Some(""), Some("/seed")));
        let labels = d.cli(cli, &["volume", "inspect", "-f", "{{json .Labels}}", &name]).ok();
        assert_eq!(labels.out().trim(), r#"{"com.docker.volume.anonymous":""}"#);
        // `rm -v` removes the anonymous volume; named ones stay.
        d.cli(cli, &["rm", "-v", &c]).ok();
        d.cli(cli, &["volume", "inspect", &name]).code(1);
        d.cli(cli, &["volume", "inspect", &v]).ok();
        // `-v /path` is an anonymous volume too; `run --rm` removes it.
        let before = d.cli(cli, &["volume", "ls", "-q"]).ok().lines().len();
        d.cli(cli, &["run", "--rm", "-v", "/anon", "busybox", "touch", "/anon/x"]).ok();
        assert_eq!(d.cli(cli, &["volume", "ls", "-q"]).ok().lines().len(), before);
    }
}

#[test]
fn volumes_from_in_use_conflict_and_prune() {
    let d = Daemon::start();
    for cli in CLIS {
        let t = tag(cli);
        let (src, named) = (format!("vsrc-{t}"), format!("shared-{t}"));
        d.cli(cli, &["run", "-d", "--name", &src, "-v", "/anon", "-v", &format!("{named}:/named"), "busybox", "sh", "-c", "echo a > /anon/f; echo n > /named/f; sleep 300"]).ok();
        // Both volumes are reachable through --volumes-from, read-only when asked.
        let mut out = String::new();
        for _ in 0..50 {
            let r = d.cli(cli, &["run", "--rm", "--volumes-from", &format!("{src}:ro"), "busybox", "cat", "/anon/f", "/named/f"]);
            out = r.out().to_string();
            if out == "a\nn" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(out, "a\nn");
        d.cli(cli, &["run", "--rm", "--volumes-from", &format!("{src}:ro"), "busybox", "touch", "/named/g"]).code(1);
        // In use: 409 with Docker's text, forced or not.
        let id = d.inspect(&src)["Id"].as_str().unwrap_or("").to_string();
        d.cli(cli, &["volume", "rm", &named]).code(1).stderr_has(&format!("remove {named}: volume is in use - [{id}]"));
        d.cli(cli, &["volume", "rm", "-f", &named]).code(1).stderr_has("volume is in use");
        d.cli(cli, &["volume", "ls", "-q", "--filter", "dangling=false"]).ok().stdout_has(&named);
        d.cli(cli, &["rm", "-f", &src]).ok();
        d.cli(cli, &["volume", "ls", "-q", "--filter", "dangling=true"]).ok().stdout_has(&named);
    }
    // Prune: anonymous only by default; labels filter; --all takes named ones.
    d.docker(&["volume", "create", "--label", "keep=yes", "kept"]).ok();
    d.docker(&["volume", "create", "plain"]).ok();
    let before = d.docker(&["volume", "ls", "-q"]).ok().lines();
    let anon: Vec<String> = before.iter().filter(|n| n.len() == 64).cloned().collect();
    assert_eq!(anon.len(), 2, "{before:?}");
    let r = d.docker(&["volume", "prune", "-f"]).ok();
    assert!(r.out().starts_with("Deleted Volumes:\n") && anon.iter().all(|a| r.out().contains(a.as_str())), "{}", r.out());
    assert!(r.out().contains("Total reclaimed space: "), "{}", r.out());
    let after = d.docker(&["volume", "ls", "-q"]).ok().lines();
    assert!(after.contains(&"plain".to_string()) && after.iter().all(|n| n.len() != 64), "{after:?}");
    d.berth(&["volume", "prune", "-f", "-a", "--filter", "label!=keep"]).ok().stdout_has("plain");
    let after = d.berth(&["volume", "ls", "-q"]).ok().lines();
    assert!(after.contains(&"kept".to_string()) && !after.contains(&"plain".to_string()), "{after:?}");
    d.docker(&["volume", "prune", "-f", "--all", "--filter", "label=keep=yes"]).ok().stdout_has("kept");
    d.docker(&["volume", "prune", "-af"]).ok();
    assert_eq!(d.docker(&["volume", "ls", "-q"]).ok().out(), "");
}

#[test]
fn mount_flag_forms_and_errors() {
    let d = Daemon::start();
    let host = d.dir().join("hostsrc");
    for cli in CLIS {
        let t = tag(cli);
        // type=volume with a subpath and nocopy.
        let v = format!("mv-{t}");
        d.cli(cli, &["run", "--rm", "--mount", &format!("type=volume,src={v},dst=/m,volume-nocopy"), "busybox", "sh", "-c", "mkdir -p /m/sub && echo deep > /m/sub/f"]).ok();
        let r = d.cli(cli, &["run", "--rm", "--mount", &format!("type=volume,src={v},dst=/s,volume-subpath=sub,readonly"), "busybox", "cat", "/s/f"]).ok();
        assert_eq!(r.out().trim(), "deep");
        // tmpfs with size and mode.
        let r = d.cli(cli, &["run", "--rm", "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770", "busybox", "sh", "-c", "stat -c %a /t; grep ' /t ' /proc/mounts"]).ok();
        assert!(r.out().starts_with("1770\ntmpfs /t tmpfs") && r.out().contains("size=1024k"), "{}", r.out());
        // A missing bind source: `--mount` refuses it, `-v` creates it.
        let missing = host.join(format!("missing-{t}"));
        d.cli(cli, &["run", "--rm", "--mount", &format!("type=bind,src={},dst=/x", missing.display()), "busybox", "true"])
            .code(125)
            .stderr_has(&format!("invalid mount config for type \"bind\": bind source path does not exist: {}", missing.display()));
        d.cli(cli, &["run", "--rm", "-v", &format!("{}:/x", missing.display()), "busybox", "touch", "/x/made"]).ok();
        assert!(missing.join("made").exists());
        // `-v ./rel:/dst`: relative to the client's working directory, as the docker CLI sends it.
        let rel = host.join(format!("rel-{t}"));
        fs::create_dir_all(rel.join("site")).expect("mkdir");
        fs::write(rel.join("site/index"), "relative\n").expect("write");
        let (mut cmd, shown) = d.cli_command(cli, &["run", "--rm", "-v", "./site:/www:ro", "busybox", "cat", "/www/index"]);
        cmd.current_dir(&rel);
        let r = berth_e2e::run_with_timeout(cmd, shown, std::time::Duration::from_secs(60)).ok();
        assert_eq!(r.out(), "relative");
        // A missing mount target inside the image is created.
        d.cli(cli, &["run", "--rm", "-v", &format!("{v}:/not/in/image"), "busybox", "ls", "/not/in/image/sub"]).ok().stdout_has("f");
        // Bad names in Docker's words.
        d.cli(cli, &["volume", "create", "a"]).code(1).stderr_has("create a: volume name is too short, names should be at least two alphanumeric characters");
        d.cli(cli, &["run", "--rm", "-v", "_bad:/x", "busybox", "true"]).code(125).stderr_has("includes invalid characters for a local volume name");
        d.cli(cli, &["volume", "create", "-o", "bogus=1", &format!("o-{t}")]).code(1).stderr_has("create o-");
        d.cli(cli, &["volume", "create", "-o", "bogus=1", &format!("o-{t}")]).code(1).stderr_has("invalid option: \"bogus\"");
    }
    // The local driver's type/device/o options: a tmpfs volume.
    d.docker(&["volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=2m", "tmpv"]).ok();
    let r = d.docker(&["run", "--rm", "-v", "tmpv:/v", "busybox", "sh", "-c", "echo x > /v/f; grep ' /v ' /proc/mounts"]).ok();
    assert!(r.out().contains("tmpfs /v tmpfs") && r.out().contains("size=2048k"), "{}", r.out());
    d.docker(&["volume", "rm", "tmpv"]).ok();
    fs::remove_dir_all(&host).ok();
}

#[test]
fn cp_reads_and_writes_volumes_not_the_layer_beneath() {
    let d = Daemon::start();
    let work = d.dir().join("cpwork");
    fs::create_dir_all(&work).expect("mkdir");
    fs::write(work.join("in"), "into volume\n").expect("write");
    let bind = d.dir().join("bindsrc");
    fs::create_dir_all(&bind).expect("mkdir");
    for cli in CLIS {
        let t = tag(cli);
        let v = format!("cpv-{t}");
        // A stopped container, then a running one.
        let c = format!("cpc-{t}");
        d.cli(cli, &["create", "--name", &c, "-v", &format!("{v}:/data"), "-v", &format!("{}:/bound", bind.display()), "busybox", "sleep", "300"]).ok();
        let infile = work.join("in");
        d.cli(cli, &["cp", &infile.to_string_lossy(), &format!("{c}:/data/in")]).ok();
        d.cli(cli, &["cp", &infile.to_string_lossy(), &format!("{c}:/bound/in-{t}")]).ok();
        assert_eq!(fs::read_to_string(bind.join(format!("in-{t}"))).expect("bind file"), "into volume\n");
        let r = d.cli(cli, &["run", "--rm", "-v", &format!("{v}:/v"), "busybox", "cat", "/v/in"]).ok();
        assert_eq!(r.out(), "into volume");
        d.cli(cli, &["run", "--rm", "-v", &format!("{v}:/v"), "busybox", "sh", "-c", "echo from volume > /v/out"]).ok();
        let back = work.join(format!("out-{t}"));
        d.cli(cli, &["cp", &format!("{c}:/data/out"), &back.to_string_lossy()]).ok();
        assert_eq!(fs::read_to_string(&back).expect("out"), "from volume\n");
        d.cli(cli, &["start", &c]).ok();
        let back2 = work.join(format!("out2-{t}"));
        d.cli(cli, &["cp", &format!("{c}:/data/out"), &back2.to_string_lossy()]).ok();
        assert_eq!(fs::read_to_string(&back2).expect("out2"), "from volume\n");
        d.cli(cli, &["rm", "-f", &c]).ok();
        // A read-only mount refuses a copy in; a read-only rootfs does not stop one into a volume.
        let ro = format!("cpro-{t}");
        d.cli(cli, &["create", "--name", &ro, "--read-only", "-v", &format!("{v}:/data:ro"), "-v", &format!("{v}:/rw"), "busybox", "true"]).ok();
        d.cli(cli, &["cp", &infile.to_string_lossy(), &format!("{ro}:/data/x")]).code(1).stderr_has("mounted volume is marked read-only");
        d.cli(cli, &["cp", &infile.to_string_lossy(), &format!("{ro}:/etc/x")]).code(1).stderr_has("container rootfs is marked read-only");
        d.cli(cli, &["cp", &infile.to_string_lossy(), &format!("{ro}:/rw/viarw")]).ok();
        let r = d.cli(cli, &["run", "--rm", "-v", &format!("{v}:/v"), "busybox", "cat", "/v/viarw"]).ok();
        assert_eq!(r.out(), "into volume");
        d.cli(cli, &["rm", &ro]).ok();
    }
}

#[test]
fn system_df_and_the_volumes_api() {
    let d = Daemon::start();
    d.docker(&["volume", "create", "dfvol"]).ok();
    d.docker(&["run", "--name", "dfc", "-v", "dfvol:/d", "busybox", "sh", "-c", "head -c 5000 /dev/zero > /d/z"]).ok();
    let r = d.docker(&["system", "df", "-v"]).ok();
    assert!(r.out().contains("Local Volumes space usage:"), "{}", r.out());
    let line = r.out().lines().find(|l| l.starts_with("dfvol")).unwrap_or("").to_string();
    assert_eq!(line.split_whitespace().collect::<Vec<_>>(), ["dfvol", "1", "5kB"], "{}", r.out());
    let r = d.berth(&["system", "df"]).ok();
    assert!(r.out().lines().any(|l| l.starts_with("Local Volumes") && l.split_whitespace().nth(2) == Some("1")), "{}", r.out());
    let du = d.request("GET", "/system/df", None).json();
    assert_eq!(du["Volumes"][0]["UsageData"], serde_json::json!({"Size": 5000, "RefCount": 1}));
    // The API's shapes and texts.
    let c = d.request("POST", "/volumes/create", Some(r#"{"Name":"apiv","Labels":{"a":"b"}}"#));
    assert_eq!(c.status, 201);
    let v = c.json();
    assert_eq!((v["Driver"].as_str(), v["Scope"].as_str(), v["Options"].is_null()), (Some("local"), Some("local"), true));
    assert!(v["CreatedAt"].as_str().is_some_and(|t| t.len() == 20 && t.ends_with('Z')), "{v}");
    let l = d.request("GET", "/volumes?filters=%7B%22label%22%3A%7B%22a%3Db%22%3Atrue%7D%7D", None).json();
    assert_eq!(l["Volumes"].as_array().map(Vec::len), Some(1));
    assert!(l["Warnings"].is_null());
    let bad = d.request("GET", "/volumes?filters=%7B%22bogus%22%3A%7B%22x%22%3Atrue%7D%7D", None);
    assert_eq!((bad.status, bad.json()["message"].as_str()), (400, Some("invalid filter 'bogus'")));
    let miss = d.request("GET", "/volumes/nope", None);
    assert_eq!((miss.status, miss.json()["message"].as_str()), (404, Some("get nope: no such volume")));
    let miss = d.request("DELETE", "/volumes/nope", None);
    assert_eq!(miss.status, 404);
    assert_eq!(d.request("DELETE", "/volumes/nope?force=1", None).status, 204);
    let used = d.request("DELETE", "/volumes/dfvol", None);
    assert_eq!(used.status, 409);
    // `ps --filter volume=` by name or destination.
    d.docker(&["ps", "-a", "--filter", "volume=dfvol", "--format", "{{.Names}}"]).ok().stdout_has("dfc");
    d.berth(&["ps", "-a", "--filter", "volume=/d", "--format", "{{.Names}}"]).ok().stdout_has("dfc");
    assert_eq!(d.docker(&["ps", "-a", "--filter", "volume=other", "-q"]).ok().out(), "");
    // A subpath from a client older than API 1.45 is refused, as Docker does.
    let body = r#"{"Image":"busybox","HostConfig":{"Mounts":[{"Type":"volume","Source":"dfvol","Target":"/x","VolumeOptions":{"Subpath":"a"}}]}}"#;
    let old = d.request("POST", "/v1.44/containers/create", Some(body));
    assert_eq!((old.status, old.json()["message"].as_str()), (400, Some("VolumeOptions.Subpath needs API v1.45 or newer")));
    // Old API versions prune named volumes too.
    let p = d.request("POST", "/v1.41/volumes/prune", None).json();
    assert_eq!(p["VolumesDeleted"], serde_json::json!(["apiv"]));
}

#[test]
fn unknown_drivers_and_volume_events() {
    let d = Daemon::start();
    for cli in CLIS {
        let t = tag(cli);
        d.cli(cli, &["volume", "create", "-d", "nosuchdriver", &format!("nd-{t}")])
            .code(1)
            .stderr_has("error looking up volume plugin nosuchdriver: plugin \"nosuchdriver\" not found");
        d.cli(cli, &["run", "--rm", "--mount", &format!("type=volume,src=nd2-{t},dst=/x,volume-driver=nosuchdriver"), "busybox", "true"])
            .code(125)
            .stderr_has("plugin \"nosuchdriver\" not found");
        d.cli(cli, &["run", "--rm", "--volume-driver", "nosuchdriver", "-v", &format!("nd3-{t}:/x"), "busybox", "true"])
            .code(125)
            .stderr_has("plugin \"nosuchdriver\" not found");
        // Nothing was made by the failed creates.
        assert_eq!(d.cli(cli, &["volume", "ls", "-q"]).ok().out(), "");
        assert_eq!(d.cli(cli, &["ps", "-aq"]).ok().out(), "");
    }
    d.docker(&["volume", "create", "ev1"]).ok();
    d.docker(&["volume", "rm", "ev1"]).ok();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|t| t.as_secs() + 1).unwrap_or(0);
    let r = d.docker(&["events", "--since", "0", "--until", &now.to_string(), "--filter", "type=volume", "--format", "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.driver}}"]).ok();
    assert_eq!(r.lines(), ["create ev1 local", "destroy ev1 local"]);
    // A container's volumes: mount at start, unmount at exit.
    d.docker(&["run", "--name", "evc", "-v", "ev2:/e:ro", "busybox", "true"]).ok();
    let id = d.inspect("evc")["Id"].as_str().unwrap_or("").to_string();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|t| t.as_secs() + 1).unwrap_or(0);
    let r = d.docker(&["events", "--since", "0", "--until", &now.to_string(), "--filter", "volume=ev2", "--format", "{{.Action}} {{.Actor.Attributes.container}} {{index .Actor.Attributes \"read/write\"}}"]).ok();
    assert_eq!(r.lines(), ["create <no value>".to_string(), format!("mount {id} false"), format!("unmount {id}")]);
}

#[test]
fn kill9_during_volume_creates_leaves_only_whole_volumes() {
    let mut d = Daemon::start();
    // Creates race a SIGKILL of berthd: whatever survives must be whole.
    let host = d.host();
    let berth = berth_e2e::bins().berth.clone();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (host, berth) = (host.clone(), berth.clone());
            std::thread::spawn(move || {
                for i in 0..30 {
                    let _ = std::process::Command::new(&berth)
                        .args(["-H", &host, "volume", "create", &format!("crash-{w}-{i}")])
                        .output();
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    d.kill9();
    for w in workers {
        let _ = w.join();
    }
    d.start_again();
    let root = d.dir().join("root/volumes");
    let listed = d.berth(&["volume", "ls", "-q"]).ok().lines();
    for n in &listed {
        assert!(root.join(n).join("_data").is_dir() && root.join(n).join("volume.json").is_file(), "{n} is not whole");
        d.berth(&["volume", "inspect", n]).ok();
    }
    let leftovers: Vec<String> = fs::read_dir(&root)
        .expect("volumes dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // And the store still works.
    d.berth(&["volume", "create", "after-crash"]).ok();
    d.berth(&["volume", "prune", "-af"]).ok();
    assert_eq!(d.berth(&["volume", "ls", "-q"]).ok().out(), "");
}
