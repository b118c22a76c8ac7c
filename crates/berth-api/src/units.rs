//! Docker's go-units formatting, shared by the server (the `ps` STATUS strings, pull
//! progress) and the CLI (CREATED, SIZE, stats columns): human durations and sizes.

/// go-units `HumanDuration` for a duration in seconds (fractional).
pub fn human_duration(secs: f64) -> String {
    let seconds = secs as i64;
    if seconds < 1 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = (secs / 60.0) as i64;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (secs / 3600.0 + 0.5) as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", (secs / 3600.0) as i64 / 24 / 365)
}

/// Go's `%.{prec}g`.
pub fn go_g(f: f64, prec: usize) -> String {
    if f == 0.0 {
        return "0".into();
    }
    let prec = prec.max(1);
    let e = format!("{:.*e}", prec - 1, f);
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if exp < -4 || exp >= prec as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mant), exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        trim(&format!("{:.*}", decimals, f))
    }
}

const DECIMAL: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

fn size_and_unit(mut size: f64, base: f64, units: &[&'static str]) -> (f64, &'static str) {
    let mut i = 0;
    while size >= base && i < units.len() - 1 {
        size /= base;
        i += 1;
    }
    (size, units[i])
}

/// go-units `HumanSizeWithPrecision(size, prec)`: decimal units ("1.98MB").
pub fn human_size_prec(size: f64, prec: usize) -> String {
    let (s, u) = size_and_unit(size, 1000.0, &DECIMAL);
    format!("{}{u}", go_g(s, prec))
}

/// `HumanSizeWithPrecision(x, 3)`, what `images`/`ps -s` show.
pub fn human_size(size: i64) -> String {
    human_size_prec(size as f64, 3)
}

/// go-units `BytesSize`: binary units, 4 significant digits ("1MiB").
pub fn bytes_size(size: f64) -> String {
    let (s, u) = size_and_unit(size, 1024.0, &BINARY);
    format!("{}{u}", go_g(s, 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_g_table() {
        let cases: &[(f64, usize, &str)] = &[(1.984172, 3, "1.98"), (999.999, 3, "1e+03"), (12.0, 3, "12"), (100.0, 3, "100"), (0.5, 3, "0.5"), (1.5, 4, "1.5")];
        for (f, p, want) in cases {
            assert_eq!(go_g(*f, *p), *want);
        }
    }

    #[test]
    fn durations_and_sizes() {
        for (secs, want) in [(0.5, "Less than a second"), (1.0, "1 second"), (38.0, "38 seconds"), (60.0, "About a minute"), (120.0, "2 minutes"), (3600.0, "About an hour"), (7200.0, "2 hours"), (3.0 * 86400.0, "3 days"), (15.0 * 86400.0, "2 weeks"), (90.0 * 86400.0, "3 months"), (3.0 * 365.0 * 86400.0, "3 years")] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
        for (n, want) in [(0, "0B"), (999, "999B"), (1_984_172, "1.98MB"), (19_900_000, "19.9MB")] {
            assert_eq!(human_size(n), want, "{n}");
        }
        assert_eq!(human_size_prec(3_073_128.0, 4), "3.073MB");
        assert_eq!(human_size_prec(36_445.0, 4), "36.45kB");
        assert_eq!(bytes_size(1_048_576.0), "1MiB");
    }
}
