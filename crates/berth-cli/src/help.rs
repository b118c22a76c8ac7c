//! Help in the docker CLI's layout (cobra's template as Docker sets it up): `Usage:`,
//! the one-line description, `Aliases:`, `Options:` with pflag's flag column and
//! wrapping, and for the root the `Common Commands:` / `Management Commands:` /
//! `Commands:` / `Global Options:` sections. Rendered from the clap definitions in
//! `cli.rs`; the flag type names and defaults Docker shows come from [`flag_meta`].

use clap::{ArgAction, Command, CommandFactory};

use crate::cli::Cli;

/// Docker's "Common Commands", in its order (those Berth has).
const COMMON: &[&str] = &["run", "exec", "ps", "build", "pull", "push", "images", "login", "logout", "search", "version", "info"];
/// Commands with subcommands ("Management Commands").
const MANAGEMENT: &[&str] = &["builder", "container", "context", "image", "network", "system", "volume"];

/// The text of `berth [PATH...] --help`; `path` is the command path as typed
/// (`""`, `"run"`, `"container ls"`). Unknown paths fall back to the root help.
pub fn render(prog: &str, path: &str, width: usize) -> String {
    let root = Cli::command();
    let mut cmd = &root;
    let mut names = Vec::new();
    for word in path.split_whitespace() {
        match cmd.find_subcommand(word) {
            Some(sub) => {
                names.push(sub.get_name().to_string());
                cmd = sub;
            }
            None => break,
        }
    }
    let canonical = names.join(" ");
    if names.is_empty() {
        root_help(prog, &root, width)
    } else if cmd.has_subcommands() {
        management_help(prog, &canonical, cmd)
    } else {
        leaf_help(prog, &canonical, cmd, width)
    }
}

/// The width help wraps to: the terminal's, else 80 (pflag wraps at width - 1).
pub fn width() -> usize {
    let cols = crate::term::winsize(1).map(|(_, c)| usize::from(c)).filter(|c| *c > 0).unwrap_or(80);
    cols.saturating_sub(1)
}

fn about(cmd: &Command) -> String {
    cmd.get_about().map(|a| a.to_string()).unwrap_or_default()
}

/// cobra's command list: the name padded to 11 (+1) columns, then the description.
fn command_lines(cmds: &[&Command]) -> String {
    let pad = cmds.iter().map(|c| c.get_name().len()).max().unwrap_or(0).max(11);
    cmds.iter().map(|c| format!("  {:<pad$} {}\n", c.get_name(), about(c), pad = pad)).collect()
}

fn root_help(prog: &str, root: &Command, width: usize) -> String {
    let subs: Vec<&Command> = root.get_subcommands().filter(|c| !c.is_hide_set()).collect();
    let common: Vec<&Command> = COMMON.iter().filter_map(|n| subs.iter().find(|c| c.get_name() == *n).copied()).collect();
    let mut mgmt: Vec<&Command> = subs.iter().filter(|c| MANAGEMENT.contains(&c.get_name())).copied().collect();
    mgmt.sort_by_key(|c| c.get_name());
    let mut rest: Vec<&Command> =
        subs.iter().filter(|c| !COMMON.contains(&c.get_name()) && !MANAGEMENT.contains(&c.get_name())).copied().collect();
    rest.sort_by_key(|c| c.get_name());
    let mut s = format!("Usage:  {prog} [OPTIONS] COMMAND\n\n{}\n", about(root));
    s.push_str(&format!("\nCommon Commands:\n{}", command_lines(&common)));
    s.push_str(&format!("\nManagement Commands:\n{}", command_lines(&mgmt)));
    s.push_str(&format!("\nCommands:\n{}", command_lines(&rest)));
    s.push_str(&format!("\nGlobal Options:\n{}\n", flag_lines(root, width)));
    s.push_str(&format!("Run '{prog} COMMAND --help' for more information on a command.\n"));
    s
}

fn management_help(prog: &str, path: &str, cmd: &Command) -> String {
    let mut subs: Vec<&Command> = cmd.get_subcommands().filter(|c| !c.is_hide_set()).collect();
    subs.sort_by_key(|c| c.get_name());
    format!(
        "Usage:  {prog} {path} COMMAND\n\n{}\n\nCommands:\n{}\nRun '{prog} {path} COMMAND --help' for more information on a command.\n",
        about(cmd),
        command_lines(&subs)
    )
}

fn leaf_help(prog: &str, path: &str, cmd: &Command, width: usize) -> String {
    let mut s = format!("Usage:  {}\n\n{}\n", crate::usage_line(prog, path), about(cmd));
    if let Some(a) = aliases(path) {
        s.push_str(&format!("\nAliases:\n  {}\n", a.replace("docker ", &format!("{prog} "))));
    }
    let flags = flag_lines(cmd, width);
    if !flags.is_empty() {
        s.push_str(&format!("\nOptions:\n{flags}"));
    }
    s
}

/// Docker's `aliases` annotation: every path that runs the same command.
fn aliases(path: &str) -> Option<String> {
    let leaf = path.rsplit(' ').next().unwrap_or(path);
    let group = if path.contains(' ') { path.split(' ').next() } else { None };
    let image_verb = |v: &str| matches!(v, "pull" | "tag" | "history");
    Some(match (group, leaf) {
        (None | Some("container"), "ps" | "ls" | "list") => "docker container ls, docker container list, docker container ps, docker ps".into(),
        (None, "images") | (Some("image"), "ls" | "list") => "docker image ls, docker image list, docker images".into(),
        (None, "rm") | (Some("container"), "rm" | "remove") => "docker container rm, docker container remove, docker rm".into(),
        (None, "rmi") | (Some("image"), "rm" | "remove") => "docker image rm, docker image remove, docker rmi".into(),
        (None | Some("image"), v) if image_verb(v) => format!("docker image {v}, docker {v}"),
        (None, "events" | "info") | (Some("system"), "events" | "info") => format!("docker system {leaf}, docker {leaf}"),
        (None, "inspect" | "version" | "build") | (Some(_), "inspect" | "prune" | "df") => return None,
        (None | Some("container"), v) => format!("docker container {v}, docker {v}"),
        _ => return None,
    })
}

/// The type name pflag shows after a flag, and the default Docker prints, for flags
/// whose value is not a plain string (lists, numbers, sizes) or that show a default
/// clap does not hold.
fn flag_meta(long: &str, action: &ArgAction) -> (&'static str, Option<String>) {
    match long {
        "filter" => ("filter", None),
        "memory" | "memory-swap" | "memory-reservation" | "shm-size" => ("bytes", None),
        "cpus" => ("decimal", None),
        "network" => ("network", None),
        "last" | "cpu-shares" | "pids-limit" | "stop-timeout" | "timeout" | "time" | "cpu-period" | "cpu-quota" => ("int", None),
        "blkio-weight" => ("uint16", None),
        "host" => ("list", None),
        "config" => ("string", crate::detach::config_dir().map(|d| format!("{:?}", d.display().to_string()))),
        "log-level" => ("string", Some("\"info\"".into())),
        // Booleans that default to true (`--sig-proxy=false`, `--pause=false`).
        "disable-content-trust" | "sig-proxy" | "pause" => ("", Some("true".into())),
        "ulimit" => ("ulimit", Some("[]".into())),
        _ => match action {
            ArgAction::SetTrue | ArgAction::SetFalse | ArgAction::Count | ArgAction::Help | ArgAction::Version => ("", None),
            ArgAction::Append => ("list", None),
            _ => ("string", None),
        },
    }
}

/// pflag's `FlagUsagesWrapped`: flags sorted by name, the descriptions in one column
/// three past the longest `-x, --name type`, wrapped to `width`.
fn flag_lines(cmd: &Command, width: usize) -> String {
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for a in cmd.get_arguments() {
        let Some(long) = a.get_long() else { continue };
        if a.is_hide_set() || a.is_positional() || long == "help" {
            continue;
        }
        let (ty, extra_default) = flag_meta(long, a.get_action());
        let mut left = match a.get_short() {
            Some(c) => format!("  -{c}, --{long}"),
            None => format!("      --{long}"),
        };
        if !ty.is_empty() {
            left.push(' ');
            left.push_str(ty);
        }
        let mut usage = a.get_help().map(|h| h.to_string()).unwrap_or_default();
        let default = extra_default.or_else(|| {
            let d: Vec<String> = a.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
            match d.first().map(String::as_str) {
                None | Some("") | Some("false") | Some("0") => None,
                Some(v) if ty == "string" => Some(format!("\"{v}\"")),
                Some(v) => Some(v.to_string()),
            }
        });
        if let Some(d) = default {
            usage.push_str(&format!(" (default {d})"));
        }
        rows.push((long.to_string(), left, usage));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let maxlen = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(_, left, usage)| format!("{left:<maxlen$}   {}\n", wrap(maxlen + 3, width, usage), maxlen = maxlen))
        .collect()
}

/// pflag's `wrap`: `s` wrapped to `w` columns, continuation lines indented by `i`, a
/// little slop allowed to avoid a short last line.
fn wrap(i: usize, w: usize, s: &str) -> String {
    let mut i = i;
    let mut r = String::new();
    if w == 0 {
        return s.replace('\n', &format!("\n{}", " ".repeat(i)));
    }
    let mut room = w.saturating_sub(i);
    if room < 24 {
        i = 16;
        room = w.saturating_sub(i);
        r.push('\n');
        r.push_str(&" ".repeat(i));
    }
    if room < 24 {
        return s.replace('\n', &r);
    }
    let slop = 5;
    let room = room - slop;
    let indent = format!("\n{}", " ".repeat(i));
    let (first, mut rest) = wrap_n(room, slop, s);
    r.push_str(&first.replace('\n', &indent));
    while !rest.is_empty() {
        let (t, more) = wrap_n(room, slop, rest);
        r.push_str(&indent);
        r.push_str(&t.replace('\n', &indent));
        rest = more;
    }
    r
}

/// pflag's `wrapN`: the first at most `i` bytes of `s` up to a space (or `i + slop`
/// when that takes all of it), and the rest.
fn wrap_n(i: usize, slop: usize, s: &str) -> (&str, &str) {
    if i + slop > s.len() {
        return (s, "");
    }
    let mut cut = i;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let head = &s[..cut];
    let Some(w) = head.rfind([' ', '\t', '\n']).filter(|w| *w > 0) else { return (s, "") };
    if let Some(nl) = head.rfind('\n').filter(|nl| *nl > 0 && *nl < w) {
        return (&s[..nl], &s[nl + 1..]);
    }
    (&s[..w], &s[w + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_like_pflag() {
        // From `docker ps --help` at 80 columns.
        let cases: &[(usize, &str, &str)] = &[
            (24, "Show n last created containers (includes all states) (default -1)", "Show n last created containers (includes all\n                        states) (default -1)"),
            (24, "Show all containers (default shows just running)", "Show all containers (default shows just running)"),
            (29, "Username or UID (format: \"<name|uid>[:<group|gid>]\")", "Username or UID (format:\n                             \"<name|uid>[:<group|gid>]\")"),
        ];
        for (indent, s, want) in cases {
            assert_eq!(wrap(*indent, 79, s), *want);
        }
    }

    #[test]
    fn leaf_help_in_dockers_layout() {
        assert_eq!(
            render("berth", "stop", 79),
            "Usage:  berth stop [OPTIONS] CONTAINER [CONTAINER...]\n\nStop one or more running containers\n\nAliases:\n  berth container stop, berth stop\n\nOptions:\n  -s, --signal string   Signal to send to the container\n  -t, --timeout int     Seconds to wait before killing the container\n"
        );
        assert_eq!(
            render("berth", "container wait", 79),
            "Usage:  berth container wait CONTAINER [CONTAINER...]\n\nBlock until one or more containers stop, then print their exit codes\n\nAliases:\n  berth container wait, berth wait\n"
        );
        let ps = render("berth", "container list", 79);
        assert!(ps.starts_with("Usage:  berth container ls [OPTIONS]\n\nList containers\n\nAliases:\n  berth container ls, berth container list, berth container ps, berth ps\n\nOptions:\n  -a, --all             Show all containers (default shows just running)\n"), "{ps}");
        assert!(ps.contains("\n  -n, --last int        Show n last created containers (includes all\n                        states) (default -1)\n"), "{ps}");
    }

    #[test]
    fn root_and_management_sections() {
        let root = render("berth", "", 79);
        let heads: Vec<&str> = root.lines().filter(|l| !l.starts_with(' ') && l.ends_with(':')).collect();
        assert_eq!(heads, ["Common Commands:", "Management Commands:", "Commands:", "Global Options:"]);
        assert!(root.starts_with("Usage:  berth [OPTIONS] COMMAND\n\nA self-sufficient runtime for containers\n\nCommon Commands:\n  run         Create and run a new container from an image\n"));
        assert!(root.ends_with("\n\nRun 'berth COMMAND --help' for more information on a command.\n"));
        let c = render("berth", "container", 79);
        assert!(c.starts_with("Usage:  berth container COMMAND\n\nManage containers\n\nCommands:\n  attach      "), "{c}");
        assert!(c.ends_with("\n\nRun 'berth container COMMAND --help' for more information on a command.\n"), "{c}");
    }
}
