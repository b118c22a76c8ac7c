//! Seam for Docker's default hardening, applied in the container init right before
//! execve (after the user switch is prepared): capability bounding set, no_new_privs,
//! seccomp profile, masked and read-only /proc paths. Not implemented yet — today the
//! init runs with root's full capabilities, like `--privileged` minus device access.

use crate::spec::RunSpec;

/// Called in the init after pivot_root, before it blocks on the sync pipe.
pub fn prepare(_spec: &RunSpec) -> Result<(), String> {
    Ok(())
}

/// Called in the init after credentials change, immediately before execve.
pub fn apply_before_exec(_spec: &RunSpec) -> Result<(), String> {
    Ok(())
}
