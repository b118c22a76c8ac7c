//! `logs` of long and rotated json-file logs (issue 6 D1: reading a log cost memory in
//! the square of its size, and `--tail 3` of a 100 MB log got berthd OOM-killed): full
//! output, `--tail` from the end, across rotated files. Every case runs through both
//! `berth` and the real `docker` CLI.

use berth_e2e::{both, Daemon, Run};

const SUFFIX: &str = "abcdefghijklmnopqrstuvwxyz0123456789";

fn script(n: usize) -> String {
    format!("i=0; while [ $i -lt {n} ]; do echo line-$i-{SUFFIX}; i=$((i+1)); done")
}

/// The numbers of `line-N-…` lines, in order; panics on any other line.
fn numbers(r: &Run) -> Vec<usize> {
    r.stdout
        .lines()
        .map(|l| {
            l.strip_prefix("line-")
                .and_then(|rest| rest.strip_suffix(SUFFIX))
                .and_then(|n| n.strip_suffix('-'))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("`{}`: unexpected line {l:?}", r.cmd))
        })
        .collect()
}

/// berthd's peak resident memory in KiB since the last [`reset_peak`].
fn peak_kib(d: &Daemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {status}"))
}

fn reset_peak(d: &Daemon) {
    std::fs::write(format!("/proc/{}/clear_refs", d.pid()), "5").expect("clear_refs");
}

fn expect_lines(r: &Run, want: std::ops::Range<usize>) {
    let got = numbers(r);
    assert_eq!(got, want.collect::<Vec<_>>(), "`{}` (stderr {:?})", r.cmd, r.stderr);
}

both!(fn logs_tail_of_a_4000_line_log(d, cli) {
    let n = 4000;
    d.cli(cli, &["run", "--name", "lm", "busybox", "sh", "-c", &script(n)]).ok();
    // The log is ~440 KB; reading it all used to take berthd ~1 GB. Its buffers are
    // now bounded (a few MB at most), so a 64 MB rise means they are not.
    reset_peak(&d);
    let before = peak_kib(&d);
    expect_lines(&d.cli(cli, &["logs", "--tail", "3", "lm"]).ok(), n - 3..n);
    expect_lines(&d.cli(cli, &["logs", "lm"]).ok(), 0..n);
    let rise = peak_kib(&d).saturating_sub(before);
    assert!(rise < 64 * 1024, "berthd's peak memory rose by {rise} KiB serving logs of a 440 KB log");
    expect_lines(&d.cli(cli, &["logs", "--tail", "1", "lm"]).ok(), n - 1..n);
    expect_lines(&d.cli(cli, &["logs", "--tail", "2500", "lm"]).ok(), n - 2500..n);
    expect_lines(&d.cli(cli, &["logs", "--tail", "9999", "lm"]).ok(), 0..n);
    expect_lines(&d.cli(cli, &["logs", "--tail", "all", "lm"]).ok(), 0..n);
    let r = d.cli(cli, &["logs", "--tail", "0", "lm"]).ok();
    assert!(r.stdout.is_empty(), "`{}`: {:?}", r.cmd, r.stdout);
    expect_lines(&d.cli(cli, &["logs", "lm"]).ok(), 0..n);
    // Following a stopped container: the tail, then the end.
    expect_lines(&d.cli(cli, &["logs", "-f", "--tail", "3", "lm"]).ok(), n - 3..n);
    // Timestamps prefix every line of the tail.
    let t = d.cli(cli, &["logs", "-t", "--tail", "2", "lm"]).ok();
    let stamped: Vec<&str> = t.stdout.lines().collect();
    assert_eq!(stamped.len(), 2, "{t:?}");
    for (l, i) in stamped.iter().zip([n - 2, n - 1]) {
        let (ts, rest) = l.split_once(' ').unwrap_or_else(|| panic!("{t:?}"));
        assert!(ts.len() == 30 && ts.ends_with('Z'), "nine-digit stamp: {t:?}");
        assert_eq!(rest, format!("line-{i}-{SUFFIX}"), "{t:?}");
    }
});

both!(fn logs_tail_across_rotated_files(d, cli) {
    // One json line is ~110 bytes: 8k files hold ~70 lines each, three files ~140..220.
    let n = 4000;
    d.cli(cli, &[
        "run", "--name", "rot", "--log-opt", "max-size=8k", "--log-opt", "max-file=3",
        "busybox", "sh", "-c", &script(n),
    ]).ok();
    let v = d.inspect("rot");
    let log = v["LogPath"].as_str().unwrap_or_default().to_string();
    for k in [1, 2] {
        assert!(std::path::Path::new(&format!("{log}.{k}")).exists(), "{log}.{k} missing");
    }
    assert!(!std::path::Path::new(&format!("{log}.3")).exists(), "max-file=3 keeps three files");
    let live_lines = std::fs::read_to_string(&log).map(|s| s.lines().count()).unwrap_or(0);

    let all = d.cli(cli, &["logs", "rot"]).ok();
    let kept = numbers(&all);
    assert!((140..=230).contains(&kept.len()), "{} lines kept", kept.len());
    expect_lines(&all, n - kept.len()..n);
    expect_lines(&d.cli(cli, &["logs", "--tail", "3", "rot"]).ok(), n - 3..n);
    // Tails that start in the previous file and in the oldest one.
    let into_prev = live_lines + 5;
    expect_lines(&d.cli(cli, &["logs", "--tail", &into_prev.to_string(), "rot"]).ok(), n - into_prev..n);
    let into_oldest = kept.len() - 3;
    expect_lines(&d.cli(cli, &["logs", "--tail", &into_oldest.to_string(), "rot"]).ok(), n - into_oldest..n);
    expect_lines(&d.cli(cli, &["logs", "--tail", "100000", "rot"]).ok(), n - kept.len()..n);
});

#[test]
fn logs_tail_counts_only_the_chosen_stream() {
    // Through the API, which can ask for one stream: every 10th line goes to stderr.
    let d = Daemon::start();
    let sh = format!(
        "i=0; while [ $i -lt 1000 ]; do if [ $((i % 10)) -eq 0 ]; then echo line-$i-{SUFFIX} >&2; \
         else echo line-$i-{SUFFIX}; fi; i=$((i+1)); done"
    );
    d.berth(&["run", "--name", "st", "busybox", "sh", "-c", &sh]).ok();
    let r = d.request("GET", "/containers/st/logs?stderr=1&tail=3", None);
    assert_eq!(r.status, 200);
    // Multiplexed frames: 8-byte header (stream 2) then the line.
    let mut body = r.body.as_slice();
    let mut got = Vec::new();
    while body.len() >= 8 {
        assert_eq!(body[0], 2, "stderr frames only");
        let len = u32::from_be_bytes([body[4], body[5], body[6], body[7]]) as usize;
        got.push(String::from_utf8_lossy(&body[8..8 + len]).to_string());
        body = &body[8 + len..];
    }
    assert!(body.is_empty());
    let want: Vec<String> = [970, 980, 990].iter().map(|i| format!("line-{i}-{SUFFIX}\n")).collect();
    assert_eq!(got, want);
}
