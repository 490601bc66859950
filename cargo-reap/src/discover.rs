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

/// One test binary, or one package's doctests: the unit the runner
/// contains, times out and reaps.
#[derive(Debug, Clone)]
pub struct Suite {
    /// Unique in a run and stable across runs (nextest's scheme, see
    /// [`suite_id`]): `<package>` for the lib (or proc-macro) unit tests,
    /// `<package>::<test>` for an integration test, `<package>::bin/<name>`,
    /// `<package>::example/<name>`, `<package>::bench/<name>`, and
    /// `<package>::doctest/<lib>` for the package's doctests.
    pub id: String,
    pub package: String,
    pub target: String,
    /// `lib`, `proc-macro`, `bin`, `test`, `example`, `bench`, `doctest`
    /// (or `command` for `cargo reap run`)
    pub kind: String,
    /// The program run: the test binary, or cargo for a doctest suite.
    pub binary: PathBuf,
    /// Arguments before the test arguments: for a doctest suite
    /// `test --doc --package SPEC [flags] --`, so that every libtest argument
    /// (`--list`, `--exact NAME`, the user's) reaches rustdoc's harness.
    pub args: Vec<String>,
    /// The package root: cargo runs test binaries there.
    pub cwd: PathBuf,
    /// Environment cargo sets for test binaries (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, ...).
    pub env: Vec<(String, String)>,
    /// Its time limits (defaults until the run applies flags and configuration).
    pub limits: crate::suite::settings::Limits,
    /// The id made safe for file and cgroup names (see [`slug_of`]); unique
    /// in a run ([`unique_slugs`]).
    pub slug: String,
}

impl Suite {
    /// A name safe for files and cgroup directories, unique in the run: logs
    /// (`<slug>.log`), TMPDIRs and cgroup leaves are named after it.
    pub fn slug(&self) -> &str {
        &self.slug
    }
}

/// A suite with no command, for unit tests.
#[cfg(test)]
pub fn test_suite(id: &str, package: &str, target: &str, kind: &str) -> Suite {
    Suite {
        id: id.into(),
        slug: slug_of(id),
        package: package.into(),
        target: target.into(),
        kind: kind.into(),
        binary: "/x".into(),
        args: vec![],
        cwd: "/".into(),
        env: vec![],
        limits: Default::default(),
    }
}

/// A suite's id from its package, target kind and target name: nextest's
/// `package::kind/name` convention. Unique for every target cargo can build
/// tests for: a package has one lib (its id is the package's), target names
/// are unique per kind, package names are unique in a workspace, and a
/// target name never contains `/`.
pub fn suite_id(package: &str, kind: &str, target: &str) -> String {
    match kind {
        "lib" | "proc-macro" => package.to_string(),
        "test" | "command" => format!("{package}::{target}"),
        _ => format!("{package}::{kind}/{target}"),
    }
}

/// The readable file-name form of an id: `::` and `/` become `__`, anything
/// but ASCII letters, digits, `-`, `_` and `.` becomes `_`.
pub fn slug_of(id: &str) -> String {
    id.replace("::", "__")
        .replace('/', "__")
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

/// Make every slug of the run unique: suites whose readable slugs collide
/// (`a::b_c` and `a::b/c`, or ids differing only in characters mapped to
/// `_`) each get `-<hash of the id>` appended, stable across runs.
pub fn unique_slugs(suites: &mut [Suite]) {
    let mut count: HashMap<String, usize> = HashMap::new();
    for s in suites.iter() {
        *count.entry(s.slug.to_ascii_lowercase()).or_default() += 1;
    }
    for s in suites.iter_mut() {
        if count[&s.slug.to_ascii_lowercase()] > 1 {
            s.slug = format!(
                "{}-{:08x}",
                s.slug,
                crate::schedule::fnv1a(s.id.as_bytes()) as u32
            );
        }
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
    let id = suite_id(&package, kind, &target);
    Ok(Suite {
        slug: slug_of(&id),
        id,
        package,
        target,
        kind: kind.into(),
        binary,
        args: Vec::new(),
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
    /// What the build scripts said that cargo passes on at run time.
    scripts: std::sync::Arc<Scripts>,
}

/// The build scripts' output that reaches test processes: per package its
/// `OUT_DIR` and `cargo::rustc-env` variables, and every link-search
/// directory (cargo keeps those inside the target directory on the dynamic
/// library path).
#[derive(Debug, Default)]
struct Scripts {
    env: HashMap<PackageId, Vec<(String, String)>>,
    link_dirs: std::collections::BTreeSet<PathBuf>,
}

/// The suites of the built test executables, with their package's
/// environment, then each selected package's doctests as cargo would run
/// them ([`doctest_suites`]); with `--doc` only those.
pub fn suites(built: Vec<Built>, meta: &Metadata, a: &CargoArgs) -> Vec<Suite> {
    let packages: HashMap<&PackageId, &Package> =
        meta.packages.iter().map(|p| (&p.id, p)).collect();
    let lib_dirs = host_lib_dirs(meta, a.target.as_deref());
    let config_env = config_env(a);
    let mut doctests = doctest_suites(&built, meta, a);
    let mut suites: Vec<Suite> = if a.doc {
        Vec::new()
    } else {
        built
            .into_iter()
            .map(|b| {
                suite_from(
                    packages.get(&b.package_id).copied(),
                    b,
                    &lib_dirs,
                    &config_env,
                )
            })
            .collect()
    };
    suites.append(&mut doctests);
    // Deterministic order, whatever order cargo finished the builds in;
    // doctests last, as `cargo test` runs them (so `--fail-fast` skips them
    // after a failing binary, as cargo does).
    suites.sort_by(|a, b| (a.kind == "doctest", &a.id).cmp(&(b.kind == "doctest", &b.id)));
    unique_slugs(&mut suites);
    suites
}

/// Does the selection name targets? Then `cargo test` runs no doctests
/// (`--lib` alone, `--test NAME`, `--all-targets`, ...: checked against
/// cargo 1.95), and `--doc` may not be combined with it.
fn selects_targets(a: &CargoArgs) -> bool {
    a.lib
        || a.bins
        || a.tests
        || a.examples
        || a.benches
        || a.all_targets
        || !a.bin.is_empty()
        || !a.test.is_empty()
}

/// The doctest suites of the selection, one per package, as `cargo test`
/// runs them: none when the selection names targets; else for every package
/// the build selected (it built at least one of its test targets) whose lib
/// has `doctest = true`. Each suite is `cargo test --doc --package SPEC
/// [flags] --`, run in its containment like a test binary, so rustdoc and
/// every doctest process are inside it (cargo checks the lib is fresh, then
/// rustdoc compiles and runs the doctests: that time counts against the
/// suite's timeout). Limit: a package whose every target has `test = false`
/// is not seen as selected, so its doctests are not run.
fn doctest_suites(built: &[Built], meta: &Metadata, a: &CargoArgs) -> Vec<Suite> {
    if selects_targets(a) {
        return Vec::new();
    }
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => {
            let root = meta.workspace_root.clone().into_std_path_buf();
            eprintln!(
                "cargo-reap: warning: the current directory is not usable ({e}); doctests run \
                 cargo from {} (its .cargo/config.toml applies)",
                root.display()
            );
            root
        }
    };
    let mut out = Vec::new();
    for p in &meta.packages {
        if !built.iter().any(|b| b.package_id == p.id) {
            continue;
        }
        let Some(lib) = p.targets.iter().find(|t| {
            t.doctest
                && t.kind
                    .iter()
                    .any(|k| matches!(k, TargetKind::Lib | TargetKind::ProcMacro))
        }) else {
            continue;
        };
        let package = p.name.to_string();
        let id = suite_id(&package, "doctest", &lib.name);
        out.push(Suite {
            slug: slug_of(&id),
            id,
            package,
            target: lib.name.clone(),
            kind: "doctest".into(),
            binary: cargo_program(),
            args: doc_args(a, &p.id.repr, &package_features(p, &a.features)),
            cwd: cwd.clone(),
            env: Vec::new(),
            limits: Default::default(),
        });
    }
    out
}

/// The features of `--features` (space or comma separated) that apply to
/// package `p` when cargo tests several packages at once: its own
/// (`feat`, or `p/feat`), and `dep/feat` of one of its dependencies. Cargo
/// accepts `-p a -p b --features x` when only `a` has `x`, but refuses
/// `-p b --features x`: a doctest suite gets only what applies to it.
fn package_features(p: &Package, requested: &[String]) -> Vec<String> {
    let deps: Vec<&str> = p
        .dependencies
        .iter()
        .map(|d| d.rename.as_deref().unwrap_or(&d.name))
        .collect();
    let own: Vec<&str> = p.features.keys().map(String::as_str).collect();
    features_for(&p.name, &own, &deps, requested)
}

fn features_for(package: &str, own: &[&str], deps: &[&str], requested: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for f in requested
        .iter()
        .flat_map(|v| v.split([' ', ',']))
        .filter(|f| !f.is_empty())
    {
        let keep = match f.split_once('/') {
            Some((pkg, feat)) if pkg == package => Some(feat.to_string()),
            Some((dep, _)) if deps.contains(&dep.trim_end_matches('?')) => Some(f.to_string()),
            Some(_) => None,
            None if own.contains(&f) || f == "default" => Some(f.to_string()),
            None => None,
        };
        if let Some(k) = keep {
            if !out.contains(&k) {
                out.push(k);
            }
        }
    }
    out
}

/// `test --doc --package SPEC [--features F] [the user's other flags] --`:
/// the build's argument list without its package and target selection,
/// without `--no-run` and `--message-format`, and with only the features
/// that apply to the package.
pub fn doc_args(a: &CargoArgs, spec: &str, features: &[String]) -> Vec<String> {
    const WITH_VALUE: [&str; 7] = [
        "--features",
        "--package",
        "--exclude",
        "--bin",
        "--test",
        "--example",
        "--bench",
    ];
    const ALONE: [&str; 10] = [
        "test",
        "--no-run",
        "--workspace",
        "--lib",
        "--bins",
        "--tests",
        "--examples",
        "--benches",
        "--all-targets",
        "--doc",
    ];
    let mut v: Vec<String> = ["test", "--doc", "--package", spec]
        .map(String::from)
        .to_vec();
    if !features.is_empty() {
        v.push("--features".into());
        v.push(features.join(","));
    }
    let mut it = build_args(a).into_iter();
    while let Some(x) = it.next() {
        if WITH_VALUE.contains(&x.as_str()) || x == "--message-format" {
            it.next();
        } else if !ALONE.contains(&x.as_str()) && !x.starts_with("--message-format=") {
            v.push(x);
        }
    }
    v.push("--".into());
    v
}

/// The arguments that re-run one listed test alone: `--exact NAME
/// --test-threads 1`. A doctest's name has spaces (`src/lib.rs - f (line
/// 5)`) and cargo hands rustdoc the test arguments split on whitespace, so
/// `--exact` cannot name it: its re-run filters on the first word of its
/// name found in no other listed name (`f`), which libtest matches as a
/// substring. (A re-run that still runs two tests is caught by attribution.)
pub fn rerun_args(suite: &Suite, test: &str, listed: &[String]) -> Vec<String> {
    let filter = if suite.kind == "doctest" && test.contains(char::is_whitespace) {
        let unique = test.split_whitespace().find(|word| {
            listed
                .iter()
                .all(|other| other == test || !other.contains(word))
        });
        match unique {
            Some(word) => vec![word.to_string()],
            None => vec!["--exact".to_string(), test.to_string()],
        }
    } else {
        vec!["--exact".to_string(), test.to_string()]
    };
    let mut args = filter;
    args.extend(["--test-threads".to_string(), "1".to_string()]);
    args
}

/// The variables of cargo's `[env]` configuration a test process gets, as
/// cargo applies them: a variable already in cargo's environment (ours: cargo
/// runs with the environment cargo-reap was given) keeps its value unless the
/// definition has `force = true`. Unreadable configuration: cargo refused it
/// already while building, so this only warns.
fn config_env(a: &CargoArgs) -> Vec<(String, String)> {
    match crate::runner::env_config(&a.config) {
        Ok(vars) => vars
            .into_iter()
            .filter(|v| v.force || std::env::var_os(&v.name).is_none())
            .map(|v| (v.name, v.value))
            .collect(),
        Err(e) => {
            eprintln!(
                "cargo-reap: warning: the [env] table of cargo's configuration is not applied \
                 to the test binaries ({e}); fix the configuration"
            );
            Vec::new()
        }
    }
}

/// The Rust library directory of the host, or of `--target`
/// (`rustc --print target-libdir [--target T]`): cargo
/// puts it on the dynamic library path of test binaries, and a proc-macro
/// crate's test binary links libstd dynamically from there.
fn host_lib_dirs(meta: &Metadata, target: Option<&str>) -> Vec<PathBuf> {
    // With `--target`, that target's library directory, as cargo uses for
    // the test binaries it builds for it.
    let mut args = vec!["--print", "target-libdir"];
    args.extend(target.iter().flat_map(|t| ["--target", t]));
    match crate::runner::rustc_output(Some(meta.workspace_root.as_std_path()), &args) {
        Ok(text) => {
            let dir = text.trim();
            if dir.is_empty() {
                Vec::new()
            } else {
                vec![PathBuf::from(dir)]
            }
        }
        Err(e) => {
            eprintln!(
                "cargo-reap: warning: {e}: proc-macro and dylib test binaries (libstd \
                 linked dynamically) may not start; set RUSTC"
            );
            Vec::new()
        }
    }
}

/// The dynamic library path cargo gives a test process: the build scripts'
/// link-search directories inside the profile directory, the profile
/// directory, its `deps`, the host's Rust library directory (a dylib or
/// proc-macro test links libstd dynamically), then the inherited
/// `LD_LIBRARY_PATH` — which is kept as it is when it already starts with
/// those (a test that runs cargo-reap or cargo again does not grow it).
fn dylib_path(
    native: &[&Path],
    profile_dir: &Path,
    deps: Option<&Path>,
    lib_dirs: &[PathBuf],
) -> Option<String> {
    let ours: Vec<PathBuf> = native
        .iter()
        .copied()
        .chain([profile_dir])
        .chain(deps)
        .map(Path::to_path_buf)
        .chain(lib_dirs.iter().cloned())
        .collect();
    let inherited: Vec<PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
        .map(|old| std::env::split_paths(&old).collect())
        .unwrap_or_default();
    match std::env::join_paths(prepend_unless_there(ours, inherited)) {
        Ok(joined) => Some(joined.to_string_lossy().into_owned()),
        Err(e) => {
            eprintln!(
                "cargo-reap: warning: LD_LIBRARY_PATH is not set for the test binaries ({e}): \
                 a test linking a dylib will not start; rename the directories with `:`"
            );
            None
        }
    }
}

/// `ours` then `inherited`, or `inherited` alone when it already starts
/// with `ours` (cargo's rule: nested runs do not grow the path).
fn prepend_unless_there(mut ours: Vec<PathBuf>, inherited: Vec<PathBuf>) -> Vec<PathBuf> {
    if inherited.starts_with(&ours) {
        inherited
    } else {
        ours.extend(inherited);
        ours
    }
}

/// Build the test executables (`cargo metadata` may run meanwhile: nothing
/// here needs it).
pub fn build(a: &CargoArgs) -> Result<Vec<Built>, BuildError> {
    if a.doc && selects_targets(a) {
        // cargo's own refusal, before anything is built.
        eprintln!("error: can't mix --doc with other target selecting options");
        return Err(BuildError::Refused("--doc with a target selection".into()));
    }
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
    let mut scripts = Scripts::default();
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
                    scripts: Default::default(),
                });
            }
            Message::BuildScriptExecuted(script) => {
                let env = scripts.env.entry(script.package_id).or_default();
                env.push(("OUT_DIR".into(), script.out_dir.to_string()));
                env.extend(script.env);
                // `KIND=PATH` (native, dependency, all, ...) or a bare path.
                scripts
                    .link_dirs
                    .extend(script.linked_paths.iter().map(|p| {
                        let p = p.as_str();
                        PathBuf::from(p.split_once('=').map_or(p, |(_, path)| path))
                    }));
            }
            Message::BuildFinished(f) => finished = Some(f.success),
            _ => {}
        }
    }
    let scripts = std::sync::Arc::new(scripts);
    for b in &mut built {
        b.scripts = scripts.clone();
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
            TargetKind::ProcMacro => return "proc-macro".into(),
            _ => {}
        }
    }
    "lib".into()
}

fn suite_from(
    pkg: Option<&Package>,
    built: Built,
    lib_dirs: &[PathBuf],
    config_env: &[(String, String)],
) -> Suite {
    let Built {
        manifest_path,
        target,
        kinds,
        executable: binary,
        scripts,
        ..
    } = built;
    let (manifest_path, target, kinds) = (manifest_path.as_path(), target.as_str(), &kinds);
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
    let kind = kind_of(kinds);
    // The executable is `<target dir>/<profile>/deps/NAME-HASH`.
    let deps = binary.parent().map(Path::to_path_buf);
    let profile_dir = deps
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf);
    if let Some(dir) = &profile_dir {
        // Like cargo: build script link-search directories inside the
        // target's profile directory go first.
        let native: Vec<&Path> = scripts
            .link_dirs
            .iter()
            .map(PathBuf::as_path)
            .filter(|d| d.starts_with(dir))
            .collect();
        if let Some(path) = dylib_path(&native, dir, deps.as_deref(), lib_dirs) {
            env.push(("LD_LIBRARY_PATH".into(), path));
        }
    }
    if let Some(vars) = pkg.and_then(|p| scripts.env.get(&p.id)) {
        env.extend(vars.iter().cloned());
    }
    // Like cargo: integration tests and benches know their package's binaries.
    if let (Some(p), Some(dir), true) = (pkg, &profile_dir, kind == "test" || kind == "bench") {
        for bin in p.targets.iter().filter(|t| t.is_bin()) {
            let exe = dir.join(format!("{}{}", bin.name, std::env::consts::EXE_SUFFIX));
            env.push((
                format!("CARGO_BIN_EXE_{}", bin.name),
                exe.display().to_string(),
            ));
        }
    }
    // Last: `[env]` may override what cargo sets (cargo applies it last too).
    env.extend(config_env.iter().cloned());
    let id = suite_id(&package, &kind, target);
    Suite {
        slug: slug_of(&id),
        id,
        package,
        target: target.to_string(),
        kind,
        binary,
        args: Vec::new(),
        cwd,
        env,
        limits: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_path_prepended_once() {
        let v = |xs: &[&str]| xs.iter().map(PathBuf::from).collect::<Vec<_>>();
        let ours = v(&["/t/debug", "/t/debug/deps", "/sys/lib"]);
        assert_eq!(
            prepend_unless_there(ours.clone(), v(&["/usr/lib"])),
            v(&["/t/debug", "/t/debug/deps", "/sys/lib", "/usr/lib"])
        );
        let nested = v(&["/t/debug", "/t/debug/deps", "/sys/lib", "/usr/lib"]);
        assert_eq!(prepend_unless_there(ours.clone(), nested.clone()), nested);
        assert_eq!(prepend_unless_there(ours.clone(), vec![]), ours);
    }

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

    fn suite(id: &str) -> Suite {
        test_suite(id, "my-pkg", "t", "test")
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
        assert_eq!(suite("my-pkg::some test").slug(), "my-pkg__some_test");
        assert_eq!(suite("my-pkg::bin/my-pkg").slug(), "my-pkg__bin__my-pkg");
    }

    #[test]
    fn ids_follow_the_package_kind_name_scheme() {
        assert_eq!(suite_id("foo", "lib", "foo"), "foo");
        assert_eq!(suite_id("foo", "proc-macro", "foo_macros"), "foo");
        assert_eq!(suite_id("foo", "bin", "foo"), "foo::bin/foo");
        assert_eq!(suite_id("foo", "test", "it"), "foo::it");
        assert_eq!(suite_id("foo", "example", "demo"), "foo::example/demo");
        assert_eq!(suite_id("foo", "bench", "speed"), "foo::bench/speed");
        assert_eq!(suite_id("foo", "doctest", "foo"), "foo::doctest/foo");
    }

    #[test]
    fn colliding_slugs_are_made_unique_and_stable() {
        let mut v = vec![
            suite("a::bin/x"),
            suite("a::bin__x"),
            suite("a::b c"),
            suite("a::b_c"),
            suite("a::other"),
        ];
        unique_slugs(&mut v);
        let slugs: std::collections::HashSet<&str> = v.iter().map(|s| s.slug()).collect();
        assert_eq!(slugs.len(), v.len(), "{slugs:?}");
        assert_eq!(v[4].slug(), "a__other");
        assert!(v[0].slug().starts_with("a__bin__x-"));
        let mut again = vec![suite("a::bin/x"), suite("a::bin__x")];
        unique_slugs(&mut again);
        assert_eq!(again[0].slug(), v[0].slug());
    }

    #[test]
    fn doctest_command_keeps_build_flags_and_drops_selection() {
        let a = CargoArgs {
            package: vec!["a".into()],
            workspace: true,
            exclude: vec!["b".into()],
            features: vec!["f".into()],
            release: true,
            locked: true,
            doc: true,
            ..Default::default()
        };
        assert_eq!(
            doc_args(&a, "path+file:///w/a#0.1.0", &["f".into()]).join(" "),
            "test --doc --package path+file:///w/a#0.1.0 --features f --release --locked --"
        );
        assert_eq!(
            doc_args(&a, "s", &[]).join(" "),
            "test --doc --package s --release --locked --"
        );
    }

    #[test]
    fn a_doctest_suite_gets_only_the_features_of_its_package() {
        let requested = ["x,y".to_string(), "p/z dep/w other/v dep?/u default".into()];
        assert_eq!(
            features_for("p", &["x", "z"], &["dep"], &requested),
            ["x", "z", "dep/w", "dep?/u", "default"]
        );
        assert!(features_for("q", &[], &[], &requested[..1]).is_empty());
    }

    #[test]
    fn a_doctest_is_rerun_through_a_word_of_its_name_no_other_has() {
        let mut doc = suite("p::doctest/p");
        doc.kind = "doctest".into();
        let listed: Vec<String> = [
            "src/lib.rs - one (line 5)",
            "src/lib.rs - leaking (line 15)",
            "src/lib.rs - one (line 25)",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            rerun_args(&doc, &listed[1], &listed).join(" "),
            "leaking --test-threads 1"
        );
        assert_eq!(
            rerun_args(&doc, &listed[2], &listed).join(" "),
            "25) --test-threads 1"
        );
        assert_eq!(
            rerun_args(&suite("p::t"), "a b", &listed).join(" "),
            "--exact a b --test-threads 1"
        );
    }

    #[test]
    fn target_selection_excludes_doctests() {
        assert!(!selects_targets(&CargoArgs::default()));
        assert!(!selects_targets(&CargoArgs {
            doc: true,
            package: vec!["p".into()],
            ..Default::default()
        }));
        for a in [
            CargoArgs {
                lib: true,
                ..Default::default()
            },
            CargoArgs {
                test: vec!["t".into()],
                ..Default::default()
            },
            CargoArgs {
                all_targets: true,
                ..Default::default()
            },
        ] {
            assert!(selects_targets(&a));
        }
    }
}
