//! Durations on the command line: humantime (`5s`, `2m`, `1h30m`, `250ms`) or bare seconds (`300`, `0.5`).

use std::time::Duration;

/// The longest duration any flag or key accepts: one year. Longer ones are
/// surely typos, and every deadline computed from one stays far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parse a duration as humantime or as a bare number of seconds, at most
/// [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    let d = if let Ok(secs) = t.parse::<f64>() {
        if !(secs.is_finite() && secs >= 0.0) {
            return Err(format!("`{s}` is not a non-negative number of seconds"));
        }
        // Compared before converting: Duration::from_secs_f64 panics on overflow.
        if secs > MAX_DURATION.as_secs_f64() {
            return Err(too_long(s));
        }
        Duration::from_secs_f64(secs)
    } else {
        humantime::parse_duration(t).map_err(|e| {
            format!("`{s}` is not a duration ({e}); use e.g. `300`, `5s`, `2m`, `1h30m`, `250ms`")
        })?
    };
    if d > MAX_DURATION {
        return Err(too_long(s));
    }
    Ok(d)
}

/// A timeout: a duration greater than zero (a zero timeout would kill every
/// suite at its start).
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!(
            "`{s}`: a timeout must be greater than zero (every attempt would be killed at once)"
        ));
    }
    Ok(d)
}

fn too_long(s: &str) -> String {
    format!(
        "`{s}` is too long: at most 1 year (`365d`, `{}`)",
        MAX_DURATION.as_secs()
    )
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
    fn rejects_durations_that_overflow_or_make_no_sense() {
        for s in [
            "18446744073709551615",
            "1e19",
            "1e30",
            "600000000000000000000s",
            "2y",
        ] {
            let e = parse_duration(s).unwrap_err();
            assert!(
                e.contains("too long") || e.contains("not a duration"),
                "{s}: {e}"
            );
        }
        assert_eq!(parse_duration("365d").unwrap(), MAX_DURATION);
        assert!(parse_timeout("0")
            .unwrap_err()
            .contains("greater than zero"));
        assert!(parse_timeout("0s").is_err());
        assert_eq!(parse_timeout("0.5").unwrap(), Duration::from_millis(500));
    }

    #[test]
    fn short_rendering() {
        assert_eq!(short(Duration::from_millis(812)), "812ms");
        assert_eq!(short(Duration::from_millis(3200)), "3.20s");
        assert_eq!(short(Duration::from_secs(125)), "2m05s");
    }
}
