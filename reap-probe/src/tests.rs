//! Tests against real processes that each test spawns (and always reaps, see `testutil`).

use std::time::Instant;

use crate::process::{open, parse_cgroup_v2, parse_cmdline, parse_start_time, parse_tag};
use crate::testutil::{wait_for_state, Guard};
use crate::*;

fn me() -> i32 {
    std::process::id() as i32
}

#[test]
fn snapshot_describes_a_tagged_child() {
    let child = Guard::sleep(Some("test/x"));
    let info = wait_for_state(child.pid(), 'S');
    let myself = snapshot(me(), ScanOptions::ALL).unwrap();

    assert_eq!(info.pid, child.pid());
    assert_eq!(info.ppid, me());
    // Spawned without a new process group or session: it shares ours.
    assert_eq!(info.pgid, myself.pgid);
    assert_eq!(info.sid, myself.sid);
    assert_eq!(info.state, 'S');
    assert_eq!(info.comm, "sleep");
    assert_eq!(info.cmdline, ["sleep", "30"]);
    assert_eq!(info.threads, 1);
    assert!(info.rss_bytes > 0, "{info:?}");
    assert_eq!(info.tag.as_deref(), Some("test/x"));
    assert!(info.cgroup.is_some());
    assert_eq!(info.cgroup, myself.cgroup, "children inherit the cgroup");
    assert_eq!(info.start_time, start_time(child.pid()).unwrap());
    assert!(info.age_ms < 60_000, "{info:?}");
}

#[test]
fn optional_files_are_read_only_when_requested() {
    let child = Guard::idle(Some("test/opts"), &[]);
    let bare = snapshot(child.pid(), ScanOptions::default()).unwrap();
    assert_eq!((bare.tag, bare.cgroup), (None, None));

    let tag_only = ScanOptions {
        environ_tag: true,
        cgroup: false,
    };
    let info = snapshot(child.pid(), tag_only).unwrap();
    assert_eq!(info.tag.as_deref(), Some("test/opts"));
    assert_eq!(info.cgroup, None);
}

#[test]
fn untagged_and_empty_tags() {
    let untagged = Guard::idle(None, &[]);
    let empty = Guard::idle(Some(""), &[]);
    let odd = Guard::idle(Some("suite with spaces=and=equals"), &[]);

    assert_eq!(
        snapshot(untagged.pid(), ScanOptions::ALL).unwrap().tag,
        None
    );
    assert_eq!(read_tag(untagged.pid()).unwrap(), None);
    assert_eq!(read_tag(empty.pid()).unwrap().as_deref(), Some(""));
    assert_eq!(
        read_tag(odd.pid()).unwrap().as_deref(),
        Some("suite with spaces=and=equals")
    );
}

#[test]
fn gone_after_kill_and_wait() {
    let pid = Guard::sleep(Some("test/gone")).kill_and_wait();
    assert!(matches!(
        snapshot(pid, ScanOptions::ALL),
        Err(ProbeError::Gone(p)) if p == pid
    ));
    assert!(matches!(read_tag(pid), Err(ProbeError::Gone(p)) if p == pid));
    assert!(matches!(start_time(pid), Err(ProbeError::Gone(p)) if p == pid));
    assert!(scan(ScanOptions::default())
        .unwrap()
        .iter()
        .all(|p| p.pid != pid));
}

#[test]
fn nonsense_pids_are_gone() {
    for pid in [0, -1, i32::MAX] {
        assert!(snapshot(pid, ScanOptions::ALL).unwrap_err().is_gone());
        assert!(read_tag(pid).unwrap_err().is_gone());
        assert!(start_time(pid).unwrap_err().is_gone());
    }
}

#[test]
fn a_held_handle_never_reads_another_process() {
    // The mechanism behind pid-reuse safety: once the process is reaped, reads through the
    // handle opened for it fail instead of reading whatever has the pid now.
    let child = Guard::idle(Some("test/handle"), &[]);
    let handle = open(child.pid()).unwrap();
    let pid = child.kill_and_wait();
    let err = crate::process::snapshot_process(&handle, ScanOptions::ALL).unwrap_err();
    assert!(matches!(err, ProbeError::Gone(p) if p == pid), "{err:?}");
    assert!(crate::process::read_tag_of(&handle).unwrap_err().is_gone());
}

#[test]
fn zombie_has_state_z_and_no_memory() {
    let mut child = Guard::idle(Some("test/zombie"), &[]);
    child.kill_leave_zombie();
    let info = snapshot(child.pid(), ScanOptions::ALL).unwrap();
    assert_eq!(info.state, 'Z');
    assert!(info.is_zombie());
    assert_eq!(info.ppid, me());
    assert_eq!(info.comm, "sh");
    assert!(info.cmdline.is_empty(), "{info:?}");
    assert_eq!(info.tag, None, "a zombie's environment is gone");
    assert_eq!(read_tag(child.pid()).unwrap(), None);
    assert_eq!(info.rss_bytes, 0);
    // Drop reaps it.
}

#[test]
fn a_zombies_status_is_how_it_was_killed_and_a_live_process_has_none() {
    let mut child = Guard::idle(None, &[]);
    assert_eq!(crate::zombie_status(child.pid()).unwrap(), None, "alive");
    child.kill_leave_zombie();
    // SIGKILL, as waitpid(2) reports it: the signal in the low 7 bits.
    assert_eq!(crate::zombie_status(child.pid()).unwrap(), Some(9));
    assert!(crate::zombie_status(-1).unwrap_err().is_gone());
}

#[test]
fn cmdline_is_lossy_and_keeps_empty_arguments() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let args = [
        OsStr::new("arg0"),
        OsStr::new(""),
        OsStr::from_bytes(b"\xffz"),
    ];
    let child = Guard::idle(None, &args);
    let info = snapshot(child.pid(), ScanOptions::default()).unwrap();
    assert_eq!(
        info.cmdline,
        ["sh", "-c", "echo ready; read x", "arg0", "", "\u{FFFD}z"]
    );
}

#[test]
fn age_uses_the_boot_clock() {
    let before = Instant::now();
    let child = Guard::sleep(None);
    let info = snapshot(child.pid(), ScanOptions::default()).unwrap();
    let window_ms = before.elapsed().as_millis() as u64;
    // The true age is within the window; start times are truncated to a tick (10 ms at 100 Hz),
    // which can only make the age look older.
    let tick_ms = 1000 / procfs::ticks_per_second();
    assert!(
        info.age_ms <= window_ms + tick_ms + 1,
        "age {} ms, window {window_ms} ms",
        info.age_ms
    );
    let start_ms = ticks_to_ms(info.start_time);
    assert!(start_ms <= boottime_ms());
}

#[test]
fn start_time_agrees_with_procfs() {
    let child = Guard::sleep(None);
    for pid in [me(), child.pid(), 1] {
        let ours = start_time(pid).unwrap();
        let theirs = procfs::process::Process::new(pid)
            .unwrap()
            .stat()
            .unwrap()
            .starttime;
        assert_eq!(ours, theirs, "pid {pid}");
    }
    assert!(start_time(me()).unwrap() <= start_time(child.pid()).unwrap());
}

#[test]
fn scan_sees_our_children_in_pid_order() {
    let tagged = Guard::idle(Some("test/scan"), &[]);
    let untagged = Guard::idle(None, &[]);
    let all = scan(ScanOptions::ALL).unwrap();

    assert!(
        all.windows(2).all(|w| w[0].pid < w[1].pid),
        "sorted, unique"
    );
    assert!(all.iter().all(|p| p.pid > 0));
    let find = |pid: i32| all.iter().find(|p| p.pid == pid).expect("listed");
    assert_eq!(find(tagged.pid()).tag.as_deref(), Some("test/scan"));
    assert_eq!(find(tagged.pid()).ppid, me());
    assert_eq!(find(untagged.pid()).tag, None);
    assert!(find(me()).cgroup.is_some());

    let bare = scan(ScanOptions::default()).unwrap();
    assert!(bare.iter().all(|p| p.tag.is_none() && p.cgroup.is_none()));
}

/// Two leaves under one shell.
const FLAT: &str = "exec 3<&0
read x <&3 & echo leaf $!
read x <&3 & echo leaf $!
wait";

/// outer sh ─┬─ inner sh ── leaf
///           └─ leaf
const NESTED: &str = "exec 3<&0
sh -c 'read x <&3 & echo deep $!; wait' & echo inner $!
read x <&3 & echo leaf $!
wait";

#[test]
fn table_children_and_descendants() {
    let mut sh = Guard::tree(FLAT, "test/tree");
    let mut leaves = sh.read_pids(2).remove("leaf").unwrap();
    leaves.sort_unstable();
    let table = ProcessTable::scan(ScanOptions::ALL).unwrap();

    assert_eq!(table.children(sh.pid()), leaves.as_slice());
    assert_eq!(table.descendants(sh.pid()), leaves);
    for &leaf in &leaves {
        let info = table.get(leaf).unwrap();
        assert_eq!(info.ppid, sh.pid());
        assert_eq!(info.tag.as_deref(), Some("test/tree"), "tag is inherited");
        assert!(table.children(leaf).is_empty());
        assert!(table.descendants(leaf).is_empty());
    }
    assert!(table.children(me()).contains(&sh.pid()));
    let mine = table.descendants(me());
    let at = |pid| mine.iter().position(|&p| p == pid).unwrap();
    assert!(leaves.iter().all(|&leaf| at(sh.pid()) < at(leaf)));
    assert_eq!(table.get(me()).unwrap().pid, me());
    assert!(table.get(-1).is_none());
    assert_eq!(table.processes().count(), table.len());
}

#[test]
fn descendants_are_breadth_first() {
    let mut sh = Guard::tree(NESTED, "test/nested");
    let pids = sh.read_pids(3);
    let (inner, leaf, deep) = (pids["inner"][0], pids["leaf"][0], pids["deep"][0]);
    let table = ProcessTable::scan(ScanOptions::default()).unwrap();

    let mut level1 = vec![inner, leaf];
    level1.sort_unstable();
    assert_eq!(table.children(sh.pid()), level1.as_slice());
    assert_eq!(table.children(inner), [deep]);
    let mut expected = level1;
    expected.push(deep);
    assert_eq!(table.descendants(sh.pid()), expected);
    assert_eq!(table.descendants(inner), [deep]);
}

#[test]
fn render_tree_indents_children_and_limits_width() {
    let mut sh = Guard::tree(NESTED, "test/render");
    let pids = sh.read_pids(3);
    let (inner, leaf, deep) = (pids["inner"][0], pids["leaf"][0], pids["deep"][0]);
    let table = ProcessTable::scan(ScanOptions::default()).unwrap();

    let text = table.render_tree(sh.pid(), 0);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    // depth-first, siblings in pid order, two spaces per level
    let mut expected = vec![(sh.pid(), 0)];
    let mut kids = [(inner, 1), (leaf, 1)];
    kids.sort_unstable();
    for (pid, depth) in kids {
        expected.push((pid, depth));
        if pid == inner {
            expected.push((deep, 2));
        }
    }
    for (line, (pid, depth)) in lines.iter().zip(expected) {
        let indent = " ".repeat(depth * 2);
        let prefix = format!("{indent}{pid} ");
        assert!(
            line.starts_with(&prefix),
            "{line:?} should start {prefix:?}"
        );
        assert_ne!(line.as_bytes()[depth * 2], b' ');
    }
    // "pid state age comm args"
    let root: Vec<&str> = lines[0].split(' ').collect();
    let info = table.get(sh.pid()).unwrap();
    assert_eq!(root[1], info.state.to_string());
    assert_eq!(root[2], format_age(info.age_ms));
    assert_eq!(root[3], "sh");
    assert_eq!(&root[4..6], ["sh", "-c"]);
    assert!(!text.contains("\n\n") && !lines[0].contains('\t'));
    // The script's newlines are shown as '?', keeping one process per line.
    assert!(lines[0].contains("exec 3<&0?sh -c"), "{}", lines[0]);

    let narrow = table.render_tree(sh.pid(), 24);
    assert_eq!(narrow.lines().count(), 4);
    assert!(narrow.lines().all(|l| l.chars().count() <= 24), "{narrow}");
    assert!(narrow.lines().next().unwrap().ends_with("..."));
    assert_eq!(table.render_tree(-1, 80), "");
    assert_eq!(table.render_tree(deep, 0).lines().count(), 1);
}

#[test]
fn table_survives_duplicates_and_cycles() {
    // Real snapshots, relinked into a cycle as a scan racing with pid reuse could produce.
    let a = Guard::idle(None, &[]);
    let b = Guard::idle(None, &[]);
    let mut pa = snapshot(a.pid(), ScanOptions::default()).unwrap();
    let mut pb = snapshot(b.pid(), ScanOptions::default()).unwrap();
    pa.ppid = pb.pid;
    pb.ppid = pa.pid;
    let mut dup = pa.clone();
    dup.comm = "duplicate".into();
    let table = ProcessTable::new(vec![pb.clone(), pa.clone(), dup]);

    assert_eq!(table.len(), 2);
    assert_eq!(
        table.get(pa.pid).unwrap().comm,
        "sh",
        "first occurrence wins"
    );
    assert_eq!(table.descendants(pa.pid), [pb.pid]);
    assert_eq!(table.descendants(pb.pid), [pa.pid]);
    assert_eq!(table.render_tree(pa.pid, 0).lines().count(), 2);
    let listed: Vec<i32> = table.processes().map(|p| p.pid).collect();
    let mut want = vec![pa.pid, pb.pid];
    want.sort_unstable();
    assert_eq!(listed, want, "pid order");
}

#[test]
fn process_info_round_trips_through_json() {
    let child = Guard::idle(Some("test/json"), &[]);
    let info = snapshot(child.pid(), ScanOptions::ALL).unwrap();
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["tag"], "test/json");
    assert_eq!(json["state"], info.state.to_string());
    let back: ProcessInfo = serde_json::from_value(json).unwrap();
    assert_eq!(back, info);
}

// Parsers, on the exact bytes the kernel produces.

#[test]
fn parse_start_time_counts_from_the_last_paren() {
    let stat = b"42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                 123456 8192 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
    assert_eq!(parse_start_time(stat), Some(123456));
    assert_eq!(parse_start_time(b"42 (x) S 1"), None);
    assert_eq!(parse_start_time(b""), None);
}

#[test]
fn parse_cmdline_handles_padding_and_nothing() {
    assert_eq!(parse_cmdline(b"a\0\0b\0"), ["a", "", "b"]);
    assert_eq!(parse_cmdline(b"title here\0\0\0\0"), ["title here"]);
    assert_eq!(parse_cmdline(b"no-terminator"), ["no-terminator"]);
    assert!(parse_cmdline(b"").is_empty());
    assert!(parse_cmdline(b"\0\0").is_empty());
}

#[test]
fn parse_tag_takes_the_first_exact_key() {
    let env =
        b"CARGO_REAP_SUITE_X=no\0XCARGO_REAP_SUITE=no\0CARGO_REAP_SUITE=a/b\0CARGO_REAP_SUITE=c\0";
    assert_eq!(parse_tag(env).as_deref(), Some("a/b"));
    assert_eq!(parse_tag(b"CARGO_REAP_SUITE\0"), None);
    assert_eq!(parse_tag(b""), None);
}

#[test]
fn parse_cgroup_finds_the_v2_line() {
    let hybrid = b"12:pids:/x\n1:name=systemd:/y\n0::/user.slice/a b.scope\n";
    assert_eq!(
        parse_cgroup_v2(hybrid).as_deref(),
        Some("/user.slice/a b.scope")
    );
    assert_eq!(parse_cgroup_v2(b"3:cpu:/\n"), None);
}

#[test]
fn format_age_units() {
    assert_eq!(format_age(0), "0ms");
    assert_eq!(format_age(999), "999ms");
    assert_eq!(format_age(1_250), "1.2s");
    assert_eq!(format_age(65_000), "1m05s");
    assert_eq!(format_age(2 * 3_600_000 + 13 * 60_000), "2h13m");
    assert_eq!(format_age(3 * 86_400_000 + 4 * 3_600_000), "3d04h");
}

#[test]
fn boottime_ticks_bound_later_start_times() {
    let before = boottime_ticks();
    let child = Guard::sleep(None);
    let started = start_time(child.pid()).unwrap();
    let after = boottime_ticks();
    assert!(
        before <= started && started <= after,
        "{before} {started} {after}"
    );
}

#[test]
fn scan_since_skips_older_processes() {
    let child = Guard::idle(Some("test/since"), &[]);
    let since = start_time(child.pid()).unwrap();
    let recent = scan_since(ScanOptions::ALL, since).unwrap();
    assert!(recent.iter().all(|p| p.start_time >= since));
    assert!(recent.iter().all(|p| p.pid != 1), "pid 1 is older");
    let info = recent
        .iter()
        .find(|p| p.pid == child.pid())
        .expect("listed");
    assert_eq!(info.tag.as_deref(), Some("test/since"));
    assert!(scan_since(ScanOptions::default(), u64::MAX)
        .unwrap()
        .is_empty());
}

#[test]
fn sampler_probes_cpu_time_children_and_executable() {
    // CPU: this test process has used some, and never less later.
    let before = cpu_ticks(me()).unwrap();
    let spin = Instant::now();
    while cpu_ticks(me()).unwrap() == before && spin.elapsed().as_secs() < 5 {}
    assert!(
        cpu_ticks(me()).unwrap() > before,
        "no CPU time counted in 5 s of spinning"
    );

    let mut child = Guard::sleep(None);
    wait_for_state(child.pid(), 'S');
    assert!(children(me()).unwrap().contains(&child.pid()));
    assert_eq!(children(child.pid()).unwrap(), Vec::<i32>::new());
    let own = std::env::current_exe().unwrap();
    assert_eq!(exe(me()).unwrap().as_deref(), own.to_str());
    assert!(exe(child.pid())
        .unwrap()
        .is_some_and(|e| e.ends_with("/sleep")));

    // A zombie has no executable to show; a reaped process is gone.
    child.kill_leave_zombie();
    let zombie = child.pid();
    assert_eq!(exe(zombie).unwrap(), None);
    let pid = child.kill_and_wait();
    assert!(matches!(exe(pid), Err(ProbeError::Gone(_))));
    assert!(matches!(cpu_ticks(pid), Err(ProbeError::Gone(_))));
    assert!(matches!(children(pid), Err(ProbeError::Gone(_))));
}
