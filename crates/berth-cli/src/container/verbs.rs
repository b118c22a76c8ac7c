//! The simple verbs over one or more names: rm, kill, stop/restart, pause/unpause,
//! wait, rename.

use berth_api::WaitResponse;
use berth_client::Body;

use super::*;
use crate::cli::{KillArgs, Names, RmArgs, StopArgs};
use crate::{CmdResult, Ctx, Fail};

/// Runs `f` for each name, printing the name on success and errors at the end.
fn each(names: &[String], mut f: impl FnMut(&str) -> Result<Option<String>, berth_client::Error>) -> CmdResult {
    let mut errs = Vec::new();
    for n in names {
        match f(n) {
            Ok(Some(out)) => println!("{out}"),
            Ok(None) => {}
            Err(e) => errs.push(e.to_string()),
        }
    }
    if errs.is_empty() {
        Ok(0)
    } else {
        Err(Fail::new(1, errs.join("\n")))
    }
}

pub fn rm(ctx: &mut Ctx, o: RmArgs) -> CmdResult {
    ctx.require("rm", o.containers.len(), 1, None)?;
    let mut params = Vec::new();
    if o.force {
        params.push(("force", "1".to_string()));
    }
    if o.link {
        params.push(("link", "1".to_string()));
    }
    if o.volumes {
        params.push(("v", "1".to_string()));
    }
    let client = &mut ctx.client;
    each(&o.containers, |c| {
        client.delete(&query(&format!("/containers/{c}"), &params))?;
        Ok(Some(c.to_string()))
    })
}

pub fn kill(ctx: &mut Ctx, o: KillArgs) -> CmdResult {
    ctx.require("kill", o.containers.len(), 1, None)?;
    let mut params = Vec::new();
    if let Some(s) = &o.signal {
        params.push(("signal", s.clone()));
    }
    let client = &mut ctx.client;
    each(&o.containers, |c| {
        client.post(&query(&format!("/containers/{c}/kill"), &params))?;
        Ok(Some(c.to_string()))
    })
}

pub fn stop(ctx: &mut Ctx, o: StopArgs, verb: &str) -> CmdResult {
    ctx.require(verb, o.containers.len(), 1, None)?;
    let mut params = Vec::new();
    if let Some(s) = &o.signal {
        params.push(("signal", s.clone()));
    }
    if let Some(t) = o.time {
        params.push(("t", t.to_string()));
    }
    let client = &mut ctx.client;
    each(&o.containers, |c| {
        client.post(&query(&format!("/containers/{c}/{verb}"), &params))?;
        Ok(Some(c.to_string()))
    })
}

pub fn simple(ctx: &mut Ctx, o: Names, verb: &str) -> CmdResult {
    ctx.require(verb, o.names.len(), 1, None)?;
    let client = &mut ctx.client;
    each(&o.names, |c| {
        client.post(&format!("/containers/{c}/{verb}"))?;
        Ok(Some(c.to_string()))
    })
}

pub fn wait(ctx: &mut Ctx, o: Names) -> CmdResult {
    ctx.require("wait", o.names.len(), 1, None)?;
    let client = &mut ctx.client;
    each(&o.names, |c| {
        let (_, data) = client.call("POST", &format!("/containers/{c}/wait"), &[], Body::Empty)?;
        let w: WaitResponse = berth_client::decode(&data)?;
        Ok(Some(w.status_code.to_string()))
    })
}

pub fn rename(ctx: &mut Ctx, o: Names) -> CmdResult {
    ctx.require("rename", o.names.len(), 2, Some(2))?;
    let new = o.names[1].trim();
    if new.is_empty() {
        return Err(Fail::new(1, "Error: neither old nor new names may be empty"));
    }
    ctx.client.post(&query(&format!("/containers/{}/rename", o.names[0]), &[("name", new.to_string())]))?;
    Ok(0)
}
