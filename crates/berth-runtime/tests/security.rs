//! Integration tests for Docker's default hardening: real `berth-shim`, busybox rootfs,
//! the container reporting what it can and cannot do. They need root (as in CI).
#![allow(clippy::unwrap_used)]

mod common;

use berth_runtime::security::{SeccompMode, SecuritySpec};
use common::*;

const DOCKER_DEFAULT_CAPS: u64 = 0xa804_25fb;

/// Runs `script` under `sh -c` with `sec`; returns stdout (stderr is appended on failure
/// to start, for the message).
fn sh(name: &str, script: &str, sec: SecuritySpec) -> String {
    sh_as(name, script, sec, "")
}

fn sh_as(name: &str, script: &str, sec: SecuritySpec, user: &str) -> String {
    let e = env(name, &["sh", "-c", script], |s| {
        s.security = sec;
        s.user = user.to_string();
    });
    let (out, err, x) = run(&e);
    assert_eq!(x.exit_code, 0, "script failed: stdout={out:?} stderr={err:?} shim log={}", shim_log(&e));
    out
}

/// The value of `key:` in /proc/self/status-style text.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')).map(str::trim))
        .unwrap_or_else(|| panic!("{key} missing in {out:?}"))
}

fn hex(out: &str, key: &str) -> u64 {
    u64::from_str_radix(field(out, key), 16).unwrap()
}

fn has(out: &str, line: &str) -> bool {
    out.lines().any(|l| l == line)
}

fn host_cap_eff() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    hex(&s, "CapEff")
}

const STATUS: &str = "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status";

#[test]
fn default_container_is_confined() {
    let script = format!(
        "{STATUS}
        busybox unshare -m true 2>/dev/null && echo unshare-m=ok || echo unshare-m=denied
        busybox unshare -U true 2>/dev/null && echo unshare-U=ok || echo unshare-U=denied
        busybox mkdir -p /mnt; mount -t tmpfs none /mnt 2>/dev/null && echo mount=ok || echo mount=denied
        echo keys=$(cat /proc/keys 2>/dev/null | wc -c) timer_list=$(cat /proc/timer_list 2>/dev/null | wc -c)
        echo acpi=$(ls /proc/acpi 2>/dev/null | wc -l) firmware=$(ls /sys/firmware 2>/dev/null | wc -l)
        echo kcore=$(cat /dev/core 2>/dev/null | wc -c)
        busybox cut -d' ' -f5 /proc/self/mountinfo | busybox sed 's/^/mountpoint=/'
        (echo x > /proc/sys/kernel/domainname) 2>/dev/null && echo procsys=ok || echo procsys=denied
        (echo x > /proc/sysrq-trigger) 2>/dev/null && echo sysrq=ok || echo sysrq=denied
        busybox mknod /tmp/null c 1 3 && echo mknod=ok
        echo hi > /tmp/null && echo null-write=ok
        busybox mknod /tmp/mem c 1 1 && echo mknod-mem=ok
        (head -c 1 /tmp/mem >/dev/null) 2>/dev/null && echo mem=ok || echo mem=denied
        (echo x > /sys/kernel/uevent_helper) 2>/dev/null && echo sys=ok || echo sys=denied
        true"
    );
    let out = sh("sec-default", &script, SecuritySpec::default());
    assert_eq!(hex(&out, "CapEff"), DOCKER_DEFAULT_CAPS, "{out}");
    assert_eq!(hex(&out, "CapPrm"), DOCKER_DEFAULT_CAPS, "{out}");
    assert_eq!(hex(&out, "CapBnd"), DOCKER_DEFAULT_CAPS, "{out}");
    assert_eq!(hex(&out, "CapInh"), 0, "{out}");
    assert_eq!(hex(&out, "CapAmb"), 0, "{out}");
    assert_eq!(field(&out, "NoNewPrivs"), "0", "{out}");
    assert_eq!(field(&out, "Seccomp"), "2", "{out}");
    // Every default masked path this kernel has is covered by a mount.
    for p in berth_runtime::security::DEFAULT_MASKED_PATHS {
        if std::path::Path::new(p).exists() {
            assert!(has(&out, &format!("mountpoint={p}")), "{p} not masked:\n{out}");
        }
    }
    for p in berth_runtime::security::DEFAULT_READONLY_PATHS {
        if std::path::Path::new(p).exists() {
            assert!(has(&out, &format!("mountpoint={p}")), "{p} not read-only bound:\n{out}");
        }
    }
    for want in [
        "unshare-m=denied",
        "unshare-U=denied",
        "mount=denied",
        "kcore=0",
        "keys=0 timer_list=0",
        "acpi=0 firmware=0",
        "procsys=denied",
        "sysrq=denied",
        "mknod=ok",
        "null-write=ok",
        "mknod-mem=ok",
        "mem=denied",
        "sys=denied",
    ] {
        assert!(has(&out, want), "want {want} in:\n{out}");
    }
}

#[test]
fn privileged_container_is_not() {
    let script = format!(
        "{STATUS}
        busybox mkdir -p /mnt; mount -t tmpfs none /mnt && echo mount=ok || echo mount=denied
        busybox unshare -m true && echo unshare-m=ok || echo unshare-m=denied
        echo timer_list=$(head -c 16 /proc/timer_list 2>/dev/null | wc -c)
        grep -cE ' /proc/(keys|timer_list|acpi|kcore) ' /proc/self/mountinfo | busybox sed 's/^/masks=/'
        grep -q ' /sys sysfs rw' /proc/mounts && echo sys=rw || echo sys=ro
        grep ' /proc/sys ' /proc/mounts | grep -q ro, && echo procsys=ro || echo procsys=rw
        ls /dev/loop-control >/dev/null 2>&1 && echo host-devices=yes || echo host-devices=no
        busybox mknod /tmp/mem c 1 1 && (head -c 1 /tmp/mem >/dev/null 2>&1; echo mem-open-rc=$?)
        true"
    );
    let out = sh("sec-priv", &script, SecuritySpec { privileged: true, ..Default::default() });
    assert_eq!(hex(&out, "CapEff"), host_cap_eff(), "all capabilities the host grants: {out}");
    assert_eq!(field(&out, "Seccomp"), "0", "{out}");
    for want in ["mount=ok", "unshare-m=ok", "masks=0", "sys=rw", "procsys=rw"] {
        assert!(has(&out, want), "want {want} in:\n{out}");
    }
    if std::path::Path::new("/proc/timer_list").exists() {
        assert!(has(&out, "timer_list=16"), "{out}");
    }
    if std::path::Path::new("/dev/loop-control").exists() {
        assert!(has(&out, "host-devices=yes"), "{out}");
    }
    // The devices cgroup lets the node open (reading /dev/mem may still be refused by
    // the kernel's own STRICT_DEVMEM, but not with the cgroup's EPERM on open).
    assert!(out.contains("mem-open-rc="), "{out}");
}

#[test]
fn cap_drop_removes_capabilities() {
    let sec = SecuritySpec { cap_drop: vec!["NET_RAW".into(), "chown".into()], ..Default::default() };
    let script = format!(
        "{STATUS}
        touch /tmp/f
        busybox chown 1000 /tmp/f 2>/dev/null && echo chown=ok || echo chown=denied
        true"
    );
    let out = sh("sec-capdrop", &script, sec);
    assert_eq!(hex(&out, "CapEff"), DOCKER_DEFAULT_CAPS & !(1 << 13) & !1, "{out}");
    assert!(has(&out, "chown=denied"), "{out}");
    // And the default keeps CAP_CHOWN.
    let out = sh("sec-chown", "touch /tmp/f; busybox chown 1000 /tmp/f && echo chown=ok", SecuritySpec::default());
    assert!(has(&out, "chown=ok"), "{out}");
}

#[test]
fn cap_add_sys_admin_allows_mount() {
    let sec = SecuritySpec { cap_add: vec!["SYS_ADMIN".into()], ..Default::default() };
    let out = sh("sec-capadd", &format!("{STATUS}\nbusybox mkdir -p /mnt; mount -t tmpfs none /mnt && echo mount=ok"), sec);
    assert_eq!(hex(&out, "CapEff"), DOCKER_DEFAULT_CAPS | (1 << 21), "{out}");
    assert!(has(&out, "mount=ok"), "seccomp lets mount through with CAP_SYS_ADMIN: {out}");
}

#[test]
fn no_new_privileges_and_seccomp_modes() {
    let out = sh("sec-nnp", STATUS, SecuritySpec { no_new_privileges: true, ..Default::default() });
    assert_eq!(field(&out, "NoNewPrivs"), "1", "{out}");
    assert_eq!(field(&out, "Seccomp"), "2", "{out}");
    assert_eq!(hex(&out, "CapEff"), DOCKER_DEFAULT_CAPS, "{out}");

    let out = sh("sec-unconf", STATUS, SecuritySpec { seccomp: SeccompMode::Unconfined, ..Default::default() });
    assert_eq!(field(&out, "Seccomp"), "0", "{out}");
    assert_eq!(field(&out, "NoNewPrivs"), "0", "{out}");
    assert_eq!(hex(&out, "CapEff"), DOCKER_DEFAULT_CAPS, "{out}");
}

#[test]
fn custom_profile_denies_mkdir() {
    let profile = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#;
    let sec = SecuritySpec { seccomp: SeccompMode::Profile(profile.into()), ..Default::default() };
    let script = format!(
        "{STATUS}
        busybox mkdir /tmp/d 2>/dev/null && echo mkdir=ok || echo mkdir=denied
        echo still-running"
    );
    let out = sh("sec-profile", &script, sec.clone());
    assert_eq!(field(&out, "Seccomp"), "2", "{out}");
    assert!(has(&out, "mkdir=denied") && has(&out, "still-running"), "{out}");
    // The same profile with no_new_privileges (loaded after the user switch).
    let sec = SecuritySpec { no_new_privileges: true, ..sec };
    let out = sh_as("sec-profile-nnp", &script, sec, "1000");
    assert!(has(&out, "mkdir=denied") && has(&out, "still-running"), "{out}");
}

#[test]
fn non_root_user_gets_no_effective_caps() {
    let out = sh_as("sec-user", STATUS, SecuritySpec::default(), "1000:1000");
    assert_eq!(hex(&out, "CapEff"), 0, "{out}");
    assert_eq!(hex(&out, "CapPrm"), 0, "{out}");
    assert_eq!(hex(&out, "CapBnd"), DOCKER_DEFAULT_CAPS, "{out}");
    assert_eq!(field(&out, "Seccomp"), "2", "{out}");
}

#[test]
fn bad_profile_fails_the_start() {
    let sec = SecuritySpec { seccomp: SeccompMode::Profile("{not json".into()), ..Default::default() };
    let e = env("sec-badprof", &["true"], |s| s.security = sec);
    let r = berth_runtime::client::spawn(&shim_bin(), &e.spec_path);
    let msg = match r {
        Err(err) => err.to_string(),
        Ok(mut st) => {
            let go = berth_runtime::client::go(&e.spec.socket_path);
            let _ = st.shim.wait();
            format!("{go:?}")
        }
    };
    assert!(msg.contains("seccomp"), "{msg}");
}

#[test]
fn exec_gets_the_container_security() {
    let sec = SecuritySpec { cap_drop: vec!["NET_RAW".into()], no_new_privileges: true, ..Default::default() };
    let e = env("sec-exec", &["sleep", "100"], |s| s.security = sec);
    let st = start(&e);
    let sock = &e.spec.socket_path;
    let exec = |privileged: bool, user: &str| {
        let spec = berth_runtime::spec::ExecSpec {
            args: vec!["sh".into(), "-c".into(), STATUS.into()],
            privileged,
            user: user.into(),
            ..Default::default()
        };
        let (s, _) = berth_runtime::client::exec(sock, &spec).unwrap();
        let (out, err, code) = collect_exec(s);
        assert_eq!(code, 0, "{out} {err}");
        out
    };
    let out = exec(false, "");
    assert_eq!(hex(&out, "CapEff"), DOCKER_DEFAULT_CAPS & !(1 << 13), "{out}");
    assert_eq!(field(&out, "Seccomp"), "2", "{out}");
    assert_eq!(field(&out, "NoNewPrivs"), "1", "{out}");
    let out = exec(false, "app");
    assert_eq!(hex(&out, "CapEff"), 0, "{out}");
    assert_eq!(hex(&out, "CapBnd"), DOCKER_DEFAULT_CAPS & !(1 << 13), "{out}");
    let out = exec(true, "");
    assert_eq!(hex(&out, "CapEff"), host_cap_eff(), "exec --privileged: {out}");
    stop(&e, st);
}
