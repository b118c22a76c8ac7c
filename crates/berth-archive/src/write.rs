//! The tar writer: file trees as tar entries with Docker's names (`./…`, `/…` kept
//! byte for byte), link targets byte for byte, hard links once, file capabilities and
//! user xattrs as PAX records, pseudo file systems archived empty, and, for a layer
//! diff, overlay whiteouts and opaque directories in their AUFS/OCI form. It never
//! follows a symlink.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use berth_sys::libc;

use crate::{is_opaque, is_stub, is_whiteout, WHITEOUT_OPAQUE, WHITEOUT_PREFIX};

fn is_raw_name(name: &str) -> bool {
    name.starts_with("./") || name.starts_with('/')
}

/// A GNU long-name (`L`) or long-link (`K`) entry carrying `value` for the header
/// that follows.
pub fn gnu_long(kind: tar::EntryType, value: &[u8]) -> (tar::Header, Vec<u8>) {
    let mut long = tar::Header::new_gnu();
    long.set_entry_type(kind);
    long.set_mode(0o644);
    long.set_size(value.len() as u64 + 1);
    let tag = b"././@LongLink";
    long.as_old_mut().name[..tag.len()].copy_from_slice(tag);
    long.set_cksum();
    let mut payload = value.to_vec();
    payload.push(0);
    (long, payload)
}

/// Writes file trees as tar entries without ever following a symlink. `whiteouts`:
/// the tree is an overlay upper dir and the tar a layer diff.
pub struct TarOut<W: Write> {
    b: tar::Builder<W>,
    /// (dev, ino) of regular files with several links → the first name written.
    links: HashMap<(u64, u64), String>,
    /// Overlay whiteouts → AUFS/OCI form (a layer diff), else as they are.
    whiteouts: bool,
    /// Tar names of mount-point stubs to leave out (see [`is_stub`]).
    pub skip: HashSet<String>,
    /// In a running container's view: the `st_dev` of its root. The directories where
    /// kernel file systems (proc, sysfs, devpts, mqueue, cgroup…) and the runtime's
    /// `/dev` are mounted are archived empty, as Docker (which archives the rootfs
    /// without those mounts) does.
    pub pseudo_root_dev: Option<u64>,
}

/// `statfs` magic numbers of the kernel's pseudo file systems (linux/magic.h).
const PSEUDO_FS: &[i64] = &[
    0x9fa0,     // proc
    0x6265_6572, // sysfs
    0x1cd1,     // devpts
    0x1980_0202, // mqueue
    0x0027_e0eb, // cgroup
    0x6367_7270, // cgroup2
    0x7363_6673, // securityfs
    0x6462_6720, // debugfs
    0x7472_6163, // tracefs
    0xcafe_4a11, // bpf
    0x6165_676c, // pstore
    0x6265_6570, // configfs
    0x6573_5543, // fusectl
    0x4249_4e4d, // binfmt_misc
];

/// Whether the directory `p` (in a running container, whose root is on `root_dev`)
/// is a mount of a pseudo file system or the runtime's `/dev`.
fn is_pseudo_mount(p: &Path, md: &fs::Metadata, root_dev: u64) -> bool {
    if p == Path::new("/dev") && md.dev() != root_dev {
        return true;
    }
    match berth_sys::fs::statfs_type(p) {
        Ok(t) => PSEUDO_FS.contains(&t),
        Err(_) => false,
    }
}


/// Pads or truncates a file being read to the size its header announced (a running
/// container may change it meanwhile).
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let mut n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            buf[..want].fill(0);
            n = want;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// One PAX record: `"<len> <key>=<value>\n"`, `len` counting itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// File capabilities and user xattrs travel in the tar (SCHILY.xattr); overlay's own
/// and SELinux labels do not.
fn wanted_xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(names) = xattr::list(p) {
        for n in names {
            let name = n.to_string_lossy().into_owned();
            if name == "security.capability" || name.starts_with("user.") {
                if let Ok(Some(v)) = xattr::get(p, &name) {
                    out.push((name, v));
                }
            }
        }
    }
    out.sort();
    out
}

impl<W: Write> TarOut<W> {
    pub fn new(w: W, whiteouts: bool) -> TarOut<W> {
        let mut b = tar::Builder::new(w);
        b.follow_symlinks(false);
        TarOut {
            b,
            links: HashMap::new(),
            whiteouts,
            skip: HashSet::new(),
            pseudo_root_dev: None,
        }
    }

    pub fn finish(self) -> io::Result<W> {
        self.b.into_inner()
    }

    /// `host` and everything below it, named `name` (`""`: the root itself is not
    /// written, its children are named without a prefix; `"/"`: the root is `/` and
    /// its children `/bin`…, Docker's names for an archive of a container's `/`).
    pub fn add_tree(&mut self, host: &Path, name: &str) -> io::Result<()> {
        let md = fs::symlink_metadata(host)?;
        if self.skip.contains(name) && is_stub(host, &md) {
            return Ok(());
        }
        if !name.is_empty() {
            self.add_entry(host, name, &md)?;
        }
        if let Some(root_dev) = self.pseudo_root_dev {
            if md.is_dir() && is_pseudo_mount(host, &md, root_dev) {
                return Ok(());
            }
        }
        if md.is_dir() && !(self.whiteouts && is_whiteout(&md)) {
            let mut kids: Vec<std::ffi::OsString> = fs::read_dir(host)?
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect();
            kids.sort();
            for k in kids {
                let kname = k.to_string_lossy();
                let child = if name.is_empty() {
                    kname.to_string()
                } else {
                    format!("{}/{kname}", name.trim_end_matches('/'))
                };
                match self.add_tree(&host.join(&k), &child) {
                    Ok(()) => {}
                    // Gone meanwhile (a running container): skip it, as tar does.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    fn header(md: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(md.mode() & 0o7777);
        h.set_uid(u64::from(md.uid()));
        h.set_gid(u64::from(md.gid()));
        h.set_mtime(md.mtime().max(0) as u64);
        h.set_size(0);
        h
    }

    fn pax(&mut self, host: &Path) -> io::Result<()> {
        let xattrs = wanted_xattrs(host);
        if xattrs.is_empty() {
            return Ok(());
        }
        let mut data = Vec::new();
        for (k, v) in &xattrs {
            data.extend(pax_record(&format!("SCHILY.xattr.{k}"), v));
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_path("PaxHeaders/x")?;
        h.set_cksum();
        self.b.append(&h, &data[..])
    }

    /// Appends an entry under `name` exactly as given. The tar crate normalises paths
    /// and would drop a leading `./` (and refuses a leading `/`), but Docker's archive
    /// of `dir/.` names its entries `./…`, its archive of `/` names them `/…`, and the
    /// CLI rebases on that prefix (`docker cp c:/d/. dst`, `docker cp c:/ dst`).
    fn append_named<P: AsRef<str>, R: io::Read>(&mut self, h: &mut tar::Header, name: P, data: R) -> io::Result<()> {
        self.append_raw(h, name.as_ref(), None, data)
    }

    /// Appends an entry; `link` (a symlink's or hard link's target) is written byte
    /// for byte: the tar crate rebuilds link names from their path components, which
    /// is lossy (a target is an arbitrary string).
    fn append_raw<R: io::Read>(&mut self, h: &mut tar::Header, name: &str, link: Option<&[u8]>, data: R) -> io::Result<()> {
        if let Some(link) = link {
            let field = &mut h.as_old_mut().linkname;
            field.fill(0);
            if link.len() > field.len() {
                let (long, payload) = gnu_long(tar::EntryType::GNULongLink, link);
                self.b.append(&long, &payload[..])?;
            }
            let n = link.len().min(field.len());
            field[..n].copy_from_slice(&link[..n]);
        }
        if !is_raw_name(name) {
            return self.b.append_data(h, name, data);
        }
        let bytes = name.as_bytes();
        if bytes.len() > h.as_old().name.len() {
            let (long, payload) = gnu_long(tar::EntryType::GNULongName, bytes);
            self.b.append(&long, &payload[..])?;
        }
        let field = &mut h.as_old_mut().name;
        field.fill(0);
        let n = bytes.len().min(field.len());
        field[..n].copy_from_slice(&bytes[..n]);
        h.set_cksum();
        self.b.append(h, data)
    }

    fn add_entry(&mut self, host: &Path, name: &str, md: &fs::Metadata) -> io::Result<()> {
        let ft = md.file_type();
        if self.whiteouts && is_whiteout(md) {
            let (dir, base) = match name.rsplit_once('/') {
                Some((d, b)) => (format!("{d}/"), b),
                None => (String::new(), name),
            };
            let mut h = Self::header(md, tar::EntryType::Regular);
            h.set_mode(0o600);
            return self.append_named(
                &mut h,
                format!("{dir}{WHITEOUT_PREFIX}{base}"),
                io::empty(),
            );
        }
        if ft.is_dir() {
            self.pax(host)?;
            let mut h = Self::header(md, tar::EntryType::Directory);
            self.append_named(
                &mut h,
                format!("{}/", name.trim_end_matches('/')),
                io::empty(),
            )?;
            if self.whiteouts && is_opaque(host) {
                let mut h = Self::header(md, tar::EntryType::Regular);
                h.set_mode(md.mode() & 0o777);
                self.append_named(
                    &mut h,
                    format!("{}/{WHITEOUT_OPAQUE}", name.trim_end_matches('/')),
                    io::empty(),
                )?;
            }
            return Ok(());
        }
        if ft.is_symlink() {
            let target = fs::read_link(host)?;
            let mut h = Self::header(md, tar::EntryType::Symlink);
            return self.append_raw(&mut h, name, Some(target.as_os_str().as_bytes()), io::empty());
        }
        if ft.is_file() {
            if md.nlink() > 1 {
                if let Some(first) = self.links.get(&(md.dev(), md.ino())) {
                    let mut h = Self::header(md, tar::EntryType::Link);
                    let first = first.clone();
                    return self.append_raw(&mut h, name, Some(first.as_bytes()), io::empty());
                }
                self.links.insert((md.dev(), md.ino()), name.to_string());
            }
            let f = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(host)?;
            let size = f.metadata()?.len();
            self.pax(host)?;
            let mut h = Self::header(md, tar::EntryType::Regular);
            h.set_size(size);
            return self.append_named(
                &mut h,
                name,
                Exact {
                    inner: f,
                    left: size,
                },
            );
        }
        let kind = if ft.is_char_device() {
            tar::EntryType::Char
        } else if ft.is_block_device() {
            tar::EntryType::Block
        } else if ft.is_fifo() {
            tar::EntryType::Fifo
        } else {
            return Ok(()); // sockets are not archived
        };
        let mut h = Self::header(md, kind);
        if kind != tar::EntryType::Fifo {
            h.set_device_major(libc::major(md.rdev()))?;
            h.set_device_minor(libc::minor(md.rdev()))?;
        }
        self.append_named(&mut h, name, io::empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{is_root, whiteout};
    use crate::is_whiteout;

    #[test]
    fn pax_records_count_their_own_length() {
        let r = pax_record("SCHILY.xattr.user.a", b"b");
        let s = String::from_utf8(r.clone()).unwrap();
        let (len, _) = s.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), r.len());
        let long = pax_record("k", &[b'x'; 95]);
        assert_eq!(
            String::from_utf8_lossy(&long)
                .split_once(' ')
                .unwrap()
                .0
                .parse::<usize>()
                .unwrap(),
            long.len()
        );
    }

    #[test]
    fn layer_tar_uses_oci_whiteouts() {
        if !is_root() {
            eprintln!("skipping: whiteouts need CAP_MKNOD");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let up = t.path();
        fs::create_dir_all(up.join("etc")).unwrap();
        fs::create_dir_all(up.join("opq")).unwrap();
        fs::write(up.join("opq/keep"), "k").unwrap();
        fs::write(up.join("new"), "n").unwrap();
        fs::hard_link(up.join("new"), up.join("new2")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", up.join("etc/link")).unwrap();
        assert!(whiteout(&up.join("etc/gone")));
        let opaque_ok = xattr::set(up.join("opq"), crate::OPAQUE_XATTR, b"y").is_ok();
        let mut out = TarOut::new(Vec::new(), true);
        out.add_tree(up, "").unwrap();
        let bytes = out.finish().unwrap();
        let mut ar = tar::Archive::new(&bytes[..]);
        let mut names = Vec::new();
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            let kind = e.header().entry_type();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned());
            names.push((name, kind, link));
        }
        let find = |n: &str| {
            names
                .iter()
                .find(|x| x.0 == n)
                .unwrap_or_else(|| panic!("{n} in {names:?}"))
        };
        assert_eq!(find("etc/").1, tar::EntryType::Directory);
        assert_eq!(find("etc/.wh.gone").1, tar::EntryType::Regular);
        assert_eq!(find("etc/link").2.as_deref(), Some("/etc/passwd"));
        assert_eq!(find("new").1, tar::EntryType::Regular);
        assert_eq!(find("new2").1, tar::EntryType::Link);
        assert_eq!(find("new2").2.as_deref(), Some("new"));
        if opaque_ok {
            assert_eq!(find("opq/.wh..wh..opq").1, tar::EntryType::Regular);
        }
        assert!(!names.iter().any(|n| n.0 == "etc/gone"), "{names:?}");
        // The same tar unpacked by the image store gives the whiteouts back.
        let dest = t.path().join("unpacked");
        fs::create_dir(&dest).unwrap();
        let layer = crate::ExtractOptions { layer: true, ..Default::default() };
        crate::extract(&bytes[..], &dest, &layer).unwrap();
        let md = fs::symlink_metadata(dest.join("etc/gone")).unwrap();
        assert!(is_whiteout(&md));
    }

    // ----- archive names (docker cp c:/, D14) -----

    fn tar_entries(bytes: &[u8]) -> Vec<(String, tar::EntryType, Option<String>)> {
        let mut ar = tar::Archive::new(bytes);
        ar.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                let link = e
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned());
                (name, e.header().entry_type(), link)
            })
            .collect()
    }

    #[test]
    fn archive_names_and_link_targets_like_docker() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::create_dir(root.join("d")).unwrap();
        fs::write(root.join("d/f"), "x").unwrap();
        fs::hard_link(root.join("d/f"), root.join("d/g")).unwrap();
        let long = format!("/{}", "t".repeat(150));
        // (link name, target): `/` was archived as `//` (D14).
        let links = [("root", "/"), ("dots", "../.."), ("trail", "/etc/"), ("long", long.as_str()), ("dbl", "a//b")];
        for (n, target) in links {
            std::os::unix::fs::symlink(target, root.join(n)).unwrap();
        }
        // (top name, expected names of the root, of d/f, of the hard link d/g)
        let cases = [
            ("/", "/", "/d/f", "/d/g"),
            (".", "./", "./d/f", "./d/g"),
            ("c", "c/", "c/d/f", "c/d/g"),
        ];
        for (top, want_root, want_f, want_g) in cases {
            let mut out = TarOut::new(Vec::new(), false);
            out.add_tree(root, top).unwrap();
            let names = tar_entries(&out.finish().unwrap());
            let find = |n: &str| names.iter().find(|x| x.0 == n).unwrap_or_else(|| panic!("{n} in {names:?}")).clone();
            assert_eq!(find(want_root).1, tar::EntryType::Directory, "{top}");
            assert_eq!(find(want_f).1, tar::EntryType::Regular, "{top}");
            assert_eq!(find(want_g), (want_g.to_string(), tar::EntryType::Link, Some(want_f.to_string())), "{top}");
            let base = want_root.trim_end_matches('/');
            for (n, target) in links {
                let e = find(&format!("{base}/{n}"));
                assert_eq!((e.1, e.2.as_deref()), (tar::EntryType::Symlink, Some(target)), "{top} {n}");
            }
        }
    }

    #[test]
    fn pseudo_file_systems_are_archived_empty() {
        let root_dev = fs::symlink_metadata("/").unwrap().dev();
        let t = tempfile::tempdir().unwrap();
        let cases = [(Path::new("/proc"), true), (Path::new("/sys"), true), (t.path(), false)];
        for (p, want) in cases {
            let md = fs::symlink_metadata(p).unwrap();
            assert_eq!(is_pseudo_mount(p, &md, root_dev), want, "{}", p.display());
        }
        // The directory entry stays, its contents do not.
        let mut out = TarOut::new(Vec::new(), false);
        out.pseudo_root_dev = Some(root_dev);
        out.add_tree(Path::new("/proc"), "proc").unwrap();
        let names = tar_entries(&out.finish().unwrap());
        assert_eq!(names, vec![("proc/".to_string(), tar::EntryType::Directory, None)]);
    }

}
