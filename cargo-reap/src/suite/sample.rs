//! The series of a running containment (issue 16): one sampler for the
//! resource peaks of every suite attempt and for `cargo reap run --watch`.
//!
//! The thread that waits for the command measures its containment at a
//! steady interval — deadlines at `start + k * every`, so the time a sample
//! takes never accumulates into drift — between waits on the command's
//! exit (a pidfd, an event, never polled): processes, orphans (a process whose parent is not in
//! the containment — the runner as child subreaper, or outside — other than
//! the command itself), threads, memory (`memory.current` where the cgroup's
//! memory controller is on, else summed RSS), open fds, and the file count of
//! each watched directory (never following a symlink nor crossing a mount).

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use reap_probe::ProcessInfo;
use reap_report::{DirSeries, MemorySource, Timeline};

use rustix::process::Signal;

use crate::containment::Sampler;
use crate::error::ContainError;
use crate::interrupt::Interrupts;
use crate::report::events::{Event, EventSink};
use crate::sys::{OwnedChild, Wake};

pub use super::settings::SampleSettings;

/// One measurement.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Point {
    processes: u32,
    orphans: u32,
    threads: u32,
    memory_bytes: u64,
    open_fds: u32,
    /// The command line most orphans share (empty: no orphans).
    orphan_command: String,
}

/// Wait for the command while sampling `sampler` every `settings.every`,
/// both on this thread; returns what the wait returned and the timeline.
/// `wait` is called with how long it may block before the next sample is
/// due (`None`: no sample is due any more, wait as long as needed) and
/// returns `Some` once the wait has ended, `None` when that time passed.
/// `root` is the command's pid (never an orphan), `started` when it was
/// spawned; `live` gets an [`Event::Sampled`] after every sample (with
/// `watch`, the watch's duration).
///
/// No thread of its own: a suite of a few milliseconds cost a thread's
/// start and join, and a sampler competing with it for the CPU.
pub fn record_while<T>(
    sampler: Sampler,
    root: i32,
    started: Instant,
    settings: &SampleSettings,
    live: Option<&dyn EventSink>,
    mut wait: impl FnMut(Option<Duration>) -> Option<T>,
) -> (T, Timeline) {
    let mut rec = Recording::new(sampler, root, started, settings);
    let first = Instant::now();
    let every = settings.every.max(Duration::from_millis(1));
    let mut sampling = true;
    loop {
        if sampling {
            // The slot of now: a sample later than a whole interval (a
            // loaded machine) lands in its true slot, the missed ones
            // repeating the previous reading.
            let slot = (first.elapsed().as_nanos() / every.as_nanos()) as usize;
            match rec.sample(slot) {
                Ok(()) => {
                    if let Some(live) = live {
                        live.event(Event::Sampled {
                            timeline: &rec.timeline,
                            elapsed: started.elapsed(),
                            watch: settings.watch,
                        });
                    }
                }
                Err(e) => {
                    eprintln!("cargo-reap: warning: resource sampling stopped: {e}");
                    sampling = false;
                }
            }
        }
        // The next slot, from the first sample: no drift.
        let budget = sampling.then(|| {
            let due = first + every * rec.timeline.len() as u32;
            due.saturating_duration_since(Instant::now())
        });
        if let Some(out) = wait(budget) {
            return (out, rec.timeline);
        }
    }
}

/// A timeline being filled.
struct Recording<'a> {
    sampler: Sampler,
    root: i32,
    settings: &'a SampleSettings,
    timeline: Timeline,
    /// `memory.current` is readable (checked at the first sample).
    cgroup_memory: Option<bool>,
}

impl<'a> Recording<'a> {
    fn new(sampler: Sampler, root: i32, started: Instant, s: &'a SampleSettings) -> Self {
        Recording {
            sampler,
            root,
            settings: s,
            timeline: Timeline {
                start_ms: started.elapsed().as_millis() as u64,
                interval_ms: s.every.as_millis() as u64,
                dirs: s
                    .dirs
                    .iter()
                    .map(|d| DirSeries {
                        path: d.display().to_string(),
                        files: Vec::new(),
                    })
                    .collect(),
                ..Timeline::default()
            },
            cgroup_memory: None,
        }
    }

    /// Take a sample for slot `slot` (slots before it not yet filled repeat
    /// the last reading).
    fn sample(&mut self, slot: usize) -> Result<(), ContainError> {
        self.repeat_last_until(slot);
        let mut procs = self.sampler.members()?;
        procs.retain(|p| !p.is_zombie());
        let mut p = point(&procs, self.root);
        let current = match self.cgroup_memory {
            Some(false) => None,
            _ => self.sampler.memory_current(),
        };
        self.cgroup_memory = Some(current.is_some());
        if let Some(bytes) = current {
            p.memory_bytes = bytes;
        }
        let t = &mut self.timeline;
        t.memory_source = if current.is_some() {
            MemorySource::MemoryCurrent
        } else {
            MemorySource::Rss
        };
        t.processes.push(p.processes);
        t.orphans.push(p.orphans);
        t.threads.push(p.threads);
        t.memory_bytes.push(p.memory_bytes);
        t.open_fds.push(p.open_fds);
        if !p.orphan_command.is_empty() {
            t.orphan_command = p.orphan_command;
        }
        for (series, dir) in t.dirs.iter_mut().zip(&self.settings.dirs) {
            series.files.push(count_files(dir));
        }
        Ok(())
    }
}

impl Recording<'_> {
    /// Fill the slots before `slot` with the last reading (none before the first).
    fn repeat_last_until(&mut self, slot: usize) {
        let t = &mut self.timeline;
        while t.len() < slot && !t.is_empty() {
            fn again<T: Copy>(v: &mut Vec<T>) {
                if let Some(&last) = v.last() {
                    v.push(last);
                }
            }
            again(&mut t.processes);
            again(&mut t.orphans);
            again(&mut t.threads);
            again(&mut t.memory_bytes);
            again(&mut t.open_fds);
            for d in &mut t.dirs {
                again(&mut d.files);
            }
        }
    }
}

/// The counts of one sample of `procs` (memory: summed RSS).
fn point(procs: &[ProcessInfo], root: i32) -> Point {
    let pids: HashSet<i32> = procs.iter().map(|p| p.pid).collect();
    let mut commands: BTreeMap<String, u32> = BTreeMap::new();
    let mut p = Point {
        processes: procs.len() as u32,
        ..Point::default()
    };
    for proc in procs {
        p.threads += proc.threads.max(0) as u32;
        p.memory_bytes += proc.rss_bytes;
        p.open_fds += open_fds(proc.pid);
        if proc.pid != root && !pids.contains(&proc.ppid) {
            p.orphans += 1;
            let cmd = if proc.cmdline.is_empty() {
                proc.comm.clone()
            } else {
                proc.cmdline.join(" ")
            };
            *commands.entry(cmd).or_default() += 1;
        }
    }
    if let Some((cmd, _)) = commands.into_iter().max_by_key(|(c, n)| (*n, c.clone())) {
        p.orphan_command = cmd;
    }
    p
}

/// Entries of `/proc/PID/fd` (0 when the process is gone or not ours to read).
fn open_fds(pid: i32) -> u32 {
    match std::fs::read_dir(format!("/proc/{pid}/fd")) {
        Ok(entries) => entries.count() as u32,
        Err(_) => 0,
    }
}

/// Files (anything but a directory) under `dir`, recursively, on `dir`'s
/// own file system, not following symlinks (a symlink counts as a file). A
/// missing or unreadable directory counts 0 (it may be made later).
pub fn count_files(dir: &Path) -> u64 {
    let Ok(top) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    if !top.is_dir() {
        return 0;
    }
    let dev = top.dev();
    let mut count = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => {
                    // Another file system mounted here: not ours to count.
                    if e.metadata().is_ok_and(|m| m.dev() == dev) {
                        stack.push(e.path());
                    }
                }
                Ok(_) => count += 1,
                Err(_) => {}
            }
        }
    }
    count
}

/// An attempt's peaks (processes, memory) from its timeline, which it keeps.
pub fn fill_peaks(attempt: &mut reap_report::Attempt, t: Timeline) {
    attempt.peak_processes = t.processes.iter().copied().max().unwrap_or(0) as usize;
    attempt.peak_memory_bytes = t.memory_bytes.iter().copied().max().unwrap_or(0);
    attempt.memory_source = t.memory_source;
    attempt.timeline = (!t.is_empty()).then_some(t);
}

/// The end of a watch: SIGTERM to the command, `grace` for it to exit,
/// then SIGKILL. Its children are not signalled: what it leaves behind is
/// judged as any command's leftovers (the settle, then leaks). A second
/// interrupt ends the grace. Returns [`Wake::Exited`]: it has exited or
/// been sent SIGKILL (its reap waits for that).
pub fn stop_watched(
    root: &OwnedChild,
    grace: Duration,
    interrupts: &Interrupts,
) -> Result<Wake, ContainError> {
    root.signal(Signal::TERM)?;
    match root.wait_exit_or(grace, Some(interrupts.hard_fd()))? {
        Wake::TimedOut | Wake::Interrupted => root.signal(Signal::KILL)?,
        Wake::Exited => {}
    }
    Ok(Wake::Exited)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: i32, ppid: i32, cmd: &str) -> ProcessInfo {
        ProcessInfo {
            pid,
            ppid,
            pgid: pid,
            sid: pid,
            state: 'S',
            comm: cmd.split(' ').next().unwrap_or_default().into(),
            cmdline: cmd.split(' ').map(String::from).collect(),
            start_time: 0,
            age_ms: 0,
            threads: 2,
            rss_bytes: 1000,
            tag: None,
            cgroup: None,
        }
    }

    #[test]
    fn orphans_are_those_whose_parent_is_outside() {
        // 10 is the command (its parent, the runner, is outside); 11 its
        // child; 12 and 13 reparented to the runner (1) or to init.
        let procs = [
            proc(10, 5, "engine"),
            proc(11, 10, "worker"),
            proc(12, 5, "sleep 60"),
            proc(13, 1, "sleep 60"),
            proc(14, 5, "other"),
        ];
        let p = point(&procs, 10);
        assert_eq!(p.processes, 5);
        assert_eq!(p.orphans, 3);
        assert_eq!(p.threads, 10);
        assert_eq!(p.memory_bytes, 5000);
        assert_eq!(p.orphan_command, "sleep 60");
    }

    #[test]
    fn a_late_sample_lands_in_its_slot() {
        let dir = std::env::temp_dir().join(format!("reap-slots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let settings = SampleSettings {
            dirs: vec![dir.clone()],
            ..SampleSettings::default()
        };
        // A leaf that does not exist: an empty containment.
        let gone = Sampler::Cgroup("/nonexistent/reap-test-leaf".into());
        let mut rec = Recording::new(gone, 1, Instant::now(), &settings);
        rec.sample(0).unwrap();
        std::fs::write(dir.join("a"), b"").unwrap();
        // Slots 1 and 2 were missed (the machine was busy): they repeat slot 0.
        rec.sample(3).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let t = &rec.timeline;
        assert_eq!(t.len(), 4);
        assert_eq!(t.dirs[0].files, [0, 0, 0, 1]);
        assert_eq!(t.processes, [0, 0, 0, 0]);
        assert_eq!(t.memory_bytes.len(), 4);
    }

    #[test]
    fn counts_files_without_following_symlinks() {
        let dir = std::env::temp_dir().join(format!("reap-count-files-{}", std::process::id()));
        let sub = dir.join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        for f in ["x", "a/y", "a/b/z"] {
            std::fs::write(dir.join(f), b"").unwrap();
        }
        // A symlink to a big tree counts as one entry, not its contents.
        std::os::unix::fs::symlink("/usr", dir.join("usr")).unwrap();
        let n = count_files(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(n, 4);
        assert_eq!(count_files(&dir), 0);
    }
}
