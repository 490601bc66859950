//! Medians and formatting.

/// The median (mean of the middle two for an even count); NaN when empty.
pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn min(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::NAN, f64::min)
}

pub fn max(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::NAN, f64::max)
}

/// Element-wise `f(a[i], b[i])`: per-repetition pairs (the runs of one
/// repetition ran back to back, so pairing cancels slow drifts of the machine).
pub fn paired(a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| f(*x, *y)).collect()
}

/// Seconds as `512 ms` or `1.23 s`.
pub fn secs(s: f64) -> String {
    if s.is_nan() {
        "n/a".into()
    } else if s.abs() < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

/// Seconds as milliseconds with one decimal: `3.2 ms`.
pub fn ms(s: f64) -> String {
    if s.is_nan() {
        "n/a".into()
    } else {
        format!("{:.1} ms", s * 1000.0)
    }
}

/// Seconds as whole microseconds: `105 µs`.
pub fn us(s: f64) -> String {
    if s.is_nan() {
        "n/a".into()
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

/// `median (min–max)` of seconds.
pub fn spread(xs: &[f64]) -> String {
    if xs.is_empty() {
        return "n/a".into();
    }
    format!("{} ({}–{})", secs(median(xs)), secs(min(xs)), secs(max(xs)))
}

/// A ratio as `1.04×`.
pub fn times(r: f64) -> String {
    if r.is_nan() {
        "n/a".into()
    } else {
        format!("{r:.2}×")
    }
}

/// A fraction as a percentage: `0.4%`.
pub fn pct(f: f64) -> String {
    if f.is_nan() {
        "n/a".into()
    } else {
        format!("{:.1}%", f * 100.0)
    }
}

/// `median (min–max)` of seconds, in milliseconds.
pub fn spread_ms(xs: &[f64]) -> String {
    format!("{} ({}–{})", ms(median(xs)), ms(min(xs)), ms(max(xs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn formats() {
        assert_eq!(secs(0.5123), "512 ms");
        assert_eq!(secs(1.234), "1.23 s");
        assert_eq!(ms(0.0032), "3.2 ms");
        assert_eq!(times(1.0449), "1.04×");
        assert_eq!(pct(0.004), "0.4%");
        assert_eq!(spread(&[1.0, 2.0, 3.0]), "2.00 s (1.00 s–3.00 s)");
    }

    #[test]
    fn pairs_per_repetition() {
        assert_eq!(paired(&[2.0, 4.0], &[1.0, 2.0], |a, b| a / b), [2.0, 2.0]);
    }
}
