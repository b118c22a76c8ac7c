//! Registry authentication and TLS through the CLIs: `login`/`logout` (basic auth
//! over TLS, Bearer tokens with identity/refresh tokens, credential helpers), the
//! credentials reaching pulls through `X-Registry-Auth`, `POST /auth` errors, and
//! per-registry CA and client certificates from a certs directory. Real Debian
//! `docker-registry` instances on free 127.0.0.1 ports (berth_e2e::registry); the
//! Bearer cases use its token-server test double. Never the fixture registry's auth.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use berth_e2e::registry::{Auth, TestRegistry, TokenServer, PASSWORD, REFRESH_TOKEN, USER};
use berth_e2e::{both, run_with_input, run_with_timeout, Cli, Daemon};

fn config_json(d: &Daemon) -> serde_json::Value {
    let p = d.dir().join("dcfg/config.json");
    std::fs::read(&p).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(serde_json::Value::Null)
}

fn raw_request(d: &Daemon, req: &[u8]) -> berth_e2e::HttpResponse {
    use std::io::{Read, Write};
    let sock = d.host().trim_start_matches("unix://").to_string();
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.write_all(req).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    berth_e2e::parse_response(&raw, false).unwrap()
}

fn login_stdin(d: &Daemon, cli: Cli, server: &str, password: &str) -> berth_e2e::Run {
    let (cmd, shown) = d.cli_command(cli, &["login", "-u", USER, "--password-stdin", server]);
    run_with_input(cmd, shown, format!("{password}\n").as_bytes(), Duration::from_secs(60))
}

both!(fn login_basic_auth_over_tls(d, cli) {
    let reg = TestRegistry::start(Auth::Basic, true, false);
    let addr = reg.addr();
    reg.seed(&addr, "test/busybox", "me/busybox:latest", true);
    let image = format!("{addr}/me/busybox");

    // Anonymous: refused.
    d.cli(cli, &["pull", &image]).code(1);
    // 127.0.0.1 is an insecure registry: https without verification, as Docker.
    login_stdin(&d, cli, &addr, "wrong")
        .code(1)
        .stderr_has(&format!("login attempt to https://{addr}/v2/ failed with status: 401 Unauthorized"));
    assert!(config_json(&d).pointer(&format!("/auths/{addr}")).is_none());

    login_stdin(&d, cli, &addr, PASSWORD).ok().stdout_has("Login Succeeded");
    let cfg = config_json(&d);
    assert_eq!(cfg.pointer(&format!("/auths/{addr}/auth")).and_then(|v| v.as_str()), Some("dGVzdGVyOnMzY3JldA=="), "{cfg}");

    d.cli(cli, &["pull", &image]).ok().stdout_has(&format!("Status: Downloaded newer image for {image}:latest"));
    d.cli(cli, &["run", "--rm", &image, "true"]).ok();

    d.cli(cli, &["logout", &addr]).ok().stdout_has(&format!("Removing login credentials for {addr}"));
    assert!(config_json(&d).pointer(&format!("/auths/{addr}")).is_none());
    d.cli(cli, &["rmi", &image]).ok();
    d.cli(cli, &["pull", &image]).code(1);
});

#[test]
fn auth_endpoint_answers_like_docker() {
    let reg = TestRegistry::start(Auth::Basic, true, false);
    let d = Daemon::start();
    let addr = reg.addr();
    let ok = d.request(
        "POST",
        "/auth",
        Some(&format!(r#"{{"username":"{USER}","password":"{PASSWORD}","serveraddress":"{addr}"}}"#)),
    );
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.json(), serde_json::json!({"Status": "Login Succeeded", "IdentityToken": ""}));
    let bad = d.request(
        "POST",
        "/auth",
        Some(&format!(r#"{{"username":"{USER}","password":"nope","serveraddress":"https://{addr}/"}}"#)),
    );
    assert_eq!(bad.status, 401, "{bad:?}");
    assert_eq!(
        bad.json()["message"],
        format!("login attempt to https://{addr}/v2/ failed with status: 401 Unauthorized")
    );
    let garbage = d.request("POST", "/auth", Some("{"));
    assert_eq!(garbage.status, 400, "{garbage:?}");
    // A malformed X-Registry-Auth is refused before anything is pulled.
    let r = raw_request(
        &d,
        b"POST /images/create?fromImage=busybox&tag=latest HTTP/1.1\r\nHost: x\r\nX-Registry-Auth: !!!\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.text().contains("invalid X-Registry-Auth header"), "{r:?}");
}

both!(fn login_bearer_token_with_identity_token(d, cli) {
    // The token server is a test double (see berth_e2e::registry::TokenServer); the
    // registry verifying its tokens is the real docker-registry.
    let ts = TokenServer::start();
    let reg = TestRegistry::start(Auth::Token { realm: ts.realm(), cert: ts.cert() }, false, false);
    let addr = reg.addr();
    reg.seed(&addr, "test/busybox", "me/busybox:latest", true);
    let image = format!("{addr}/me/busybox");

    d.cli(cli, &["pull", &image]).code(1);
    login_stdin(&d, cli, &addr, "wrong").code(1).stderr_has("unauthorized: incorrect username or password");
    login_stdin(&d, cli, &addr, PASSWORD).ok().stdout_has("Login Succeeded");
    // The registry's refresh token is stored as the identity token, not the password.
    let cfg = config_json(&d);
    assert_eq!(cfg.pointer(&format!("/auths/{addr}/identitytoken")).and_then(|v| v.as_str()), Some(REFRESH_TOKEN), "{cfg}");
    d.cli(cli, &["pull", &image]).ok().stdout_has("Pull complete");
    d.cli(cli, &["logout", &addr]).ok();
});

#[test]
fn credential_helper_stores_and_erases() {
    let reg = TestRegistry::start(Auth::Basic, false, false);
    let addr = reg.addr();
    reg.seed(&addr, "test/busybox", "me/busybox:latest", true);
    let image = format!("{addr}/me/busybox");
    for cli in [Cli::Berth, Cli::Docker] {
        let d = Daemon::start();
        // A credential helper of our own (the protocol's get/store/erase over a file).
        let bin = d.dir().join("helper-bin");
        std::fs::create_dir_all(&bin).unwrap();
        let store = d.dir().join("helper-store.json");
        let script = format!(
            "#!/bin/sh\ncase \"$1\" in\n store) cat > {s} ;;\n get) cat >/dev/null; if [ -f {s} ]; then cat {s}; else echo 'credentials not found in native keychain'; exit 1; fi ;;\n erase) cat >/dev/null; rm -f {s} ;;\nesac\n",
            s = store.display()
        );
        let helper = bin.join("docker-credential-berthtest");
        std::fs::write(&helper, script).unwrap();
        std::process::Command::new("chmod").arg("755").arg(&helper).status().unwrap();
        std::fs::write(d.dir().join("dcfg/config.json"), r#"{"credsStore":"berthtest"}"#).unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let run = |args: &[&str], input: Option<&str>| {
            let (mut cmd, shown) = d.cli_command(cli, args);
            cmd.env("PATH", &path);
            match input {
                Some(i) => run_with_input(cmd, shown, i.as_bytes(), Duration::from_secs(60)),
                None => run_with_timeout(cmd, shown, Duration::from_secs(60)),
            }
        };
        run(&["login", "-u", USER, "--password-stdin", &addr], Some(PASSWORD)).ok().stdout_has("Login Succeeded");
        let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&store).unwrap()).unwrap();
        assert_eq!(stored["Username"], USER);
        assert_eq!(stored["Secret"], PASSWORD);
        let cfg = config_json(&d);
        assert_eq!(cfg.pointer(&format!("/auths/{addr}")), Some(&serde_json::json!({})), "{cfg}");
        assert!(!cfg.to_string().contains(PASSWORD));
        run(&["pull", &image], None).ok();
        run(&["logout", &addr], None).ok().stdout_has(&format!("Removing login credentials for {addr}"));
        assert!(!store.exists());
    }
}

#[test]
fn tls_ca_and_client_certificate_from_certs_dir() {
    // `vm` is this machine's name for 127.0.0.1 (/etc/hosts): unlike 127.0.0.1 it is
    // not an insecure registry, so its certificate is verified against certs.d.
    let reg = TestRegistry::start(Auth::None, true, true);
    let host = format!("vm:{}", reg.port);
    reg.seed(&host, "test/busybox", "me/busybox:latest", false);
    let image = format!("{host}/me/busybox");
    let certs = tempfile::tempdir().unwrap();
    let hostdir = certs.path().join(&host);
    std::fs::create_dir_all(&hostdir).unwrap();
    let certs_arg = certs.path().display().to_string();
    let d = Daemon::start_with_args(&["--registry-certs-dir", &certs_arg]);

    // No CA: the registry's certificate is not trusted.
    d.berth(&["pull", &image]).code(1).stderr_has_ci("certificate");
    // The CA but no client certificate: the registry refuses the handshake.
    std::fs::copy(reg.dir.path().join("ca.crt"), hostdir.join("ca.crt")).unwrap();
    d.berth(&["pull", &image]).code(1);
    // A client certificate without its key is Docker's error, and nothing is used.
    std::fs::copy(reg.dir.path().join("client.cert"), hostdir.join("client.cert")).unwrap();
    d.berth(&["pull", &image]).code(1);
    assert!(d.log_text().contains("missing key"), "{}", d.log_text());
    std::fs::copy(reg.dir.path().join("client.key"), hostdir.join("client.key")).unwrap();
    d.berth(&["pull", &image]).ok().stdout_has(&format!("Status: Downloaded newer image for {image}:latest"));
    d.docker(&["run", "--rm", &image, "true"]).ok();
}

/// An https `--registry-mirror` is verified like a registry: the CA and the client
/// certificate come from `<certs dir>/<host:port>/`. The mirror (a TLS registry that
/// also requires a client certificate of its CA) is reached as `vm:<port>`, a secure
/// host, and holds an image the fixture mirror (listed first by the harness) does
/// not have, so the pull falls through to it.
#[test]
fn https_mirror_uses_the_certs_dir_ca_and_client_certificate() {
    let reg = TestRegistry::start(Auth::None, true, true);
    let host = format!("vm:{}", reg.port);
    reg.seed(&host, "library/busybox", "library/mirrored-busybox:latest", false);
    let certs = tempfile::tempdir().unwrap();
    let hostdir = certs.path().join(&host);
    std::fs::create_dir_all(&hostdir).unwrap();
    for f in ["ca.crt", "client.cert", "client.key"] {
        std::fs::copy(reg.dir.path().join(f), hostdir.join(f)).unwrap();
    }
    let certs_arg = certs.path().display().to_string();
    let mirror = format!("https://{host}");
    let d = Daemon::start_with_args(&["--registry-certs-dir", &certs_arg, "--registry-mirror", &mirror]);
    d.berth(&["pull", "mirrored-busybox"])
        .ok()
        .stdout_has("Status: Downloaded newer image for mirrored-busybox:latest");
    d.docker(&["run", "--rm", "mirrored-busybox", "true"]).ok();
    let log = d.log_text();
    assert!(!log.contains(&format!("mirror={mirror}")), "the TLS mirror failed:\n{log}");
}
