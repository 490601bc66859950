//! Sampled series (issue 16): what a containment looked like over time, and
//! the trend verdict of each series.
//!
//! Columnar and compact: a start offset, a steady interval and one array per
//! series, all of the same length. A `--watch` run records one [`Timeline`]
//! for its command; every suite attempt records one too (so a test suite's
//! slow accumulation shows the same way, and `--loop` keeps each trial's).

use serde::{Deserialize, Serialize};

/// The series sampled from one containment at a steady interval.
///
/// Sample `i` was taken at `start_ms + i * interval_ms` after the observed
/// command started: a sample later than a whole interval (a loaded
/// machine) is recorded at the slot of when it was taken, and the slots it
/// missed hold the previous reading, so that index `i` is always that time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Milliseconds from the command's start to the first sample.
    pub start_ms: u64,
    /// Milliseconds between two samples.
    pub interval_ms: u64,
    /// Live processes in the containment.
    pub processes: Vec<u32>,
    /// Of them, orphans: processes whose parent is the runner (reparented
    /// to it as child subreaper) or outside the containment, other than the
    /// command itself.
    pub orphans: Vec<u32>,
    /// Live threads of those processes.
    pub threads: Vec<u32>,
    /// Memory: cgroup `memory.current` where available, else summed RSS.
    pub memory_bytes: Vec<u64>,
    /// Where `memory_bytes` comes from (`memory.current` or `rss`).
    #[serde(default, skip_serializing_if = "MemorySource::is_unknown")]
    pub memory_source: MemorySource,
    /// Open file descriptors of those processes, summed.
    pub open_fds: Vec<u32>,
    /// The configured `watch-dirs`: files in each (recursively, not
    /// following symlinks or crossing mounts), one series each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dirs: Vec<DirSeries>,
    /// The command line most orphans had at the last sample with orphans
    /// (what the trend sentence names), empty when there were none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub orphan_command: String,
}

impl Timeline {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.processes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.processes.is_empty()
    }

    /// Milliseconds from the command's start of sample `i`.
    pub fn at_ms(&self, i: usize) -> u64 {
        self.start_ms + i as u64 * self.interval_ms
    }
}

/// The file count of one watched directory over time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirSeries {
    pub path: String,
    pub files: Vec<u64>,
}

/// Which series a [`Trend`] judges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeriesName {
    Processes,
    Orphans,
    Threads,
    Memory,
    OpenFds,
    /// A `watch-dirs` entry (its path).
    Dir(String),
}

/// The trend of one series: a robust slope (Theil–Sen, over the samples
/// after the warm-up share) and what it means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    pub series: SeriesName,
    /// Units per hour (processes, bytes, fds, files).
    pub slope_per_hour: f64,
    /// The fitted line's value at `start_ms` of the timeline: with the
    /// slope it draws the line (`value(t) = intercept + slope_per_hour *
    /// (t - start_ms) / 3_600_000`, `t` in ms from the command's start).
    pub intercept: f64,
    /// First and last value judged (after the warm-up).
    pub first: f64,
    pub last: f64,
    /// Samples the slope was fitted over, and the warm-up samples left out.
    pub samples: usize,
    pub warmup_samples: usize,
    /// The most growth per hour allowed (`--max-growth`), if any applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_hour: Option<f64>,
    pub verdict: TrendVerdict,
    /// In plain words, e.g. `processes: +1 every 171 s (1 → 37 over
    /// 1h42m), 36 orphans of 'python3 burberry.py'` or `memory: flat`.
    pub sentence: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrendVerdict {
    /// No growth beyond noise (or within `max_per_hour`).
    Flat,
    /// Grows, within the allowed rate.
    Growing,
    /// Grows faster than allowed: fails the run.
    TooFast,
    Shrinking,
    /// Too few samples to judge.
    TooShort,
}

/// `cargo reap run --watch`: what the sustained observation saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchReport {
    /// The observation asked for, ms.
    pub duration_ms: u64,
    pub timeline: Timeline,
    pub trends: Vec<Trend>,
    /// The command exited before the observation ended: when (ms after its
    /// start) and how (its exit code, or 128 + signal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub died_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub died_with: Option<i32>,
}

/// Where a memory figure comes from: the cgroup's `memory.current` (its
/// memory controller is on), else the summed RSS of its processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemorySource {
    /// Not measured (no sample was taken): `""` in the JSON.
    #[default]
    #[serde(rename = "")]
    Unknown,
    #[serde(rename = "memory.current")]
    MemoryCurrent,
    #[serde(rename = "rss")]
    Rss,
}

impl MemorySource {
    /// `memory.current`, `rss`, or empty.
    pub fn as_str(self) -> &'static str {
        match self {
            MemorySource::Unknown => "",
            MemorySource::MemoryCurrent => "memory.current",
            MemorySource::Rss => "rss",
        }
    }

    pub fn is_unknown(&self) -> bool {
        *self == MemorySource::Unknown
    }
}
