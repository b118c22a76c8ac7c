//! Merging a create request with the image's config, as Docker does: the request wins,
//! the image fills in what the request left empty.

use berth_api::ContainerConfig;

fn env_key(e: &str) -> &str {
    e.split_once('=').map_or(e, |(k, _)| k)
}

/// Fills `user` from `image` (Docker's `merge` in daemon/create).
pub fn merge(user: &mut ContainerConfig, image: &ContainerConfig) {
    if user.user.is_empty() {
        user.user = image.user.clone();
    }
    match (&mut user.exposed_ports, &image.exposed_ports) {
        (None, Some(img)) => user.exposed_ports = Some(img.clone()),
        (Some(u), Some(img)) => {
            for (k, v) in img {
                u.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        _ => {}
    }
    let user_env = user.env.clone().unwrap_or_default();
    if user_env.is_empty() {
        user.env = image.env.clone();
    } else {
        let mut env = user_env;
        // A set of the request's keys keeps this linear in the number of entries.
        let mut keys: std::collections::HashSet<String> = env.iter().map(|e| env_key(e).to_string()).collect();
        for ie in image.env.iter().flatten() {
            if keys.insert(env_key(ie).to_string()) {
                env.push(ie.clone());
            }
        }
        user.env = Some(env);
    }
    if let Some(img_labels) = &image.labels {
        let labels = user.labels.get_or_insert_with(Default::default);
        for (k, v) in img_labels {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if user.entrypoint.as_ref().is_none_or(|e| e.is_empty()) {
        if user.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            user.cmd = image.cmd.clone();
            user.args_escaped = image.args_escaped;
        }
        if user.entrypoint.is_none() {
            user.entrypoint = image.entrypoint.clone();
        }
    }
    crate::health::merge(&mut user.healthcheck, image.healthcheck.as_ref());
    if user.working_dir.is_empty() {
        user.working_dir = image.working_dir.clone();
    }
    match (&mut user.volumes, &image.volumes) {
        (u, Some(img)) if u.as_ref().is_none_or(|m| m.is_empty()) => *u = Some(img.clone()),
        (Some(u), Some(img)) => {
            for (k, v) in img {
                u.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        _ => {}
    }
    if user.stop_signal.as_deref().unwrap_or("").is_empty() {
        user.stop_signal = image.stop_signal.clone();
    }
    if user.on_build.is_none() {
        user.on_build = image.on_build.clone();
    }
}

/// The process to run: entrypoint + cmd, split into path and args.
pub fn command(config: &ContainerConfig) -> Option<(String, Vec<String>)> {
    let mut argv: Vec<String> = config.entrypoint.clone().unwrap_or_default();
    argv.extend(config.cmd.clone().unwrap_or_default());
    let mut it = argv.into_iter();
    let path = it.next()?;
    Some((path, it.collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(cmd: Option<&[&str]>, ep: Option<&[&str]>, env: Option<&[&str]>) -> ContainerConfig {
        let v = |x: Option<&[&str]>| x.map(|s| s.iter().map(|s| s.to_string()).collect());
        ContainerConfig { cmd: v(cmd), entrypoint: v(ep), env: v(env), ..Default::default() }
    }

    #[test]
    fn cmd_and_entrypoint_rules() {
        let image = cfg(Some(&["sh"]), Some(&["/entry"]), Some(&["PATH=/bin", "A=1"]));
        // no command: image's cmd and entrypoint
        let mut u = cfg(None, None, None);
        merge(&mut u, &image);
        assert_eq!(command(&u), Some(("/entry".into(), vec!["sh".into()])));
        // a command replaces the image's cmd, keeps its entrypoint
        let mut u = cfg(Some(&["ls"]), None, None);
        merge(&mut u, &image);
        assert_eq!(command(&u), Some(("/entry".into(), vec!["ls".into()])));
        // an entrypoint drops the image's cmd
        let mut u = cfg(None, Some(&["/other"]), None);
        merge(&mut u, &image);
        assert_eq!(command(&u), Some(("/other".into(), vec![])));
        // empty everything → no command
        let mut u = cfg(None, None, None);
        merge(&mut u, &ContainerConfig::default());
        assert_eq!(command(&u), None);
    }

    #[test]
    fn env_merges_by_key() {
        let image = cfg(None, None, Some(&["PATH=/bin", "A=1"]));
        let mut u = cfg(None, None, Some(&["A=2", "B=3"]));
        merge(&mut u, &image);
        assert_eq!(u.env, Some(vec!["A=2".into(), "B=3".into(), "PATH=/bin".into()]));
    }

    #[test]
    fn env_merge_of_100k_entries() {
        let n = 100_000;
        let image_env: Vec<String> = (0..n).map(|i| format!("I{i}=img")).collect();
        let user_env: Vec<String> = (0..n).map(|i| format!("I{}=user", i * 2)).collect();
        let image = ContainerConfig { env: Some(image_env), ..Default::default() };
        let mut u = ContainerConfig { env: Some(user_env.clone()), ..Default::default() };
        merge(&mut u, &image);
        let mut want = user_env;
        want.extend((0..n).filter(|i| i % 2 == 1).map(|i| format!("I{i}=img")));
        assert_eq!(u.env, Some(want));
    }
}
