//! Durations on the command line: humantime (`5s`, `2m`, `1h30m`, `250ms`) or bare seconds (`300`, `0.5`).

use std::time::Duration;

/// Parse a duration as humantime or as a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = t.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(format!("`{s}` is not a non-negative number of seconds"));
    }
    humantime::parse_duration(t).map_err(|e| {
        format!("`{s}` is not a duration ({e}); use e.g. `300`, `5s`, `2m`, `1h30m`, `250ms`")
    })
}

/// Render a duration compactly for terminal output: `812ms`, `3.20s`, `2m05s`.
pub fn short(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.2}s", d.as_secs_f64())
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_humantime_and_bare_seconds() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("300").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("0.5").unwrap(), Duration::from_millis(500));
    }

    #[test]
    fn rejects_garbage_with_a_hint() {
        let e = parse_duration("5 parsecs").unwrap_err();
        assert!(e.contains("not a duration"), "{e}");
        assert!(parse_duration("-3").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn short_rendering() {
        assert_eq!(short(Duration::from_millis(812)), "812ms");
        assert_eq!(short(Duration::from_millis(3200)), "3.20s");
        assert_eq!(short(Duration::from_secs(125)), "2m05s");
    }
}
