//! `save` / `image save` and `load` / `image load`: `GET /images/get?names=…` to a file
//! (written beside it and renamed into place, as the docker CLI does) or to a
//! non-terminal STDOUT; `POST /images/load?quiet=` from a file or STDIN, printing the
//! daemon's messages (`Loaded image: x:y`).

use std::io::{self, Write};

use berth_client::{stream, Body};

use crate::cli::{LoadArgs, SaveArgs};
use crate::container::query;
use crate::fsops::pipe_fail;
use crate::{term, CmdResult, Ctx, Fail};

pub fn save(ctx: &mut Ctx, o: SaveArgs, path: &str) -> CmdResult {
    ctx.require(path, o.names.len(), 1, None)?;
    if o.output.is_none() && term::isatty(1) {
        return Err(Fail::new(1, "cowardly refusing to save to a terminal. Use the -o flag or redirect"));
    }
    let params: Vec<(&str, String)> = o.names.iter().map(|n| ("names", n.clone())).collect();
    let mut resp = ctx.client.send("GET", &query("/images/get", &params), &[], Body::None)?;
    match &o.output {
        Some(out) => {
            use std::os::unix::fs::OpenOptionsExt;
            let target = std::path::Path::new(out);
            let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
            let fail = |e: io::Error| Fail::new(1, format!("failed to save image: {}", crate::system::io_text(&e)));
            let written = (|| {
                let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
                io::copy(&mut resp, &mut f)?;
                f.sync_all()?;
                std::fs::rename(&tmp, target)
            })();
            if let Err(e) = written {
                let _ = std::fs::remove_file(&tmp);
                return Err(fail(e));
            }
        }
        None => {
            let mut out = io::stdout().lock();
            io::copy(&mut resp, &mut out).map_err(pipe_fail)?;
            out.flush().map_err(pipe_fail)?;
        }
    }
    Ok(0)
}

pub fn load(ctx: &mut Ctx, o: LoadArgs, path: &str) -> CmdResult {
    ctx.require(path, o.names.len(), 0, Some(0))?;
    let q = query("/images/load", &[("quiet", if o.quiet { "1" } else { "0" }.to_string())]);
    let resp = match &o.input {
        Some(file) => {
            let mut f = std::fs::File::open(file).map_err(|e| Fail::new(1, format!("open {file}: {}", crate::system::io_text(&e))))?;
            ctx.client.send("POST", &q, &[], Body::Chunked { content_type: "application/x-tar", reader: &mut f })?
        }
        None => {
            if term::isatty(0) {
                return Err(Fail::new(1, "requested load from stdin, but stdin is empty"));
            }
            let mut stdin = io::stdin().lock();
            ctx.client.send("POST", &q, &[], Body::Chunked { content_type: "application/x-tar", reader: &mut stdin })?
        }
    };
    let mut out = io::stdout().lock();
    match stream::display_json_messages(resp, &mut out, false, |_| {}) {
        Ok(()) => Ok(0),
        Err(stream::DisplayError::Stream(e)) => Err(Fail::new(1, e.message)),
        Err(stream::DisplayError::Io(e)) => Err(pipe_fail(e)),
    }
}
