//! `berth login` / `logout` and the credentials the CLI sends: `~/.docker/config.json`
//! (or `$DOCKER_CONFIG/config.json`) in Docker's format — `auths.<server>.auth` is
//! base64 of `user:password`, `identitytoken` a registry's refresh token — or a
//! `docker-credential-<helper>` program named by `credsStore` / `credHelpers`, spoken to
//! with Docker's credential-helper protocol (`get`/`store`/`erase` on stdin/stdout).
//! [`registry_auth`] turns them into the `X-Registry-Auth` header of pull and push.

use std::io::{self, BufRead, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::{CmdResult, Ctx, Fail};

/// Docker Hub's key in the config file.
pub const INDEX_SERVER: &str = "https://index.docker.io/v1/";

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn config_path() -> PathBuf {
    let dir = std::env::var_os("DOCKER_CONFIG").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
        home.join(".docker")
    });
    dir.join("config.json")
}

fn load_config() -> Result<Map<String, Value>, Fail> {
    let p = config_path();
    match std::fs::read(&p) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(Map::new()),
        Ok(b) => match serde_json::from_slice::<Value>(&b) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(Fail::new(1, format!("loading config file: {}: invalid JSON", p.display()))),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(Fail::new(1, format!("loading config file: {}: {e}", p.display()))),
    }
}

/// Written whole to a temp file (0600) and renamed over the old one, so a crash leaves
/// the old or the new file, never a prefix.
fn save_config(m: &Map<String, Value>) -> Result<(), Fail> {
    use std::os::unix::fs::OpenOptionsExt;
    let p = config_path();
    let dir = p.parent().map(PathBuf::from).unwrap_or_default();
    std::fs::create_dir_all(&dir).map_err(|e| Fail::new(1, format!("{}: {e}", dir.display())))?;
    let tmp = dir.join(format!(".config.json.{}.tmp", std::process::id()));
    let data = serde_json::to_vec_pretty(&Value::Object(m.clone())).unwrap_or_default();
    let write = || -> io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(&data)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &p)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Fail::new(1, format!("saving credentials: {}: {e}", p.display()))
    })
}

/// The registry key Docker uses for `server`: Hub's index URL, else the host[:port].
pub fn server_key(server: &str) -> String {
    let s = server.trim();
    let s = s.split_once("://").map_or(s, |(_, rest)| rest);
    let host = s.split('/').next().unwrap_or(s).to_ascii_lowercase();
    match host.as_str() {
        "" | "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            INDEX_SERVER.to_string()
        }
        _ => host,
    }
}

/// The credential helper for `key`, if the config names one.
fn helper_for(cfg: &Map<String, Value>, key: &str) -> Option<String> {
    let host = key.trim_start_matches("https://").trim_end_matches('/');
    cfg.get("credHelpers")
        .and_then(|h| h.get(key).or_else(|| h.get(host)))
        .and_then(Value::as_str)
        .or_else(|| cfg.get("credsStore").and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin.
fn run_helper(helper: &str, action: &str, input: &[u8]) -> Result<Vec<u8>, String> {
    let prog = format!("docker-credential-{helper}");
    let mut child = Command::new(&prog)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("exec: \"{prog}\": {e}"))?;
    if let Some(mut si) = child.stdin.take() {
        let _ = si.write_all(input);
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let msg = if msg.is_empty() { String::from_utf8_lossy(&out.stderr).trim().to_string() } else { msg };
        return Err(msg);
    }
    Ok(out.stdout)
}

/// The stored credentials for `key` as Docker's AuthConfig JSON (empty when none).
fn stored_auth(key: &str) -> Map<String, Value> {
    let mut out = Map::new();
    let Ok(cfg) = load_config() else {
        return out;
    };
    if let Some(helper) = helper_for(&cfg, key) {
        // "credentials not found in native keychain" and a missing helper are both
        // anonymous, as in Docker.
        if let Ok(b) = run_helper(&helper, "get", key.as_bytes()) {
            if let Ok(v) = serde_json::from_slice::<Value>(&b) {
                let user = v.get("Username").and_then(Value::as_str).unwrap_or("");
                let secret = v.get("Secret").and_then(Value::as_str).unwrap_or("");
                if user == "<token>" {
                    out.insert("identitytoken".into(), secret.into());
                } else {
                    out.insert("username".into(), user.into());
                    out.insert("password".into(), secret.into());
                }
            }
        }
    } else if let Some(entry) = cfg.get("auths").and_then(|a| a.get(key)) {
        if let Some((u, p)) = entry.get("auth").and_then(Value::as_str).and_then(decode_basic) {
            out.insert("username".into(), u.into());
            out.insert("password".into(), p.into());
        }
        if let Some(t) = entry.get("identitytoken").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            out.insert("identitytoken".into(), t.into());
        }
    }
    if !out.is_empty() {
        out.insert("serveraddress".into(), key.into());
    }
    out
}

fn decode_basic(auth: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD.decode(auth.trim()).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.trim_end_matches('\0').to_string()))
}

/// `X-Registry-Auth` for an image on registry `domain` (`docker.io` for Hub):
/// base64url of the stored AuthConfig, `e30=` (`{}`) when there is none.
pub fn registry_auth(domain: &str) -> String {
    let m = stored_auth(&server_key(domain));
    let json = serde_json::to_vec(&Value::Object(m)).unwrap_or_else(|_| b"{}".to_vec());
    base64::engine::general_purpose::URL_SAFE.encode(json)
}

/// `berth login [-u USER] [-p PASS | --password-stdin] [SERVER]`.
pub fn login(ctx: &mut Ctx, o: crate::cli::LoginArgs) -> CmdResult {
    ctx.require("login", o.server.len(), 0, Some(1))?;
    if o.password.is_some() && o.password_stdin {
        return Err(Fail::new(1, "--password and --password-stdin are mutually exclusive"));
    }
    let mut password = o.password.clone().unwrap_or_default();
    if o.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    if o.password_stdin {
        if o.username.as_deref().unwrap_or("").is_empty() {
            return Err(Fail::new(1, "Must provide --username with --password-stdin"));
        }
        let mut s = String::new();
        io::stdin().read_to_string(&mut s)?;
        password = s.trim_end_matches(['\n', '\r']).to_string();
    }
    let server = o.server.first().cloned().unwrap_or_default();
    let key = server_key(&server);
    let mut username = o.username.clone().unwrap_or_default();
    if username.is_empty() || password.is_empty() {
        if !crate::term::isatty(0) {
            return Err(Fail::new(1, "Error: Cannot perform an interactive login from a non TTY device"));
        }
        if username.is_empty() {
            print!("Username: ");
            io::stdout().flush()?;
            let mut s = String::new();
            io::stdin().lock().read_line(&mut s)?;
            username = s.trim().to_string();
        }
        if password.is_empty() {
            print!("Password: ");
            io::stdout().flush()?;
            let mut s = String::new();
            io::stdin().lock().read_line(&mut s)?;
            password = s.trim_end_matches(['\n', '\r']).to_string();
        }
    }
    if username.is_empty() {
        return Err(Fail::new(1, "Error: Non-null Username Required"));
    }
    if password.is_empty() {
        return Err(Fail::new(1, "Error: Password Required"));
    }
    let body = json!({"username": username, "password": password, "serveraddress": key});
    let resp: Value = ctx.client.post_json("/auth", &body)?;
    let token = resp.get("IdentityToken").and_then(Value::as_str).unwrap_or("").to_string();
    store(&key, &username, &password, &token)?;
    println!("{}", resp.get("Status").and_then(Value::as_str).unwrap_or("Login Succeeded"));
    Ok(0)
}

/// Saves credentials where the config says (a helper, else `auths`).
fn store(key: &str, username: &str, password: &str, token: &str) -> Result<(), Fail> {
    let mut cfg = load_config()?;
    let auths = cfg.entry("auths").or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    let helper = helper_for(&cfg, key);
    let entry = if let Some(h) = &helper {
        let (user, secret) = if token.is_empty() { (username, password) } else { ("<token>", token) };
        let input = json!({"ServerURL": key, "Username": user, "Secret": secret}).to_string();
        run_helper(h, "store", input.as_bytes())
            .map_err(|e| Fail::new(1, format!("Error saving credentials: error storing credentials - err: {e}")))?;
        json!({})
    } else if token.is_empty() {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        json!({ "auth": auth })
    } else {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:"));
        json!({ "auth": auth, "identitytoken": token })
    };
    if let Some(a) = cfg.get_mut("auths").and_then(Value::as_object_mut) {
        a.insert(key.to_string(), entry);
    }
    save_config(&cfg)?;
    if helper.is_none() {
        eprintln!(
            "\nWARNING! Your credentials are stored unencrypted in '{}'.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/go/credential-store/\n",
            config_path().display()
        );
    }
    Ok(())
}

/// `berth logout [SERVER]`.
pub fn logout(ctx: &mut Ctx, o: crate::cli::LogoutArgs) -> CmdResult {
    ctx.require("logout", o.server.len(), 0, Some(1))?;
    let server = o.server.first().cloned().unwrap_or_default();
    let key = server_key(&server);
    let shown = if key == INDEX_SERVER { key.clone() } else { server.clone() };
    let mut cfg = load_config()?;
    let in_file = cfg.get("auths").and_then(|a| a.get(&key)).is_some();
    let helper = helper_for(&cfg, &key);
    let in_helper = helper.as_deref().is_some_and(|h| run_helper(h, "get", key.as_bytes()).is_ok());
    if !in_file && !in_helper {
        println!("Not logged in to {shown}");
        return Ok(0);
    }
    println!("Removing login credentials for {shown}");
    if let Some(h) = &helper {
        if let Err(e) = run_helper(h, "erase", key.as_bytes()) {
            eprintln!("WARNING: could not erase credentials: {key}: error erasing credentials - err: {e}");
        }
    }
    if let Some(a) = cfg.get_mut("auths").and_then(Value::as_object_mut) {
        a.remove(&key);
    }
    save_config(&cfg)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_keys() {
        for (s, want) in [
            ("", INDEX_SERVER),
            ("docker.io", INDEX_SERVER),
            ("https://index.docker.io/v1/", INDEX_SERVER),
            ("127.0.0.1:5443", "127.0.0.1:5443"),
            ("https://127.0.0.1:5443/v2/", "127.0.0.1:5443"),
        ] {
            assert_eq!(server_key(s), want, "{s}");
        }
    }

    #[test]
    fn helper_choice() {
        let cfg: Map<String, Value> = serde_json::from_str(
            r#"{"credsStore":"pass","credHelpers":{"127.0.0.1:5443":"test","https://index.docker.io/v1/":"hub"}}"#,
        )
        .unwrap();
        assert_eq!(helper_for(&cfg, "127.0.0.1:5443").as_deref(), Some("test"));
        assert_eq!(helper_for(&cfg, INDEX_SERVER).as_deref(), Some("hub"));
        assert_eq!(helper_for(&cfg, "other:1").as_deref(), Some("pass"));
        assert_eq!(helper_for(&Map::new(), "other:1"), None);
    }

    #[test]
    fn basic_auth_round_trip() {
        let enc = base64::engine::general_purpose::STANDARD.encode("me:p:w");
        assert_eq!(decode_basic(&enc), Some(("me".into(), "p:w".into())));
        assert_eq!(decode_basic("%%%"), None);
    }
}
