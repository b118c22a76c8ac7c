//! Docker's human-facing formatting: go-units durations and sizes, Go's tabwriter,
//! `stringid.TruncateID`, ellipsis, the PORTS column, and `json.Indent`.

use berth_api::Port;
pub use berth_api::units::{bytes_size, human_duration, human_size, human_size_prec};

pub fn now_secs_f64() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// "5 seconds ago" for a unix timestamp.
pub fn since(created: i64) -> String {
    human_duration(now_secs_f64() - created as f64) + " ago"
}

/// `stringid.TruncateID`: drop an algorithm prefix, keep 12 characters.
pub fn truncate_id(id: &str) -> String {
    let id = match id.find(':') {
        Some(i) => &id[i + 1..],
        None => id,
    };
    id.chars().take(12).collect()
}

/// Docker's `formatter.Ellipsis` (display width = characters here).
pub fn ellipsis(s: &str, max: usize) -> String {
    if max == 0 {
        return String::new();
    }
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= max {
        return s.to_string();
    }
    if max == 1 {
        return chars[0].to_string();
    }
    chars[..max - 1].iter().collect::<String>() + "…"
}

/// Go's `text/tabwriter` with Docker's settings (minwidth 10, tabwidth 1, padding 3,
/// pad with spaces, no flags) applied to a whole buffered text.
pub fn tabwrite(text: &str) -> String {
    tabwrite_with(text, 10, 3)
}

pub fn tabwrite_with(text: &str, minwidth: usize, padding: usize) -> String {
    let mut lines: Vec<Vec<String>> = text.split('\n').map(|l| l.split('\t').map(str::to_owned).collect()).collect();
    // A trailing newline produces one empty last "line" that is not printed.
    let trailing_nl = text.ends_with('\n');
    if trailing_nl {
        lines.pop();
    }
    let mut out = String::new();
    let mut widths = Vec::new();
    format_block(&lines, 0, lines.len(), &mut widths, minwidth, padding, &mut out);
    if !trailing_nl && out.ends_with('\n') {
        out.pop();
    }
    out
}

fn cell_width(s: &str) -> usize {
    s.chars().count()
}

fn write_lines(lines: &[Vec<String>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() && j + 1 < line.len() {
                let pad = widths[j].saturating_sub(cell_width(cell));
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
}

fn format_block(
    lines: &[Vec<String>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    minwidth: usize,
    padding: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut width = minwidth;
        while this < line1 && column + 1 < lines[this].len() {
            let w = cell_width(&lines[this][column]) + padding;
            if w > width {
                width = w;
            }
            this += 1;
        }
        widths.push(width);
        format_block(lines, line0, this, widths, minwidth, padding, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn join_host_port(ip: &str, port: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// The PORTS column: Docker's `DisplayablePorts` (ranges grouped, mappings last).
pub fn display_ports(ports: &[Port]) -> String {
    let mut ports = ports.to_vec();
    ports.sort_by(|a, b| {
        (a.private_port, a.ip.as_deref().unwrap_or(""), a.public_port.unwrap_or(0), &a.kind).cmp(&(
            b.private_port,
            b.ip.as_deref().unwrap_or(""),
            b.public_port.unwrap_or(0),
            &b.kind,
        ))
    });
    let mut groups: Vec<(String, u16, u16)> = Vec::new(); // key, first, last (open groups)
    let mut result = Vec::new();
    let mut mappings = Vec::new();
    for p in &ports {
        let current = p.private_port;
        let mut key = p.kind.clone();
        let ip = p.ip.as_deref().unwrap_or("");
        if !ip.is_empty() {
            let public = p.public_port.unwrap_or(0);
            if public != current {
                mappings.push(format!("{}->{}/{}", join_host_port(ip, &public.to_string()), current, p.kind));
                continue;
            }
            key = format!("{ip}/{}", p.kind);
        }
        match groups.iter_mut().find(|g| g.0 == key) {
            None => groups.push((key, current, current)),
            Some(g) if current == g.2.wrapping_add(1) => g.2 = current,
            Some(g) => {
                result.push(form_group(&g.0, g.1, g.2));
                g.1 = current;
                g.2 = current;
            }
        }
    }
    for g in &groups {
        result.push(form_group(&g.0, g.1, g.2));
    }
    result.extend(mappings);
    result.join(", ")
}

fn form_group(key: &str, first: u16, last: u16) -> String {
    let (ip, kind) = match key.rsplit_once('/') {
        Some((ip, k)) => (ip, k),
        None => ("", key),
    };
    let mut group = first.to_string();
    if first != last {
        group = format!("{group}-{last}");
    }
    if !ip.is_empty() {
        group = format!("{}->{group}", join_host_port(ip, &group));
    }
    format!("{group}/{kind}")
}

/// Go's `json.Indent(dst, src, "", indent)`: keeps key order and string escapes.
pub fn json_indent(src: &[u8], indent: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len() * 2);
    let mut depth = 0usize;
    let mut need_indent = false;
    let mut in_str = false;
    let mut esc = false;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        for _ in 0..depth {
            out.extend_from_slice(indent.as_bytes());
        }
    };
    for &c in src {
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
            }
            continue;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        if need_indent && c != b'}' && c != b']' {
            need_indent = false;
            depth += 1;
            newline(&mut out, depth);
        }
        match c {
            b'"' => {
                in_str = true;
                out.push(c);
            }
            b'{' | b'[' => {
                need_indent = true;
                out.push(c);
            }
            b',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            b':' => {
                out.push(c);
                out.push(b' ');
            }
            b'}' | b']' => {
                if need_indent {
                    need_indent = false;
                } else {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// Go's `time.Time.String()` of a unix timestamp in the local zone:
/// `2026-11-23 11:29:54 +0000 UTC`.
pub fn go_time_string(secs: i64) -> String {
    use chrono::{Local, TimeZone};
    match Local.timestamp_opt(secs, 0).single() {
        Some(t) => {
            let off = t.format("%z").to_string();
            let zone = if off == "+0000" { "UTC".to_string() } else { off.clone() };
            format!("{} {off} {zone}", t.format("%Y-%m-%d %H:%M:%S"))
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases: &[(f64, &str)] = &[
            (0.0, "Less than a second"),
            (0.9, "Less than a second"),
            (1.0, "1 second"),
            (5.0, "5 seconds"),
            (59.9, "59 seconds"),
            (60.0, "About a minute"),
            (119.0, "About a minute"),
            (120.0, "2 minutes"),
            (59.0 * 60.0, "59 minutes"),
            (60.0 * 60.0, "About an hour"),
            (89.0 * 60.0, "About an hour"),
            (91.0 * 60.0, "2 hours"),
            (47.0 * 3600.0, "47 hours"),
            (48.0 * 3600.0, "2 days"),
            (13.0 * 86400.0, "13 days"),
            (14.0 * 86400.0, "2 weeks"),
            (59.0 * 86400.0, "8 weeks"),
            (60.0 * 86400.0, "2 months"),
            (729.0 * 86400.0, "24 months"),
            (730.0 * 86400.0, "2 years"),
            (56.0 * 365.25 * 86400.0, "56 years"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(*secs), *want, "{secs}");
        }
    }

    #[test]
    fn sizes() {
        let cases: &[(i64, &str)] = &[
            (0, "0B"),
            (1, "1B"),
            (999, "999B"),
            (1000, "1kB"),
            (12345, "12.3kB"),
            (1984172, "1.98MB"),
            (4261550, "4.26MB"),
            (999999, "1e+03kB"),
            (72_900_000, "72.9MB"),
            (1_000_000_000, "1GB"),
            (232, "232B"),
            (100_000, "100kB"),
        ];
        for (n, want) in cases {
            assert_eq!(human_size(*n), *want, "{n}");
        }
        assert_eq!(bytes_size(1048576.0), "1MiB");
        assert_eq!(bytes_size(1073741824.0), "1GiB");
        assert_eq!(bytes_size(1536.0), "1.5KiB");
        assert_eq!(bytes_size(0.0), "0B");
    }

    #[test]
    fn ids_and_ellipsis() {
        assert_eq!(truncate_id("sha256:54b748a9fe39aa724c7476a0ed238f50"), "54b748a9fe39");
        assert_eq!(truncate_id("abc"), "abc");
        let cases: &[(&str, usize, &str)] = &[
            ("httpd -f -p 80", 20, "httpd -f -p 80"),
            ("sh -c 'while true; do echo tick; sleep 1; done'", 20, "sh -c 'while true; …"),
            ("12345678901234567890", 20, "12345678901234567890"),
            ("123456789012345678901", 20, "1234567890123456789…"),
            ("abc", 1, "a"),
        ];
        for (s, n, want) in cases {
            assert_eq!(ellipsis(s, *n), *want);
        }
    }

    #[test]
    fn tabwriter_like_go() {
        let input = "CONTAINER ID\tIMAGE\tNAMES\n4730254c0111\tbusybox\tweb\nab\tlocalhost:5000/busybox:latest\tx\n";
        let want = "CONTAINER ID   IMAGE                           NAMES\n4730254c0111   busybox                         web\nab             localhost:5000/busybox:latest   x\n";
        assert_eq!(tabwrite(input), want);
        // minwidth 10 applies to short columns.
        assert_eq!(tabwrite("A\tB\nx\ty\n"), "A         B\nx         y\n");
        // Lines with fewer cells end a column block.
        assert_eq!(tabwrite("a\tb\tc\nlonger-cell\n"), "a         b         c\nlonger-cell\n");
    }

    #[test]
    fn ports_column() {
        let p = |ip: Option<&str>, private: u16, public: Option<u16>, kind: &str| Port {
            ip: ip.map(str::to_owned),
            private_port: private,
            public_port: public,
            kind: kind.into(),
        };
        let cases: Vec<(Vec<Port>, &str)> = vec![
            (vec![], ""),
            (vec![p(None, 80, None, "tcp")], "80/tcp"),
            (
                vec![
                    p(Some("127.0.0.1"), 443, Some(18443), "tcp"),
                    p(Some("0.0.0.0"), 80, Some(18080), "tcp"),
                    p(Some("::"), 80, Some(18080), "tcp"),
                ],
                "0.0.0.0:18080->80/tcp, [::]:18080->80/tcp, 127.0.0.1:18443->443/tcp",
            ),
            (vec![p(None, 80, None, "tcp"), p(None, 81, None, "tcp"), p(None, 83, None, "tcp")], "80-81/tcp, 83/tcp"),
            (vec![p(Some("0.0.0.0"), 80, Some(80), "tcp"), p(Some("0.0.0.0"), 81, Some(81), "tcp")], "0.0.0.0:80-81->80-81/tcp"),
            (vec![p(None, 53, None, "udp"), p(None, 53, None, "tcp")], "53/tcp, 53/udp"),
        ];
        for (ports, want) in cases {
            assert_eq!(display_ports(&ports), want);
        }
    }

    #[test]
    fn indent_like_go() {
        let src = br#"{"Id":"abc","Args":[],"Cfg":{},"List":[1,{"a":"x,\"y"}],"S":"a:b"}"#;
        let want = "{\n    \"Id\": \"abc\",\n    \"Args\": [],\n    \"Cfg\": {},\n    \"List\": [\n        1,\n        {\n            \"a\": \"x,\\\"y\"\n        }\n    ],\n    \"S\": \"a:b\"\n}";
        assert_eq!(String::from_utf8_lossy(&json_indent(src, "    ")), want);
    }
}
