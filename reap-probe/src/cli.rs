//! Argument parsing and output of the `reap-probe` binary.

use std::ffi::OsString;
use std::io::{self, Write};

use reap_probe::{
    forensics, forensics_tree, render_forensics_tree, FindingContext, ProbeError, ProcessTable,
    ScanOptions,
};

pub(crate) const USAGE: &str = "\
usage: reap-probe PID [--tree] [--json] [--width N] [CONTEXT]

Explain why process PID is still alive (read-only: never signals anything): state, age,
command, wait channel, syscall, threads, SIGTERM disposition, open descriptors (pipes with
their direction, sockets with state, addresses and queues) and findings in plain words.

  --tree       the same for PID and all its descendants, children indented under parents
  --json       print JSON: the forensics object, or with --tree a list of them (parents first)
  --width N    cut each process's header line to N columns (default: $COLUMNS, else no limit)
  -h, --help   print this help

CONTEXT, what /proc cannot know, for the findings that compare against a test suite:
  --suite-pgid PGID    the suite's process group (escaped-group); with --tree default: PID's
  --suite-sid SID      the suite's session (escaped-session); with --tree default: PID's
  --reaper PID         the runner, child subreaper of the suite (orphaned: ppid is it or 1)
  --runner-pipe INODE  an inode of the runner's output pipes (holds-runner-pipe); repeatable

exit status: 0 ok, 1 no such process or /proc unreadable, 2 usage error";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// Print the usage text.
    Help,
    /// Probe a process.
    Probe(Args),
}

/// Arguments of a probe.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Args {
    pub pid: i32,
    pub tree: bool,
    pub json: bool,
    /// 0: no limit.
    pub width: usize,
    pub suite_pgid: Option<i32>,
    pub suite_sid: Option<i32>,
    pub reaper: Option<i32>,
    pub runner_pipes: Vec<u64>,
}

/// Parse the arguments (without the program name). `columns` is `$COLUMNS`, if set.
pub(crate) fn parse(args: &[OsString], columns: Option<&str>) -> Result<Request, String> {
    let mut pid = None;
    let mut out = Args::default();
    let mut width = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let arg = arg
            .to_str()
            .ok_or_else(|| format!("argument is not UTF-8: {arg:?}"))?;
        // `--name value` or `--name=value`.
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value)),
            _ => (arg, None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            match inline {
                Some(v) => Ok(v.to_owned()),
                None => args
                    .next()
                    .and_then(|v| v.to_str())
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{name} needs {what}")),
            }
        };
        match name {
            "-h" | "--help" => return Ok(Request::Help),
            "--tree" if inline.is_none() => out.tree = true,
            "--json" if inline.is_none() => out.json = true,
            "--width" => width = Some(number(name, &value("a number of columns")?)?),
            "--suite-pgid" => {
                out.suite_pgid = Some(non_negative(name, &value("a process group")?)?)
            }
            "--suite-sid" => out.suite_sid = Some(non_negative(name, &value("a session id")?)?),
            "--reaper" => out.reaper = Some(positive(name, &value("a process id")?)?),
            "--runner-pipe" => out
                .runner_pipes
                .push(number(name, &value("a pipe inode")?)?),
            _ if arg.starts_with('-') && arg.parse::<i32>().is_err() => {
                return Err(format!("unknown option {arg:?}"));
            }
            _ => {
                if pid.is_some() {
                    return Err(format!("unexpected argument {arg:?}: only one PID"));
                }
                match arg.parse::<i32>() {
                    Ok(p) if p > 0 => pid = Some(p),
                    _ => return Err(format!("not a process id: {arg:?}")),
                }
            }
        }
    }
    out.pid = pid.ok_or("missing PID")?;
    out.width = width
        .or_else(|| columns.and_then(|c| c.trim().parse().ok()))
        .unwrap_or(0);
    Ok(Request::Probe(out))
}

fn number<T: std::str::FromStr>(option: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{option} needs a number, got {value:?}"))
}

/// A process group or session id: 0 is what /proc shows inside a pid
/// namespace for a group or session whose leader lives outside it.
fn non_negative(option: &str, value: &str) -> Result<i32, String> {
    match number::<i32>(option, value)? {
        n if n >= 0 => Ok(n),
        _ => Err(format!("{option} needs a number >= 0, got {value:?}")),
    }
}

fn positive(option: &str, value: &str) -> Result<i32, String> {
    match number::<i32>(option, value)? {
        n if n > 0 => Ok(n),
        _ => Err(format!("{option} needs a positive number, got {value:?}")),
    }
}

/// Probe as asked and write the result to `out`.
pub(crate) fn run(args: &Args, out: &mut dyn Write) -> Result<(), RunError> {
    let mut ctx = FindingContext {
        runner_pipe_inodes: args.runner_pipes.clone(),
        suite_pgid: args.suite_pgid,
        suite_sid: args.suite_sid,
        reaper_pid: args.reaper,
    };
    if !args.tree {
        let report = forensics(args.pid, &ctx)?;
        if args.json {
            writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        } else {
            write!(out, "{}", report.render(args.width))?;
        }
        return Ok(());
    }
    let table = ProcessTable::scan(ScanOptions::default())?;
    let root = table.get(args.pid).ok_or(ProbeError::Gone(args.pid))?;
    // The tree's root stands for the suite unless told otherwise.
    ctx.suite_pgid = ctx.suite_pgid.or(Some(root.pgid));
    ctx.suite_sid = ctx.suite_sid.or(Some(root.sid));
    let reports = forensics_tree(&table, args.pid, &ctx);
    if reports.is_empty() {
        return Err(ProbeError::Gone(args.pid).into());
    }
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&reports)?)?;
    } else {
        write!(out, "{}", render_forensics_tree(&reports, args.width))?;
    }
    Ok(())
}

/// Why a probe run failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("cannot write output: {0}")]
    Output(#[from] io::Error),
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The whole program: returns the exit status.
pub fn main(args: &[OsString]) -> i32 {
    let columns = std::env::var("COLUMNS").ok();
    let args = match parse(args, columns.as_deref()) {
        Ok(Request::Probe(args)) => args,
        Ok(Request::Help) => {
            println!("{USAGE}");
            return 0;
        }
        Err(msg) => {
            eprintln!("reap-probe: {msg}\n\n{USAGE}");
            return 2;
        }
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match run(&args, &mut out).and_then(|()| out.flush().map_err(RunError::from)) {
        Ok(()) => 0,
        Err(RunError::Probe(ProbeError::Gone(pid))) => {
            eprintln!("reap-probe: no process with pid {pid}");
            1
        }
        // Like other Unix tools, go quietly when the reader of our output has gone away.
        Err(RunError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("reap-probe: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str], columns: Option<&str>) -> Result<Request, String> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(&args, columns)
    }

    fn probe(pid: i32, tree: bool, json: bool, width: usize) -> Request {
        Request::Probe(Args {
            pid,
            tree,
            json,
            width,
            ..Args::default()
        })
    }

    #[test]
    fn parses_flags_in_any_order() {
        assert_eq!(parse_strs(&["42"], None), Ok(probe(42, false, false, 0)));
        assert_eq!(
            parse_strs(&["--json", "42", "--tree"], None),
            Ok(probe(42, true, true, 0))
        );
        assert_eq!(
            parse_strs(&["42", "--tree", "--width", "60"], Some("100")),
            Ok(probe(42, true, false, 60))
        );
        assert_eq!(
            parse_strs(&["--width=70", "42"], None),
            Ok(probe(42, false, false, 70))
        );
        assert_eq!(
            parse_strs(&["42"], Some("100")),
            Ok(probe(42, false, false, 100))
        );
        assert_eq!(parse_strs(&["42", "--help"], None), Ok(Request::Help));
    }

    #[test]
    fn parses_the_finding_context() {
        let args = [
            "7",
            "--suite-pgid",
            "10",
            "--suite-sid=11",
            "--reaper",
            "12",
            "--runner-pipe",
            "1234",
            "--runner-pipe=5678",
        ];
        assert_eq!(
            parse_strs(&args, None),
            Ok(Request::Probe(Args {
                pid: 7,
                suite_pgid: Some(10),
                suite_sid: Some(11),
                reaper: Some(12),
                runner_pipes: vec![1234, 5678],
                ..Args::default()
            }))
        );
        // Group and session 0: leaders outside our pid namespace.
        assert_eq!(
            parse_strs(&["7", "--suite-pgid", "0", "--suite-sid", "0"], None),
            Ok(Request::Probe(Args {
                pid: 7,
                suite_pgid: Some(0),
                suite_sid: Some(0),
                ..Args::default()
            }))
        );
    }

    #[test]
    fn rejects_bad_usage() {
        for bad in [
            &[][..],
            &["--tree"],
            &["abc"],
            &["0"],
            &["-5"],
            &["1", "2"],
            &["1", "--bogus"],
            &["1", "--width"],
            &["1", "--width", "x"],
            &["1", "--tree=yes"],
            &["1", "--reaper", "0"],
            &["1", "--suite-pgid", "-3"],
            &["1", "--runner-pipe", "pipe:[3]"],
        ] {
            assert!(parse_strs(bad, None).is_err(), "{bad:?}");
        }
    }
}
