//! `berth-build`: Docker's classic builder without the engine. It owns the Dockerfile
//! parser (`parser`: directives, continuations, comments, heredocs, JSON and shell
//! forms, Docker's error texts with line numbers), the typed instructions
//! (`instructions`), variable expansion (`expand`: `$a ${a:-b} ${a:+b}`, quotes and
//! escapes), `.dockerignore` matching (`ignore`), the `commit --change` / `import
//! --change` appliers (`changes`) and the executor (`executor`) that drives an engine
//! through the small [`executor::Backend`] trait (run a container, commit a layer or a
//! config-only image, resolve images, keep the cache).
//!
//! It must not use the engine, the image store, tokio or any HTTP crate; `unsafe` is
//! forbidden. File work is limited to the build context (a plain directory the daemon
//! extracted) and the temporary layer tars it writes.
#![forbid(unsafe_code)]

pub mod cachefrom;
pub mod changes;
pub mod context;
pub mod executor;
pub mod expand;
pub mod ignore;
pub mod instructions;
pub mod parser;

pub use parser::{parse, Dockerfile, Node, ParseError};
