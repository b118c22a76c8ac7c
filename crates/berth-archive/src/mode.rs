//! Go's `os.FileMode` bits (what `X-Docker-Container-Path-Stat` carries, and what the
//! CLI reads back) and Go's `time.Time` JSON form.

use berth_sys::libc;

pub const MODE_DIR: u32 = 1 << 31;
pub const MODE_SYMLINK: u32 = 1 << 27;
pub const MODE_DEVICE: u32 = 1 << 26;
pub const MODE_NAMED_PIPE: u32 = 1 << 25;
pub const MODE_SOCKET: u32 = 1 << 24;
pub const MODE_SETUID: u32 = 1 << 23;
pub const MODE_SETGID: u32 = 1 << 22;
pub const MODE_CHAR_DEVICE: u32 = 1 << 21;
pub const MODE_STICKY: u32 = 1 << 20;

/// `st_mode` → Go's `os.FileMode` (what `X-Docker-Container-Path-Stat` carries).
pub fn go_file_mode(st_mode: u32) -> u32 {
    let mut m = st_mode & 0o777;
    m |= match st_mode & libc::S_IFMT {
        libc::S_IFDIR => MODE_DIR,
        libc::S_IFLNK => MODE_SYMLINK,
        libc::S_IFBLK => MODE_DEVICE,
        libc::S_IFCHR => MODE_DEVICE | MODE_CHAR_DEVICE,
        libc::S_IFIFO => MODE_NAMED_PIPE,
        libc::S_IFSOCK => MODE_SOCKET,
        _ => 0,
    };
    if st_mode & libc::S_ISUID != 0 {
        m |= MODE_SETUID;
    }
    if st_mode & libc::S_ISGID != 0 {
        m |= MODE_SETGID;
    }
    if st_mode & libc::S_ISVTX != 0 {
        m |= MODE_STICKY;
    }
    m
}

/// Go's `time.Time` JSON form (RFC 3339 with the nanoseconds, trailing zeros trimmed).
pub fn go_time(secs: i64, nanos: i64) -> String {
    let t = chrono::DateTime::from_timestamp(secs, nanos.clamp(0, 999_999_999) as u32)
        .unwrap_or_default();
    let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_modes_are_go_file_modes() {
        assert_eq!(go_file_mode(libc::S_IFDIR | 0o755), 2147484141); // from the trace
        assert_eq!(go_file_mode(libc::S_IFREG | 0o644), 420);
        assert_eq!(go_file_mode(libc::S_IFLNK | 0o777), MODE_SYMLINK | 0o777);
        assert_eq!(
            go_file_mode(libc::S_IFCHR | 0o666),
            MODE_DEVICE | MODE_CHAR_DEVICE | 0o666
        );
        assert_eq!(go_file_mode(libc::S_IFBLK | 0o660), MODE_DEVICE | 0o660);
        assert_eq!(go_file_mode(libc::S_IFIFO | 0o600), MODE_NAMED_PIPE | 0o600);
        assert_eq!(go_file_mode(libc::S_IFSOCK | 0o755), MODE_SOCKET | 0o755);
        assert_eq!(
            go_file_mode(libc::S_IFDIR | 0o1777),
            MODE_DIR | MODE_STICKY | 0o777
        );
        assert_eq!(go_file_mode(libc::S_IFREG | 0o4755), MODE_SETUID | 0o755);
        assert_eq!(go_file_mode(libc::S_IFREG | 0o2755), MODE_SETGID | 0o755);
    }

    #[test]
    fn times_like_go() {
        assert_eq!(go_time(1_795_433_610, 0), "2026-11-23T11:33:30Z");
        assert_eq!(
            go_time(1_795_433_610, 120_000_000),
            "2026-11-23T11:33:30.12Z"
        );
    }
}
