//! The trend of a sampled series (issue 16): a robust slope and what it means.
//!
//! The slope is Theil–Sen's: the median of the slopes between every pair of
//! samples, fitted over the samples after the warm-up (the first
//! [`WARMUP_SHARE`] of them: a program's start — loading, pools filling,
//! caches warming — is not its trend). One sample far off (a burst, a
//! short-lived child) moves the median by at most one pair's worth, so noise
//! reads as flat and a staircase (one orphan per cycle) as its mean rate.
//!
//! A series fails ([`TrendVerdict::TooFast`]) when its slope exceeds the most
//! growth allowed ([`MaxGrowth`], `--max-growth`) **and** the fitted line
//! rises by at least the series' noise floor over the judged window (one
//! process, thread, fd or file; [`MEMORY_NOISE_BYTES`] of memory). With the
//! default of 0 growth for processes, that is: any robust growth of at least
//! one process fails.
//!
//! Pure code: no clock, no I/O.

use crate::{SeriesName, Timeline, Trend, TrendVerdict};

/// The share of the samples (from the start) left out of the fit.
pub const WARMUP_SHARE: f64 = 0.2;
/// Fewer judged samples than this: [`TrendVerdict::TooShort`].
pub const MIN_SAMPLES: usize = 5;
/// At most this many samples enter the fit (evenly spaced ones of a longer
/// series): Theil–Sen looks at every pair, so the cost stays bounded
/// (about half a million pairs) for a week of samples.
pub const MAX_FIT_POINTS: usize = 1000;
/// Memory must rise by at least this much over the judged window to count
/// as growth (allocator and page-cache jitter of a flat program stay below).
pub const MEMORY_NOISE_BYTES: f64 = 8.0 * 1024.0 * 1024.0;
/// Default most memory growth allowed, bytes per hour.
pub const DEFAULT_MEMORY_PER_HOUR: f64 = 64.0 * 1024.0 * 1024.0;
/// Default most open-fd growth allowed, per hour.
pub const DEFAULT_FDS_PER_HOUR: f64 = 100.0;
/// Open fds must rise by at least this many over the judged window to count
/// as growth (a program's lazily opened files and sockets stay below).
pub const FDS_NOISE: f64 = 4.0;

const MS_PER_HOUR: f64 = 3_600_000.0;

/// The most growth per hour allowed for each series (`--max-growth`,
/// config `max-growth`); `None`: growth is reported, never fails.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaxGrowth {
    pub processes: Option<f64>,
    pub orphans: Option<f64>,
    pub threads: Option<f64>,
    /// Bytes per hour.
    pub memory: Option<f64>,
    pub open_fds: Option<f64>,
    /// Files per hour, for every `watch-dirs` entry.
    pub files: Option<f64>,
}

impl Default for MaxGrowth {
    /// Processes and orphans: no growth; memory 64 MiB/h; open fds 100/h;
    /// threads and files: reported, not judged.
    fn default() -> Self {
        MaxGrowth {
            processes: Some(0.0),
            orphans: Some(0.0),
            threads: None,
            memory: Some(DEFAULT_MEMORY_PER_HOUR),
            open_fds: Some(DEFAULT_FDS_PER_HOUR),
            files: None,
        }
    }
}

impl MaxGrowth {
    /// `self` with the limits of `spec` applied: `KEY=RATE[,KEY=RATE…]`,
    /// KEY one of `processes`, `orphans`, `threads`, `memory`, `fds`,
    /// `files`; RATE a number (memory: with `B`, `KiB`, `MiB`, `GiB`, `KB`,
    /// `MB`, `GB`), optionally per `/h` (the default), `/min` or `/s`; or
    /// `none` (reported, never fails).
    pub fn with(mut self, spec: &str) -> Result<MaxGrowth, String> {
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, rate) = part.split_once('=').ok_or_else(|| {
                format!("`{part}` is not KEY=RATE (e.g. processes=0, memory=10MiB/h)")
            })?;
            let memory = key.trim() == "memory";
            let value = parse_rate(rate.trim(), memory).map_err(|e| format!("`{part}`: {e}"))?;
            let slot = match key.trim() {
                "processes" => &mut self.processes,
                "orphans" => &mut self.orphans,
                "threads" => &mut self.threads,
                "memory" => &mut self.memory,
                "fds" | "open-fds" => &mut self.open_fds,
                "files" => &mut self.files,
                other => {
                    return Err(format!(
                        "`{other}` is not a series: processes, orphans, threads, memory, fds, files"
                    ))
                }
            };
            *slot = value;
        }
        Ok(self)
    }

    fn of(&self, series: &SeriesName) -> Option<f64> {
        match series {
            SeriesName::Processes => self.processes,
            SeriesName::Orphans => self.orphans,
            SeriesName::Threads => self.threads,
            SeriesName::Memory => self.memory,
            SeriesName::OpenFds => self.open_fds,
            SeriesName::Dir(_) => self.files,
        }
    }
}

/// `10MiB/h`, `0`, `2/min`, `none` → per hour.
fn parse_rate(s: &str, memory: bool) -> Result<Option<f64>, String> {
    if s == "none" {
        return Ok(None);
    }
    let (amount, per) = match s.rsplit_once('/') {
        Some((a, "h")) => (a, 1.0),
        Some((a, "min")) => (a, 60.0),
        Some((a, "s")) => (a, 3600.0),
        Some((_, p)) => return Err(format!("`/{p}` is not a period: /h, /min or /s")),
        None => (s, 1.0),
    };
    let split = amount
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(amount.len());
    let (num, unit) = amount.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("`{amount}` is not a number"))?;
    let scale = match (unit.trim(), memory) {
        ("", _) => 1.0,
        ("B", true) => 1.0,
        ("KiB", true) => 1024.0,
        ("MiB", true) => 1024.0 * 1024.0,
        ("GiB", true) => 1024.0 * 1024.0 * 1024.0,
        ("KB", true) | ("kB", true) => 1e3,
        ("MB", true) => 1e6,
        ("GB", true) => 1e9,
        (u, _) => return Err(format!("`{u}` is not a unit here")),
    };
    let v = num * scale * per;
    if !v.is_finite() {
        return Err(format!("`{s}` is too large"));
    }
    Ok(Some(v))
}

/// Theil–Sen over `(x, y)` points: the median pairwise slope, and the
/// median of `y - slope * x` as intercept. `None` with fewer than 2 points
/// or no two distinct `x`.
pub fn theil_sen(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let mut slopes = Vec::with_capacity(points.len() * points.len().saturating_sub(1) / 2);
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            if b.0 != a.0 {
                slopes.push((b.1 - a.1) / (b.0 - a.0));
            }
        }
    }
    let slope = median(&mut slopes)?;
    let mut rest: Vec<f64> = points.iter().map(|(x, y)| y - slope * x).collect();
    Some((slope, median(&mut rest)?))
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let m = *m;
    if v.len() % 2 == 1 {
        return Some(m);
    }
    let lower = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((lower + m) / 2.0)
}

/// One series to judge: its values at `start_ms + i * interval_ms`.
pub struct Series<'a> {
    pub name: SeriesName,
    pub values: &'a [f64],
    pub start_ms: u64,
    pub interval_ms: u64,
}

/// The trend of one series (its sentence without the orphans' note).
pub fn judge(s: &Series<'_>, max_per_hour: Option<f64>) -> Trend {
    let n = s.values.len();
    let warmup = (n as f64 * WARMUP_SHARE).floor() as usize;
    let judged = &s.values[warmup..];
    let mut trend = Trend {
        series: s.name.clone(),
        slope_per_hour: 0.0,
        intercept: judged.first().copied().unwrap_or(0.0),
        first: judged.first().copied().unwrap_or(0.0),
        last: judged.last().copied().unwrap_or(0.0),
        samples: judged.len(),
        warmup_samples: warmup,
        max_per_hour,
        verdict: TrendVerdict::TooShort,
        sentence: String::new(),
    };
    if judged.len() < MIN_SAMPLES || s.interval_ms == 0 {
        trend.sentence = format!(
            "{}: too short to judge ({} samples after the warm-up, {MIN_SAMPLES} needed)",
            label(&s.name),
            judged.len()
        );
        return trend;
    }
    // Hours from the timeline's start (the intercept is the line's value there).
    let stride = judged.len().div_ceil(MAX_FIT_POINTS).max(1);
    let points: Vec<(f64, f64)> = (warmup..n)
        .step_by(stride)
        .map(|i| (i as f64 * s.interval_ms as f64 / MS_PER_HOUR, s.values[i]))
        .collect();
    let (slope, intercept) = theil_sen(&points).unwrap_or((0.0, trend.first));
    trend.slope_per_hour = slope;
    trend.intercept = intercept;
    let span_hours = (judged.len() - 1) as f64 * s.interval_ms as f64 / MS_PER_HOUR;
    let rise = slope * span_hours;
    let floor = noise_floor(&s.name);
    trend.verdict = if rise >= floor {
        match max_per_hour {
            Some(max) if slope > max => TrendVerdict::TooFast,
            _ => TrendVerdict::Growing,
        }
    } else if -rise >= floor {
        TrendVerdict::Shrinking
    } else {
        TrendVerdict::Flat
    };
    trend.sentence = sentence(&trend, s);
    trend
}

/// The least rise over the judged window that counts as growth.
fn noise_floor(name: &SeriesName) -> f64 {
    match name {
        SeriesName::Memory => MEMORY_NOISE_BYTES,
        SeriesName::OpenFds => FDS_NOISE,
        _ => 1.0,
    }
}

/// Every series of a timeline, judged against `max`. The processes
/// sentence names the orphans at the end and their command
/// ([`Timeline::orphan_command`]).
pub fn judge_timeline(t: &Timeline, max: &MaxGrowth) -> Vec<Trend> {
    let f32s = |v: &[u32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
    let f64s = |v: &[u64]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let mut all: Vec<(SeriesName, Vec<f64>)> = vec![
        (SeriesName::Processes, f32s(&t.processes)),
        (SeriesName::Orphans, f32s(&t.orphans)),
        (SeriesName::Threads, f32s(&t.threads)),
        (SeriesName::Memory, f64s(&t.memory_bytes)),
        (SeriesName::OpenFds, f32s(&t.open_fds)),
    ];
    for d in &t.dirs {
        all.push((SeriesName::Dir(d.path.clone()), f64s(&d.files)));
    }
    all.into_iter()
        .map(|(name, values)| {
            let max_per_hour = max.of(&name);
            let mut trend = judge(
                &Series {
                    name,
                    values: &values,
                    start_ms: t.start_ms,
                    interval_ms: t.interval_ms,
                },
                max_per_hour,
            );
            if trend.series == SeriesName::Processes {
                trend.sentence.push_str(&orphans_note(t));
            }
            trend
        })
        .collect()
}

/// `, 36 orphans of 'python3 burberry.py'` (the last sample's orphans).
fn orphans_note(t: &Timeline) -> String {
    match t.orphans.last() {
        Some(&n) if n > 0 && !t.orphan_command.is_empty() => {
            format!(", {n} orphans of '{}'", t.orphan_command)
        }
        Some(&n) if n > 0 => format!(", {n} orphans"),
        _ => String::new(),
    }
}

/// What a series' label reads as.
pub fn label(name: &SeriesName) -> String {
    match name {
        SeriesName::Processes => "processes".into(),
        SeriesName::Orphans => "orphans".into(),
        SeriesName::Threads => "threads".into(),
        SeriesName::Memory => "memory".into(),
        SeriesName::OpenFds => "open fds".into(),
        SeriesName::Dir(p) => format!("files in {p}"),
    }
}

/// `processes: +1 every 171 s (1 → 37 over 1h42m)` (the rate, then the
/// whole series' first and last values and its span) or `memory: flat at
/// 12.0 MiB` (the median after the warm-up).
fn sentence(t: &Trend, s: &Series<'_>) -> String {
    let memory = s.name == SeriesName::Memory;
    let show = |v: f64| value(v, memory);
    let first = s.values.first().copied().unwrap_or(0.0);
    let last = s.values.last().copied().unwrap_or(0.0);
    let span_ms = (s.values.len().saturating_sub(1) as u64) * s.interval_ms;
    let range = format!("{} → {} over {}", show(first), show(last), span(span_ms));
    let name = label(&s.name);
    match t.verdict {
        // Where it stays: the median of the judged samples (the first
        // sample, taken as the command starts, or a short-lived child at
        // the last one would misread).
        TrendVerdict::Flat => {
            let mut judged = s.values[t.warmup_samples..].to_vec();
            let at = median(&mut judged).unwrap_or(last);
            format!("{name}: flat at {}", show(at))
        }
        _ => format!("{name}: {} ({range})", rate(t.slope_per_hour, memory)),
    }
}

/// `+1 every 171 s`, `+2.4 MiB per second`, `+36 MiB per hour`, `-1 every 3 s`.
pub fn rate(per_hour: f64, memory: bool) -> String {
    let sign = if per_hour < 0.0 { "-" } else { "+" };
    let per_hour = per_hour.abs();
    if per_hour == 0.0 {
        return "flat".into();
    }
    if memory {
        // Per second, minute or hour: the largest unit whose step is at
        // least 1 MiB (`--max-growth` counts per hour).
        let (amount, per) = [(per_hour / 3600.0, "second"), (per_hour / 60.0, "minute")]
            .into_iter()
            .find(|(a, _)| *a >= 1024.0 * 1024.0)
            .unwrap_or((per_hour, "hour"));
        return format!("{sign}{} per {per}", value(amount, true));
    }
    let secs = 3600.0 / per_hour;
    if secs >= 1.0 {
        format!("{sign}1 every {} s", sig3(secs))
    } else {
        format!("{sign}{} per second", sig3(per_hour / 3600.0))
    }
}

/// Three significant digits, no trailing zeros.
fn sig3(v: f64) -> String {
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A count, or bytes (`12.0 MiB`).
pub fn value(v: f64, memory: bool) -> String {
    if !memory {
        return format!("{}", v.round() as i64);
    }
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = v;
    let mut u = 0;
    while v.abs() >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// `1h42m`, `43m12s`, `20s`, `850ms`.
pub fn span(ms: u64) -> String {
    let s = ms / 1000;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, 0) => format!("{ms}ms"),
        (0, 0, sec) if !ms.is_multiple_of(1000) && sec < 10 => {
            format!("{:.1}s", ms as f64 / 1000.0)
        }
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: &[f64], interval_ms: u64) -> Series<'_> {
        Series {
            name: SeriesName::Processes,
            values,
            start_ms: 0,
            interval_ms,
        }
    }

    /// A deterministic noise source (xorshift), in [0, 1).
    fn noise(seed: &mut u64) -> f64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        (*seed % 10_000) as f64 / 10_000.0
    }

    #[test]
    fn a_staircase_is_its_mean_rate() {
        // One orphan every 171 s, sampled every 10 s for 1h42m.
        let v: Vec<f64> = (0..612).map(|i| 1.0 + ((i * 10) / 171) as f64).collect();
        let t = judge(&series(&v, 10_000), Some(0.0));
        let want = 3600.0 / 171.0;
        assert!(
            (t.slope_per_hour - want).abs() / want < 0.05,
            "{}",
            t.slope_per_hour
        );
        assert_eq!(t.verdict, TrendVerdict::TooFast);
        assert!(
            t.sentence.starts_with("processes: +1 every 17"),
            "{}",
            t.sentence
        );
        assert!(t.sentence.contains("(1 → 36 over 1h41m)"), "{}", t.sentence);
    }

    #[test]
    fn noise_around_a_flat_line_is_flat() {
        let mut seed = 0x2545_f491_4f6c_dd1d;
        // Processes 3 or 4 (a short-lived child now and then), and bursts.
        let v: Vec<f64> = (0..500)
            .map(|i| {
                let n = noise(&mut seed);
                if i % 97 == 0 {
                    9.0
                } else if n < 0.3 {
                    4.0
                } else {
                    3.0
                }
            })
            .collect();
        let t = judge(&series(&v, 100), Some(0.0));
        assert_eq!(t.verdict, TrendVerdict::Flat, "{}", t.slope_per_hour);
        assert_eq!(t.sentence, "processes: flat at 3");
        // Memory jittering by 2 MiB around 50 MiB: flat under the default.
        let m: Vec<f64> = (0..500)
            .map(|_| 50.0 * 1048576.0 + noise(&mut seed) * 2.0 * 1048576.0)
            .collect();
        let t = judge(
            &Series {
                name: SeriesName::Memory,
                values: &m,
                start_ms: 0,
                interval_ms: 100,
            },
            MaxGrowth::default().memory,
        );
        assert_eq!(t.verdict, TrendVerdict::Flat, "{}", t.sentence);
    }

    #[test]
    fn the_warm_up_is_left_out() {
        // A pool fills to 8 during the first 10% of samples, then stays.
        let v: Vec<f64> = (0..100).map(|i| (i as f64).min(8.0)).collect();
        let t = judge(&series(&v, 100), Some(0.0));
        assert_eq!(t.warmup_samples, 20);
        assert_eq!(t.samples, 80);
        assert_eq!(t.verdict, TrendVerdict::Flat);
        assert_eq!(t.first, 8.0);
        // Without the warm-up the same start would read as growth.
        let (slope, _) = theil_sen(
            &v.iter()
                .enumerate()
                .take(12)
                .map(|(i, y)| (i as f64, *y))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert!(slope > 0.0);
    }

    #[test]
    fn steps_are_growth_one_step_is_not() {
        // One more process for good halfway: a step, not a trend (most
        // pairs of samples lie on the same side of it).
        let v: Vec<f64> = (0..200).map(|i| if i < 100 { 2.0 } else { 3.0 }).collect();
        let t = judge(&series(&v, 100), Some(0.0));
        assert_eq!(t.verdict, TrendVerdict::Flat, "{}", t.sentence);
        // Four steps over the judged window: growth, failing at 0 allowed.
        let v: Vec<f64> = (0..200).map(|i| 2.0 + (i / 50) as f64).collect();
        let t = judge(&series(&v, 100), Some(0.0));
        assert_eq!(t.verdict, TrendVerdict::TooFast, "{}", t.sentence);
        // Allowed: growing, not failing.
        let t = judge(&series(&v, 100), None);
        assert_eq!(t.verdict, TrendVerdict::Growing);
        let t = judge(&series(&v, 100), Some(1e6));
        assert_eq!(t.verdict, TrendVerdict::Growing);
    }

    #[test]
    fn too_short_and_shrinking() {
        let t = judge(&series(&[1.0, 2.0, 3.0, 4.0], 100), Some(0.0));
        assert_eq!(t.verdict, TrendVerdict::TooShort);
        assert!(t.sentence.contains("too short"), "{}", t.sentence);
        let t = judge(&series(&[], 100), Some(0.0));
        assert_eq!(t.verdict, TrendVerdict::TooShort);
        let v: Vec<f64> = (0..50).map(|i| 60.0 - i as f64).collect();
        let t = judge(&series(&v, 1000), Some(0.0));
        assert_eq!(t.verdict, TrendVerdict::Shrinking);
        assert!(t.sentence.contains("-1 every 1 s"), "{}", t.sentence);
    }

    #[test]
    fn fits_the_line_and_caps_the_pairs() {
        // y = 5 + 2 per sample, 10 000 samples: the fit is exact on a subsample.
        let v: Vec<f64> = (0..10_000).map(|i| 5.0 + 2.0 * i as f64).collect();
        let t = judge(&series(&v, 1000), None);
        assert!((t.slope_per_hour - 7200.0).abs() < 1e-6);
        assert!((t.intercept - 5.0).abs() < 1e-6, "{}", t.intercept);
        assert_eq!(t.verdict, TrendVerdict::Growing);
        assert!(t.sentence.contains("+2 per second"), "{}", t.sentence);
    }

    #[test]
    fn memory_growth_reads_in_bytes() {
        let m: Vec<f64> = (0..100).map(|i| (10 + i) as f64 * 1048576.0).collect();
        let t = judge(
            &Series {
                name: SeriesName::Memory,
                values: &m,
                start_ms: 0,
                interval_ms: 100,
            },
            MaxGrowth::default().memory,
        );
        assert_eq!(t.verdict, TrendVerdict::TooFast);
        assert_eq!(
            t.sentence,
            "memory: +10.0 MiB per second (10.0 MiB → 109.0 MiB over 9.9s)"
        );
    }

    #[test]
    fn memory_rates_read_per_second_minute_or_hour() {
        let mib = 1024.0 * 1024.0;
        assert_eq!(rate(36.0 * mib * 3600.0, true), "+36.0 MiB per second");
        assert_eq!(rate(120.0 * mib, true), "+2.0 MiB per minute");
        assert_eq!(rate(-30.0 * mib, true), "-30.0 MiB per hour");
        assert_eq!(rate(0.0, true), "flat");
    }

    #[test]
    fn max_growth_parses_and_rejects() {
        let m = MaxGrowth::default()
            .with("processes=2/min, memory=10MiB/h,threads=1/s,fds=none")
            .unwrap();
        assert_eq!(m.processes, Some(120.0));
        assert_eq!(m.memory, Some(10.0 * 1048576.0));
        assert_eq!(m.threads, Some(3600.0));
        assert_eq!(m.open_fds, None);
        assert_eq!(m.orphans, Some(0.0));
        for bad in [
            "processes",
            "cpu=1",
            "memory=1XB",
            "processes=1/day",
            "threads=1MiB",
        ] {
            assert!(MaxGrowth::default().with(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_the_orphans_command() {
        let t = Timeline {
            start_ms: 0,
            interval_ms: 1000,
            processes: (1..=10).collect(),
            orphans: (0..10).collect(),
            threads: vec![1; 10],
            memory_bytes: vec![1 << 20; 10],
            open_fds: vec![3; 10],
            orphan_command: "python3 burberry.py".into(),
            ..Timeline::default()
        };
        let trends = judge_timeline(&t, &MaxGrowth::default());
        assert_eq!(trends.len(), 5);
        assert_eq!(
            trends[0].sentence,
            "processes: +1 every 1 s (1 → 10 over 9s), 9 orphans of 'python3 burberry.py'"
        );
        assert_eq!(trends[3].sentence, "memory: flat at 1.0 MiB");
    }

    #[test]
    fn spans_read_like_durations() {
        assert_eq!(span(6_120_000), "1h42m");
        assert_eq!(span(2_592_000), "43m12s");
        assert_eq!(span(20_000), "20s");
        assert_eq!(span(850), "850ms");
        assert_eq!(span(2_500), "2.5s");
    }
}
