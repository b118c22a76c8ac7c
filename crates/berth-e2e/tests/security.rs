//! What a container may do, as Docker decides it (docs/security.md): the default
//! capability set and seccomp profile, --privileged, --cap-add/--cap-drop,
//! no-new-privileges, --read-only, --tmpfs, --init, --ulimit, masked paths.
//! Each case runs through `berth` and the real `docker` CLI.

use berth_e2e::{both, Cli, Daemon};

fn sh(d: &Daemon, cli: Cli, flags: &[&str], script: &str) -> berth_e2e::Run {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["alpine", "sh", "-c", script]);
    d.cli(cli, &args)
}

fn status_field(d: &Daemon, cli: Cli, flags: &[&str], field: &str) -> String {
    let r = sh(d, cli, flags, &format!("grep '^{field}:' /proc/self/status")).ok();
    r.out().split_whitespace().nth(1).unwrap_or_default().to_string()
}

both!(fn namespaces_and_mounts_denied_by_default_allowed_privileged(d, cli) {
    d.cli(cli, &["pull", "alpine"]).ok();
    // unshare(CLONE_NEWNS) needs CAP_SYS_ADMIN, and the default seccomp profile blocks
    // unshare without it.
    let r = sh(&d, cli, &[], "unshare -m true");
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("Operation not permitted"), "{r:?}");
    let r = sh(&d, cli, &[], "mount -t tmpfs none /mnt");
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("mount: permission denied (are you root?)"), "{r:?}");
    // seccomp=unconfined alone does not give CAP_SYS_ADMIN back.
    let r = sh(&d, cli, &["--security-opt", "seccomp=unconfined"], "mount -t tmpfs none /mnt");
    assert_ne!(r.code, 0, "{r:?}");

    sh(&d, cli, &["--privileged"], "unshare -m true").ok();
    let r = sh(&d, cli, &["--privileged"], "mount -t tmpfs none /mnt && grep ' /mnt ' /proc/mounts").ok();
    assert!(r.stdout.starts_with("none /mnt tmpfs rw"), "{r:?}");
    // --cap-add SYS_ADMIN with the default profile: the profile then allows mount/unshare.
    sh(&d, cli, &["--cap-add", "SYS_ADMIN"], "unshare -m true && mount -t tmpfs none /mnt").ok();
});

both!(fn capability_sets(d, cli) {
    d.cli(cli, &["pull", "alpine"]).ok();
    // Docker's 14 defaults.
    assert_eq!(status_field(&d, cli, &[], "CapEff"), "00000000a80425fb");
    assert_eq!(status_field(&d, cli, &[], "CapBnd"), "00000000a80425fb");
    assert_eq!(status_field(&d, cli, &[], "CapInh"), "0000000000000000");
    assert_eq!(status_field(&d, cli, &[], "CapAmb"), "0000000000000000");
    assert_eq!(status_field(&d, cli, &["--cap-drop", "ALL"], "CapEff"), "0000000000000000");
    assert_eq!(status_field(&d, cli, &["--cap-drop", "ALL", "--cap-add", "NET_RAW"], "CapEff"), "0000000000002000");
    // Any case, with or without CAP_.
    assert_eq!(status_field(&d, cli, &["--cap-add", "sys_admin"], "CapEff"), "00000000a82425fb");
    assert_eq!(status_field(&d, cli, &["--cap-drop", "CAP_NET_RAW"], "CapEff"), "00000000a80405fb");
    // Privileged: every capability the kernel has (cap_last_cap) — as far as the engine
    // itself holds them (this test's own bounding set; a sandbox may lack some).
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .expect("cap_last_cap")
        .trim()
        .parse()
        .expect("number");
    let own = std::fs::read_to_string("/proc/self/status").expect("status");
    let own_bnd = own
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).expect("hex"))
        .expect("CapBnd");
    let all = format!("{:016x}", ((1u64 << (last + 1)) - 1) & own_bnd);
    assert_eq!(status_field(&d, cli, &["--privileged"], "CapEff"), all);

    // The effect: NET_RAW is what ping needs, CHOWN what chown needs.
    sh(&d, cli, &[], "ping -c 1 -W 2 127.0.0.1").ok();
    let r = sh(&d, cli, &["--cap-drop", "NET_RAW"], "ping -c 1 -W 2 127.0.0.1");
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("permission denied"), "{r:?}");
    sh(&d, cli, &[], "chown nobody /tmp").ok();
    let r = sh(&d, cli, &["--cap-drop", "CHOWN"], "chown nobody /tmp");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("Operation not permitted"), "{r:?}");
    // A non-root user has no effective capabilities.
    assert_eq!(status_field(&d, cli, &["--user", "65534"], "CapEff"), "0000000000000000");
    assert_eq!(status_field(&d, cli, &["--user", "65534"], "CapBnd"), "00000000a80425fb");
    // Unknown names fail the create.
    d.cli(cli, &["run", "--rm", "--cap-add", "FOO", "alpine", "true"])
        .code(125)
        .stderr_has("unknown capability: \"CAP_FOO\"");
});

both!(fn no_new_privileges_and_seccomp_mode(d, cli) {
    d.cli(cli, &["pull", "alpine"]).ok();
    assert_eq!(status_field(&d, cli, &[], "NoNewPrivs"), "0");
    assert_eq!(status_field(&d, cli, &["--security-opt", "no-new-privileges"], "NoNewPrivs"), "1");
    assert_eq!(status_field(&d, cli, &["--security-opt", "no-new-privileges:true"], "NoNewPrivs"), "1");
    // Seccomp: 2 = filter; none when unconfined or privileged.
    assert_eq!(status_field(&d, cli, &[], "Seccomp"), "2");
    assert_eq!(status_field(&d, cli, &["--security-opt", "seccomp=unconfined"], "Seccomp"), "0");
    assert_eq!(status_field(&d, cli, &["--privileged"], "Seccomp"), "0");
    let st = d.cli(cli, &["create", "--security-opt", "no-new-privileges", "alpine"]).ok().out().to_string();
    let v = d.inspect(&st);
    assert_eq!(v["HostConfig"]["SecurityOpt"], serde_json::json!(["no-new-privileges"]));
});

both!(fn read_only_rootfs_and_tmpfs(d, cli) {
    d.cli(cli, &["pull", "alpine"]).ok();
    let r = sh(&d, cli, &["--read-only"], "touch /x");
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stderr, "touch: /x: Read-only file system\n", "{r:?}");
    let r = sh(&d, cli, &["--read-only"], "touch /tmp/x");
    assert_eq!(r.code, 1, "/tmp is part of the read-only rootfs: {r:?}");
    // /dev/shm and /dev stay writable.
    sh(&d, cli, &["--read-only"], "touch /dev/shm/x && echo hi > /dev/null").ok();
    // --tmpfs: writable, Docker's default options (noexec,nosuid,nodev).
    let r = sh(&d, cli, &["--read-only", "--tmpfs", "/tmp"], "touch /tmp/x && grep ' /tmp ' /proc/mounts").ok();
    assert!(r.stdout.starts_with("tmpfs /tmp tmpfs rw,nosuid,nodev,noexec,"), "{r:?}");
    let r = sh(&d, cli, &["--tmpfs", "/run:rw,size=1m,exec"], "grep ' /run ' /proc/mounts").ok();
    let opts = r.out().split_whitespace().nth(3).unwrap_or_default().to_string();
    assert!(opts.contains("size=1024k") && !opts.contains("noexec") && opts.contains("nosuid"), "{r:?}");
    // The tmpfs starts empty and is not in the container's diff.
    d.cli(cli, &["run", "--name", "tf", "--tmpfs", "/data", "alpine", "sh", "-c", "echo x > /data/f"]).ok();
    let diff = d.cli(cli, &["diff", "tf"]).ok();
    assert!(!diff.stdout.contains("/data/f"), "{diff:?}");
    let v = d.inspect("tf");
    assert_eq!(v["HostConfig"]["Tmpfs"], serde_json::json!({"/data": ""}));
});

both!(fn init_is_pid_one_and_forwards_signals(d, cli) {
    d.cli(cli, &["pull", "alpine"]).ok();
    let r = sh(&d, cli, &["--init"], "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$").ok();
    let lines = r.lines();
    assert_eq!(lines[0], "/sbin/docker-init -- sh -c cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$", "{r:?}");
    assert_ne!(lines[1], "1", "the command is not pid 1 under --init: {r:?}");
    // Without --init the command is pid 1 and SIGTERM has no handler: stop waits, then
    // SIGKILL (137). With --init, tini forwards SIGTERM and sleep dies of it (143).
    d.cli(cli, &["run", "-d", "--init", "--name", "withinit", "alpine", "sleep", "300"]).ok();
    d.cli(cli, &["stop", "-t", "30", "withinit"]).ok();
    assert_eq!(d.inspect("withinit")["State"]["ExitCode"], 143);
});

both!(fn ulimits(d, cli) {
    d.cli(cli, &["pull", "alpine"]).ok();
    let r = sh(&d, cli, &["--ulimit", "nofile=1024:2048"], "ulimit -n; ulimit -Hn").ok();
    assert_eq!(r.lines(), ["1024", "2048"], "{r:?}");
    let r = sh(&d, cli, &["--ulimit", "nproc=50", "--ulimit", "core=0"], "ulimit -u; ulimit -c").ok();
    assert_eq!(r.lines(), ["50", "0"], "{r:?}");
    // exec gets the container's limits.
    d.cli(cli, &["run", "-d", "--name", "ul", "--ulimit", "nofile=512:512", "alpine", "sleep", "300"]).ok();
    assert_eq!(d.cli(cli, &["exec", "ul", "sh", "-c", "ulimit -n"]).ok().out(), "512");
    let v = d.inspect("ul");
    assert_eq!(v["HostConfig"]["Ulimits"], serde_json::json!([{"Name": "nofile", "Hard": 512, "Soft": 512}]));
    d.cli(cli, &["rm", "-f", "ul"]).ok();
    d.cli(cli, &["run", "--rm", "--ulimit", "bogus=1", "alpine", "true"])
        .code(125)
        .stderr_has("invalid ulimit type: bogus");
});

both!(fn masked_and_read_only_proc_paths(d, cli) {
    d.cli(cli, &["pull", "alpine"]).ok();
    // Masked: /proc/keys and /proc/timer_list read as empty (/dev/null bound over them),
    // /sys/firmware and /proc/acpi are empty (a read-only tmpfs) — those that exist on
    // this host. /proc/sys is read-only.
    let host_has = |p: &str| std::path::Path::new(p).exists();
    let mut script = String::new();
    let mut want = Vec::new();
    for f in ["/proc/keys", "/proc/timer_list"].into_iter().filter(|p| host_has(p)) {
        script.push_str(&format!("wc -c < {f}; "));
        want.push("0".to_string());
    }
    for dir in ["/sys/firmware", "/proc/acpi"].into_iter().filter(|p| host_has(p)) {
        script.push_str(&format!("ls -A {dir} | wc -l; "));
        want.push("0".to_string());
    }
    script.push_str("echo 1 > /proc/sys/kernel/ns_last_pid");
    let r = sh(&d, cli, &[], &script).code(1);
    assert_eq!(r.lines(), want, "{r:?}");
    assert!(r.stderr.contains("Read-only file system"), "{r:?}");
    // Privileged: nothing masked.
    if host_has("/sys/firmware") {
        let r = sh(&d, cli, &["--privileged"], "ls -A /sys/firmware | wc -l").ok();
        assert_ne!(r.out(), "0", "{r:?}");
    }
    // Devices: the cgroup denies what is not in Docker's allow list.
    let r = sh(&d, cli, &[], "mknod /tmp/mem c 1 1 && head -c 1 /tmp/mem");
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("Operation not permitted"), "{r:?}");
});
