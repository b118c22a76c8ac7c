//! `cp` out of a container into every kind of local destination, through both CLIs
//! (issue 6 D2: `cp CTR:/ NEWDIR` extracted into NEWDIR's parent and overwrote its
//! files), `cp` of a running container's `/` (D9: it walked into /proc and was cut
//! short), and a PUT archive with a hard link to nothing (a 400, not a 500).

#![allow(clippy::type_complexity)] // table-driven cases

use std::fs;
use std::path::Path;

use berth_e2e::{Cli, Daemon};

fn arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn cp_root_into_a_new_directory_leaves_its_parent_alone() {
    let d = Daemon::start();
    d.docker(&["create", "--name", "src1", "busybox", "true"])
        .ok();
    for cli in [Cli::Berth, Cli::Docker] {
        let x = d.dir().join(format!("x-{cli:?}"));
        fs::create_dir_all(x.join("etc")).expect("mkdir");
        fs::write(x.join("etc/passwd"), "PRECIOUS").expect("write");
        fs::write(x.join("file"), "old").expect("write");
        // (source, destination, a file that must appear, whether it must fail)
        let rows: &[(&str, &str, &str, bool)] = &[
            ("src1:/", "new", "new/bin/sh", false),
            ("src1:/", "new-slash/", "new-slash/etc/passwd", false),
            ("src1:/.", "newdot", "newdot/bin/sh", false),
            ("src1:/etc", "etc-copy", "etc-copy/passwd", false),
            ("src1:/etc/.", "etc-content", "etc-content/group", false),
            ("src1:/etc/group", "hn", "hn", false),
            ("src1:/bin", "file", "", true),
            ("src1:/etc/group", "nodir/", "", true),
        ];
        for (src, dst, made, fails) in rows {
            let mut dst_arg = arg(&x.join(dst));
            if dst.ends_with('/') {
                dst_arg.push('/');
            }
            let r = d.cli(cli, &["cp", src, &dst_arg]);
            if *fails {
                r.code(1);
            } else {
                r.ok();
                assert!(
                    fs::symlink_metadata(x.join(made)).is_ok(),
                    "{cli:?} cp {src} {dst}: no {made}"
                );
            }
            assert_eq!(
                fs::read_to_string(x.join("etc/passwd")).expect("passwd"),
                "PRECIOUS",
                "{cli:?} cp {src} {dst}"
            );
            assert_eq!(
                fs::read_to_string(x.join("file")).expect("file"),
                "old",
                "{cli:?} cp {src} {dst}"
            );
            assert!(
                !x.join("bin").exists(),
                "{cli:?} cp {src} {dst} wrote into the parent"
            );
        }
        // Into an existing directory, `/` gives its content (Docker: the root has no name).
        let y = d.dir().join(format!("y-{cli:?}"));
        fs::create_dir_all(&y).expect("mkdir");
        d.cli(cli, &["cp", "src1:/", &arg(&y)]).ok();
        assert!(
            y.join("bin/sh").exists() && y.join("etc/passwd").exists(),
            "{cli:?}"
        );
        // A tar to stdout is the daemon's archive as it is: names `/…`.
        let out = d.cli(cli, &["cp", "src1:/etc/group", "-"]).ok();
        assert!(out.out().starts_with("group"), "{cli:?}");
    }
}

#[test]
fn cp_of_a_running_root_skips_proc_and_sys() {
    let d = Daemon::start();
    d.docker(&["run", "-d", "--name", "run1", "alpine", "sleep", "300"])
        .ok();
    for cli in [Cli::Docker, Cli::Berth] {
        let dst = d.dir().join(format!("root-{cli:?}"));
        d.cli(cli, &["cp", "run1:/", &arg(&dst)]).ok();
        for p in ["usr/bin", "var", "bin/busybox", "etc/os-release"] {
            assert!(fs::symlink_metadata(dst.join(p)).is_ok(), "{cli:?}: no {p}");
        }
        for p in ["proc", "sys"] {
            let n = fs::read_dir(dst.join(p))
                .unwrap_or_else(|e| panic!("{cli:?} {p}: {e}"))
                .count();
            assert_eq!(n, 0, "{cli:?}: {p} has contents");
        }
    }
    d.docker(&["rm", "-f", "run1"]).ok();
}

/// A ustar entry, built by hand (names and link names as given).
fn entry(out: &mut Vec<u8>, name: &str, typeflag: u8, link: &str) {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(b"00000000000");
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    out.extend_from_slice(&h);
}

#[test]
fn put_archive_with_a_dangling_hard_link_is_a_400() {
    let d = Daemon::start();
    d.docker(&["create", "--name", "put1", "busybox", "true"])
        .ok();
    // (entries, status, text in the message)
    let cases: &[(&[(&str, u8, &str)], u16, &str)] = &[
        (&[("h", b'1', "missing")], 400, "invalid hardlink"),
        (&[("../x", b'0', "")], 400, "leaves the destination"),
        (&[("l", b'2', "../../../x")], 400, "invalid symlink"),
        (&[("ok", b'0', "")], 200, ""),
    ];
    for (entries, status, text) in cases {
        let mut tar = Vec::new();
        for (n, t, l) in entries.iter() {
            entry(&mut tar, n, *t, l);
        }
        tar.extend_from_slice(&[0; 1024]);
        let body = String::from_utf8(tar).expect("ascii tar");
        let r = d.request("PUT", "/containers/put1/archive?path=/tmp", Some(&body));
        assert_eq!(r.status, *status, "{entries:?}: {}", r.text());
        assert!(r.text().contains(text), "{entries:?}: {}", r.text());
    }
    let garbage = "x".repeat(3000);
    let r = d.request("PUT", "/containers/put1/archive?path=/tmp", Some(&garbage));
    assert_eq!(r.status, 400, "{}", r.text());
}
