//! A container's filesystem through the real `docker` CLI: `cp` both ways on running
//! and stopped containers, `diff`, `export`, `commit` (and running its result), and
//! `cp` through symlinks planted to escape the container (it must neither read nor
//! write the host).

use std::fs;
use std::path::Path;
use std::time::Duration;

use berth_e2e::{is_hex, Daemon};

fn arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Waits until `docker cp name:path dst` succeeds (the container's setup ran).
fn wait_for(d: &Daemon, name: &str, path: &str, dst: &Path) {
    for _ in 0..50 {
        if d.docker(&["cp", &format!("{name}:{path}"), &arg(dst)]).code == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{name}:{path} never appeared:\n{}", d.log_text());
}

#[test]
fn cp_both_ways_running_and_stopped() {
    let d = Daemon::start();
    let work = d.dir().join("work");
    fs::create_dir_all(work.join("tree/sub")).expect("mkdir");
    fs::write(work.join("cpfile"), "hello cp\n").expect("write");
    fs::write(work.join("tree/sub/leaf"), "leaf\n").expect("write");

    d.docker(&["run", "-d", "--name", "sleeper", "alpine", "sleep", "300"])
        .ok();
    // Into a running container: a file (dest absent), then a tree into a directory.
    d.docker(&["cp", &arg(&work.join("cpfile")), "sleeper:/tmp/cpfile"])
        .ok();
    d.docker(&["cp", &arg(&work.join("tree")), "sleeper:/tmp/"])
        .ok();
    // And back out.
    d.docker(&["cp", "sleeper:/tmp/cpfile", &arg(&work.join("back"))])
        .ok();
    assert_eq!(
        fs::read_to_string(work.join("back")).expect("read back"),
        "hello cp\n"
    );
    d.docker(&["cp", "sleeper:/tmp/tree", &arg(&work.join("tree-back"))])
        .ok();
    assert_eq!(
        fs::read_to_string(work.join("tree-back/sub/leaf")).expect("read leaf"),
        "leaf\n"
    );
    // A file of the image (a lower layer).
    d.docker(&["cp", "sleeper:/etc/os-release", &arg(&work.join("rel"))])
        .ok();
    assert!(!fs::read_to_string(work.join("rel"))
        .expect("read rel")
        .trim()
        .is_empty());
    // Missing paths: Docker's 404 text.
    d.docker(&["cp", "sleeper:/nope", &arg(&work.join("x"))])
        .code(1)
        .stderr_has("Could not find the file /nope in container sleeper");
    d.docker(&["cp", &arg(&work.join("cpfile")), "sleeper:/no/such/dir/"])
        .code(1);
    // Stopped: the files are still there (read from the container's layers).
    d.docker(&["stop", "-t", "1", "sleeper"]).ok();
    d.docker(&["cp", "sleeper:/tmp/cpfile", &arg(&work.join("back2"))])
        .ok();
    assert_eq!(
        fs::read_to_string(work.join("back2")).expect("read back2"),
        "hello cp\n"
    );
    // Into a stopped container, then the container sees it.
    d.docker(&["cp", &arg(&work.join("cpfile")), "sleeper:/etc/shells"])
        .ok();
    d.docker(&["create", "--name", "reader", "alpine", "cat", "/tmp/put"])
        .ok();
    d.docker(&["cp", &arg(&work.join("cpfile")), "reader:/tmp/put"])
        .ok();
    let r = d.docker(&["start", "-a", "reader"]).ok();
    assert_eq!(r.stdout, "hello cp\n", "{r:?}");
    d.docker(&["cp", "reader:/tmp/put", &arg(&work.join("back3"))])
        .ok();
    assert_eq!(
        fs::read_to_string(work.join("back3")).expect("read back3"),
        "hello cp\n"
    );
    // The copy into the stopped container went through the overlay: diff sees it.
    let diff = d.docker(&["diff", "sleeper"]).ok();
    assert!(
        diff.lines().contains(&"C /etc/shells".to_string()),
        "{diff:?}"
    );
}

#[test]
fn diff_export_commit() {
    let d = Daemon::start();
    let work = d.dir().join("work");
    fs::create_dir_all(&work).expect("mkdir");
    d.docker(&[
        "run",
        "--name",
        "changer",
        "alpine",
        "sh",
        "-c",
        "echo new > /newfile && rm /etc/shells && mkdir /tmp/d && touch /tmp/d/x",
    ])
    .ok();

    let diff = d.docker(&["diff", "changer"]).ok();
    let lines = diff.lines();
    // Exactly Docker's answer: no trace of the runtime's mount points (/etc/hosts…).
    assert_eq!(
        lines,
        [
            "C /etc",
            "D /etc/shells",
            "A /newfile",
            "C /tmp",
            "A /tmp/d",
            "A /tmp/d/x"
        ],
        "{diff:?}"
    );

    let tarball = work.join("fs.tar");
    d.docker(&["export", "-o", &arg(&tarball), "changer"]).ok();
    let out = std::process::Command::new("tar")
        .arg("tf")
        .arg(&tarball)
        .output()
        .expect("tar tf");
    assert!(out.status.success(), "tar tf failed");
    let names = String::from_utf8_lossy(&out.stdout).into_owned();
    let names: Vec<&str> = names.lines().collect();
    for want in ["newfile", "etc/os-release", "tmp/d/x", "bin/"] {
        assert!(names.contains(&want), "export lacks {want}: {names:?}");
    }
    assert!(!names.contains(&"etc/shells"), "export has a deleted file");
    // A container that changed nothing has no changes.
    d.docker(&["run", "--name", "quiet", "alpine", "true"]).ok();
    let quiet = d.docker(&["diff", "quiet"]).ok();
    assert_eq!(quiet.stdout, "", "{quiet:?}");

    let r = d
        .docker(&[
            "commit",
            "-m",
            "made by a test",
            "-a",
            "Berth Tester",
            "--change",
            r#"CMD ["cat", "/newfile"]"#,
            "--change",
            "ENV COMMITTED=yes",
            "changer",
            "committed:v1",
        ])
        .ok();
    let id = r.out().trim().to_string();
    assert!(id.starts_with("sha256:") && is_hex(&id[7..], 64), "{r:?}");
    d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
        .ok()
        .stdout_has(&format!("committed:v1 {}", &id[7..19]));
    let run = d.docker(&["run", "--rm", "committed:v1"]).ok();
    assert_eq!(run.stdout, "new\n", "{run:?}");
    let run = d
        .docker(&[
            "run",
            "--rm",
            "committed:v1",
            "sh",
            "-c",
            "echo $COMMITTED; test -e /etc/shells || echo gone; ls /tmp/d",
        ])
        .ok();
    assert_eq!(run.stdout, "yes\ngone\nx\n", "{run:?}");
    let insp = d
        .docker(&[
            "inspect",
            "-f",
            "{{.Comment}}|{{.Author}}|{{len .RootFS.Layers}}",
            "committed:v1",
        ])
        .ok();
    let base_layers = d
        .docker(&["inspect", "-f", "{{len .RootFS.Layers}}", "alpine"])
        .ok()
        .out()
        .trim()
        .parse::<usize>()
        .expect("layers");
    assert_eq!(
        insp.out().trim(),
        format!("made by a test|Berth Tester|{}", base_layers + 1),
        "{insp:?}"
    );

    // A running container, paused for the commit by default and running afterwards.
    d.docker(&[
        "run",
        "-d",
        "--name",
        "live",
        "alpine",
        "sh",
        "-c",
        "echo hi > /live; sleep 300",
    ])
    .ok();
    wait_for(&d, "live", "/live", &work.join("live"));
    d.docker(&["commit", "live", "live:1"]).ok();
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.State.Status}}", "live"])
            .ok()
            .out()
            .trim(),
        "running"
    );
    let run = d.docker(&["run", "--rm", "live:1", "cat", "/live"]).ok();
    assert_eq!(run.stdout, "hi\n", "{run:?}");
    // A bad --change is the client's mistake.
    d.docker(&["commit", "--change", "RUN true", "live", "bad:1"])
        .code(1)
        .stderr_has("RUN is not a valid change command");
    d.docker(&["rm", "-f", "live"]).ok();
}

#[test]
fn cp_through_symlinks_stays_inside_the_container() {
    let d = Daemon::start();
    let work = d.dir().join("work");
    fs::create_dir_all(&work).expect("mkdir");
    // A host file the container must never reach, by its absolute host path.
    let secret = d.dir().join("host-secret");
    fs::write(&secret, "host secret\n").expect("write secret");
    let secret_path = arg(&secret);
    let unique = format!("berth-escape-{}", std::process::id());
    let payload = work.join(&unique);
    fs::write(&payload, "payload\n").expect("write payload");
    let host_victim = Path::new("/tmp").join(&unique);
    let _ = fs::remove_file(&host_victim);

    d.docker(&[
        "run",
        "-d",
        "--name",
        "evil",
        "alpine",
        "sh",
        "-c",
        "ln -s / /etc/evil; ln -s ../../../../../../.. /tmp/up; ln -s /etc/evil/tmp /tmp/abs; touch /ready; sleep 300",
    ])
    .ok();
    wait_for(&d, "evil", "/ready", &work.join("ready"));

    for phase in ["running", "stopped"] {
        // Reads: an absolute host path behind an escaping symlink is not found in the
        // container (it does not exist there) — the host file is never read.
        for p in [
            format!("/etc/evil{secret_path}"),
            format!("/tmp/up{secret_path}"),
        ] {
            let out = work.join(format!("leak-{phase}"));
            let r = d.docker(&["cp", &format!("evil:{p}"), &arg(&out)]);
            assert_ne!(r.code, 0, "{phase}: read {p} through a symlink: {r:?}");
            assert!(
                !out.exists() || fs::read_to_string(&out).unwrap_or_default() != "host secret\n",
                "{phase}: leaked"
            );
        }
        // The symlinks do resolve, but inside the container's root.
        let rel = work.join(format!("rel-{phase}"));
        d.docker(&["cp", "evil:/etc/evil/etc/os-release", &arg(&rel)])
            .ok();
        d.docker(&["cp", "evil:/tmp/up/etc/os-release", &arg(&rel)])
            .ok();
        // Writes through the symlinks land in the container's /tmp, not the host's.
        for dst in ["evil:/etc/evil/tmp/", "evil:/tmp/up/tmp/", "evil:/tmp/abs/"] {
            d.docker(&["cp", &arg(&payload), dst]).ok();
            assert!(
                !host_victim.exists(),
                "{phase}: {dst} wrote to the host's /tmp"
            );
        }
        let back = work.join(format!("back-{phase}"));
        d.docker(&["cp", &format!("evil:/tmp/{unique}"), &arg(&back)])
            .ok();
        assert_eq!(fs::read_to_string(&back).expect("read back"), "payload\n");
        // A destination that only exists on the host is refused.
        let r = d.docker(&[
            "cp",
            &arg(&payload),
            &format!("evil:/etc/evil{}/", arg(d.dir())),
        ]);
        assert_ne!(
            r.code, 0,
            "{phase}: wrote into a host-only directory: {r:?}"
        );
        assert!(
            !d.dir().join(&unique).exists(),
            "{phase}: wrote into the host's temp dir"
        );
        assert_eq!(
            fs::read_to_string(&secret).expect("secret"),
            "host secret\n"
        );
        if phase == "running" {
            d.docker(&["stop", "-t", "1", "evil"]).ok();
        }
    }
    let _ = fs::remove_file(&host_victim);
}
