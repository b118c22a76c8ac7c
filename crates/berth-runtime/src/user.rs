//! Resolving Docker's `--user` (`""`, `uid`, `uid:gid`, `name`, `name:group`, ...)
//! against the container's /etc/passwd and /etc/group, like runc's `GetExecUser`.

/// Who the container process runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Parses /etc/passwd text; malformed lines are skipped.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f.get(5).copied().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// Parses /etc/group text; malformed lines are skipped.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| m.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolves `spec` given the container's passwd and group files (empty when missing).
pub fn resolve(spec: &str, passwd: &[PasswdEntry], groups: &[GroupEntry]) -> Result<ExecUser, String> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let (uid, entry) = match u.parse::<u32>() {
        Ok(n) => (n, passwd.iter().find(|e| e.uid == n)),
        Err(_) => {
            let e = passwd
                .iter()
                .find(|e| e.name == u)
                .ok_or_else(|| format!("unable to find user {u}: no matching entries in passwd file"))?;
            (e.uid, Some(e))
        }
    };
    let mut gid = entry.map_or(0, |e| e.gid);
    let home = entry.map_or_else(|| "/".to_string(), |e| if e.home.is_empty() { "/".into() } else { e.home.clone() });
    let mut sgids = Vec::new();
    match g {
        Some(g) if !g.is_empty() => {
            gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => groups
                    .iter()
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| format!("unable to find group {g}: no matching entries in group file"))?,
            };
        }
        _ => {
            if let Some(e) = entry {
                for grp in groups {
                    if grp.members.contains(&e.name) && !sgids.contains(&grp.gid) {
                        sgids.push(grp.gid);
                    }
                }
            }
        }
    }
    if !sgids.contains(&gid) {
        sgids.insert(0, gid);
    }
    Ok(ExecUser { uid, gid, groups: sgids, home })
}

/// Adds `--group-add` entries to `u`'s supplementary groups, as runc's
/// `GetAdditionalGroups`: a name or gid found in the group file, else a plain number.
pub fn add_groups(u: &mut ExecUser, extra: &[String], groups: &[GroupEntry]) -> Result<(), String> {
    for g in extra {
        let gid = match groups.iter().find(|e| e.name == *g || e.gid.to_string() == *g) {
            Some(e) => e.gid,
            None => g
                .parse::<u32>()
                .map_err(|_| format!("Unable to find group {g}: no matching entries in group file"))?,
        };
        if !u.groups.contains(&gid) {
            u.groups.push(gid);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n# comment\nbroken\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:root\ndaemon:x:1:\nwheel:x:10:root,app\naudio:x:29:app\napp:x:1000:\nnogroup:x:65534:\n";

    #[test]
    fn table() {
        let p = parse_passwd(PASSWD);
        let g = parse_group(GROUP);
        assert_eq!(p.len(), 4);
        let ok = |uid, gid, groups: &[u32], home: &str| Ok(ExecUser { uid, gid, groups: groups.to_vec(), home: home.into() });
        let cases: Vec<(&str, Result<ExecUser, String>)> = vec![
            ("", ok(0, 0, &[0, 10], "/root")),
            ("0", ok(0, 0, &[0, 10], "/root")),
            ("root", ok(0, 0, &[0, 10], "/root")),
            ("app", ok(1000, 1000, &[1000, 10, 29], "/home/app")),
            ("1000", ok(1000, 1000, &[1000, 10, 29], "/home/app")),
            ("app:audio", ok(1000, 29, &[29], "/home/app")),
            ("app:5", ok(1000, 5, &[5], "/home/app")),
            ("1234", ok(1234, 0, &[0], "/")),
            ("1234:1234", ok(1234, 1234, &[1234], "/")),
            ("nobody", ok(65534, 65534, &[65534], "/nonexistent")),
            ("ghost", Err("unable to find user ghost: no matching entries in passwd file".into())),
            ("app:ghosts", Err("unable to find group ghosts: no matching entries in group file".into())),
        ];
        for (spec, want) in cases {
            assert_eq!(resolve(spec, &p, &g), want, "{spec}");
        }
        assert_eq!(resolve("", &[], &[]), ok(0, 0, &[0], "/"));
    }

    #[test]
    fn group_add_takes_names_and_numbers() {
        let g = parse_group(GROUP);
        type Case<'a> = (&'a [&'a str], Result<&'a [u32], &'a str>);
        let cases: &[Case] = &[
            (&[], Ok(&[1000, 10, 29])),
            (&["audio", "wheel"], Ok(&[1000, 10, 29])),
            (&["daemon", "4242"], Ok(&[1000, 10, 29, 1, 4242])),
            (&["1"], Ok(&[1000, 10, 29, 1])),
            (&["ghosts"], Err("Unable to find group ghosts: no matching entries in group file")),
        ];
        for (extra, want) in cases {
            let mut u = resolve("app", &parse_passwd(PASSWD), &g).expect("app");
            let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
            let got = add_groups(&mut u, &extra, &g).map(|()| u.groups.clone());
            assert_eq!(got, want.map(<[u32]>::to_vec).map_err(str::to_string), "{extra:?}");
        }
    }
}
