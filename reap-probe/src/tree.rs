//! A process table snapshot indexed by parent, and its rendering as a tree.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::{scan, ProbeError, ProcessInfo, ScanOptions};

/// A snapshot of processes with a parent → children index.
///
/// Built from any list of [`ProcessInfo`] (normally the result of [`scan`]). Lookups never touch
/// /proc again: the table describes the moment it was scanned.
#[derive(Debug, Clone, Default)]
pub struct ProcessTable {
    /// Sorted by pid, pids unique.
    procs: Vec<ProcessInfo>,
    /// pid → index into `procs`.
    index: HashMap<i32, usize>,
    /// ppid → sorted pids of its children. Parents need not be in the table (pid 0 is never).
    children: HashMap<i32, Vec<i32>>,
}

impl ProcessTable {
    /// Index `procs`. If a pid occurs more than once, the first occurrence wins.
    pub fn new(mut procs: Vec<ProcessInfo>) -> Self {
        procs.sort_by_key(|p| p.pid); // stable: keeps the first of duplicates first
        procs.dedup_by_key(|p| p.pid);
        let index = procs.iter().enumerate().map(|(i, p)| (p.pid, i)).collect();
        let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
        // Iterating in pid order keeps every children list sorted.
        for p in procs.iter().filter(|p| p.ppid != p.pid) {
            children.entry(p.ppid).or_default().push(p.pid);
        }
        ProcessTable {
            procs,
            index,
            children,
        }
    }

    /// [`scan`] the machine and index the result.
    pub fn scan(opts: ScanOptions) -> Result<Self, ProbeError> {
        scan(opts).map(Self::new)
    }

    /// The process with this pid, if it was in the snapshot.
    pub fn get(&self, pid: i32) -> Option<&ProcessInfo> {
        self.index.get(&pid).map(|&i| &self.procs[i])
    }

    /// Pids of the direct children of `pid`, sorted ascending (empty if none or unknown).
    pub fn children(&self, pid: i32) -> &[i32] {
        self.children.get(&pid).map_or(&[], Vec::as_slice)
    }

    /// Pids of all descendants of `pid`, excluding `pid` itself, breadth-first (children in
    /// ascending pid order, then grandchildren, ...). Each pid appears once even if the snapshot
    /// is inconsistent (a pid reused mid-scan can make the parent links cyclic).
    pub fn descendants(&self, pid: i32) -> Vec<i32> {
        let mut out = Vec::new();
        let mut seen = HashSet::from([pid]);
        let mut queue = VecDeque::from([pid]);
        while let Some(parent) = queue.pop_front() {
            for &child in self.children(parent) {
                if seen.insert(child) {
                    out.push(child);
                    queue.push_back(child);
                }
            }
        }
        out
    }

    /// All processes in the snapshot, in ascending pid order.
    pub fn processes(&self) -> impl Iterator<Item = &ProcessInfo> {
        self.procs.iter()
    }

    /// Number of processes in the snapshot.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// True if the snapshot holds no process.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// Render the subtree rooted at `pid` as one line per process, `"pid state age comm args"`,
    /// depth-first (each parent directly above its children, siblings in pid order), each level
    /// indented by two more spaces.
    ///
    /// Lines longer than `width` characters are cut to `width` and end in `...`; `width == 0`
    /// means no limit. Control characters in `comm` and the arguments are shown as `?` so every
    /// process stays on one line. Returns an empty string if `pid` is not in the table.
    pub fn render_tree(&self, pid: i32, width: usize) -> String {
        let mut out = String::new();
        let mut seen = HashSet::new();
        let mut stack = vec![(pid, 0usize)];
        while let Some((pid, depth)) = stack.pop() {
            let Some(info) = self.get(pid) else { continue };
            if !seen.insert(pid) {
                continue;
            }
            let line = format!("{:indent$}{}", "", render_line(info), indent = depth * 2);
            out.push_str(&truncate(&line, width));
            out.push('\n');
            // Reversed, so the smallest pid is popped (rendered) first.
            stack.extend(self.children(pid).iter().rev().map(|&c| (c, depth + 1)));
        }
        out
    }
}

/// `"pid state age comm args"` for one process, without indentation.
fn render_line(info: &ProcessInfo) -> String {
    let mut line = format!(
        "{} {} {} {}",
        info.pid,
        info.state,
        format_age(info.age_ms),
        sanitize(&info.comm)
    );
    for arg in &info.cmdline {
        line.push(' ');
        line.push_str(&sanitize(arg));
    }
    line
}

/// Replace control characters (newlines, escapes, ...) by `?`, as `ps` does.
pub(crate) fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Cut `line` to at most `width` characters (0: unlimited), marking the cut with `...`.
pub(crate) fn truncate(line: &str, width: usize) -> String {
    if width == 0 || line.chars().count() <= width {
        return line.to_owned();
    }
    const MARK: &str = "...";
    if width <= MARK.len() {
        return line.chars().take(width).collect();
    }
    let mut cut: String = line.chars().take(width - MARK.len()).collect();
    cut.push_str(MARK);
    cut
}

/// A short human-readable age: `850ms`, `12.3s`, `4m05s`, `2h13m`, `3d04h`.
pub fn format_age(ms: u64) -> String {
    const SEC: u64 = 1000;
    const MIN: u64 = 60 * SEC;
    const HOUR: u64 = 60 * MIN;
    const DAY: u64 = 24 * HOUR;
    if ms < SEC {
        format!("{ms}ms")
    } else if ms < MIN {
        format!("{}.{}s", ms / SEC, ms % SEC / 100)
    } else if ms < HOUR {
        format!("{}m{:02}s", ms / MIN, ms % MIN / SEC)
    } else if ms < DAY {
        format!("{}h{:02}m", ms / HOUR, ms % HOUR / MIN)
    } else {
        format!("{}d{:02}h", ms / DAY, ms % DAY / HOUR)
    }
}
