//! Durable file writes: the one `write_atomic` every crate uses for state files
//! (container records, image metadata, the shim's `exit.json`). No `unsafe` here; it
//! lives in berth-sys because every layer that writes state may use this crate.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A failed [`write_atomic`]: the step (`create`, `chmod`, `write`, `fsync`, `rename`),
/// the path it failed on and the OS error. Callers wrap it in their own error type with
/// the same three parts.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", path.display())]
pub struct WriteError {
    /// The step that failed.
    pub op: &'static str,
    /// The file or directory that step worked on.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

fn fail<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WriteError + 'a {
    move |source| WriteError { op, path: path.to_path_buf(), source }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// How much of a [`write_atomic_with`] is on disk when it returns. Every level is
/// atomic for a process crash (readers see the old or the new content, never a
/// prefix); they differ after a machine crash, and in cost (each sync is a disk flush,
/// 0.3–1 ms here, on the path of every container start and exit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// The file and its directory are synced: after a machine crash the file holds the
    /// new content. For what the user asked for: container records at create, rename,
    /// update and stop, image metadata.
    Durable,
    /// The file's data is synced before the rename, the directory is not: after a
    /// machine crash the file holds its old or its new content, both complete (a temp
    /// file may be left, which [`remove_stale_temps`] sweeps). For runtime state that a
    /// machine crash makes moot and the restore reconciles anyway (running, exited,
    /// paused, `exit.json`).
    Complete,
    /// Nothing is synced: for files on a tmpfs (the exec root), which a machine crash
    /// removes anyway.
    Volatile,
}

/// Replaces `path` with `data`, so that after a crash (of the process or the machine)
/// the file holds either its old content or all of `data`, never a prefix or nothing.
///
/// Steps and fsync policy: a new temp file `.<name>.<pid>.<seq>.tmp` is created in the
/// same directory (so the rename stays within one filesystem) with exactly `mode`
/// (set with fchmod, so the umask does not narrow it and no other user can open it in
/// between), `data` is written, **the file is fsynced**, it is renamed over `path`, and
/// **the directory is fsynced** so the rename itself is durable. On any failure the temp
/// file is removed and `path` keeps its old content. A crash between create and rename
/// can leave a temp file behind; `path` is intact either way. Concurrent writers of the
/// same `path` each use their own temp file; the last rename wins.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), WriteError> {
    write_atomic_with(path, data, mode, Durability::Durable)
}

/// [`write_atomic`] with the sync level chosen by the caller (see [`Durability`]).
pub fn write_atomic_with(path: &Path, data: &[u8], mode: u32, durability: Durability) -> Result<(), WriteError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".to_string());
    let (tmp, mut f) = loop {
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{seq}.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp) {
            Ok(f) => break (tmp, f),
            // Left by a crashed process that had our pid: take the next number.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(fail("create", &tmp)(e)),
        }
    };
    let written = (|| {
        f.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(fail("chmod", &tmp))?;
        f.write_all(data).map_err(fail("write", &tmp))?;
        if durability != Durability::Volatile {
            f.sync_data().map_err(fail("fsync", &tmp))?;
        }
        drop(f);
        std::fs::rename(&tmp, path).map_err(fail("rename", path))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if durability == Durability::Durable {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Removes the temp files that [`write_atomic`] calls in processes that no longer run
/// left in `dir` (a crash between create and rename). A temp file whose writer (the
/// pid in its name) is alive is kept: it may be renamed into place any moment (a shim
/// writing `exit.json` while berthd starts). Returns how many were removed.
pub fn remove_stale_temps(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name();
        let Some(pid) = temp_writer(&name.to_string_lossy()) else { continue };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// The writer's pid of a `.<name>.<pid>.<seq>.tmp` temp file name.
fn temp_writer(file_name: &str) -> Option<u32> {
    let rest = file_name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let mut parts = rest.rsplitn(3, '.');
    let seq = parts.next()?;
    let pid = parts.next()?;
    let name = parts.next()?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(seq) && !name.is_empty()).then_some(())?;
    pid.parse().ok()
}

/// fsyncs a directory, making the creations, renames and removals in it durable.
pub fn fsync_dir(dir: &Path) -> Result<(), WriteError> {
    let f = File::open(dir).map_err(fail("open", dir))?;
    f.sync_all().map_err(fail("fsync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(p: &Path) -> u32 {
        std::fs::metadata(p).expect("test setup").permissions().mode() & 0o7777
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).expect("test setup").map(|e| e.expect("test setup").file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn writes_content_with_exact_mode_and_replaces() {
        let t = tempfile::tempdir().expect("test setup");
        // (mode, content): each write replaces the last, mode exactly as asked (the
        // umask does not narrow it), no temp file left behind.
        for (mode, data) in [(0o600, &b"{\"a\":1}"[..]), (0o644, b"second, longer content"), (0o640, b""), (0o666, b"x")] {
            let p = t.path().join("config.v2.json");
            write_atomic(&p, data, mode).expect("write");
            assert_eq!(std::fs::read(&p).expect("read"), data);
            assert_eq!(mode_of(&p), mode);
            assert_eq!(entries(t.path()), vec!["config.v2.json".to_string()]);
        }
    }

    #[test]
    fn a_failed_write_keeps_the_old_content_and_leaves_no_temp_file() {
        let t = tempfile::tempdir().expect("test setup");
        let p = t.path().join("rec.json");
        write_atomic(&p, b"old", 0o600).expect("write");
        // The rename fails (a directory cannot be replaced by a file): the old file at
        // another path stays whole, the target too, and the temp file is removed.
        let d = t.path().join("adir");
        std::fs::create_dir(&d).expect("test setup");
        std::fs::write(d.join("keep"), b"k").expect("test setup");
        let e = write_atomic(&d, b"new", 0o600).expect_err("rename over a directory");
        assert_eq!(e.op, "rename");
        assert!(d.is_dir());
        assert_eq!(std::fs::read(&p).expect("read"), b"old");
        assert_eq!(entries(t.path()), vec!["adir".to_string(), "rec.json".to_string()]);
        // The create fails (no such directory): nothing is written anywhere.
        let e = write_atomic(&t.path().join("missing/rec.json"), b"new", 0o600).expect_err("no dir");
        assert_eq!(e.op, "create");
        assert_eq!(e.to_string().split(':').next().map(|s| s.starts_with("create ")), Some(true));
    }

    #[test]
    fn a_write_that_fails_midway_keeps_the_old_content() {
        // A write larger than the file size limit fails with EFBIG after a prefix:
        // the target keeps the old content, no half file appears.
        let t = tempfile::tempdir().expect("test setup");
        let p = t.path().join("rec.json");
        write_atomic(&p, b"old content", 0o600).expect("write");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("ulimit -f 1 && exec \"$0\" --exact --nocapture fs::atomic::tests::child_write_large --include-ignored")
            .arg(std::env::current_exe().expect("test setup"))
            .env("BERTH_SYS_FS_TEST_PATH", &p)
            .output()
            .expect("spawn child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && stdout.contains("1 passed"), "child: {stdout}");
        assert_eq!(std::fs::read(&p).expect("read"), b"old content");
        assert_eq!(entries(t.path()), vec!["rec.json".to_string()]);
    }

    /// Run by `a_write_that_fails_midway_keeps_the_old_content` under `ulimit -f 1`.
    #[test]
    #[ignore]
    fn child_write_large() {
        let Some(p) = std::env::var_os("BERTH_SYS_FS_TEST_PATH") else { return };
        // SIGXFSZ would kill us at the limit; ignored, the write fails with EFBIG.
        crate::signal::ignore(libc::SIGXFSZ);
        let e = write_atomic(Path::new(&p), &vec![b'x'; 64 << 10], 0o600).expect_err("over the file size limit");
        assert_eq!(e.op, "write");
    }

    #[test]
    fn stale_temps_of_dead_writers_go_live_ones_stay() {
        assert_eq!(temp_writer(".config.v2.json.123.4.tmp"), Some(123));
        assert_eq!(temp_writer(".abc.spec.json.77.0.tmp"), Some(77));
        assert_eq!(temp_writer("config.v2.json"), None);
        assert_eq!(temp_writer(".x.tmp"), None);
        assert_eq!(temp_writer(".x.y.z.tmp"), None);
        let t = tempfile::tempdir().expect("test setup");
        // pid_max is at most 2^22: this pid cannot be running.
        let dead = t.path().join(".rec.json.4194399.0.tmp");
        let live = t.path().join(format!(".rec.json.{}.1.tmp", std::process::id()));
        let other = t.path().join("rec.json");
        for p in [&dead, &live, &other] {
            std::fs::write(p, b"x").expect("test setup");
        }
        assert_eq!(remove_stale_temps(t.path()).expect("sweep"), 1);
        assert!(!dead.exists() && live.exists() && other.exists());
    }

    #[test]
    fn every_durability_level_writes_whole_files_with_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().expect("test setup");
        for (i, d) in [Durability::Durable, Durability::Complete, Durability::Volatile].into_iter().enumerate() {
            let p = t.path().join(format!("f{i}"));
            write_atomic_with(&p, b"old", 0o600, d).expect("first");
            write_atomic_with(&p, b"new content", 0o640, d).expect("second");
            assert_eq!(std::fs::read(&p).expect("read"), b"new content", "{d:?}");
            assert_eq!(std::fs::metadata(&p).expect("stat").permissions().mode() & 0o777, 0o640, "{d:?}");
        }
        assert_eq!(entries(t.path()), vec!["f0".to_string(), "f1".to_string(), "f2".to_string()]);
    }
}

