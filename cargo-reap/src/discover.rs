//! Build and discovery: `cargo test --no-run --message-format=json-render-diagnostics`,
//! then every test executable from cargo's JSON messages, with the environment
//! cargo itself gives a test binary at run time.

use std::collections::HashMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cargo_metadata::{Message, Metadata, MetadataCommand, Package, PackageId, TargetKind};

use crate::cli::CargoArgs;
use crate::error::BuildError;

/// One test binary: the unit the runner contains, times out and reaps.
#[derive(Debug, Clone)]
pub struct Suite {
    /// `<package>::<target>`
    pub id: String,
    pub package: String,
    pub target: String,
    /// `lib`, `bin`, `test`, `example` or `bench`
    pub kind: String,
    pub binary: PathBuf,
    /// The package root: cargo runs test binaries there.
    pub cwd: PathBuf,
    /// Environment cargo sets for test binaries (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, ...).
    pub env: Vec<(String, String)>,
    /// Its time limits (defaults until the run applies flags and configuration).
    pub limits: crate::supervise::Limits,
}

impl Suite {
    /// A name safe for files and cgroup directories.
    pub fn slug(&self) -> String {
        self.id
            .replace("::", "__")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
}

/// The one suite of `cargo reap run -- PROGRAM ...`. As a cargo target runner
/// (cargo sets `CARGO_PKG_NAME` and passes `target/<profile>/deps/NAME-HASH`)
/// it gets the usual `<package>::<target>` id; otherwise `run::<program>`.
pub fn command_suite(program: &str) -> Result<Suite, crate::error::EngineError> {
    let binary = which::which(program)
        .map_err(|e| crate::error::EngineError::Usage(format!("cannot run `{program}`: {e}")))?;
    let cwd = std::env::current_dir().map_err(|e| {
        crate::error::EngineError::Usage(format!("the current directory is not usable: {e}"))
    })?;
    let stem = binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| program.to_string());
    let (package, target, kind) = match std::env::var("CARGO_PKG_NAME") {
        Ok(pkg) if binary.parent().is_some_and(|p| p.ends_with("deps")) => {
            // `NAME-0123456789abcdef`: the target name is before the hash.
            let target = match stem.rsplit_once('-') {
                Some((name, hash))
                    if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) =>
                {
                    name.to_string()
                }
                _ => stem.clone(),
            };
            (pkg, target, "test")
        }
        _ => ("run".to_string(), stem.clone(), "command"),
    };
    Ok(Suite {
        id: format!("{package}::{target}"),
        package,
        target,
        kind: kind.into(),
        binary,
        cwd,
        env: Vec::new(),
        limits: Default::default(),
    })
}

/// The cargo program: `$CARGO` when cargo invoked us, else `cargo` from PATH.
pub fn cargo_program() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"))
}

/// Options shared by `cargo metadata` and `cargo test`.
fn common_flags(a: &CargoArgs) -> Vec<String> {
    let mut v = Vec::new();
    for c in &a.config {
        v.push("--config".into());
        v.push(c.clone());
    }
    for z in &a.unstable {
        v.push("-Z".into());
        v.push(z.clone());
    }
    if a.locked {
        v.push("--locked".into());
    }
    if a.frozen {
        v.push("--frozen".into());
    }
    if a.offline {
        v.push("--offline".into());
    }
    v
}

/// What `--message-format` asks of the build: the value given to cargo (its
/// JSON messages are what discovery reads) and whether the user wants those
/// JSON messages on stdout too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageFormat {
    pub cargo: String,
    pub echo_json: bool,
}

/// `--message-format` values (repeated or comma-separated, as cargo takes them).
/// `human` (the default): cargo renders diagnostics as usual; `short`: cargo
/// renders them short; `json...`: cargo's JSON messages are copied to stdout.
pub fn message_format(values: &[String]) -> Result<MessageFormat, String> {
    let parts: Vec<&str> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    for p in &parts {
        if !matches!(
            *p,
            "human"
                | "short"
                | "json"
                | "json-diagnostic-short"
                | "json-diagnostic-rendered-ansi"
                | "json-render-diagnostics"
        ) {
            return Err(format!(
                "--message-format {p}: expected human, short, json, json-diagnostic-short, json-diagnostic-rendered-ansi or json-render-diagnostics"
            ));
        }
    }
    let json = parts.iter().any(|p| p.starts_with("json"));
    let plain = parts.iter().find(|p| !p.starts_with("json"));
    match (json, plain) {
        (true, Some(p)) => Err(format!(
            "--message-format {p} cannot be combined with the json formats (as with cargo)"
        )),
        (true, None) => {
            let mut cargo: Vec<&str> = parts.clone();
            if !cargo.contains(&"json") {
                cargo.insert(0, "json");
            }
            Ok(MessageFormat {
                cargo: cargo.join(","),
                echo_json: true,
            })
        }
        (false, Some(&"short")) if !parts.contains(&"human") => Ok(MessageFormat {
            cargo: "json-diagnostic-short,json-render-diagnostics".into(),
            echo_json: false,
        }),
        (false, Some(_)) if parts.contains(&"short") => {
            Err("--message-format human and short exclude each other".into())
        }
        (false, _) => Ok(MessageFormat {
            cargo: "json-render-diagnostics".into(),
            echo_json: false,
        }),
    }
}

/// The `cargo test --no-run` argument list for the user's selection flags.
pub fn build_args(a: &CargoArgs) -> Vec<String> {
    // An invalid --message-format is refused before the build (engine).
    let format = message_format(&a.message_format)
        .map_or_else(|_| "json-render-diagnostics".to_string(), |f| f.cargo);
    let mut v: Vec<String> = vec![
        "test".into(),
        "--no-run".into(),
        format!("--message-format={format}"),
    ];
    let mut push_all = |flag: &str, vals: &[String]| {
        for x in vals {
            v.push(flag.into());
            v.push(x.clone());
        }
    };
    push_all("--package", &a.package);
    push_all("--exclude", &a.exclude);
    push_all("--bin", &a.bin);
    push_all("--test", &a.test);
    push_all("--features", &a.features);
    for (on, flag) in [
        (a.workspace, "--workspace"),
        (a.lib, "--lib"),
        (a.bins, "--bins"),
        (a.tests, "--tests"),
        (a.examples, "--examples"),
        (a.benches, "--benches"),
        (a.all_targets, "--all-targets"),
        (a.all_features, "--all-features"),
        (a.no_default_features, "--no-default-features"),
        (a.release, "--release"),
    ] {
        if on {
            v.push(flag.into());
        }
    }
    for (val, flag) in [
        (a.profile.as_ref().map(|p| p.to_string()), "--profile"),
        (
            a.target_dir.as_ref().map(|p| p.display().to_string()),
            "--target-dir",
        ),
        (
            a.manifest_path.as_ref().map(|p| p.display().to_string()),
            "--manifest-path",
        ),
        (a.build_jobs.clone(), "--jobs"),
        (a.target.clone(), "--target"),
        (a.color.map(|c| c.as_str().to_string()), "--color"),
    ] {
        if let Some(val) = val {
            v.push(flag.into());
            v.push(val);
        }
    }
    v.extend(common_flags(a));
    v
}

/// Workspace metadata (packages, target directory), without dependencies.
pub fn metadata(a: &CargoArgs) -> Result<Metadata, BuildError> {
    let mut cmd = MetadataCommand::new();
    cmd.cargo_path(cargo_program())
        .no_deps()
        .other_options(common_flags(a));
    if let Some(mp) = &a.manifest_path {
        cmd.manifest_path(mp);
    }
    Ok(cmd.exec()?)
}

/// Where run logs go: `<target-dir>/reap/`.
pub fn reap_dir(a: &CargoArgs, meta: &Metadata) -> PathBuf {
    a.target_dir
        .clone()
        .unwrap_or_else(|| meta.target_directory.clone().into_std_path_buf())
        .join("reap")
}

/// Build the test binaries; compiler output reaches the user as cargo renders it.
/// A test executable as cargo reported it.
pub struct Built {
    package_id: PackageId,
    manifest_path: PathBuf,
    target: String,
    kinds: Vec<TargetKind>,
    executable: PathBuf,
}

/// The suites of the built test executables, with their package's environment.
pub fn suites(built: Vec<Built>, meta: &Metadata) -> Vec<Suite> {
    let packages: HashMap<&PackageId, &Package> =
        meta.packages.iter().map(|p| (&p.id, p)).collect();
    let mut suites: Vec<Suite> = built
        .into_iter()
        .map(|b| {
            suite_from(
                packages.get(&b.package_id).copied(),
                &b.manifest_path,
                &b.target,
                &b.kinds,
                b.executable,
            )
        })
        .collect();
    // Deterministic order, whatever order cargo finished the builds in.
    suites.sort_by(|a, b| a.id.cmp(&b.id));
    suites
}

/// Build the test executables (`cargo metadata` may run meanwhile: nothing
/// here needs it).
pub fn build(a: &CargoArgs) -> Result<Vec<Built>, BuildError> {
    let cargo = cargo_program();
    let mut cmd = Command::new(&cargo);
    crate::sys::unblock_signals_in_child(&mut cmd);
    let mut child = cmd
        .args(build_args(a))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| BuildError::Spawn {
            cargo: cargo.display().to_string(),
            source,
        })?;
    // From here on the child is waited for on every path.
    let forwarding = crate::interrupt::forward_to(&child);
    if let Err(e) = &forwarding {
        eprintln!("cargo-reap: warning: signals will not reach cargo while it builds: {e}");
    }
    let echo = message_format(&a.message_format).is_ok_and(|f| f.echo_json);
    let parsed = parse_messages(child.stdout.take().expect("stdout is piped"), echo);
    if parsed.is_err() {
        // We stopped reading: cargo could block on a full pipe. End it.
        if let Err(e) = child.kill() {
            eprintln!("cargo-reap: warning: could not stop cargo: {e}");
        }
    }
    let status = child.wait().map_err(|source| BuildError::Spawn {
        cargo: cargo.display().to_string(),
        source,
    })?;
    drop(forwarding);
    let (suites, finished_ok) = parsed?;
    match finished_ok {
        // No build-finished message: cargo stopped before building anything.
        None if !status.success() => {
            return Err(BuildError::Refused(format!("cargo exited with {status}")))
        }
        Some(false) => return Err(BuildError::Failed(format!("cargo exited with {status}"))),
        _ if !status.success() => {
            return Err(BuildError::Failed(format!("cargo exited with {status}")))
        }
        _ => {}
    }
    Ok(suites)
}

/// Read cargo's JSON messages; with `echo` (`--message-format json`) each
/// line is copied to stdout as cargo wrote it.
fn parse_messages(
    stdout: impl std::io::Read,
    mut echo: bool,
) -> Result<(Vec<Built>, Option<bool>), BuildError> {
    use std::io::{BufRead, Write};
    let mut built = Vec::new();
    let mut finished = None;
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(BuildError::Messages)?;
        if echo {
            if let Err(e) = writeln!(out, "{line}") {
                // Discovery goes on: the run does not depend on the copy.
                eprintln!("cargo-reap: warning: cargo's JSON messages are no longer copied to stdout: {e}");
                echo = false;
            }
        }
        let msg = serde_json::from_str::<Message>(&line).unwrap_or(Message::TextLine(line));
        match msg {
            Message::CompilerArtifact(art) if art.profile.test => {
                let Some(exe) = art.executable else { continue };
                built.push(Built {
                    package_id: art.package_id,
                    manifest_path: art.manifest_path.into_std_path_buf(),
                    target: art.target.name,
                    kinds: art.target.kind,
                    executable: exe.into_std_path_buf(),
                });
            }
            Message::BuildFinished(f) => finished = Some(f.success),
            _ => {}
        }
    }
    Ok((built, finished))
}

fn kind_of(kinds: &[TargetKind]) -> String {
    for k in kinds {
        match k {
            TargetKind::Bin => return "bin".into(),
            TargetKind::Test => return "test".into(),
            TargetKind::Example => return "example".into(),
            TargetKind::Bench => return "bench".into(),
            _ => {}
        }
    }
    "lib".into()
}

fn suite_from(
    pkg: Option<&Package>,
    manifest_path: &Path,
    target: &str,
    kinds: &[TargetKind],
    binary: PathBuf,
) -> Suite {
    let cwd = manifest_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let package = pkg.map(|p| p.name.to_string()).unwrap_or_else(|| {
        cwd.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let mut env: Vec<(String, String)> = vec![
        ("CARGO".into(), cargo_program().display().to_string()),
        ("CARGO_MANIFEST_DIR".into(), cwd.display().to_string()),
        (
            "CARGO_MANIFEST_PATH".into(),
            manifest_path.display().to_string(),
        ),
        ("CARGO_PKG_NAME".into(), package.clone()),
        ("CARGO_CRATE_NAME".into(), target.replace('-', "_")),
    ];
    if let Some(p) = pkg {
        let v = &p.version;
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        env.extend([
            ("CARGO_PKG_VERSION".into(), v.to_string()),
            ("CARGO_PKG_VERSION_MAJOR".into(), v.major.to_string()),
            ("CARGO_PKG_VERSION_MINOR".into(), v.minor.to_string()),
            ("CARGO_PKG_VERSION_PATCH".into(), v.patch.to_string()),
            ("CARGO_PKG_VERSION_PRE".into(), v.pre.to_string()),
            ("CARGO_PKG_AUTHORS".into(), p.authors.join(":")),
            ("CARGO_PKG_DESCRIPTION".into(), opt(&p.description)),
            ("CARGO_PKG_HOMEPAGE".into(), opt(&p.homepage)),
            ("CARGO_PKG_REPOSITORY".into(), opt(&p.repository)),
            ("CARGO_PKG_LICENSE".into(), opt(&p.license)),
            (
                "CARGO_PKG_LICENSE_FILE".into(),
                p.license_file
                    .as_ref()
                    .map(|f| f.to_string())
                    .unwrap_or_default(),
            ),
            (
                "CARGO_PKG_RUST_VERSION".into(),
                p.rust_version
                    .as_ref()
                    .map(|r| r.to_string())
                    .unwrap_or_default(),
            ),
            (
                "CARGO_PKG_README".into(),
                p.readme.as_ref().map(|f| f.to_string()).unwrap_or_default(),
            ),
        ]);
    }
    // Like cargo: the deps directory on the dynamic library path (dylib deps).
    if let Some(deps) = binary.parent() {
        let mut paths = vec![deps.to_path_buf()];
        if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
            paths.extend(std::env::split_paths(&old));
        }
        if let Ok(joined) = std::env::join_paths(paths) {
            env.push((
                "LD_LIBRARY_PATH".into(),
                joined.to_string_lossy().into_owned(),
            ));
        }
    }
    Suite {
        id: format!("{package}::{target}"),
        package,
        target: target.to_string(),
        kind: kind_of(kinds),
        binary,
        cwd,
        env,
        limits: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_selection_flags_through() {
        let a = CargoArgs {
            package: vec!["a".into(), "b".into()],
            test: vec!["t".into()],
            release: true,
            build_jobs: Some("3".into()),
            locked: true,
            ..Default::default()
        };
        let v = build_args(&a).join(" ");
        assert_eq!(
            v,
            "test --no-run --message-format=json-render-diagnostics --package a --package b \
             --test t --release --jobs 3 --locked"
        );
    }

    #[test]
    fn message_formats_as_cargo_takes_them() {
        let f = |v: &[&str]| message_format(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(f(&[]).unwrap().cargo, "json-render-diagnostics");
        assert_eq!(f(&["human"]).unwrap().cargo, "json-render-diagnostics");
        let short = f(&["short"]).unwrap();
        assert_eq!(short.cargo, "json-diagnostic-short,json-render-diagnostics");
        assert!(!short.echo_json);
        let json = f(&["json-diagnostic-short"]).unwrap();
        assert_eq!(json.cargo, "json,json-diagnostic-short");
        assert!(json.echo_json);
        assert!(f(&["json,short"]).is_err());
        assert!(f(&["human", "short"]).is_err());
        assert!(f(&["jsn"]).is_err());
    }

    #[test]
    fn passes_config_target_color_and_unstable_flags() {
        let a = CargoArgs {
            target: Some("x86_64-unknown-linux-gnu".into()),
            color: Some(crate::cli::ColorArg::Never),
            config: vec!["build.jobs=1".into()],
            unstable: vec!["unstable-options".into()],
            message_format: vec!["short".into()],
            ..Default::default()
        };
        assert_eq!(
            build_args(&a).join(" "),
            "test --no-run --message-format=json-diagnostic-short,json-render-diagnostics \
             --target x86_64-unknown-linux-gnu --color never --config build.jobs=1 -Z unstable-options"
        );
    }

    #[test]
    fn slug_is_file_name_safe() {
        let s = Suite {
            id: "my-pkg::some test".into(),
            package: "my-pkg".into(),
            target: "some test".into(),
            kind: "test".into(),
            binary: "/x".into(),
            cwd: "/".into(),
            env: vec![],
            limits: Default::default(),
        };
        assert_eq!(s.slug(), "my-pkg__some_test");
    }
}
