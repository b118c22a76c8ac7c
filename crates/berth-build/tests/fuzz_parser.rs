//! Bounded fuzzing (proptest) of the Dockerfile parser, the expander and the
//! `.dockerignore` matcher: arbitrary input never panics, and whatever parses keeps
//! line numbers inside the input.

use berth_build::expand::expand;
use berth_build::ignore::Matcher;
use berth_build::instructions::Instruction;
use proptest::prelude::*;

fn dockerfile_line() -> impl Strategy<Value = String> {
    let instr = prop::sample::select(vec![
        "FROM", "RUN", "CMD", "ENTRYPOINT", "ENV", "ARG", "LABEL", "EXPOSE", "WORKDIR", "USER",
        "COPY", "ADD", "VOLUME", "SHELL", "STOPSIGNAL", "HEALTHCHECK", "ONBUILD", "MAINTAINER",
        "RUNN", "#", "# escape=`", "",
    ]);
    let arg = "[ -~\\t]{0,40}";
    (instr, arg, prop::bool::ANY).prop_map(|(i, a, cont)| {
        format!("{i} {a}{}", if cont { " \\" } else { "" })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn parser_never_panics(lines in prop::collection::vec(dockerfile_line(), 0..20), heredoc in prop::bool::ANY) {
        let mut text = lines.join("\n");
        if heredoc {
            text.push_str("\nRUN <<EOF\necho\nEOF\n");
        }
        let nlines = text.split('\n').count();
        if let Ok(d) = berth_build::parse(&text) {
            let env: Vec<String> = vec!["A=1".into()];
            for n in &d.nodes {
                prop_assert!(n.line >= 1 && n.line <= nlines);
                let _ = Instruction::from_node(n, &env, d.escape);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(text in "\\PC{0,300}") {
        let _ = berth_build::parse(&text);
        let env: Vec<String> = vec!["A=1".into()];
        let _ = expand(&text, &env, '\\');
        if let Ok(m) = Matcher::new(&text) {
            let _ = m.excluded("a/b/c");
        }
    }
}
