//! Build and discovery: `cargo test --no-run --message-format=json-render-diagnostics`,
//! then every test executable from cargo's JSON messages, with the environment
//! cargo itself gives a test binary at run time.

use std::collections::HashMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cargo_metadata::{Message, Metadata, MetadataCommand, Package, PackageId, TargetKind};

use crate::error::BuildError;
use crate::options::{CargoInvocation, Limits};

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
    pub kind: SuiteKind,
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
    /// Its time limits: flags over its configuration (see
    /// [`crate::config::Config::limits_for`]), set when it is discovered.
    pub limits: Limits,
    /// The id made safe for file and cgroup names (see [`slug_of`]); unique
    /// in a run ([`unique_slugs`]).
    pub slug: String,
    /// 1-based, unique in a run: its place among the run's suites. It names the suite's
    /// TMPDIR, which must stay short (a unix socket under it, e.g. Chromium's
    /// `org.chromium.Chromium.XXXXXX/SingletonSocket`, must fit `sun_path`'s 108 bytes).
    pub ordinal: usize,
}

/// What a suite runs: the report contract's kind (a test target's binary,
/// a package's doctests, or `cargo reap run`'s command).
pub use reap_report::SuiteKind;

impl Suite {
    /// A name safe for files and cgroup directories, unique in the run: logs
    /// (`<slug>.log`), TMPDIRs and cgroup leaves are named after it.
    pub fn slug(&self) -> &str {
        &self.slug
    }
}

/// A suite with no command, for unit tests.
#[cfg(test)]
pub fn test_suite(id: &str, package: &str, target: &str, kind: SuiteKind) -> Suite {
    Suite {
        id: id.into(),
        slug: slug_of(id),
        ordinal: 1,
        package: package.into(),
        target: target.into(),
        kind,
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
pub fn suite_id(package: &str, kind: SuiteKind, target: &str) -> String {
    match kind {
        SuiteKind::Lib | SuiteKind::ProcMacro => package.to_string(),
        SuiteKind::Test | SuiteKind::Command => format!("{package}::{target}"),
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

/// Number the run's suites (`ordinal`) and make every slug unique: suites whose readable slugs collide
/// (`a::b_c` and `a::b/c`, or ids differing only in characters mapped to
/// `_`) each get `-<hash of the id>` appended, stable across runs.
pub fn unique_slugs(suites: &mut [Suite]) {
    for (k, s) in suites.iter_mut().enumerate() {
        s.ordinal = k + 1;
    }
    let mut count: HashMap<String, usize> = HashMap::new();
    for s in suites.iter() {
        *count.entry(s.slug.to_ascii_lowercase()).or_default() += 1;
    }
    for s in suites.iter_mut() {
        if count[&s.slug.to_ascii_lowercase()] > 1 {
            s.slug = format!(
                "{}-{:08x}",
                s.slug,
                crate::options::fnv1a(s.id.as_bytes()) as u32
            );
        }
    }
}

/// The one suite of `cargo reap run -- PROGRAM ...`. As a cargo target runner
/// (cargo sets `CARGO_PKG_NAME` and passes `target/<profile>/deps/NAME-HASH`)
/// it gets the usual `<package>::<target>` id; otherwise `run::<program>`.
pub fn command_suite(
    program: &str,
    limits_for: &dyn Fn(&str, &str) -> Limits,
) -> Result<Suite, crate::error::EngineError> {
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
            (pkg, target, SuiteKind::Test)
        }
        _ => ("run".to_string(), stem.clone(), SuiteKind::Command),
    };
    let id = suite_id(&package, kind, &target);
    let limits = limits_for(&id, &package);
    Ok(Suite {
        slug: slug_of(&id),
        ordinal: 1,
        id,
        package,
        target,
        kind,
        binary,
        args: Vec::new(),
        cwd,
        env: Vec::new(),
        limits,
    })
}

/// The cargo program: `$CARGO` when cargo invoked us, else `cargo` from PATH.
pub fn cargo_program() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"))
}

/// Workspace metadata (packages, target directory), without dependencies.
pub fn metadata(a: &CargoInvocation) -> Result<Metadata, BuildError> {
    let mut cmd = MetadataCommand::new();
    cmd.cargo_path(cargo_program())
        .no_deps()
        .other_options(a.common.clone());
    if let Some(mp) = &a.manifest_path {
        cmd.manifest_path(mp);
    }
    Ok(cmd.exec()?)
}

/// Where run logs go: `<target-dir>/reap/`.
pub fn reap_dir(a: &CargoInvocation, meta: &Metadata) -> PathBuf {
    target_dir(a, meta).join("reap")
}

/// The target directory of the build: `--target-dir`, else the workspace's.
pub fn target_dir(a: &CargoInvocation, meta: &Metadata) -> PathBuf {
    a.target_dir
        .clone()
        .unwrap_or_else(|| meta.target_directory.clone().into_std_path_buf())
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
///
/// `lib_dirs`: [`crate::libdir::test_lib_dirs`].
pub fn suites(
    built: Vec<Built>,
    meta: &Metadata,
    a: &CargoInvocation,
    lib_dirs: &[PathBuf],
    limits_for: &dyn Fn(&str, &str) -> Limits,
) -> Vec<Suite> {
    let packages: HashMap<&PackageId, &Package> =
        meta.packages.iter().map(|p| (&p.id, p)).collect();
    let config_env = config_env(a);
    let mut doctests = doctest_suites(&built, meta, a);
    let mut suites: Vec<Suite> = if a.doc_only {
        Vec::new()
    } else {
        built
            .into_iter()
            .map(|b| {
                suite_from(
                    packages.get(&b.package_id).copied(),
                    b,
                    lib_dirs,
                    &config_env,
                )
            })
            .collect()
    };
    suites.append(&mut doctests);
    // Deterministic order, whatever order cargo finished the builds in;
    // doctests last, as `cargo test` runs them (so `--fail-fast` skips them
    // after a failing binary, as cargo does).
    let doctest = |s: &Suite| s.kind == SuiteKind::Doctest;
    suites.sort_by(|a, b| (doctest(a), &a.id).cmp(&(doctest(b), &b.id)));
    unique_slugs(&mut suites);
    for s in &mut suites {
        s.limits = limits_for(&s.id, &s.package);
    }
    suites
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
fn doctest_suites(built: &[Built], meta: &Metadata, a: &CargoInvocation) -> Vec<Suite> {
    if a.selects_targets {
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
        let id = suite_id(&package, SuiteKind::Doctest, &lib.name);
        out.push(Suite {
            slug: slug_of(&id),
            ordinal: 1,
            id,
            package,
            target: lib.name.clone(),
            kind: SuiteKind::Doctest,
            binary: cargo_program(),
            args: a.doc_args(&p.id.repr, &package_features(p, &a.features)),
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

/// The arguments that re-run one listed test alone: `--exact NAME
/// --test-threads 1`. A doctest's name has spaces (`src/lib.rs - f (line
/// 5)`) and cargo hands rustdoc the test arguments split on whitespace, so
/// `--exact` cannot name it: its re-run filters on the first word of its
/// name found in no other listed name (`f`), which libtest matches as a
/// substring. (A re-run that still runs two tests is caught by attribution.)
pub fn rerun_args(suite: &Suite, test: &str, listed: &[String]) -> Vec<String> {
    let filter = if suite.kind == SuiteKind::Doctest && test.contains(char::is_whitespace) {
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
fn config_env(a: &CargoInvocation) -> Vec<(String, String)> {
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
pub fn build(
    a: &CargoInvocation,
    interrupts: &'static crate::interrupt::Interrupts,
) -> Result<Vec<Built>, BuildError> {
    if a.doc_only && a.selects_targets {
        // cargo's own refusal, before anything is built.
        eprintln!("error: can't mix --doc with other target selecting options");
        return Err(BuildError::Refused("--doc with a target selection".into()));
    }
    let cargo = cargo_program();
    let mut cmd = Command::new(&cargo);
    crate::containment::layers::apply(
        &mut cmd,
        &[crate::containment::layers::Layer::UnblockSignals],
    );
    let mut child = cmd
        .args(&a.build)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| BuildError::Spawn {
            cargo: cargo.display().to_string(),
            source,
        })?;
    // From here on the child is waited for on every path.
    let forwarding = crate::interrupt::forward_to(interrupts, &child);
    if let Err(e) = &forwarding {
        eprintln!("cargo-reap: warning: signals will not reach cargo while it builds: {e}");
    }
    let echo = a.echo_json;
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

fn kind_of(kinds: &[TargetKind]) -> SuiteKind {
    for k in kinds {
        match k {
            TargetKind::Bin => return SuiteKind::Bin,
            TargetKind::Test => return SuiteKind::Test,
            TargetKind::Example => return SuiteKind::Example,
            TargetKind::Bench => return SuiteKind::Bench,
            TargetKind::ProcMacro => return SuiteKind::ProcMacro,
            _ => {}
        }
    }
    SuiteKind::Lib
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
    let cwd = manifest_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let package = pkg.map(|p| p.name.to_string()).unwrap_or_else(|| {
        cwd.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let kind = kind_of(&kinds);
    let mut env = package_env(pkg, &package, &manifest_path, &cwd);
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
    if let (Some(p), Some(dir), SuiteKind::Test | SuiteKind::Bench) = (pkg, &profile_dir, kind) {
        env.extend(bin_exe_env(p, dir));
    }
    // Last: `[env]` may override what cargo sets (cargo applies it last too).
    env.extend(config_env.iter().cloned());
    let id = suite_id(&package, kind, &target);
    Suite {
        slug: slug_of(&id),
        ordinal: 1,
        id,
        package,
        target,
        kind,
        binary,
        args: Vec::new(),
        cwd,
        env,
        limits: Default::default(),
    }
}

/// What cargo sets for every test process of a package: `CARGO`,
/// `CARGO_MANIFEST_DIR`, `CARGO_MANIFEST_PATH` and the `CARGO_PKG_*` variables.
fn package_env(
    pkg: Option<&Package>,
    package: &str,
    manifest_path: &Path,
    cwd: &Path,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("CARGO".into(), cargo_program().display().to_string()),
        ("CARGO_MANIFEST_DIR".into(), cwd.display().to_string()),
        (
            "CARGO_MANIFEST_PATH".into(),
            manifest_path.display().to_string(),
        ),
        ("CARGO_PKG_NAME".into(), package.to_string()),
    ];
    let Some(p) = pkg else { return env };
    let v = &p.version;
    let opt = |o: &Option<String>| o.clone().unwrap_or_default();
    let shown = |o: Option<String>| o.unwrap_or_default();
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
            shown(p.license_file.as_ref().map(|f| f.to_string())),
        ),
        (
            "CARGO_PKG_RUST_VERSION".into(),
            shown(p.rust_version.as_ref().map(|r| r.to_string())),
        ),
        (
            "CARGO_PKG_README".into(),
            shown(p.readme.as_ref().map(|f| f.to_string())),
        ),
    ]);
    env
}

/// `CARGO_BIN_EXE_<name>` for each binary of the package, in `profile_dir`.
fn bin_exe_env(p: &Package, profile_dir: &Path) -> Vec<(String, String)> {
    p.targets
        .iter()
        .filter(|t| t.is_bin())
        .map(|bin| {
            let exe = profile_dir.join(format!("{}{}", bin.name, std::env::consts::EXE_SUFFIX));
            (
                format!("CARGO_BIN_EXE_{}", bin.name),
                exe.display().to_string(),
            )
        })
        .collect()
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

    fn suite(id: &str) -> Suite {
        test_suite(id, "my-pkg", "t", SuiteKind::Test)
    }

    #[test]
    fn slug_is_file_name_safe() {
        assert_eq!(suite("my-pkg::some test").slug(), "my-pkg__some_test");
        assert_eq!(suite("my-pkg::bin/my-pkg").slug(), "my-pkg__bin__my-pkg");
    }

    #[test]
    fn ids_follow_the_package_kind_name_scheme() {
        assert_eq!(suite_id("foo", SuiteKind::Lib, "foo"), "foo");
        assert_eq!(suite_id("foo", SuiteKind::ProcMacro, "foo_macros"), "foo");
        assert_eq!(suite_id("foo", SuiteKind::Bin, "foo"), "foo::bin/foo");
        assert_eq!(suite_id("foo", SuiteKind::Test, "it"), "foo::it");
        assert_eq!(
            suite_id("foo", SuiteKind::Example, "demo"),
            "foo::example/demo"
        );
        assert_eq!(
            suite_id("foo", SuiteKind::Bench, "speed"),
            "foo::bench/speed"
        );
        assert_eq!(
            suite_id("foo", SuiteKind::Doctest, "foo"),
            "foo::doctest/foo"
        );
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
        doc.kind = SuiteKind::Doctest;
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
}
