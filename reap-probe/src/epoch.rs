//! A point in the machine's process history, and which pids a process born
//! after it can have.
//!
//! A scan for "every process started since T" has to read the `stat` of
//! every process on the machine to learn its start time — O(the machine),
//! ~1 ms per 300 processes. The kernel hands out pids from a cursor that
//! moves forward, wraps at `pid_max` and skips pids in use; `/proc/loadavg`
//! shows the cursor (the last pid allocated in the reader's pid namespace)
//! and `/proc/stat`'s `processes` counts every task ever created. Recorded
//! at the start (an [`Epoch`]) and read again at the scan, they bound the
//! pids a newer process can have: the cyclic window the cursor walked.
//! Only the pids listed in /proc inside that window are read.
//!
//! The window is used only when the counters prove it complete; otherwise
//! the scan reads every process, as before:
//! - /proc belongs to our own pid namespace (the cursor read is ours);
//! - the cursor walked at least as far as tasks were created (`forks ≤
//!   walked`): a task created outside the walk — in a pid namespace the
//!   cursor does not see, or with a pid chosen by `clone3(set_tid)` — makes
//!   the counters disagree;
//! - the cursor did not walk further than creations and skips over pids in
//!   use can explain (a write to `ns_last_pid` moved it);
//! - the walk cannot have lapped `pid_max`: in one lap the cursor skips at
//!   most the pids in use, at most three per task alive (its pid, and a
//!   process group and a session it may keep after it exits), and no more
//!   tasks are alive than at the start plus those created since.
//!
//! What the window cannot see: a task created with a chosen pid
//! (`clone3(set_tid)`, CRIU-style restore: CAP_SYS_ADMIN or
//! CAP_CHECKPOINT_RESTORE) while the cursor skipped at least as many pids in
//! use as such tasks were created, so that the counters still agree.

use std::fs;

use crate::clock::boottime_ticks;

/// The smallest pid the allocator hands out after its first wrap
/// (`RESERVED_PIDS` in the kernel); a wrapped window starts there.
const RESERVED_PIDS: u32 = 300;

/// Now, in the two clocks a newer process can be told by: the boot-time
/// clock (start times) and the pid allocator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
    /// Clock ticks since boot, one tick of margin (start times have tick
    /// resolution): every process started after the epoch has a start time
    /// at least this large.
    pub ticks: u64,
    /// The allocator's position, or why it cannot be read.
    alloc: Result<Alloc, String>,
}

/// The pid allocator's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Alloc {
    /// The last pid allocated in our pid namespace (`/proc/loadavg`).
    last_pid: u32,
    /// Tasks created since boot, threads included (`/proc/stat` `processes`).
    forks: u64,
    /// Tasks alive (`/proc/loadavg`'s `running/total`).
    tasks: u64,
    /// `/proc/sys/kernel/pid_max`.
    pid_max: u32,
}

/// Which pids a process born since an epoch can have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Born {
    /// Only these: after `after` up to and including `upto`, in the
    /// allocator's cyclic order (wrapping from `pid_max - 1` to
    /// [`RESERVED_PIDS`]); `tasks` were alive at its end.
    Window {
        after: u32,
        upto: u32,
        pid_max: u32,
        tasks: u64,
    },
    /// Any pid: the window cannot be proven complete (why, in words).
    Anywhere(String),
}

impl Born {
    /// Can a process born since the epoch have `pid`?
    pub fn may_have(&self, pid: i32) -> bool {
        let Ok(pid) = u32::try_from(pid) else {
            return false;
        };
        match *self {
            Born::Anywhere(_) => true,
            Born::Window { after, upto, .. } if after <= upto => pid > after && pid <= upto,
            Born::Window { after, upto, .. } => pid > after || pid <= upto,
        }
    }

    /// The window's pids, ascending, when there are fewer of them than tasks
    /// alive on the machine (reading them one by one is then cheaper than
    /// listing /proc); `None` otherwise, and for [`Born::Anywhere`].
    pub fn window_pids(&self) -> Option<Vec<i32>> {
        let Born::Window {
            after,
            upto,
            pid_max,
            tasks,
        } = *self
        else {
            return None;
        };
        let len = if after <= upto {
            u64::from(upto - after)
        } else {
            u64::from(pid_max.saturating_sub(after + 1))
                + u64::from((upto + 1).saturating_sub(RESERVED_PIDS))
        };
        if len >= tasks {
            return None;
        }
        let mut pids: Vec<i32> = if after <= upto {
            (after + 1..=upto).map(|p| p as i32).collect()
        } else {
            (after + 1..pid_max)
                .chain(RESERVED_PIDS..=upto)
                .map(|p| p as i32)
                .collect()
        };
        pids.sort_unstable();
        Some(pids)
    }
}

impl Epoch {
    /// Record now. The allocator is read before the clock: a process
    /// allocated a pid before the read is born before the epoch.
    pub fn now() -> Epoch {
        let alloc = read_alloc();
        Epoch {
            ticks: boottime_ticks().saturating_sub(1),
            alloc,
        }
    }

    /// An epoch that knows only a start time (every pid may be newer).
    pub fn at_ticks(ticks: u64) -> Epoch {
        Epoch {
            ticks,
            alloc: Err("only a start time was recorded".into()),
        }
    }

    /// The pids a process born since this epoch can have, as of now.
    pub fn born_since(&self) -> Born {
        let start = match &self.alloc {
            Ok(a) => a,
            Err(why) => return Born::Anywhere(why.clone()),
        };
        if let Err(why) = own_pid_namespace() {
            return Born::Anywhere(why);
        }
        match read_alloc() {
            Ok(end) => window(start, &end),
            Err(why) => Born::Anywhere(why),
        }
    }
}

/// The window the cursor walked from `start` to `end`, where the counters
/// prove that it holds every pid allocated in between (module docs).
fn window(start: &Alloc, end: &Alloc) -> Born {
    let pid_max = u64::from(start.pid_max.min(end.pid_max));
    let (s, e) = (u64::from(start.last_pid), u64::from(end.last_pid));
    if s >= pid_max || e >= pid_max || end.forks < start.forks {
        return Born::Anywhere("the pid allocator's counters went backwards".into());
    }
    let forks = end.forks - start.forks;
    let walked = if e >= s {
        e - s
    } else {
        // Wrapped: to the end, then from RESERVED_PIDS on.
        (pid_max - 1 - s) + (e + 1).saturating_sub(u64::from(RESERVED_PIDS))
    };
    let alive = start.tasks.max(end.tasks).saturating_add(forks);
    let skips = alive.saturating_mul(3);
    let lap_possible =
        forks.saturating_add(skips) >= pid_max.saturating_sub(u64::from(RESERVED_PIDS));
    if forks > walked {
        return Born::Anywhere(format!("{forks} tasks were created but the pid cursor walked {walked} pids (another pid namespace, or chosen pids)"));
    }
    if walked > forks.saturating_add(skips) || lap_possible {
        return Born::Anywhere(format!("the pid cursor walked {walked} pids for {forks} tasks created: it may have been moved or have wrapped around"));
    }
    Born::Window {
        after: start.last_pid,
        upto: end.last_pid,
        pid_max: pid_max as u32,
        tasks: end.tasks,
    }
}

/// The allocator's counters, or why one cannot be read.
fn read_alloc() -> Result<Alloc, String> {
    let read = |path: &str| fs::read_to_string(path).map_err(|e| format!("{path}: {e}"));
    let unparsed = |path: &str| format!("{path}: unexpected contents");
    // The forks first: tasks created between the reads count, at worst,
    // as created during the window (a false fallback, never a miss).
    let forks = parse_forks(&read("/proc/stat")?).ok_or_else(|| unparsed("/proc/stat"))?;
    let (last_pid, tasks) =
        parse_loadavg(&read("/proc/loadavg")?).ok_or_else(|| unparsed("/proc/loadavg"))?;
    let pid_max = read("/proc/sys/kernel/pid_max")?
        .trim()
        .parse()
        .map_err(|_| unparsed("/proc/sys/kernel/pid_max"))?;
    Ok(Alloc {
        last_pid,
        forks,
        tasks,
        pid_max,
    })
}

/// `processes N` of /proc/stat.
fn parse_forks(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("processes "))
        .and_then(|n| n.trim().parse().ok())
}

/// `0.00 0.01 0.05 1/234 5678`: (last pid, tasks alive).
fn parse_loadavg(loadavg: &str) -> Option<(u32, u64)> {
    let mut fields = loadavg.split_whitespace().skip(3);
    let tasks = fields.next()?.split_once('/')?.1.parse().ok()?;
    let last = fields.next()?.parse().ok()?;
    Some((last, tasks))
}

/// Is the mounted /proc our pid namespace's? `/proc/loadavg`'s last pid is
/// our namespace's cursor, /proc lists the mount's: they must agree. Our
/// `NSpid` line lists one pid per level from the mount's namespace down to
/// ours; one pid, our own, means the same namespace.
fn own_pid_namespace() -> Result<(), String> {
    static SAME: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    SAME.get_or_init(|| {
        let status = fs::read_to_string("/proc/self/status")
            .map_err(|e| format!("/proc/self/status: {e}"))?;
        let me = std::process::id().to_string();
        let same = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .is_some_and(|pids| pids.split_whitespace().eq([me.as_str()]));
        if same {
            Ok(())
        } else {
            Err("/proc is not our pid namespace's".into())
        }
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(last_pid: u32, forks: u64, tasks: u64) -> Alloc {
        Alloc {
            last_pid,
            forks,
            tasks,
            pid_max: 4_194_304,
        }
    }

    #[test]
    fn the_window_is_what_the_cursor_walked() {
        let w = window(&at(1000, 50_000, 300), &at(1010, 50_010, 300));
        assert_eq!(
            w,
            Born::Window {
                after: 1000,
                upto: 1010,
                pid_max: 4_194_304,
                tasks: 300
            }
        );
        assert_eq!(w.window_pids(), Some((1001..=1010).collect()));
        assert!(!w.may_have(1000));
        assert!(w.may_have(1001) && w.may_have(1010));
        assert!(!w.may_have(1011) && !w.may_have(1) && !w.may_have(-1));
    }

    #[test]
    fn a_wrapped_window_holds_both_ends() {
        let w = window(&at(4_194_300, 7, 300), &at(310, 20, 300));
        assert_eq!(
            w,
            Born::Window {
                after: 4_194_300,
                upto: 310,
                pid_max: 4_194_304,
                tasks: 300
            }
        );
        // 3 at the end, 11 from RESERVED_PIDS on: fewer than the 300 tasks.
        let mut both: Vec<i32> = (300..=310).collect();
        both.extend(4_194_301..4_194_304);
        assert_eq!(w.window_pids(), Some(both));
        // As many pids as tasks alive: listing /proc is cheaper.
        let wide = window(&at(1000, 50_000, 10), &at(1010, 50_010, 10));
        assert_eq!(wide.window_pids(), None);
        assert!(w.may_have(4_194_303) && w.may_have(300) && w.may_have(310));
        assert!(!w.may_have(4_194_300) && !w.may_have(311) && !w.may_have(2_000_000));
    }

    #[test]
    fn skips_over_pids_in_use_are_explained() {
        // 10 tasks created, the cursor walked 40: 30 pids in use skipped.
        let w = window(&at(1000, 0, 300), &at(1040, 10, 300));
        assert!(matches!(w, Born::Window { .. }));
    }

    #[test]
    fn a_task_created_outside_the_walk_means_anywhere() {
        // 11 tasks created, the cursor walked 10: one pid was chosen
        // (set_tid) or allocated in a namespace the cursor does not see.
        assert!(matches!(
            window(&at(1000, 0, 300), &at(1010, 11, 300)),
            Born::Anywhere(_)
        ));
    }

    #[test]
    fn a_cursor_moved_by_hand_means_anywhere() {
        // ns_last_pid written: the cursor jumped far beyond what 10
        // creations and skips over 3·(300+10) pids in use explain.
        assert!(matches!(
            window(&at(1000, 0, 300), &at(900_000, 10, 300)),
            Born::Anywhere(_)
        ));
        // Backwards, read as a wrap of nearly the whole range.
        assert!(matches!(
            window(&at(1000, 0, 300), &at(500, 10, 300)),
            Born::Anywhere(_)
        ));
    }

    #[test]
    fn a_possible_lap_means_anywhere() {
        let small = |last_pid, forks| Alloc {
            last_pid,
            forks,
            tasks: 100,
            pid_max: 32_768,
        };
        // 8,200 creations + skips over 3·8,300 pids in use: a lap of 32,768 is possible.
        assert!(matches!(
            window(&small(1000, 0), &small(9_200, 8_200)),
            Born::Anywhere(_)
        ));
        assert!(matches!(
            window(&small(1000, 0), &small(1_500, 500)),
            Born::Window { .. }
        ));
    }

    #[test]
    fn counters_parse_as_the_kernel_prints_them() {
        assert_eq!(
            parse_loadavg("0.52 0.58 0.59 3/412 28711\n"),
            Some((28711, 412))
        );
        assert_eq!(parse_loadavg("garbage"), None);
        let stat = "cpu  1 2 3\nintr 5\nctxt 9\nbtime 1\nprocesses 123456\nprocs_running 2\n";
        assert_eq!(parse_forks(stat), Some(123_456));
        assert_eq!(parse_forks("cpu 1\n"), None);
    }

    #[test]
    fn a_process_started_after_an_epoch_is_in_its_window() {
        let epoch = Epoch::now();
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id() as i32;
        let born = epoch.born_since();
        child.wait().expect("wait");
        assert!(born.may_have(pid), "{born:?} lacks {pid}");
        if let Born::Window { after, .. } = born {
            // Our own (older) pid is outside, unless it was reused in the window.
            assert!(!born.may_have(after as i32));
        }
    }
}
