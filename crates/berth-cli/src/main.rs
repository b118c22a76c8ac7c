//! berth: a Docker-compatible CLI for berthd. Same commands, flags, tables, `--format`
//! templates, error texts and exit codes as the docker CLI, so `alias docker=berth`
//! works. Talks to the daemon only through `berth-client`; never links the engine.

#![deny(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::type_complexity))]

mod build;
mod cli;
mod container;
mod detach;
mod format;
mod fsops;
mod help;
mod history;
mod saveload;
mod image;
mod network;
mod login;
mod search;
mod system;
mod template;
// The one module with `unsafe` outside berth-sys: the local terminal's raw mode and
// size (termios/ioctl), each block with a `// SAFETY:` note (docs/architecture.md).
#[allow(unsafe_code)]
mod term;
mod untar;
mod volume;

use std::io::Write;

use berth_client::Client;
use clap::Parser;

/// A command failure: what to print on stderr and the exit code.
#[derive(Debug)]
pub struct Fail {
    pub code: i32,
    pub msg: String,
    /// `Some("run")`: print as `berth: <msg>` + `Run 'berth run --help' …`.
    pub help: Option<String>,
}

impl Fail {
    pub fn new(code: i32, msg: impl Into<String>) -> Fail {
        Fail { code, msg: msg.into(), help: None }
    }
    pub fn with_help(mut self, cmd: &str) -> Fail {
        self.help = Some(cmd.to_string());
        self
    }
    /// Exit silently with `code` (the message was already printed).
    pub fn silent(code: i32) -> Fail {
        Fail { code, msg: String::new(), help: None }
    }
}

impl From<berth_client::Error> for Fail {
    fn from(e: berth_client::Error) -> Fail {
        Fail::new(1, e.to_string())
    }
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Fail {
        Fail::new(1, e.to_string())
    }
}

pub type CmdResult = Result<i32, Fail>;

/// Everything a command needs: the client and how we were invoked.
pub struct Ctx {
    pub client: Client,
    /// `berth` (or `docker` when invoked through a symlink of that name).
    pub prog: String,
}

impl Ctx {
    /// The usage line of a command, e.g. `berth run [OPTIONS] IMAGE [COMMAND] [ARG...]`.
    pub fn usage(&self, path: &str) -> String {
        usage_line(&self.prog, path)
    }

    /// Docker's positional-argument errors (`"berth run" requires at least 1 argument`).
    pub fn require(&self, path: &str, n: usize, min: usize, max: Option<usize>) -> Result<(), Fail> {
        let prog = &self.prog;
        let plural = |k: usize| if k == 1 { "argument" } else { "arguments" };
        let (msg, verb) = match max {
            Some(max) if min == max && n != min => {
                if min == 0 {
                    (format!("'{prog} {path}' accepts no arguments"), "Run")
                } else {
                    (format!("'{prog} {path}' requires {min} {}", plural(min)), "Run")
                }
            }
            Some(max) if min != max && (n < min || n > max) => {
                (format!("'{prog} {path}' requires at least {min} and at most {max} {}", plural(max)), "Run")
            }
            None if n < min => (format!("'{prog} {path}' requires at least {min} {}", plural(min)), "See"),
            _ => return Ok(()),
        };
        Err(Fail::new(
            1,
            format!("{prog}: {msg}\n\nUsage:  {}\n\n{verb} '{prog} {path} --help' for more information", self.usage(path)),
        ))
    }
}

/// The usage line of a command, e.g. `berth run [OPTIONS] IMAGE [COMMAND] [ARG...]`;
/// a management command alone is just its path (Docker's `Usage:  docker container`).
pub fn usage_line(prog: &str, path: &str) -> String {
    if matches!(path, "container" | "image" | "network" | "system" | "volume" | "builder") {
        return format!("{prog} {path}");
    }
    let leaf = path.rsplit(' ').next().unwrap_or(path);
    let rest = match leaf {
        "ls" if path.starts_with("image") => "[OPTIONS] [REPOSITORY[:TAG]]",
        "create" if path.starts_with("volume") => "[OPTIONS] [VOLUME]",
        "inspect" | "rm" | "remove" if path.starts_with("volume") => "[OPTIONS] VOLUME [VOLUME...]",
        "rm" | "remove" if path.starts_with("image") => "[OPTIONS] IMAGE [IMAGE...]",
        "rm" | "remove" if path.starts_with("network") => "NETWORK [NETWORK...]",
        "inspect" if path.starts_with("network") => "[OPTIONS] NETWORK [NETWORK...]",
        "create" if path.starts_with("network") => "[OPTIONS] NETWORK",
        "connect" | "disconnect" => "[OPTIONS] NETWORK CONTAINER",
        "run" | "create" => "[OPTIONS] IMAGE [COMMAND] [ARG...]",
        "start" | "rm" | "kill" | "stop" | "restart" => "[OPTIONS] CONTAINER [CONTAINER...]",
        "wait" | "pause" | "unpause" => "CONTAINER [CONTAINER...]",
        "logs" | "attach" => "[OPTIONS] CONTAINER",
        "inspect" => "[OPTIONS] NAME|ID [NAME|ID...]",
        "rename" => "CONTAINER NEW_NAME",
        "exec" => "[OPTIONS] CONTAINER COMMAND [ARG...]",
        "top" => "CONTAINER [ps OPTIONS]",
        "port" => "CONTAINER [PRIVATE_PORT[/PROTO]]",
        "images" => "[OPTIONS] [REPOSITORY[:TAG]]",
        "pull" => "[OPTIONS] NAME[:TAG|@DIGEST]",
        "login" => "[OPTIONS] [SERVER]",
        "push" => "[OPTIONS] NAME[:TAG]",
        "search" => "[OPTIONS] TERM",
        "logout" => "[SERVER]",
        "build" => "[OPTIONS] PATH | URL | -",
        "tag" => "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
        "rmi" => "[OPTIONS] IMAGE [IMAGE...]",
        "history" => "[OPTIONS] IMAGE",
        "save" => "[OPTIONS] IMAGE [IMAGE...]",
        "load" => "[OPTIONS]",
        "stats" => "[OPTIONS] [CONTAINER...]",
        "cp" => "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tberth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
        "diff" => "CONTAINER",
        "export" => "[OPTIONS] CONTAINER",
        "commit" => "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
        "update" => "[OPTIONS] CONTAINER [CONTAINER...]",
        _ => "[OPTIONS]",
    };
    format!("{} {path} {}", prog, rest.replace("\tberth ", &format!("\t{} ", prog)))
}

/// Prints a failure the way docker does and returns the exit code.
fn report(prog: &str, f: &Fail) -> i32 {
    let mut err = std::io::stderr().lock();
    if let Some(cmd) = &f.help {
        let _ = writeln!(err, "{prog}: {}\n\nRun '{prog} {cmd} --help' for more information", f.msg);
    } else if !f.msg.is_empty() {
        let _ = writeln!(err, "{}", f.msg);
    }
    f.code
}

/// The command path (`run`, `container ls`) the user typed, for usage errors.
fn command_path(args: &[String]) -> String {
    let mut words = Vec::new();
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if matches!(a.as_str(), "-H" | "--host" | "-l" | "--log-level" | "--config" | "-c" | "--context") {
            it.next();
            continue;
        }
        if a.starts_with('-') {
            continue;
        }
        words.push(a.clone());
        if !matches!(a.as_str(), "container" | "image" | "network" | "system" | "volume") || words.len() == 2 {
            break;
        }
    }
    words.join(" ")
}

fn prog_name() -> String {
    std::env::args()
        .next()
        .and_then(|a| std::path::Path::new(&a).file_name().map(|f| f.to_string_lossy().into_owned()))
        .filter(|n| n == "docker")
        .unwrap_or_else(|| "berth".to_string())
}

fn clap_failure(prog: &str, args: &[String], e: clap::Error) -> i32 {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match e.kind() {
        ErrorKind::DisplayHelp => {
            // Docker's deprecation note goes to stderr for the root, stdout otherwise.
            let path = command_path(args);
            if args.iter().skip(1).any(|a| a == "-h") {
                let note = "Flag shorthand -h has been deprecated, use --help";
                if path.is_empty() {
                    eprintln!("{note}");
                } else {
                    println!("{note}");
                }
            }
            print!("{}", help::render(prog, &path, help::width()));
            return 0;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // `berth container` alone: the help on stderr, exit 0 (Docker 28).
            eprint!("{}", help::render(prog, &command_path(args), help::width()));
            return 0;
        }
        ErrorKind::DisplayVersion => {
            let _ = e.print();
            return 0;
        }
        _ => {}
    }
    let path = command_path(args);
    let invalid = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.split(['=', ' ']).next().unwrap_or(s).to_string(),
        _ => String::new(),
    };
    let msg = match e.kind() {
        ErrorKind::UnknownArgument if invalid.starts_with("--") => format!("unknown flag: {invalid}"),
        ErrorKind::UnknownArgument if invalid.starts_with('-') => {
            // clap reports `-x`; docker says which shorthand inside the group failed.
            let c = invalid.chars().nth(1).unwrap_or('?');
            let group = args.iter().find(|a| a.starts_with('-') && !a.starts_with("--") && a.contains(c)).cloned().unwrap_or(invalid.clone());
            format!("unknown shorthand flag: '{c}' in {group}")
        }
        ErrorKind::InvalidSubcommand if path.is_empty() || !path.contains(' ') && !matches!(path.as_str(), "container" | "image" | "network" | "system" | "volume") => {
            let _ = writeln!(std::io::stderr(), "{prog}: unknown command: {prog} {path}\n\nRun '{prog} --help' for more information");
            return 1;
        }
        _ => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("").trim_start_matches("error: ").to_string();
            first
        }
    };
    if path.is_empty() {
        let _ = writeln!(std::io::stderr(), "{msg}\n\nUsage:  {prog} [OPTIONS] COMMAND [ARG...]\n\nRun '{prog} --help' for more information");
        return 125;
    }
    let _ = writeln!(std::io::stderr(), "{msg}\n\nUsage:  {}\n\nRun '{prog} {path} --help' for more information", usage_line(prog, &path));
    125
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let prog = prog_name();
    let parsed = match cli::Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            let code = clap_failure(&prog, &args, e);
            std::process::exit(code);
        }
    };
    if parsed.version {
        println!("Berth version {}, build {}", env!("CARGO_PKG_VERSION"), system::GIT_COMMIT);
        return;
    }
    let Some(cmd) = parsed.cmd else {
        // Docker 28: no command prints the help on stderr and exits 0.
        eprint!("{}", help::render(&prog, "", help::width()));
        return;
    };
    detach::set_config_dir(parsed.config.clone());
    let host = Client::resolve_host(parsed.host.as_deref());
    let client = match Client::new(&host) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let mut ctx = Ctx { client, prog: prog.clone() };
    let result = dispatch(&mut ctx, cmd);
    term::restore();
    let _ = std::io::stdout().flush();
    let code = match result {
        Ok(code) => code,
        Err(f) => report(&prog, &f),
    };
    std::process::exit(code);
}

fn dispatch(ctx: &mut Ctx, cmd: cli::Cmd) -> CmdResult {
    use cli::{Cmd, ContainerCmd as C, ImageCmd as I, SystemCmd as S};
    match cmd {
        Cmd::Run(a) | Cmd::Container { cmd: C::Run(a) } => container::run(ctx, a, false),
        Cmd::Create(a) | Cmd::Container { cmd: C::Create(a) } => container::run(ctx, a, true),
        Cmd::Start(a) | Cmd::Container { cmd: C::Start(a) } => container::start(ctx, a),
        Cmd::Ps(a) => container::ps(ctx, a, "ps"),
        Cmd::Container { cmd: C::Ls(a) } => container::ps(ctx, a, "container ls"),
        Cmd::Logs(a) | Cmd::Container { cmd: C::Logs(a) } => container::logs(ctx, a),
        Cmd::Inspect(a) => system::inspect(ctx, a, None, "inspect"),
        Cmd::Container { cmd: C::Inspect(a) } => system::inspect(ctx, a, Some("container"), "container inspect"),
        Cmd::Image { cmd: I::Inspect(a) } => system::inspect(ctx, a, Some("image"), "image inspect"),
        Cmd::Rm(a) | Cmd::Container { cmd: C::Rm(a) } => container::rm(ctx, a),
        Cmd::Kill(a) | Cmd::Container { cmd: C::Kill(a) } => container::kill(ctx, a),
        Cmd::Stop(a) | Cmd::Container { cmd: C::Stop(a) } => container::stop(ctx, a, "stop"),
        Cmd::Restart(a) | Cmd::Container { cmd: C::Restart(a) } => container::stop(ctx, a, "restart"),
        Cmd::Wait(a) | Cmd::Container { cmd: C::Wait(a) } => container::wait(ctx, a),
        Cmd::Rename(a) | Cmd::Container { cmd: C::Rename(a) } => container::rename(ctx, a),
        Cmd::Pause(a) | Cmd::Container { cmd: C::Pause(a) } => container::simple(ctx, a, "pause"),
        Cmd::Unpause(a) | Cmd::Container { cmd: C::Unpause(a) } => container::simple(ctx, a, "unpause"),
        Cmd::Attach(a) | Cmd::Container { cmd: C::Attach(a) } => container::attach(ctx, a),
        Cmd::Exec(a) | Cmd::Container { cmd: C::Exec(a) } => container::exec(ctx, a),
        Cmd::Top(a) | Cmd::Container { cmd: C::Top(a) } => container::top(ctx, a),
        Cmd::Port(a) | Cmd::Container { cmd: C::Port(a) } => container::port(ctx, a),
        Cmd::Stats(a) | Cmd::Container { cmd: C::Stats(a) } => system::stats(ctx, a),
        Cmd::Container { cmd: C::Prune(a) } => system::container_prune(ctx, a),
        Cmd::Images(a) => image::images(ctx, a, "images"),
        Cmd::Image { cmd: I::Ls(a) } => image::images(ctx, a, "image ls"),
        Cmd::Pull(a) | Cmd::Image { cmd: I::Pull(a) } => image::pull(ctx, a),
        Cmd::Push(a) | Cmd::Image { cmd: I::Push(a) } => image::push(ctx, a),
        Cmd::Search(a) => search::search(ctx, a),
        Cmd::Login(a) => login::login(ctx, a),
        Cmd::Logout(a) => login::logout(ctx, a),
        Cmd::Build(a) | Cmd::Image { cmd: I::Build(a) } | Cmd::Builder { cmd: cli::BuilderCmd::Build(a) } => build::build(ctx, *a),
        Cmd::Builder { cmd: cli::BuilderCmd::Prune(a) } => system::builder_prune(ctx, a),
        Cmd::Tag(a) | Cmd::Image { cmd: I::Tag(a) } => image::tag(ctx, a),
        Cmd::Rmi(a) | Cmd::Image { cmd: I::Rm(a) } => image::rmi(ctx, a),
        Cmd::Image { cmd: I::Prune(a) } => system::image_prune(ctx, a),
        Cmd::History(a) => history::history(ctx, a, "history"),
        Cmd::Save(a) => saveload::save(ctx, a, "save"),
        Cmd::Image { cmd: I::Save(a) } => saveload::save(ctx, a, "image save"),
        Cmd::Load(a) => saveload::load(ctx, a, "load"),
        Cmd::Image { cmd: I::Load(a) } => saveload::load(ctx, a, "image load"),
        Cmd::Image { cmd: I::History(a) } => history::history(ctx, a, "image history"),
        Cmd::Version(a) => system::version(ctx, a),
        Cmd::Info(a) | Cmd::System { cmd: S::Info(a) } => system::info(ctx, a),
        Cmd::Events(a) | Cmd::System { cmd: S::Events(a) } => system::events(ctx, a),
        Cmd::Network { cmd } => network::dispatch(ctx, cmd),
        Cmd::System { cmd: S::Prune(a) } => system::system_prune(ctx, a),
        Cmd::System { cmd: S::Df(a) } => fsops::system_df(ctx, a),
        Cmd::Cp(a) | Cmd::Container { cmd: C::Cp(a) } => fsops::cp(ctx, a),
        Cmd::Diff(a) | Cmd::Container { cmd: C::Diff(a) } => fsops::diff(ctx, a),
        Cmd::Export(a) | Cmd::Container { cmd: C::Export(a) } => fsops::export(ctx, a),
        Cmd::Commit(a) | Cmd::Container { cmd: C::Commit(a) } => fsops::commit(ctx, a),
        Cmd::Import(a) | Cmd::Image { cmd: I::Import(a) } => fsops::import(ctx, a),
        Cmd::Update(a) | Cmd::Container { cmd: C::Update(a) } => fsops::update(ctx, a),
        Cmd::Volume { cmd } => volume::dispatch(ctx, cmd),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_like_docker() {
        let ctx = Ctx { client: Client::new("unix:///x").expect("client"), prog: "berth".into() };
        let cases: &[(&str, usize, usize, Option<usize>, Option<&str>)] = &[
            ("run", 0, 1, None, Some("berth: 'berth run' requires at least 1 argument\n\nUsage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nSee 'berth run --help' for more information")),
            ("run", 1, 1, None, None),
            ("tag", 1, 2, Some(2), Some("berth: 'berth tag' requires 2 arguments\n\nUsage:  berth tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]\n\nRun 'berth tag --help' for more information")),
            ("logs", 0, 1, Some(1), Some("berth: 'berth logs' requires 1 argument\n\nUsage:  berth logs [OPTIONS] CONTAINER\n\nRun 'berth logs --help' for more information")),
            ("ps", 1, 0, Some(0), Some("berth: 'berth ps' accepts no arguments\n\nUsage:  berth ps [OPTIONS]\n\nRun 'berth ps --help' for more information")),
            ("port", 3, 1, Some(2), Some("berth: 'berth port' requires at least 1 and at most 2 arguments\n\nUsage:  berth port CONTAINER [PRIVATE_PORT[/PROTO]]\n\nRun 'berth port --help' for more information")),
        ];
        for (path, n, min, max, want) in cases {
            let got = ctx.require(path, *n, *min, *max).err().map(|f| f.msg);
            assert_eq!(got.as_deref(), *want, "{path}");
        }
    }

    #[test]
    fn command_paths() {
        let v = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(command_path(&v("berth -H unix:///x run --foo busybox")), "run");
        assert_eq!(command_path(&v("berth container ls --foo")), "container ls");
        assert_eq!(command_path(&v("berth --foo")), "");
    }
}
