//! Docker's default seccomp profile, as data: an allow list with default action
//! ERRNO(EPERM), per-architecture extras, argument-restricted `clone`, `personality`
//! and `socket`, and syscalls allowed only when the container holds a capability.
//! Kept in step with moby's `profiles/seccomp/default.json` (the same facts, written
//! here as Rust so no JSON is parsed per container start).

use super::{Arg, ArchMap, Filter, Profile, SyscallRule};

/// Allowed for every container on every architecture (names unknown to an
/// architecture are skipped when compiling).
const ALLOWED: &str = "
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2
dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64
fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl
fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64
fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_time64 futex_waitv
futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid
getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid
getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list
getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32
getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl
io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup
io_submit io_uring_enter io_uring_register io_uring_setup ipc kill landlock_add_rule
landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat listen
listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise membarrier
memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2
mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall
munmap name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause pidfd_open
pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl
pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev
pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64
recvmsg remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir rseq
rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr
sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler
sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr
sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32
setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority
setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32
setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32
setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask
sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat
sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete
timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create
timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate
truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat utimensat_time64 utimes
vfork vmsplice wait4 waitid waitpid write writev
";

/// Namespace flags a container without CAP_SYS_ADMIN may not pass to clone:
/// NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET.
const CLONE_NS_FLAGS: u64 = 0x7E02_0000;

fn list(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn strs(v: &[&str]) -> Option<Vec<String>> {
    Some(v.iter().map(|s| s.to_string()).collect())
}

fn allow(names: &str) -> SyscallRule {
    SyscallRule { names: Some(list(names)), action: "SCMP_ACT_ALLOW".into(), ..Default::default() }
}

fn with_caps(names: &str, caps: &[&str]) -> SyscallRule {
    SyscallRule { includes: Some(Filter { caps: strs(caps), ..Default::default() }), ..allow(names) }
}

fn on_arches(names: &str, arches: &[&str]) -> SyscallRule {
    SyscallRule { includes: Some(Filter { arches: strs(arches), ..Default::default() }), ..allow(names) }
}

fn arg(index: u32, value: u64, op: &str) -> Arg {
    Arg { index, value, value_two: 0, op: op.into() }
}

fn arch_map(arch: &str, subs: &[&str]) -> ArchMap {
    ArchMap { architecture: arch.into(), sub_architectures: if subs.is_empty() { None } else { strs(subs) } }
}

/// Docker's default profile.
pub fn default_profile() -> Profile {
    let mut rules = vec![
        allow(ALLOWED),
        SyscallRule {
            includes: Some(Filter { min_kernel: Some("4.8".into()), ..Default::default() }),
            ..allow("process_vm_readv process_vm_writev ptrace")
        },
        SyscallRule { args: Some(vec![arg(0, 40, "SCMP_CMP_NE")]), ..allow("socket") },
    ];
    // personality: PER_LINUX, UNAME26, PER_LINUX32, UNAME26|PER_LINUX32, and the query.
    for persona in [0u64, 0x0008, 0x2_0000, 0x2_0008, 0xffff_ffff] {
        rules.push(SyscallRule { args: Some(vec![arg(0, persona, "SCMP_CMP_EQ")]), ..allow("personality") });
    }
    rules.extend([
        on_arches("sync_file_range2 swapcontext", &["ppc64le"]),
        on_arches("arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls", &["arm", "arm64"]),
        on_arches("arch_prctl", &["amd64", "x32"]),
        on_arches("modify_ldt", &["amd64", "x32", "x86"]),
        on_arches("s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr", &["s390", "s390x"]),
        on_arches("riscv_flush_icache", &["riscv64"]),
        with_caps("open_by_handle_at", &["CAP_DAC_READ_SEARCH"]),
        with_caps(
            "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount \
             mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname \
             sethostname setns syslog umount umount2 unshare",
            &["CAP_SYS_ADMIN"],
        ),
        SyscallRule {
            args: Some(vec![arg(0, CLONE_NS_FLAGS, "SCMP_CMP_MASKED_EQ")]),
            excludes: Some(Filter { caps: strs(&["CAP_SYS_ADMIN"]), arches: strs(&["s390", "s390x"]), min_kernel: None }),
            ..allow("clone")
        },
        SyscallRule {
            args: Some(vec![arg(1, CLONE_NS_FLAGS, "SCMP_CMP_MASKED_EQ")]),
            comment: Some("s390 parameter ordering for clone is different".into()),
            includes: Some(Filter { arches: strs(&["s390", "s390x"]), ..Default::default() }),
            excludes: Some(Filter { caps: strs(&["CAP_SYS_ADMIN"]), ..Default::default() }),
            ..allow("clone")
        },
        // glibc falls back to clone when clone3 says ENOSYS; clone's flags can be checked.
        SyscallRule {
            names: Some(list("clone3")),
            action: "SCMP_ACT_ERRNO".into(),
            errno_ret: Some(38),
            excludes: Some(Filter { caps: strs(&["CAP_SYS_ADMIN"]), ..Default::default() }),
            ..Default::default()
        },
        with_caps("reboot", &["CAP_SYS_BOOT"]),
        with_caps("chroot", &["CAP_SYS_CHROOT"]),
        with_caps("delete_module init_module finit_module", &["CAP_SYS_MODULE"]),
        with_caps("acct", &["CAP_SYS_PACCT"]),
        with_caps("kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace", &["CAP_SYS_PTRACE"]),
        with_caps("iopl ioperm", &["CAP_SYS_RAWIO"]),
        with_caps("settimeofday stime clock_settime clock_settime64", &["CAP_SYS_TIME"]),
        with_caps("vhangup", &["CAP_SYS_TTY_CONFIG"]),
        with_caps("get_mempolicy mbind set_mempolicy set_mempolicy_home_node", &["CAP_SYS_NICE"]),
        with_caps("syslog", &["CAP_SYSLOG"]),
        with_caps("bpf", &["CAP_BPF"]),
        with_caps("perf_event_open", &["CAP_PERFMON"]),
    ]);
    Profile {
        default_action: "SCMP_ACT_ERRNO".into(),
        default_errno_ret: Some(1),
        architectures: None,
        arch_map: Some(vec![
            arch_map("SCMP_ARCH_X86_64", &["SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
            arch_map("SCMP_ARCH_AARCH64", &["SCMP_ARCH_ARM"]),
            arch_map("SCMP_ARCH_MIPS64", &["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"]),
            arch_map("SCMP_ARCH_MIPS64N32", &["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"]),
            arch_map("SCMP_ARCH_MIPSEL64", &["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"]),
            arch_map("SCMP_ARCH_MIPSEL64N32", &["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64"]),
            arch_map("SCMP_ARCH_S390X", &["SCMP_ARCH_S390"]),
            arch_map("SCMP_ARCH_RISCV64", &[]),
        ]),
        listener_path: None,
        flags: None,
        syscalls: Some(rules),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let p = default_profile();
        let rules = p.syscalls.as_ref().unwrap();
        let first = rules[0].names.as_ref().unwrap();
        assert!(first.len() > 300, "{}", first.len());
        assert!(first.iter().any(|n| n == "accept") && first.iter().any(|n| n == "writev"));
        assert!(!first.iter().any(|n| n == "mount" || n == "unshare" || n == "clone"));
        // Round-trips through Docker's JSON format.
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(super::super::parse(&json).unwrap(), p);
        assert!(json.contains("\"defaultErrnoRet\":1"));
    }
}
