//! A suite's tests as libtest lists them (`--list --format terse`, run
//! contained like a suite), and what the user's test arguments say about
//! the listing (which select tests) and the run (one test at a time?).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::process::Signal;

use crate::discover::Suite;
use crate::error::RunError;
use crate::sys::ExitInfo;

use super::command::{is_doctest, suite_command, Output};
use super::context::RunContext;
use super::examine::not_killed_problems;

/// How long `--list` may take when naming the tests in flight of a hang.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);

/// `BINARY --list --format terse [user selection args]`, contained like a suite.
pub fn list_tests(
    ctx: &RunContext<'_>,
    suite: &Suite,
    leaf: &str,
) -> Result<Vec<String>, RunError> {
    let cont = ctx.contain(suite, leaf)?;
    let tmp = tempfile_in(ctx.log_dir, &format!("{leaf}.list"))?;
    let stdout = tmp.try_clone().map_err(|source| RunError::Io {
        what: "duplicating",
        path: ctx.log_dir.to_path_buf(),
        source,
    })?;
    let mut args: Vec<String> = ["--list", "--format", "terse"].map(String::from).into();
    args.extend(selection_args(&ctx.options.test_args));
    let cmd = suite_command(ctx, suite, &args, Output::Listing(stdout));
    let (cont, owned) = ctx.spawn_in(cont, cmd, suite)?;
    // A doctest suite lists through cargo and rustdoc, which may first wait
    // for cargo's build-directory lock: its own timeout bounds that.
    let limit = if is_doctest(suite) {
        LIST_TIMEOUT.max(suite.limits.timeout)
    } else {
        LIST_TIMEOUT
    };
    let exited = owned.wait_exit(Some(limit))?;
    // Whatever it left (or, on timeout, everything) dies with the containment.
    let killed = cont.kill_all()?;
    for line in not_killed_problems(&killed.unkillable) {
        eprintln!(
            "cargo-reap: warning: {}: listing its tests: {line}",
            suite.id
        );
    }
    if !exited {
        owned.signal(Signal::KILL)?;
    }
    let status = owned.reap()?;
    cont.close()?;
    listing_ended(exited, status, limit)?;
    let text = std::fs::read_to_string(&tmp.path).map_err(|source| RunError::Io {
        what: "reading",
        path: tmp.path.clone(),
        source,
    })?;
    parse_listing(&text).map_err(RunError::NotLibtest)
}

/// A listing that did not finish in time, or did not succeed, is an error.
fn listing_ended(exited: bool, status: ExitInfo, limit: Duration) -> Result<(), RunError> {
    if !exited {
        return Err(RunError::Listing(format!(
            "`--list` did not finish within {}s",
            limit.as_secs()
        )));
    }
    if status.code != Some(0) {
        return Err(RunError::Listing(format!(
            "`--list` ended with {}",
            match (status.code, status.signal) {
                (Some(c), _) => format!("exit code {c}"),
                (None, Some(sig)) => format!("signal {sig}"),
                (None, None) => "an unknown status".into(),
            }
        )));
    }
    Ok(())
}

/// Test names from `--list --format terse` (`NAME: test` per line). A name may
/// itself contain newlines (libtest-mimic allows any string): lines without
/// the suffix belong to the name the next suffixed line ends. Text after the
/// last suffixed line is not libtest's: the error quotes it (a `harness =
/// false` binary that does not understand `--list` ran instead).
pub fn parse_listing(text: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut pending: Option<String> = None;
    if text.is_empty() {
        return Ok(names);
    }
    for line in text.strip_suffix('\n').unwrap_or(text).split('\n') {
        let joined = |rest: &str, pending: &mut Option<String>| match pending.take() {
            Some(p) => format!("{p}\n{rest}"),
            None => rest.to_string(),
        };
        match line
            .strip_suffix(": test")
            .or_else(|| line.strip_suffix(": bench"))
        {
            Some(name) => names.push(joined(name, &mut pending)),
            None => pending = Some(joined(line, &mut pending)),
        }
    }
    match pending {
        None => Ok(names),
        Some(odd) => {
            let first = odd.lines().next().unwrap_or("");
            let shown: String = first.chars().take(60).collect();
            Err(format!(
                "`--list` printed `{shown}{}`",
                if shown.len() < odd.len() { "…" } else { "" }
            ))
        }
    }
}

/// Of the user's test-binary arguments, those that select tests (filters,
/// `--exact`, `--skip NAME`, `--ignored`, ...), for `--list`: options about
/// how to run or report (`--test-threads N`, `--format F`, ...) are dropped.
pub fn selection_args(args: &[String]) -> Vec<String> {
    const WITH_VALUE: &[&str] = &[
        "--test-threads",
        "--logfile",
        "--color",
        "--format",
        "-Z",
        "--shuffle-seed",
    ];
    const FLAGS: &[&str] = &[
        "--nocapture",
        "--no-capture",
        "--show-output",
        "-q",
        "--quiet",
        "--shuffle",
        "--report-time",
        "--ensure-time",
        "--force-run-in-process",
        "--list",
    ];
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            it.next();
        } else if FLAGS.contains(&a.as_str())
            || WITH_VALUE.iter().any(|f| a.starts_with(&format!("{f}=")))
        {
        } else {
            out.push(a.clone());
        }
    }
    out
}

/// A file removed when dropped.
struct TempFile {
    file: File,
    path: PathBuf,
}

impl TempFile {
    fn try_clone(&self) -> std::io::Result<File> {
        self.file.try_clone()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            eprintln!("cargo-reap: warning: removing {}: {e}", self.path.display());
        }
    }
}

fn tempfile_in(dir: &Path, name: &str) -> Result<TempFile, RunError> {
    let path = dir.join(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|source| RunError::Io {
            what: "creating",
            path: path.clone(),
            source,
        })?;
    Ok(TempFile { file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listings_with_names_that_span_lines() {
        assert_eq!(
            parse_listing("a: test\nline\nbreak: test\nb::c: bench\nends with: test: test\n")
                .unwrap(),
            ["a", "line\nbreak", "b::c", "ends with: test"]
        );
        assert!(parse_listing("").unwrap().is_empty());
        let e = parse_listing("custom harness v1\nall 3 checks passed\n").unwrap_err();
        assert_eq!(e, "`--list` printed `custom harness v1…`");
    }

    #[test]
    fn keeps_only_selection_args_for_listing() {
        let args: Vec<String> = [
            "foo",
            "--test-threads",
            "1",
            "--exact",
            "--format=json",
            "--skip",
            "bar",
            "--ignored",
            "-q",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            selection_args(&args),
            vec!["foo", "--exact", "--skip", "bar", "--ignored"]
        );
    }
}
