//! Seccomp profiles in Docker's JSON format, and a small compiler from a profile to a
//! classic BPF program that `berth_sys::security::seccomp_set_filter` loads.
//!
//! Three steps, all pure: [`Profile`] (parsed JSON, or [`default_profile`]) →
//! [`resolve`] (Docker's per-container filtering: rules whose `includes`/`excludes`
//! name capabilities, architectures or a minimum kernel are kept or dropped for this
//! container) → [`compile`] (syscall names to numbers for the native architecture,
//! BPF code). Only the native architecture is compiled: other audit architectures
//! (i386 and x32 system calls on x86_64) get ENOSYS. Syscalls numbered above every
//! syscall the profile names get ENOSYS instead of the default action (as runc does),
//! so that libc falls back from syscalls newer than the profile (e.g. `fchmodat2`).
//! No libseccomp: neighbours are `security` (which decides when to load) and
//! `berth-sys` (which loads).

use berth_sys::security::BpfInsn;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

mod default;
#[cfg(target_arch = "x86_64")]
mod syscalls_x86_64;

pub use default::default_profile;

/// A Docker seccomp profile (`profiles/seccomp/default.json` format).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architectures: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch_map: Option<Vec<ArchMap>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<Vec<String>>,
    #[serde(default)]
    pub syscalls: Option<Vec<SyscallRule>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default)]
    pub sub_architectures: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyscallRule {
    /// Legacy single-name form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub names: Option<Vec<String>>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<Arg>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<Filter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excludes: Option<Filter>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arches: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SeccompError {
    #[error("decoding seccomp profile failed: {0}")]
    Parse(String),
    #[error("seccomp: unsupported action {0:?}")]
    Action(String),
    #[error("seccomp: unsupported comparison operator {0:?}")]
    Op(String),
    #[error("seccomp: argument index {0} out of range")]
    ArgIndex(u32),
    #[error("seccomp: {0} is not supported")]
    Unsupported(&'static str),
    #[error("seccomp: no syscall table for this architecture")]
    Arch,
    #[error("seccomp: filter too large ({0} instructions)")]
    TooLarge(usize),
}

/// Parses a profile (the JSON `--security-opt seccomp=<file>` carries).
pub fn parse(json: &str) -> Result<Profile, SeccompError> {
    serde_json::from_str(json).map_err(|e| SeccompError::Parse(e.to_string()))
}

/// What the kernel does with a matching syscall (a `SECCOMP_RET_*` value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Action(pub u32);

impl Action {
    pub const ALLOW: Action = Action(0x7fff_0000);
    pub fn errno(e: u32) -> Action {
        Action(0x0005_0000 | (e & 0xffff))
    }
}

/// Docker's action names; ERRNO without an explicit errno is EPERM.
pub fn parse_action(name: &str, errno_ret: Option<u32>) -> Result<Action, SeccompError> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => Action::ALLOW,
        "SCMP_ACT_ERRNO" => Action::errno(errno_ret.unwrap_or(libc_eperm())),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action(0),
        "SCMP_ACT_KILL_PROCESS" => Action(0x8000_0000),
        "SCMP_ACT_TRAP" => Action(0x0003_0000),
        "SCMP_ACT_TRACE" => Action(0x7ff0_0000 | (errno_ret.unwrap_or(libc_eperm()) & 0xffff)),
        "SCMP_ACT_LOG" => Action(0x7ffc_0000),
        "SCMP_ACT_NOTIFY" => return Err(SeccompError::Unsupported("SCMP_ACT_NOTIFY")),
        other => return Err(SeccompError::Action(other.to_string())),
    })
}

fn libc_eperm() -> u32 {
    berth_sys::libc::EPERM as u32
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `(arg & value) == value_two`
    MaskedEq,
}

fn parse_op(op: &str) -> Result<CmpOp, SeccompError> {
    Ok(match op {
        "SCMP_CMP_NE" => CmpOp::Ne,
        "SCMP_CMP_LT" => CmpOp::Lt,
        "SCMP_CMP_LE" => CmpOp::Le,
        "SCMP_CMP_EQ" => CmpOp::Eq,
        "SCMP_CMP_GE" => CmpOp::Ge,
        "SCMP_CMP_GT" => CmpOp::Gt,
        "SCMP_CMP_MASKED_EQ" => CmpOp::MaskedEq,
        other => return Err(SeccompError::Op(other.to_string())),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cond {
    pub index: u32,
    pub op: CmpOp,
    pub value: u64,
    pub value_two: u64,
}

/// One rule after Docker's filtering: the syscall matches when all `conds` hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub name: String,
    pub action: Action,
    pub conds: Vec<Cond>,
}

/// A profile filtered for one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedProfile {
    pub default: Action,
    pub rules: Vec<Resolved>,
}

/// Go's GOARCH name for the architecture we run on (what `includes.arches` names).
pub fn native_go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// "5.10.0-foo" → (5, 10).
pub fn parse_kernel(release: &str) -> (u32, u32) {
    let mut it = release.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// Docker's per-container filtering (moby `setupSeccomp`): `caps` are the container's
/// capability names (`CAP_…`), `arch` a GOARCH name, `kernel` (major, minor).
pub fn resolve(p: &Profile, caps: &[&str], arch: &str, kernel: (u32, u32)) -> Result<ResolvedProfile, SeccompError> {
    if p.listener_path.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(SeccompError::Unsupported("listenerPath"));
    }
    let default = parse_action(&p.default_action, p.default_errno_ret)?;
    let mut rules = Vec::new();
    for r in p.syscalls.iter().flatten() {
        if let Some(inc) = &r.includes {
            if inc.caps.iter().flatten().any(|c| !caps.contains(&c.as_str())) {
                continue;
            }
            if inc.arches.as_ref().is_some_and(|a| !a.is_empty() && !a.iter().any(|x| x == arch)) {
                continue;
            }
            if inc.min_kernel.as_deref().is_some_and(|k| kernel < parse_kernel(k)) {
                continue;
            }
        }
        if let Some(exc) = &r.excludes {
            if exc.caps.iter().flatten().any(|c| caps.contains(&c.as_str())) {
                continue;
            }
            if exc.arches.iter().flatten().any(|x| x == arch) {
                continue;
            }
            if exc.min_kernel.as_deref().is_some_and(|k| kernel >= parse_kernel(k)) {
                continue;
            }
        }
        let action = parse_action(&r.action, r.errno_ret)?;
        let mut conds = Vec::new();
        for a in r.args.iter().flatten() {
            if a.index > 5 {
                return Err(SeccompError::ArgIndex(a.index));
            }
            conds.push(Cond { index: a.index, op: parse_op(&a.op)?, value: a.value, value_two: a.value_two });
        }
        // As runc: several conditions on the same argument are alternatives (OR), so
        // such a rule becomes one rule per condition; otherwise they all must hold.
        let repeats = conds.iter().enumerate().any(|(i, c)| conds[..i].iter().any(|d| d.index == c.index));
        let names = r.name.iter().chain(r.names.iter().flatten());
        for n in names {
            if repeats {
                for c in &conds {
                    rules.push(Resolved { name: n.clone(), action, conds: vec![*c] });
                }
            } else {
                rules.push(Resolved { name: n.clone(), action, conds: conds.clone() });
            }
        }
    }
    Ok(ResolvedProfile { default, rules })
}

/// The native syscall number of `name`, if this architecture has it.
pub fn syscall_number(name: &str) -> Option<u32> {
    let table = native_table()?;
    table.binary_search_by(|(n, _)| n.cmp(&name)).ok().map(|i| table[i].1)
}

#[cfg(target_arch = "x86_64")]
fn native_table() -> Option<&'static [(&'static str, u32)]> {
    Some(syscalls_x86_64::SYSCALLS)
}

#[cfg(not(target_arch = "x86_64"))]
fn native_table() -> Option<&'static [(&'static str, u32)]> {
    None
}

#[cfg(target_arch = "x86_64")]
const NATIVE_AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
#[cfg(not(target_arch = "x86_64"))]
const NATIVE_AUDIT_ARCH: u32 = 0;
/// x32 syscalls arrive as AUDIT_ARCH_X86_64 with this bit set in the number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// Classic BPF opcodes.
const LD_W_ABS: u16 = 0x20;
const ALU_AND_K: u16 = 0x54;
const JA: u16 = 0x05;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const RET_K: u16 = 0x06;
const BPF_MAXINSNS: usize = 4096;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
fn off_arg_lo(i: u32) -> u32 {
    16 + 8 * i
}
fn off_arg_hi(i: u32) -> u32 {
    16 + 8 * i + 4
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Label(usize);

enum Item {
    Insn(BpfInsn),
    Jump(Label),
    Mark(Label),
}

/// Straight-line code with labels. Conditional jumps only ever skip a few following
/// instructions (fixed by the patterns below); anything farther goes through `ja`,
/// whose 32-bit offset cannot overflow the 8-bit jt/jf fields.
#[derive(Default)]
struct Asm {
    items: Vec<Item>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }
    fn mark(&mut self, l: Label) {
        self.items.push(Item::Mark(l));
    }
    fn insn(&mut self, code: u16, jt: u8, jf: u8, k: u32) {
        self.items.push(Item::Insn(BpfInsn { code, jt, jf, k }));
    }
    fn ld(&mut self, off: u32) {
        self.insn(LD_W_ABS, 0, 0, off);
    }
    fn ret(&mut self, a: Action) {
        self.insn(RET_K, 0, 0, a.0);
    }
    fn ja(&mut self, l: Label) {
        self.items.push(Item::Jump(l));
    }
    fn finish(self) -> Vec<BpfInsn> {
        let mut pos = vec![0usize; self.labels];
        let mut n = 0;
        for it in &self.items {
            match it {
                Item::Mark(l) => pos[l.0] = n,
                _ => n += 1,
            }
        }
        let mut out = Vec::with_capacity(n);
        for it in self.items {
            match it {
                Item::Insn(i) => out.push(i),
                Item::Jump(l) => {
                    let k = (pos[l.0] - (out.len() + 1)) as u32;
                    out.push(BpfInsn { code: JA, jt: 0, jf: 0, k });
                }
                Item::Mark(_) => {}
            }
        }
        out
    }

    /// Falls through when `cond` holds, jumps to `fail` otherwise.
    fn cond(&mut self, c: &Cond, fail: Label) {
        let (hi, lo) = ((c.value >> 32) as u32, c.value as u32);
        let (ahi, alo) = (off_arg_hi(c.index), off_arg_lo(c.index));
        match c.op {
            CmpOp::Eq => {
                self.ld(ahi);
                self.insn(JEQ_K, 1, 0, hi);
                self.ja(fail);
                self.ld(alo);
                self.insn(JEQ_K, 1, 0, lo);
                self.ja(fail);
            }
            CmpOp::Ne => {
                self.ld(ahi);
                self.insn(JEQ_K, 0, 3, hi); // high words differ: holds
                self.ld(alo);
                self.insn(JEQ_K, 0, 1, lo); // low words differ: holds
                self.ja(fail);
            }
            CmpOp::Gt | CmpOp::Ge => {
                self.ld(ahi);
                self.insn(JGT_K, 5, 0, hi); // hi > v.hi: holds
                self.insn(JEQ_K, 1, 0, hi);
                self.ja(fail); // hi < v.hi
                self.ld(alo);
                self.insn(if c.op == CmpOp::Gt { JGT_K } else { JGE_K }, 1, 0, lo);
                self.ja(fail);
            }
            CmpOp::Lt | CmpOp::Le => {
                self.ld(ahi);
                self.insn(JGE_K, 0, 5, hi); // hi < v.hi: holds
                self.insn(JEQ_K, 1, 0, hi);
                self.ja(fail); // hi > v.hi
                self.ld(alo);
                // lo < v.lo ⇔ !(lo >= v.lo); lo <= v.lo ⇔ !(lo > v.lo)
                self.insn(if c.op == CmpOp::Lt { JGE_K } else { JGT_K }, 0, 1, lo);
                self.ja(fail);
            }
            CmpOp::MaskedEq => {
                let (mhi, mlo) = (hi, lo);
                let (dhi, dlo) = ((c.value_two >> 32) as u32, c.value_two as u32);
                self.ld(ahi);
                self.insn(ALU_AND_K, 0, 0, mhi);
                self.insn(JEQ_K, 1, 0, dhi);
                self.ja(fail);
                self.ld(alo);
                self.insn(ALU_AND_K, 0, 0, mlo);
                self.insn(JEQ_K, 1, 0, dlo);
                self.ja(fail);
            }
        }
    }
}

/// Compiles for the native architecture; names this architecture lacks are skipped
/// (as libseccomp does).
pub fn compile(p: &ResolvedProfile) -> Result<Vec<BpfInsn>, SeccompError> {
    let table = native_table().ok_or(SeccompError::Arch)?;
    compile_with(p, |n| table.binary_search_by(|(x, _)| x.cmp(&n)).ok().map(|i| table[i].1), NATIVE_AUDIT_ARCH)
}

fn compile_with(p: &ResolvedProfile, number: impl Fn(&str) -> Option<u32>, audit_arch: u32) -> Result<Vec<BpfInsn>, SeccompError> {
    // Rules by syscall number; within one number the profile's order is kept.
    let mut groups: BTreeMap<u32, Vec<&Resolved>> = BTreeMap::new();
    for r in &p.rules {
        if let Some(nr) = number(&r.name) {
            groups.entry(nr).or_default().push(r);
        }
    }
    let enosys = Action::errno(berth_sys::libc::ENOSYS as u32);
    let mut a = Asm::default();
    a.ld(OFF_ARCH);
    a.insn(JEQ_K, 1, 0, audit_arch);
    a.ret(enosys);
    a.ld(OFF_NR);
    a.insn(JGE_K, 0, 1, X32_SYSCALL_BIT);
    a.ret(enosys);
    let error_default = p.default != Action::ALLOW && p.default.0 != 0x7ffc_0000;
    let tail = Tail { default: p.default, enosys_above: groups.keys().next_back().copied().filter(|_| error_default) };
    let sorted: Vec<(u32, Vec<&Resolved>)> = groups.into_iter().collect();
    emit_tree(&mut a, &sorted, p.default, &tail);
    let prog = a.finish();
    if prog.len() > BPF_MAXINSNS {
        return Err(SeccompError::TooLarge(prog.len()));
    }
    Ok(prog)
}

/// What happens to a syscall number no rule names.
struct Tail {
    default: Action,
    /// Numbers above this get ENOSYS (see the module docs).
    enosys_above: Option<u32>,
}

const LEAF: usize = 4;

/// A binary search over the sorted syscall numbers (the accumulator holds the number
/// throughout: every rule body ends in `ret`), so a syscall costs ~log2(n) compares
/// instead of a walk through the whole list.
fn emit_tree(a: &mut Asm, groups: &[(u32, Vec<&Resolved>)], default: Action, tail: &Tail) {
    if groups.len() > LEAF {
        let mid = groups.len() / 2;
        let left = a.label();
        a.insn(JGE_K, 1, 0, groups[mid].0);
        a.ja(left);
        emit_tree(a, &groups[mid..], default, tail);
        a.mark(left);
        emit_tree(a, &groups[..mid], default, tail);
        return;
    }
    for (nr, rules) in groups {
        emit_group(a, *nr, rules, default);
    }
    if let Some(max) = tail.enosys_above {
        a.insn(JGT_K, 0, 1, max);
        a.ret(Action::errno(berth_sys::libc::ENOSYS as u32));
    }
    a.ret(tail.default);
}

fn emit_group(a: &mut Asm, nr: u32, rules: &[&Resolved], default: Action) {
    let mut rules = rules.to_vec();
    // Conditional rules before unconditional ones: the more specific rule decides.
    rules.sort_by_key(|r| r.conds.is_empty());
    if let [only] = rules.as_slice() {
        if only.conds.is_empty() {
            a.insn(JEQ_K, 0, 1, nr);
            a.ret(only.action);
            return;
        }
    }
    let next = a.label();
    a.insn(JEQ_K, 1, 0, nr);
    a.ja(next);
    for r in rules {
        if r.conds.is_empty() {
            a.ret(r.action);
            break; // later rules are unreachable
        }
        let fail = a.label();
        for c in &r.conds {
            a.cond(c, fail);
        }
        a.ret(r.action);
        a.mark(fail);
    }
    a.ret(default);
    a.mark(next);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny classic-BPF interpreter for the subset the compiler emits.
    fn run(prog: &[BpfInsn], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = Vec::new();
        data.extend_from_slice(&nr.to_le_bytes());
        data.extend_from_slice(&arch.to_le_bytes());
        data.extend_from_slice(&0u64.to_le_bytes());
        for x in args {
            data.extend_from_slice(&x.to_le_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                LD_W_ABS => acc = u32::from_le_bytes(data[i.k as usize..i.k as usize + 4].try_into().unwrap()),
                ALU_AND_K => acc &= i.k,
                JA => pc += i.k as usize,
                JEQ_K | JGT_K | JGE_K => {
                    let t = match i.code {
                        JEQ_K => acc == i.k,
                        JGT_K => acc > i.k,
                        _ => acc >= i.k,
                    };
                    pc += if t { i.jt } else { i.jf } as usize;
                }
                RET_K => return i.k,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    const ARCH: u32 = 0xC000_003E;
    fn nr(n: &str) -> u32 {
        match n {
            "read" => 0,
            "write" => 1,
            "personality" => 135,
            "clone" => 56,
            "mkdir" => 83,
            "socket" => 41,
            "clone3" => 435,
            _ => 999,
        }
    }
    fn num(n: &str) -> Option<u32> {
        Some(nr(n)).filter(|x| *x != 999)
    }
    fn eperm() -> u32 {
        Action::errno(1).0
    }
    fn enosys() -> u32 {
        Action::errno(38).0
    }

    #[test]
    fn default_profile_semantics() {
        let p = default_profile();
        let caps = ["CAP_CHOWN", "CAP_SYS_CHROOT"];
        let r = resolve(&p, &caps, "amd64", (6, 1)).unwrap();
        let prog = compile_with(&r, num, ARCH).unwrap();
        let call = |n: &str, a0: u64| run(&prog, ARCH, nr(n), [a0, 0, 0, 0, 0, 0]);
        assert_eq!(call("read", 0), Action::ALLOW.0);
        assert_eq!(call("write", 0), Action::ALLOW.0);
        // clone: allowed only without namespace flags.
        assert_eq!(call("clone", 0x11 /* SIGCHLD */), Action::ALLOW.0);
        assert_eq!(call("clone", 0x1000_0000 /* CLONE_NEWUSER */), eperm());
        assert_eq!(call("clone", 0x0002_0000 /* CLONE_NEWNS */), eperm());
        assert_eq!(call("clone3", 0), enosys());
        // personality: only the listed personas.
        assert_eq!(call("personality", 0), Action::ALLOW.0);
        assert_eq!(call("personality", 0xffff_ffff), Action::ALLOW.0);
        assert_eq!(call("personality", 0x0040_0000 /* READ_IMPLIES_EXEC */), eperm());
        // socket: everything but AF_VSOCK (40).
        assert_eq!(call("socket", 2), Action::ALLOW.0);
        assert_eq!(call("socket", 40), eperm());
        assert_eq!(call("socket", 40 | (1 << 32)), Action::ALLOW.0, "64-bit compare");
        // Not in the profile at all, numbered inside the known range: default action.
        assert_eq!(run(&prog, ARCH, 100, [0; 6]), eperm());
        // Beyond every syscall the profile names: ENOSYS so libc falls back.
        assert_eq!(run(&prog, ARCH, 998, [0; 6]), enosys());
        // Another audit arch or x32: ENOSYS.
        assert_eq!(run(&prog, 0x4000_0003, 0, [0; 6]), enosys());
        assert_eq!(run(&prog, ARCH, 0x4000_0000, [0; 6]), enosys());
    }

    #[test]
    fn sys_admin_lifts_the_clone_restriction() {
        let p = default_profile();
        let r = resolve(&p, &["CAP_SYS_ADMIN"], "amd64", (6, 1)).unwrap();
        let prog = compile_with(&r, num, ARCH).unwrap();
        assert_eq!(run(&prog, ARCH, nr("clone"), [0x1000_0000, 0, 0, 0, 0, 0]), Action::ALLOW.0);
        assert_eq!(run(&prog, ARCH, nr("clone3"), [0; 6]), Action::ALLOW.0);
    }

    #[test]
    fn resolve_filters_like_docker() {
        let p = default_profile();
        let names = |caps: &[&str], arch: &str, k| -> Vec<String> {
            resolve(&p, caps, arch, k).unwrap().rules.into_iter().map(|r| r.name).collect()
        };
        let base = names(&[], "amd64", (6, 1));
        assert!(base.contains(&"arch_prctl".to_string()));
        assert!(!base.contains(&"mount".to_string()));
        assert!(!base.contains(&"chroot".to_string()));
        assert!(!base.contains(&"s390_runtime_instr".to_string()));
        assert!(base.contains(&"ptrace".to_string()), "minKernel 4.8 ptrace on 6.1");
        assert!(!names(&[], "amd64", (4, 4)).contains(&"ptrace".to_string()));
        assert!(names(&["CAP_SYS_CHROOT"], "amd64", (6, 1)).contains(&"chroot".to_string()));
        assert!(names(&["CAP_SYS_ADMIN"], "amd64", (6, 1)).contains(&"mount".to_string()));
        assert!(!names(&[], "arm64", (6, 1)).contains(&"arch_prctl".to_string()));
    }

    #[test]
    fn custom_profile_and_operators() {
        let json = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir"],"action":"SCMP_ACT_ERRNO"},
            {"names":["read"],"action":"SCMP_ACT_ERRNO","errnoRet":5,"args":[{"index":2,"value":100,"op":"SCMP_CMP_GT"}]},
            {"names":["write"],"action":"SCMP_ACT_KILL_PROCESS","args":[{"index":0,"value":7,"op":"SCMP_CMP_LE"},{"index":1,"value":4294967296,"op":"SCMP_CMP_GE"}]},
            {"name":"socket","action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_LT"},{"index":0,"value":10,"op":"SCMP_CMP_EQ"}]}
        ]}"#;
        let p = parse(json).unwrap();
        let r = resolve(&p, &[], "amd64", (6, 1)).unwrap();
        let prog = compile_with(&r, num, ARCH).unwrap();
        let call = |n: &str, a: [u64; 6]| run(&prog, ARCH, nr(n), a);
        assert_eq!(call("mkdir", [0; 6]), eperm());
        assert_eq!(call("read", [0, 0, 100, 0, 0, 0]), Action::ALLOW.0);
        assert_eq!(call("read", [0, 0, 101, 0, 0, 0]), Action::errno(5).0);
        assert_eq!(call("read", [0, 0, 1 << 40, 0, 0, 0]), Action::errno(5).0);
        assert_eq!(call("write", [7, 1 << 32, 0, 0, 0, 0]), 0x8000_0000);
        assert_eq!(call("write", [8, 1 << 32, 0, 0, 0, 0]), Action::ALLOW.0);
        assert_eq!(call("write", [7, (1 << 32) - 1, 0, 0, 0, 0]), Action::ALLOW.0);
        assert_eq!(call("write", [1 << 33, 1 << 32, 0, 0, 0, 0]), Action::ALLOW.0, "LE on the high word");
        // Two conditions on one argument are ORed.
        assert_eq!(call("socket", [0, 0, 0, 0, 0, 0]), eperm());
        assert_eq!(call("socket", [10, 0, 0, 0, 0, 0]), eperm());
        assert_eq!(call("socket", [2, 0, 0, 0, 0, 0]), Action::ALLOW.0);
        // Allow-by-default profiles get no ENOSYS stub.
        assert_eq!(run(&prog, ARCH, 998, [0; 6]), Action::ALLOW.0);
    }

    #[test]
    fn errors() {
        assert!(matches!(parse("{"), Err(SeccompError::Parse(_))));
        let p = parse(r#"{"defaultAction":"SCMP_ACT_NOPE"}"#).unwrap();
        assert_eq!(resolve(&p, &[], "amd64", (6, 1)), Err(SeccompError::Action("SCMP_ACT_NOPE".into())));
        let p = parse(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#).unwrap();
        assert_eq!(resolve(&p, &[], "amd64", (6, 1)), Err(SeccompError::ArgIndex(6)));
        let p = parse(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_XX"}]}]}"#).unwrap();
        assert_eq!(resolve(&p, &[], "amd64", (6, 1)), Err(SeccompError::Op("SCMP_CMP_XX".into())));
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel("6.18.44-fc-v657"), (6, 18));
        assert_eq!(parse_kernel("4.8"), (4, 8));
        assert!((4, 10) > (4, 8) && (5, 0) > (4, 8));
    }

    /// What the compiled program must return, computed straight from the rules.
    fn reference(p: &ResolvedProfile, nr: u32, args: [u64; 6], number: impl Fn(&str) -> Option<u32>) -> u32 {
        let holds = |c: &Cond| {
            let v = args[c.index as usize];
            match c.op {
                CmpOp::Eq => v == c.value,
                CmpOp::Ne => v != c.value,
                CmpOp::Lt => v < c.value,
                CmpOp::Le => v <= c.value,
                CmpOp::Gt => v > c.value,
                CmpOp::Ge => v >= c.value,
                CmpOp::MaskedEq => v & c.value == c.value_two,
            }
        };
        let mine: Vec<&Resolved> = p.rules.iter().filter(|r| number(&r.name) == Some(nr)).collect();
        if mine.is_empty() {
            let max = p.rules.iter().filter_map(|r| number(&r.name)).max().unwrap_or(0);
            return if nr > max && p.default != Action::ALLOW { enosys() } else { p.default.0 };
        }
        let cond_first = mine.iter().filter(|r| !r.conds.is_empty()).chain(mine.iter().filter(|r| r.conds.is_empty()));
        cond_first.into_iter().find(|r| r.conds.iter().all(holds)).map_or(p.default.0, |r| r.action.0)
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn tree_matches_reference_for_every_syscall() {
        for caps in [&[][..], &["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"][..]] {
            let r = resolve(&default_profile(), caps, "amd64", (6, 1)).unwrap();
            let prog = compile(&r).unwrap();
            for nr in 0..520u32 {
                for a0 in [0u64, 8, 40, 0x1000_0000, 0xffff_ffff, 1 << 35] {
                    let args = [a0, a0, 0, 0, 0, 0];
                    assert_eq!(run(&prog, ARCH, nr, args), reference(&r, nr, args, syscall_number), "nr {nr} a0 {a0:#x}");
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn native_table_and_real_compile() {
        assert_eq!(syscall_number("read"), Some(0));
        assert_eq!(syscall_number("clone3"), Some(435));
        assert_eq!(syscall_number("chown32"), None);
        let r = resolve(&default_profile(), &["CAP_CHOWN"], "amd64", (6, 1)).unwrap();
        let prog = compile(&r).unwrap();
        assert!(prog.len() < 2000, "{}", prog.len());
        let mkdir = syscall_number("mkdir").unwrap();
        assert_eq!(run(&prog, ARCH, mkdir, [0; 6]), Action::ALLOW.0);
        let mount = syscall_number("mount").unwrap();
        assert_eq!(run(&prog, ARCH, mount, [0; 6]), eperm());
    }
}
