//! The HTML report's charts: inline SVG drawn here, with axes, ticks and units.
//!
//! Hand-drawn rather than with a charting crate: the charts are a few lines
//! and bars over at most a few hundred points, which is ~200 lines of code;
//! plotters' SVG backend would add a dependency tree and emit larger markup
//! (every glyph positioned), while these charts are plain `<polyline>`,
//! `<rect>` and `<text>` that the page's CSS colours.

use super::html_esc::esc;

/// What the y values count: how tick labels read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Processes, threads, descriptors, files, leaks.
    Count,
    /// Memory.
    Bytes,
}

/// What the x values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    /// Milliseconds since the command started.
    TimeMs,
    /// Trial numbers, one bar group per trial.
    Trials,
}

/// One line (or bar set) of a chart; `class` is its colour in the page's CSS.
pub struct Series {
    pub label: String,
    pub values: Vec<f64>,
    pub class: &'static str,
}

/// A fitted straight line: `value(x) = intercept + slope * (x - x0)`.
#[derive(Debug, Clone, Copy)]
pub struct Fit {
    pub x0: f64,
    pub intercept: f64,
    pub slope_per_x: f64,
}

/// A chart: x positions shared by every series.
pub struct Chart {
    pub y_label: String,
    pub unit: Unit,
    pub x_axis: XAxis,
    pub xs: Vec<f64>,
    pub series: Vec<Series>,
    pub fit: Option<Fit>,
    pub small: bool,
}

/// Most points drawn per series: longer series keep each bucket's maximum
/// (a spike stays visible).
const MAX_POINTS: usize = 400;

const MARGIN_LEFT: f64 = 72.0;
const MARGIN_RIGHT: f64 = 14.0;
const MARGIN_TOP: f64 = 12.0;
const MARGIN_BOTTOM: f64 = 38.0;

/// The plot area and the value ranges it maps.
struct Frame {
    width: f64,
    height: f64,
    x_lo: f64,
    x_hi: f64,
    y_ticks: Vec<f64>,
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        let span = (self.x_hi - self.x_lo).max(f64::EPSILON);
        MARGIN_LEFT + (x - self.x_lo) / span * (self.width - MARGIN_LEFT - MARGIN_RIGHT)
    }

    fn py(&self, y: f64) -> f64 {
        let lo = self.y_ticks[0];
        let hi = *self.y_ticks.last().unwrap_or(&1.0);
        let span = (hi - lo).max(f64::EPSILON);
        self.height - MARGIN_BOTTOM - (y - lo) / span * (self.height - MARGIN_TOP - MARGIN_BOTTOM)
    }

    fn bottom(&self) -> f64 {
        self.height - MARGIN_BOTTOM
    }
}

/// The chart as an `<svg>` element.
pub fn render(c: &Chart) -> String {
    let (width, height) = if c.small {
        (340.0, 160.0)
    } else {
        (520.0, 240.0)
    };
    let (xs, series) = downsample(&c.xs, &c.series);
    let (x_lo, x_hi) = x_range(&xs, c.x_axis);
    let mut all: Vec<f64> = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .collect();
    if let Some(f) = c.fit {
        all.extend([fit_at(f, x_lo), fit_at(f, x_hi)]);
    }
    let frame = Frame {
        width,
        height,
        x_lo,
        x_hi,
        y_ticks: y_ticks(&all, c.unit, c.x_axis == XAxis::Trials),
    };
    let mut out = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" role=\"img\" aria-label=\"{}\">",
        esc(&c.y_label)
    );
    axes(&mut out, &frame, c);
    for s in &series {
        match c.x_axis {
            XAxis::TimeMs => polyline(&mut out, &frame, &xs, s),
            XAxis::Trials => bars(&mut out, &frame, &xs, s, &series, c.unit),
        }
    }
    if let Some(f) = c.fit {
        out.push_str(&format!(
            "<line class=\"fit\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>",
            n(frame.px(x_lo)),
            n(frame.py(fit_at(f, x_lo))),
            n(frame.px(x_hi)),
            n(frame.py(fit_at(f, x_hi)))
        ));
    }
    out.push_str("</svg>");
    out
}

fn fit_at(f: Fit, x: f64) -> f64 {
    f.intercept + f.slope_per_x * (x - f.x0)
}

/// The x range: the samples' times, or half a bar either side of the trials.
fn x_range(xs: &[f64], axis: XAxis) -> (f64, f64) {
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    match (axis, lo.is_finite()) {
        (_, false) => (0.0, 1.0),
        (XAxis::Trials, true) => (lo - 0.5, hi + 0.5),
        (XAxis::TimeMs, true) if hi > lo => (lo, hi),
        (XAxis::TimeMs, true) => (lo, lo + 1000.0),
    }
}

/// At most [`MAX_POINTS`] per series: each bucket's largest value at the bucket's first x.
fn downsample(xs: &[f64], series: &[Series]) -> (Vec<f64>, Vec<Series>) {
    let n = xs.len();
    if n <= MAX_POINTS {
        let copy = series
            .iter()
            .map(|s| Series {
                label: s.label.clone(),
                values: s.values.clone(),
                class: s.class,
            })
            .collect();
        return (xs.to_vec(), copy);
    }
    let bucket = n.div_ceil(MAX_POINTS);
    let xs = xs.iter().step_by(bucket).copied().collect();
    let series = series
        .iter()
        .map(|s| Series {
            label: s.label.clone(),
            values: s
                .values
                .chunks(bucket)
                .map(|c| c.iter().copied().fold(f64::NEG_INFINITY, f64::max))
                .collect(),
            class: s.class,
        })
        .collect();
    (xs, series)
}

/// Round tick values covering `values`: from 0 when `from_zero` (bars) or
/// unless every value is far above it.
pub fn y_ticks(values: &[f64], unit: Unit, from_zero: bool) -> Vec<f64> {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let (mut lo, mut hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if lo >= 0.0 && (from_zero || lo < hi * 0.6 || lo == hi) {
        lo = 0.0;
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    // Memory steps are round in the unit the top of the axis is labelled in.
    let scale = match unit {
        Unit::Bytes => byte_unit(hi).0,
        Unit::Count => 1.0,
    };
    let raw = (hi - lo) / 4.0 / scale;
    let step = (nice_step(raw) * scale).max(if unit == Unit::Count { 1.0 } else { 0.0 });
    let first = (lo / step).floor() * step;
    // Counted, not stepped until `hi`: far from 0 a step can vanish in rounding.
    let count = ((hi - first) / step - 1e-9).ceil().clamp(1.0, MAX_TICKS);
    let ticks: Vec<f64> = (0..=count as usize)
        .map(|k| first + step * k as f64)
        .collect();
    if ticks[ticks.len() - 1] > ticks[0] {
        ticks
    } else {
        vec![lo, lo + 1.0_f64.max(lo.abs() * 1e-6)]
    }
}

/// Most ticks on an axis (a guard against rounding, never reached by round steps).
const MAX_TICKS: f64 = 20.0;

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let r = raw.max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(r.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= r)
        .unwrap_or(10.0 * mag)
}

/// Axes, grid, tick labels and the axis titles (one path each for the grid
/// and the axes with their tick marks: the markup stays small).
fn axes(out: &mut String, f: &Frame, c: &Chart) {
    let (left, right, bottom) = (MARGIN_LEFT, f.width - MARGIN_RIGHT, f.bottom());
    let mut grid = String::new();
    let mut marks = format!("M{left} {}V{bottom}H{right}", n(MARGIN_TOP));
    let mut labels = String::new();
    let top = *f.y_ticks.last().unwrap_or(&0.0);
    for &t in &f.y_ticks {
        let y = n(f.py(t));
        grid.push_str(&format!("M{left} {y}H{right}"));
        labels.push_str(&format!(
            "<text class=\"yl\" x=\"{}\" y=\"{}\">{}</text>",
            n(left - 5.0),
            n(f.py(t) + 4.0),
            esc(&axis_label(t, top, c.unit))
        ));
    }
    let (x_ticks, x_title) = x_ticks(f, c.x_axis);
    for (x, label) in x_ticks {
        let px = n(f.px(x));
        marks.push_str(&format!("M{px} {bottom}v4"));
        labels.push_str(&format!(
            "<text class=\"xl\" x=\"{px}\" y=\"{}\">{}</text>",
            n(bottom + 16.0),
            esc(&label)
        ));
    }
    out.push_str(&format!(
        "<path class=\"grid\" d=\"{grid}\"/><path class=\"axis\" d=\"{marks}\"/>{labels}"
    ));
    out.push_str(&format!(
        "<text class=\"axis-title xl\" x=\"{}\" y=\"{}\">{}</text><text class=\"axis-title xl\" transform=\"translate(12 {}) rotate(-90)\">{}</text>",
        n((left + right) / 2.0),
        n(f.height - 6.0),
        esc(x_title),
        n((MARGIN_TOP + bottom) / 2.0),
        esc(&c.y_label)
    ));
}

/// A coordinate with at most one decimal (0 for what is not a number: absurd
/// input, e.g. times near u64::MAX, draws nonsense but valid markup).
fn n(v: f64) -> String {
    if !v.is_finite() {
        return "0".into();
    }
    let s = format!("{v:.1}");
    match s.strip_suffix(".0") {
        Some(whole) => whole.to_string(),
        None => s,
    }
}

/// Tick positions and labels on the x axis, and the axis title.
fn x_ticks(f: &Frame, axis: XAxis) -> (Vec<(f64, String)>, &'static str) {
    if axis == XAxis::Trials {
        let (first, last) = ((f.x_lo + 0.5) as u64, (f.x_hi - 0.5) as u64);
        let every = (last - first + 1).div_ceil(12).max(1);
        let ticks = (first..=last)
            .step_by(every as usize)
            .map(|t| (t as f64, t.to_string()))
            .collect();
        return (ticks, "trial");
    }
    let span_s = (f.x_hi - f.x_lo) / 1000.0;
    let (div, title) = if span_s >= 7200.0 {
        (3_600_000.0, "time since start (h)")
    } else if span_s >= 180.0 {
        (60_000.0, "time since start (min)")
    } else {
        (1000.0, "time since start (s)")
    };
    let step = nice_step((f.x_hi - f.x_lo) / div / 6.0) * div;
    let first = (f.x_lo / step).ceil() * step;
    let count = ((f.x_hi - first) / step + 1e-9)
        .floor()
        .clamp(0.0, MAX_TICKS);
    let ticks = (0..=count as usize)
        .map(|k| first + step * k as f64)
        .filter(|x| x.is_finite())
        .map(|x| (x, trim_number(x / div)))
        .collect();
    (ticks, title)
}

/// A y tick label: memory in the unit of the axis' top (`0 MiB`, `0.5 MiB`).
fn axis_label(v: f64, top: f64, unit: Unit) -> String {
    match unit {
        Unit::Count => trim_number(v),
        Unit::Bytes => {
            let (scale, name) = byte_unit(top);
            format!("{} {name}", trim_number(v / scale))
        }
    }
}

/// A value: counts as numbers, memory in KiB / MiB / GiB.
pub fn value_label(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Count => trim_number(v),
        Unit::Bytes => bytes(v),
    }
}

/// `1.5 MiB`, `640 KiB`, `12 B`.
pub fn bytes(v: f64) -> String {
    let (scale, name) = byte_unit(v);
    format!("{} {name}", trim_number(v / scale))
}

/// The unit `v` bytes read best in: its size and name.
fn byte_unit(v: f64) -> (f64, &'static str) {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut scale = 1.0;
    let mut i = 0;
    while (v / scale).abs() >= 1024.0 && i < units.len() - 1 {
        scale *= 1024.0;
        i += 1;
    }
    (scale, units[i])
}

/// At most two decimals, none when whole.
fn trim_number(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

fn polyline(out: &mut String, f: &Frame, xs: &[f64], s: &Series) {
    let points: Vec<String> = xs
        .iter()
        .zip(&s.values)
        .filter(|(_, v)| v.is_finite())
        .map(|(x, v)| format!("{},{}", n(f.px(*x)), n(f.py(*v))))
        .collect();
    out.push_str(&format!(
        "<polyline class=\"line {}\" points=\"{}\"><title>{}</title></polyline>",
        s.class,
        points.join(" "),
        esc(&s.label)
    ));
}

/// Bars of series `s`, side by side with the other series' at each trial.
fn bars(out: &mut String, f: &Frame, xs: &[f64], s: &Series, all: &[Series], unit: Unit) {
    let k = all.iter().position(|o| std::ptr::eq(o, s)).unwrap_or(0) as f64;
    let slot = (f.px(1.0) - f.px(0.0)) * 0.7;
    let w = slot / all.len().max(1) as f64;
    let base = f.py(f.y_ticks[0].max(0.0));
    for (x, v) in xs.iter().zip(&s.values) {
        let left = f.px(*x) - slot / 2.0 + k * w;
        let top = f.py(*v).min(base);
        out.push_str(&format!(
            "<rect class=\"bar {}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>{}</title></rect>",
            s.class,
            n(left),
            n(top),
            n((w - 1.0).max(1.0)),
            n((base - top).max(0.0)),
            esc(&value_label(*v, unit))
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_values() {
        assert_eq!(
            y_ticks(&[0.0, 37.0], Unit::Count, false),
            vec![0.0, 10.0, 20.0, 30.0, 40.0]
        );
        assert_eq!(y_ticks(&[1.0, 1.0], Unit::Count, false), vec![0.0, 1.0]);
        assert_eq!(y_ticks(&[36.0, 37.0], Unit::Count, false), vec![36.0, 37.0]);
        assert_eq!(
            y_ticks(&[36.0, 37.0], Unit::Count, true)[0],
            0.0,
            "bars from 0"
        );
        let mib = 1024.0 * 1024.0;
        let labels: Vec<String> = y_ticks(&[0.0, 3.0 * mib], Unit::Bytes, false)
            .into_iter()
            .map(bytes)
            .collect();
        assert_eq!(labels, ["0 B", "1 MiB", "2 MiB", "3 MiB"]);
        let t = y_ticks(&[2.0 * mib, 2.09 * mib], Unit::Bytes, false);
        let labels: Vec<String> = t
            .iter()
            .map(|&v| axis_label(v, t[t.len() - 1], Unit::Bytes))
            .collect();
        assert_eq!(labels, ["2 MiB", "2.05 MiB", "2.1 MiB"]);
        let t = y_ticks(&[0.0, 10.0 * mib], Unit::Bytes, false);
        assert_eq!(t.first(), Some(&0.0));
        assert!(*t.last().unwrap() >= 10.0 * mib);
        assert_eq!(bytes(1.5 * mib), "1.5 MiB");
        assert_eq!(value_label(2.0, Unit::Count), "2");
    }

    #[test]
    fn a_chart_has_its_axes_units_and_fit_line() {
        let c = Chart {
            y_label: "memory".into(),
            unit: Unit::Bytes,
            x_axis: XAxis::TimeMs,
            xs: (0..1000).map(|i| i as f64 * 100.0).collect(),
            series: vec![Series {
                label: "memory <b>".into(),
                values: (0..1000).map(|i| i as f64 * 10240.0).collect(),
                class: "s0",
            }],
            fit: Some(Fit {
                x0: 0.0,
                intercept: 0.0,
                slope_per_x: 10.24,
            }),
            small: false,
        };
        let svg = render(&c);
        assert!(svg.contains("time since start (s)"), "{svg}");
        assert!(svg.contains("MiB"), "{svg}");
        assert!(svg.contains("class=\"fit\""));
        assert!(svg.contains("memory &lt;b&gt;") && !svg.contains("<b>"));
        let points = svg
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(points.split(' ').count() <= MAX_POINTS, "downsampled");
    }
}
