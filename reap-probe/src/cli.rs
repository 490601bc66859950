//! Argument parsing and output of the `reap-probe` binary.

use std::ffi::OsString;
use std::io::{self, Write};

use reap_probe::{format_age, snapshot, ProbeError, ProcessInfo, ProcessTable, ScanOptions};

pub(crate) const USAGE: &str = "\
usage: reap-probe PID [--tree] [--json] [--width N]

Print what /proc says about process PID (read-only, never signals anything).

  --tree       also show its descendants, as an indented tree
  --json       print JSON: the process object, or with --tree
               {\"process\": {...}, \"descendants\": [{...}, ...]} (breadth-first)
  --width N    cut tree lines to N columns (default: $COLUMNS, else no limit)
  -h, --help   print this help

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
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Args {
    pub pid: i32,
    pub tree: bool,
    pub json: bool,
    /// 0: no limit.
    pub width: usize,
}

/// Parse the arguments (without the program name). `columns` is `$COLUMNS`, if set.
pub(crate) fn parse(args: &[OsString], columns: Option<&str>) -> Result<Request, String> {
    let mut pid = None;
    let mut tree = false;
    let mut json = false;
    let mut width = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let arg = arg
            .to_str()
            .ok_or_else(|| format!("argument is not UTF-8: {arg:?}"))?;
        match arg {
            "-h" | "--help" => return Ok(Request::Help),
            "--tree" => tree = true,
            "--json" => json = true,
            "--width" => {
                let value = args.next().and_then(|v| v.to_str()).unwrap_or("");
                width = Some(parse_width(value)?);
            }
            _ if arg.starts_with("--width=") => width = Some(parse_width(&arg[8..])?),
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
    let pid = pid.ok_or("missing PID")?;
    let width = width
        .or_else(|| columns.and_then(|c| c.trim().parse().ok()))
        .unwrap_or(0);
    Ok(Request::Probe(Args {
        pid,
        tree,
        json,
        width,
    }))
}

fn parse_width(value: &str) -> Result<usize, String> {
    value
        .parse()
        .map_err(|_| format!("--width needs a number of columns, got {value:?}"))
}

/// Probe as asked and write the result to `out`.
pub(crate) fn run(args: &Args, out: &mut dyn Write) -> Result<(), RunError> {
    if !args.tree {
        let info = snapshot(args.pid, ScanOptions::ALL)?;
        if args.json {
            writeln!(out, "{}", serde_json::to_string_pretty(&info)?)?;
        } else {
            write_details(out, &info)?;
        }
        return Ok(());
    }
    let table = ProcessTable::scan(ScanOptions::ALL)?;
    let info = table.get(args.pid).ok_or(ProbeError::Gone(args.pid))?;
    if args.json {
        let descendants: Vec<&ProcessInfo> = table
            .descendants(args.pid)
            .into_iter()
            .filter_map(|pid| table.get(pid))
            .collect();
        let doc = TreeJson {
            process: info,
            descendants,
        };
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        write_details(out, info)?;
        writeln!(out)?;
        write!(out, "{}", table.render_tree(args.pid, args.width))?;
    }
    Ok(())
}

/// The `--tree --json` document.
#[derive(serde::Serialize)]
struct TreeJson<'a> {
    process: &'a ProcessInfo,
    /// Breadth-first.
    descendants: Vec<&'a ProcessInfo>,
}

/// One `field value` line per field.
fn write_details(out: &mut dyn Write, info: &ProcessInfo) -> io::Result<()> {
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    writeln!(out, "pid         {}", info.pid)?;
    writeln!(out, "ppid        {}", info.ppid)?;
    writeln!(out, "pgid        {}", info.pgid)?;
    writeln!(out, "sid         {}", info.sid)?;
    writeln!(out, "state       {}", info.state)?;
    writeln!(out, "comm        {:?}", info.comm)?;
    writeln!(out, "cmdline     {:?}", info.cmdline)?;
    writeln!(out, "start_time  {} ticks after boot", info.start_time)?;
    writeln!(
        out,
        "age         {} ({} ms)",
        format_age(info.age_ms),
        info.age_ms
    )?;
    writeln!(out, "threads     {}", info.threads)?;
    writeln!(out, "rss_bytes   {}", info.rss_bytes)?;
    writeln!(out, "tag         {}", or_dash(&info.tag))?;
    writeln!(out, "cgroup      {}", or_dash(&info.cgroup))?;
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
pub(crate) fn main(args: &[OsString]) -> i32 {
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
        ] {
            assert!(parse_strs(bad, None).is_err(), "{bad:?}");
        }
    }
}
