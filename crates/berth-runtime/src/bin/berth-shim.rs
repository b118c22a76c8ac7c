//! `berth-shim <spec.json>`: the per-container monitor (see docs/process-tree.md).
//! Single-threaded, std-only; all logic lives in `berth_runtime::shim`.
#![forbid(unsafe_code)]

fn main() {
    std::process::exit(berth_runtime::shim::main(std::env::args_os()));
}
