//! Cargo's target runner for the suites' target, as `cargo test` finds it:
//! `target.<triple>.runner` (from `--config`, then
//! `CARGO_TARGET_<TRIPLE>_RUNNER`, then the `.cargo/config.toml` files from
//! the current directory up and `$CARGO_HOME/config.toml`), else the one
//! `target.'cfg(..)'.runner` whose expression matches the target. Each suite
//! then runs as `RUNNER... BINARY ARGS`, inside its containment. Also the
//! `[env]` table of the same configuration ([`env_config`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cargo_metadata::cargo_platform::{Cfg, CfgExpr};

/// Why the runner could not be determined (a usage error: exit 2).
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("reading cargo configuration {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cargo configuration {what}: {why}")]
    Parse { what: String, why: String },
    #[error("running `{what}`: {why}")]
    Rustc { what: String, why: String },
    #[error("several `target.'cfg(..)'.runner` match {triple}: {list} (cargo refuses this too)")]
    Ambiguous { triple: String, list: String },
}

/// One configuration source: its table and the directory relative runner
/// paths are resolved against.
struct Source {
    table: toml::Table,
    base: PathBuf,
    what: String,
}

/// The target runner for `target` (`None`: the host), or an empty list when
/// none is configured.
pub fn resolve(target: Option<&str>, cli_config: &[String]) -> Result<Vec<String>, RunnerError> {
    let cwd = std::env::current_dir().map_err(|source| RunnerError::Read {
        path: ".".into(),
        source,
    })?;
    let sources = sources(&cwd, cli_config)?;
    if !any_runner(&sources) {
        return Ok(Vec::new());
    }
    // `--config` first (later ones win), then the environment, then the files.
    let (cli, files): (Vec<&Source>, Vec<&Source>) =
        sources.iter().partition(|s| s.what.starts_with("--config"));
    // Without --target: `build.target` of the configuration, else the host.
    let triple = match target
        .map(str::to_string)
        .or_else(|| build_target(&cli, &files))
    {
        Some(t) => t,
        None => host_triple()?,
    };
    if let Some(r) = exact_runner(&triple, &cli, &files) {
        return r;
    }
    cfg_runner(&triple, &cli, &files)
}

/// Is a runner configured anywhere (a `CARGO_TARGET_*_RUNNER` variable, a
/// `target.*.runner` key)? If not, nothing more is read.
fn any_runner(sources: &[Source]) -> bool {
    let env_runner =
        std::env::vars().any(|(k, _)| k.starts_with("CARGO_TARGET_") && k.ends_with("_RUNNER"));
    env_runner
        || sources.iter().any(|s| {
            s.table
                .get("target")
                .and_then(|t| t.as_table())
                .is_some_and(|t| t.values().any(|v| v.get("runner").is_some()))
        })
}

/// `target.<triple>.runner`: from `--config` (the last wins), then
/// `CARGO_TARGET_<TRIPLE>_RUNNER`, then the files (the closest wins).
fn exact_runner(
    triple: &str,
    cli: &[&Source],
    files: &[&Source],
) -> Option<Result<Vec<String>, RunnerError>> {
    let exact = |s: &&Source| {
        s.table
            .get("target")
            .and_then(|t| t.get(triple))
            .and_then(|t| t.get("runner"))
            .map(|v| runner_value(v, &s.base, &s.what))
    };
    if let Some(r) = cli.iter().rev().find_map(exact) {
        return Some(r);
    }
    let var = format!(
        "CARGO_TARGET_{}_RUNNER",
        triple.to_uppercase().replace(['-', '.'], "_")
    );
    if let Some(v) = std::env::var_os(&var) {
        let v = v.to_string_lossy();
        return Some(Ok(v.split_whitespace().map(str::to_string).collect()));
    }
    files.iter().find_map(exact)
}

/// `target.'cfg(..)'.runner`: the closest source's value per expression;
/// more than one matching expression is an error, as in cargo.
fn cfg_runner(
    triple: &str,
    cli: &[&Source],
    files: &[&Source],
) -> Result<Vec<String>, RunnerError> {
    let mut matching: Vec<(String, Vec<String>)> = Vec::new();
    let mut cfgs: Option<Vec<Cfg>> = None;
    for s in cli.iter().rev().chain(files.iter()) {
        let Some(targets) = s.table.get("target").and_then(|t| t.as_table()) else {
            continue;
        };
        for (key, t) in targets {
            let Some(expr) = key.strip_prefix("cfg(").and_then(|k| k.strip_suffix(')')) else {
                continue;
            };
            let Some(value) = t.get("runner") else {
                continue;
            };
            if matching.iter().any(|(k, _)| k == key) {
                continue;
            }
            let expr: CfgExpr = expr.parse().map_err(|e| RunnerError::Parse {
                what: format!("{}: target.'{key}'", s.what),
                why: format!("{e}"),
            })?;
            if cfgs.is_none() {
                cfgs = Some(target_cfg(triple)?);
            }
            if expr.matches(cfgs.as_deref().unwrap_or_default()) {
                matching.push((key.clone(), runner_value(value, &s.base, &s.what)?));
            }
        }
    }
    match matching.len() {
        0 => Ok(Vec::new()),
        1 => Ok(matching.remove(0).1),
        _ => Err(RunnerError::Ambiguous {
            triple: triple.to_string(),
            list: matching
                .iter()
                .map(|(k, _)| format!("target.'{k}'"))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// `build.target` (`--config`, then `CARGO_BUILD_TARGET`, then the files),
/// when it names one target.
fn build_target(cli: &[&Source], files: &[&Source]) -> Option<String> {
    let from = |s: &Source| {
        s.table
            .get("build")
            .and_then(|b| b.get("target"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
    };
    cli.iter()
        .rev()
        .find_map(|s| from(s))
        .or_else(|| std::env::var("CARGO_BUILD_TARGET").ok())
        .or_else(|| files.iter().find_map(|s| from(s)))
}

/// `runner = "prog arg"` or `runner = ["prog", "arg"]`; a relative program
/// path with a `/` is relative to the configuration's directory (cargo's rule).
fn runner_value(v: &toml::Value, base: &Path, what: &str) -> Result<Vec<String>, RunnerError> {
    let mut parts: Vec<String> = match v {
        toml::Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
        toml::Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| RunnerError::Parse {
                what: what.to_string(),
                why: "a runner is a string or an array of strings".into(),
            })?,
        _ => {
            return Err(RunnerError::Parse {
                what: what.to_string(),
                why: "a runner is a string or an array of strings".into(),
            })
        }
    };
    if let Some(p) = parts.first_mut() {
        if p.contains('/') && Path::new(p.as_str()).is_relative() {
            *p = base.join(&*p).display().to_string();
        }
    }
    Ok(parts)
}

/// `--config` values (closest), then the config files from `cwd` up, then `$CARGO_HOME`.
fn sources(cwd: &Path, cli_config: &[String]) -> Result<Vec<Source>, RunnerError> {
    let mut out = Vec::new();
    for c in cli_config {
        let what = format!("--config {c}");
        let path = cwd.join(c);
        let table = if !c.contains('=') || path.is_file() {
            read_table(&path)?
        } else {
            toml::from_str::<toml::Table>(c).map_err(|e| RunnerError::Parse {
                what: what.clone(),
                why: e.to_string(),
            })?
        };
        out.push(Source {
            table,
            base: cwd.to_path_buf(),
            what,
        });
    }
    let mut files = Vec::new();
    for dir in cwd.ancestors() {
        files.push(dir.join(".cargo"));
    }
    if let Some(home) = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
    {
        if !files.contains(&home) {
            files.push(home);
        }
    }
    for dot_cargo in files {
        // cargo reads `config.toml`, or the older `config`.
        let Some(path) = ["config.toml", "config"]
            .iter()
            .map(|n| dot_cargo.join(n))
            .find(|p| p.is_file())
        else {
            continue;
        };
        let base = dot_cargo
            .parent()
            .map_or_else(|| dot_cargo.clone(), Path::to_path_buf);
        out.push(Source {
            table: read_table(&path)?,
            base,
            what: path.display().to_string(),
        });
    }
    Ok(out)
}

fn read_table(path: &Path) -> Result<toml::Table, RunnerError> {
    let text = std::fs::read_to_string(path).map_err(|source| RunnerError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str::<toml::Table>(&text).map_err(|e| RunnerError::Parse {
        what: path.display().to_string(),
        why: e.to_string(),
    })
}

fn rustc() -> PathBuf {
    std::env::var_os("RUSTC").map_or_else(|| PathBuf::from("rustc"), PathBuf::from)
}

/// `rustc ARGS`'s standard output (`$RUSTC` when set), run in `dir` when
/// given (a workspace's `rust-toolchain.toml` picks rustup's toolchain there).
pub(crate) fn rustc_output(dir: Option<&Path>, args: &[&str]) -> Result<String, RunnerError> {
    let what = format!("{} {}", rustc().display(), args.join(" "));
    let mut cmd = Command::new(rustc());
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| RunnerError::Rustc {
            what: what.clone(),
            why: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(RunnerError::Rustc {
            what,
            why: format!("it exited with {}", out.status),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `rustc -vV`'s `host:` line.
fn host_triple() -> Result<String, RunnerError> {
    let text = rustc_output(None, &["-vV"])?;
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_string())
        .ok_or_else(|| RunnerError::Rustc {
            what: "rustc -vV".into(),
            why: "no `host:` line in its output".into(),
        })
}

/// `rustc --print cfg --target TRIPLE`, parsed.
fn target_cfg(triple: &str) -> Result<Vec<Cfg>, RunnerError> {
    let text = rustc_output(None, &["--print", "cfg", "--target", triple])?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.parse::<Cfg>().map_err(|e| RunnerError::Rustc {
                what: format!("rustc --print cfg --target {triple}"),
                why: format!("cannot parse `{l}`: {e}"),
            })
        })
        .collect()
}

/// One variable of cargo's `[env]` configuration table, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEnv {
    pub name: String,
    pub value: String,
    /// `force = true`: set even when the variable is already in cargo's
    /// environment (otherwise that value is kept).
    pub force: bool,
}

/// The `[env]` table of cargo's configuration as cargo applies it to a test
/// process: the same sources as the runner (`--config`, later ones first,
/// then `.cargo/config.toml` from the current directory up, then
/// `$CARGO_HOME`); for each variable the closest definition wins. A value is
/// `"text"` or `{ value = "text", force = bool, relative = bool }`;
/// `relative = true` joins it to the directory holding the `.cargo` folder
/// it was defined in (the current directory for `--config`).
pub fn env_config(cli_config: &[String]) -> Result<Vec<ConfigEnv>, RunnerError> {
    let cwd = std::env::current_dir().map_err(|source| RunnerError::Read {
        path: ".".into(),
        source,
    })?;
    let sources = sources(&cwd, cli_config)?;
    let (cli, files): (Vec<&Source>, Vec<&Source>) =
        sources.iter().partition(|s| s.what.starts_with("--config"));
    env_from(cli.into_iter().rev().chain(files))
}

/// The `[env]` variables of `sources`, closest first.
fn env_from<'a>(sources: impl Iterator<Item = &'a Source>) -> Result<Vec<ConfigEnv>, RunnerError> {
    let mut out: Vec<ConfigEnv> = Vec::new();
    for s in sources {
        let Some(env) = s.table.get("env") else {
            continue;
        };
        let bad = |why: String| RunnerError::Parse {
            what: format!("{}: [env]", s.what),
            why,
        };
        let env = env
            .as_table()
            .ok_or_else(|| bad("`env` is not a table".into()))?;
        for (name, v) in env {
            if out.iter().any(|e| &e.name == name) {
                continue;
            }
            let (value, force, relative) = match v {
                toml::Value::String(text) => (text.clone(), false, false),
                toml::Value::Table(t) => {
                    let flag = |key: &str| match t.get(key) {
                        None => Ok(false),
                        Some(toml::Value::Boolean(b)) => Ok(*b),
                        Some(_) => Err(bad(format!("`{name}.{key}` is not a boolean"))),
                    };
                    let text = t
                        .get("value")
                        .and_then(toml::Value::as_str)
                        .ok_or_else(|| bad(format!("`{name}.value` is not a string")))?;
                    (text.to_string(), flag("force")?, flag("relative")?)
                }
                _ => return Err(bad(format!("`{name}` is neither a string nor a table"))),
            };
            let value = if relative {
                s.base.join(&value).display().to_string()
            } else {
                value
            };
            out.push(ConfigEnv {
                name: name.clone(),
                value,
                force,
            });
        }
    }
    Ok(out)
}

/// Is this runner cargo-reap itself (`cargo-reap run --`, as the README
/// suggests for plain `cargo test`)? Then it is not used: the suites already
/// run in cargo-reap's containment.
pub fn is_cargo_reap(runner: &[String]) -> bool {
    runner
        .first()
        .is_some_and(|p| Path::new(p).file_name().is_some_and(|n| n == "cargo-reap"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_values_as_cargo_reads_them() {
        let base = Path::new("/ws");
        let v: toml::Value = toml::Value::String("qemu-x -L /x".into());
        assert_eq!(
            runner_value(&v, base, "t").unwrap(),
            vec!["qemu-x", "-L", "/x"]
        );
        let v = toml::Value::Array(vec!["tools/run.sh".into(), "--flag".into()]);
        assert_eq!(
            runner_value(&v, base, "t").unwrap(),
            vec!["/ws/tools/run.sh", "--flag"]
        );
        assert!(runner_value(&toml::Value::Integer(1), base, "t").is_err());
    }

    #[test]
    fn build_target_from_config_closest_first() {
        let src = |what: &str, text: &str| Source {
            table: toml::from_str(text).unwrap(),
            base: PathBuf::from("/"),
            what: what.into(),
        };
        let cli = src("--config build.target='a-b-c'", "build.target = 'a-b-c'");
        let file = src("/x/.cargo/config.toml", "[build]\ntarget = 'd-e-f'\n");
        let multi = src("/y/.cargo/config.toml", "[build]\ntarget = ['g', 'h']\n");
        assert_eq!(build_target(&[&cli], &[&file]).as_deref(), Some("a-b-c"));
        if std::env::var_os("CARGO_BUILD_TARGET").is_none() {
            assert_eq!(build_target(&[], &[&file]).as_deref(), Some("d-e-f"));
            assert_eq!(build_target(&[], &[&multi]), None);
        }
    }

    #[test]
    fn env_table_as_cargo_applies_it() {
        let src = |what: &str, base: &str, text: &str| Source {
            table: toml::from_str(text).unwrap(),
            base: PathBuf::from(base),
            what: what.into(),
        };
        let cli = src("--config env.A='cli'", "/cwd", "env.A = 'cli'");
        let near = src(
            "/w/.cargo/config.toml",
            "/w",
            "[env]\nA = 'near'\nB = { value = 'b', force = true }\nC = { value = 'd/e', relative = true }\n",
        );
        let far = src("/.cargo/config.toml", "/", "[env]\nB = 'far'\nD = 'far'\n");
        let env = env_from([&cli, &near, &far].into_iter()).unwrap();
        let got: Vec<(&str, &str, bool)> = env
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_str(), e.force))
            .collect();
        assert_eq!(
            got,
            [
                ("A", "cli", false),
                ("B", "b", true),
                ("C", "/w/d/e", false),
                ("D", "far", false)
            ]
        );
        let bad = src("/x/.cargo/config.toml", "/x", "[env]\nA = 3\n");
        assert!(env_from([&bad].into_iter()).is_err());
    }

    #[test]
    fn recognises_cargo_reap_as_runner() {
        assert!(is_cargo_reap(&["/usr/bin/cargo-reap".into(), "run".into()]));
        assert!(!is_cargo_reap(&["qemu-aarch64".into()]));
    }
}
