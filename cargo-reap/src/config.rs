//! Configuration in Cargo.toml: `[workspace.metadata.reap]` and
//! `[package.metadata.reap]`, read through cargo metadata. Command-line flags
//! override it; a package's table overrides the workspace's for that
//! package's suites; `[…metadata.reap.suite."<suite id>"]` overrides
//! both for one suite (ids as in the report: `my-pkg` for the lib's unit
//! tests, `my-pkg::it` for an integration test, `my-pkg::bin/name`,
//! `my-pkg::doctest/my_pkg`, ...). Unknown keys and bad values are errors that name the
//! key and the file.
//!
//! ```toml
//! [workspace.metadata.reap]
//! timeout = "2m"
//! grace = "3s"
//! hang-retries = 1
//! settle = "200ms"
//! jobs = 4
//! attribute = "auto"            # auto | rerun | off
//! attribute-max-tests = 40
//! attribute-max-time = "60s"
//! systemd-scope = true        # as --systemd-scope
//!
//! [workspace.metadata.reap.suite."my-pkg::slow_integration"]
//! timeout = "10m"
//!
//! [[workspace.metadata.reap.allow]]
//! command = "^/usr/sbin/nscd"   # regex on the command line (arguments joined by spaces)
//! suite = "my-pkg::dns"         # optional: only this suite
//! reason = "nscd is started on purpose and shared by the whole CI job"
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::duration::{parse_duration, parse_timeout};
use crate::error::EngineError;
use crate::options::{
    check_range, AttributeMode, Limits, PartialLimits, MAX_ATTRIBUTE_TESTS, MAX_HANG_RETRIES,
    MAX_JOBS,
};

/// One `[...metadata.reap]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawTable {
    timeout: Option<String>,
    grace: Option<String>,
    hang_retries: Option<u32>,
    settle: Option<String>,
    jobs: Option<usize>,
    attribute: Option<AttributeMode>,
    attribute_max_tests: Option<usize>,
    attribute_max_time: Option<String>,
    systemd_scope: Option<bool>,
    stacks: Option<bool>,
    watch_dirs: Option<Vec<String>>,
    sample_every: Option<String>,
    max_growth: Option<String>,
    #[serde(default)]
    suite: BTreeMap<String, RawLimits>,
    #[serde(default)]
    allow: Vec<RawAllow>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLimits {
    timeout: Option<String>,
    grace: Option<String>,
    hang_retries: Option<u32>,
    settle: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    command: String,
    suite: Option<String>,
    reason: String,
}

/// An expected survivor: reported as allowed, not failing.
#[derive(Debug, Clone)]
pub struct AllowRule {
    pub command: regex::Regex,
    /// Suite id it is limited to, if any.
    pub suite: Option<String>,
    /// Package whose table it came from (package tables apply to their suites only).
    pub package: Option<String>,
    pub reason: String,
}

impl AllowRule {
    pub fn matches(&self, suite_id: &str, package: &str, cmdline: &[String]) -> bool {
        self.suite.as_deref().is_none_or(|s| s == suite_id)
            && self.package.as_deref().is_none_or(|p| p == package)
            && self.command.is_match(&cmdline.join(" "))
    }
}

/// A parsed table.
#[derive(Debug, Default, Clone)]
pub struct Table {
    pub limits: PartialLimits,
    pub jobs: Option<usize>,
    pub attribute: Option<AttributeMode>,
    pub attribute_max_tests: Option<usize>,
    pub attribute_max_time: Option<Duration>,
    /// `systemd-scope = true`: as `--systemd-scope` (workspace table only).
    pub systemd_scope: Option<bool>,
    /// `stacks = false`: as `--no-stacks`.
    pub stacks: Option<bool>,
    /// `cargo reap run --watch`: `watch-dirs`, `sample-every`, `max-growth`.
    pub watch: WatchConfig,
    pub suites: BTreeMap<String, PartialLimits>,
    pub allow: Vec<AllowRule>,
}

/// The `--watch` keys of a table.
#[derive(Debug, Default, Clone)]
pub struct WatchConfig {
    /// `watch-dirs`, relative ones joined to the manifest's directory.
    pub dirs: Vec<std::path::PathBuf>,
    pub sample_every: Option<Duration>,
    /// `max-growth`, checked (`KEY=RATE,…` as `--max-growth`).
    pub max_growth: Option<String>,
}

/// All configuration of a workspace.
#[derive(Debug, Default, Clone)]
pub struct Config {
    pub workspace: Table,
    /// Package name → its table.
    pub packages: BTreeMap<String, Table>,
}

/// Is `id` shaped like a suite id: a package name, optionally followed by
/// `::` and a non-empty target part?
fn is_suite_id(id: &str) -> bool {
    let (package, rest) = match id.split_once("::") {
        Some((p, r)) => (p, Some(r)),
        None => (id, None),
    };
    !package.is_empty()
        && package
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && rest.is_none_or(|r| !r.is_empty() && !r.starts_with('/'))
}

impl Config {
    /// Warnings for suite keys (limits and `allow` rules) written in the
    /// scheme before suite ids were unique: `<package>::<target>` naming a
    /// lib, proc-macro, bin, example or bench of this run, whose id is now
    /// another one. Such a key matches no suite; the warning names the id.
    pub fn old_suite_keys(&self, suites: &[crate::discover::Suite]) -> Vec<String> {
        let tables = std::iter::once(&self.workspace).chain(self.packages.values());
        let keys = tables.flat_map(|t| {
            t.suites
                .keys()
                .cloned()
                .chain(t.allow.iter().filter_map(|a| a.suite.clone()))
        });
        let mut out = Vec::new();
        for key in keys {
            if suites.iter().any(|s| s.id == key) {
                continue;
            }
            if let Some(s) = suites.iter().find(|s| {
                s.kind != crate::discover::SuiteKind::Test
                    && format!("{}::{}", s.package, s.target) == key
            }) {
                let line = format!(
                    "configuration: suite `{key}` matches no suite; the {} `{}` of {} is `{}`",
                    s.kind, s.target, s.package, s.id
                );
                if !out.contains(&line) {
                    out.push(line);
                }
            }
        }
        out
    }

    /// Read `[workspace.metadata.reap]` and every member's `[package.metadata.reap]`.
    pub fn load(meta: &cargo_metadata::Metadata) -> Result<Config, EngineError> {
        let ws_manifest = meta.workspace_root.join("Cargo.toml").into_std_path_buf();
        let workspace = match meta.workspace_metadata.get("reap") {
            Some(v) => parse_table(v, "[workspace.metadata.reap]", &ws_manifest, None)?,
            None => Table::default(),
        };
        let mut packages = BTreeMap::new();
        for p in meta.workspace_packages() {
            if let Some(v) = p.metadata.get("reap") {
                let t = parse_table(
                    v,
                    "[package.metadata.reap]",
                    p.manifest_path.as_std_path(),
                    Some(p.name.to_string()),
                )?;
                packages.insert(p.name.to_string(), t);
            }
        }
        Ok(Config {
            workspace,
            packages,
        })
    }

    /// `cargo reap run`: the configuration of the workspace the command runs
    /// in, found from `CARGO_MANIFEST_DIR` (set by cargo for a test binary it
    /// runs through a target runner), else from the working directory up.
    /// No manifest: the defaults. A manifest cargo cannot read: the defaults,
    /// and the returned warning says so. Bad configuration is an error.
    pub fn for_runner() -> Result<(Config, Option<String>), EngineError> {
        let start = match std::env::var_os("CARGO_MANIFEST_DIR") {
            Some(d) => std::path::PathBuf::from(d),
            None => match std::env::current_dir() {
                Ok(d) => d,
                Err(e) => {
                    return Ok((
                        Config::default(),
                        Some(format!(
                            "the working directory is unreadable ({e}): no [workspace.metadata.reap] configuration applies"
                        )),
                    ))
                }
            },
        };
        let manifests: Vec<std::path::PathBuf> = start
            .ancestors()
            .map(|d| d.join("Cargo.toml"))
            .filter(|m| m.is_file())
            .collect();
        let Some(manifest) = manifests.first().cloned() else {
            return Ok((Config::default(), None));
        };
        // A runner runs once per test binary (nextest: once per test): cargo
        // metadata (tens of milliseconds) only when the package's or a
        // workspace's manifest holds a reap table (one that cannot be read
        // or parsed here: let cargo say why).
        let may_configure = manifests.iter().any(|m| has_reap_table(m));
        if !may_configure {
            return Ok((Config::default(), None));
        }
        let meta = cargo_metadata::MetadataCommand::new()
            .cargo_path(crate::discover::cargo_program())
            .no_deps()
            .manifest_path(&manifest)
            .exec();
        match meta {
            Ok(meta) => Ok((Config::load(&meta)?, None)),
            Err(e) => Ok((
                Config::default(),
                Some(format!(
                    "cannot read the configuration of {} ({e}); running with the defaults (check `cargo metadata` there)",
                    manifest.display()
                )),
            )),
        }
    }

    /// The limits of one suite: defaults ← workspace ← package ← suite
    /// entries (workspace, then package) ← command line.
    pub fn limits_for(
        &self,
        suite_id: &str,
        package: &str,
        cli: PartialLimits,
        defaults: Limits,
    ) -> Limits {
        let mut l = self.workspace.limits.over(defaults);
        let pkg = self.packages.get(package);
        if let Some(p) = pkg {
            l = p.limits.over(l);
        }
        if let Some(s) = self.workspace.suites.get(suite_id) {
            l = s.over(l);
        }
        if let Some(s) = pkg.and_then(|p| p.suites.get(suite_id)) {
            l = s.over(l);
        }
        cli.over(l)
    }

    /// The `--watch` keys: the workspace table's, each overridden by a
    /// package table that sets it.
    pub fn watch(&self) -> WatchConfig {
        let mut w = self.workspace.watch.clone();
        for t in self.packages.values() {
            if !t.watch.dirs.is_empty() {
                w.dirs = t.watch.dirs.clone();
            }
            w.sample_every = t.watch.sample_every.or(w.sample_every);
            w.max_growth = t.watch.max_growth.clone().or(w.max_growth);
        }
        w
    }

    /// Every allow rule.
    pub fn allow_rules(&self) -> impl Iterator<Item = &AllowRule> {
        self.workspace
            .allow
            .iter()
            .chain(self.packages.values().flat_map(|t| t.allow.iter()))
    }
}

/// Does the manifest at `path` hold `[package.metadata.reap]` or
/// `[workspace.metadata.reap]` (or anything cargo should judge: a file that
/// cannot be read or parsed as TOML)?
fn has_reap_table(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return true;
    };
    if !text.contains("reap") {
        return false;
    }
    let Ok(table) = toml::from_str::<toml::Table>(&text) else {
        return true;
    };
    ["package", "workspace"].iter().any(|k| {
        table
            .get(*k)
            .and_then(|t| t.get("metadata"))
            .and_then(|m| m.get("reap"))
            .is_some()
    })
}

fn bad(table: &str, file: &Path, what: impl std::fmt::Display) -> EngineError {
    EngineError::Usage(format!("{table} in {}: {what}", file.display()))
}

fn duration(
    table: &str,
    file: &Path,
    key: &str,
    v: &Option<String>,
) -> Result<Option<Duration>, EngineError> {
    let parse = if key.ends_with("timeout") {
        parse_timeout
    } else {
        parse_duration
    };
    v.as_deref()
        .map(|s| parse(s).map_err(|e| bad(table, file, format!("`{key}`: {e}"))))
        .transpose()
}

/// A count within `lo..=hi`, as the command line bounds it.
fn count<T: Copy + Into<u64>>(
    table: &str,
    file: &Path,
    key: &str,
    v: Option<T>,
    lo: u64,
    hi: u64,
) -> Result<Option<T>, EngineError> {
    if let Some(n) = v {
        check_range(n.into(), lo, hi).map_err(|e| bad(table, file, format!("`{key}`: {e}")))?;
    }
    Ok(v)
}

fn limits(
    table: &str,
    file: &Path,
    prefix: &str,
    r: &RawLimits,
) -> Result<PartialLimits, EngineError> {
    Ok(PartialLimits {
        timeout: duration(table, file, &format!("{prefix}timeout"), &r.timeout)?,
        grace: duration(table, file, &format!("{prefix}grace"), &r.grace)?,
        hang_retries: count(
            table,
            file,
            &format!("{prefix}hang-retries"),
            r.hang_retries,
            0,
            MAX_HANG_RETRIES,
        )?,
        settle: duration(table, file, &format!("{prefix}settle"), &r.settle)?,
    })
}

fn parse_table(
    v: &serde_json::Value,
    table: &str,
    file: &Path,
    package: Option<String>,
) -> Result<Table, EngineError> {
    let raw: RawTable = serde_json::from_value(v.clone()).map_err(|e| bad(table, file, e))?;
    let watch = watch_keys(table, file, &raw)?;
    let top = RawLimits {
        timeout: raw.timeout,
        grace: raw.grace,
        hang_retries: raw.hang_retries,
        settle: raw.settle,
    };
    let mut suites = BTreeMap::new();
    for (id, l) in &raw.suite {
        if !is_suite_id(id) {
            return Err(bad(
                table,
                file,
                format!(
                    "`suite.\"{id}\"`: a suite id is `<package>` (its lib), \
                     `<package>::<test>` or `<package>::<kind>/<name>`"
                ),
            ));
        }
        suites.insert(
            id.clone(),
            limits(table, file, &format!("suite.\"{id}\"."), l)?,
        );
    }
    count(table, file, "jobs", raw.jobs.map(|n| n as u64), 1, MAX_JOBS)?;
    count(
        table,
        file,
        "attribute-max-tests",
        raw.attribute_max_tests.map(|n| n as u64),
        0,
        MAX_ATTRIBUTE_TESTS,
    )?;
    let mut allow = Vec::new();
    for (i, a) in raw.allow.iter().enumerate() {
        if a.reason.trim().is_empty() {
            return Err(bad(
                table,
                file,
                format!("`allow[{i}].reason` must say why the survivor is expected"),
            ));
        }
        let command = regex::Regex::new(&a.command)
            .map_err(|e| bad(table, file, format!("`allow[{i}].command`: {e}")))?;
        allow.push(AllowRule {
            command,
            suite: a.suite.clone(),
            package: package.clone(),
            reason: a.reason.clone(),
        });
    }
    Ok(Table {
        limits: limits(table, file, "", &top)?,
        jobs: raw.jobs,
        attribute: raw.attribute,
        attribute_max_tests: raw.attribute_max_tests,
        attribute_max_time: duration(table, file, "attribute-max-time", &raw.attribute_max_time)?,
        systemd_scope: raw.systemd_scope,
        stacks: raw.stacks,
        watch,
        suites,
        allow,
    })
}

/// `watch-dirs`, `sample-every`, `max-growth`, checked.
fn watch_keys(table: &str, file: &Path, raw: &RawTable) -> Result<WatchConfig, EngineError> {
    let base = file.parent().unwrap_or(Path::new("."));
    let sample_every = duration(table, file, "sample-every", &raw.sample_every)?;
    if sample_every == Some(Duration::ZERO) {
        return Err(bad(table, file, "`sample-every`: must be above 0"));
    }
    if let Some(spec) = &raw.max_growth {
        reap_report::trend::MaxGrowth::default()
            .with(spec)
            .map_err(|e| bad(table, file, format!("`max-growth`: {e}")))?;
    }
    Ok(WatchConfig {
        dirs: raw
            .watch_dirs
            .iter()
            .flatten()
            .map(|d| base.join(d))
            .collect(),
        sample_every,
        max_growth: raw.max_growth.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cargo reap run` runs `cargo metadata` only for a manifest with a reap
    /// table: not for a package merely named like one.
    #[test]
    fn only_a_reap_table_costs_a_cargo_metadata() {
        let dir =
            std::env::temp_dir().join(format!("cargo-reap-unit-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let check = |text: &str| {
            let path = dir.join("Cargo.toml");
            std::fs::write(&path, text).unwrap();
            has_reap_table(&path)
        };
        let named = check("[package]\nname = \"reaper\"\nversion = \"0.1.0\"\n");
        let package = check("[package]\nname = \"x\"\n[package.metadata.reap]\ntimeout = \"1s\"\n");
        let workspace = check("[workspace]\n[workspace.metadata.reap]\njobs = 2\n");
        let unparsable = check("[package\nreap");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!named);
        assert!(package);
        assert!(workspace);
        assert!(unparsable, "cargo says what is wrong with it");
        assert!(has_reap_table(&dir.join("missing/Cargo.toml")));
    }

    fn table(v: serde_json::Value) -> Result<Table, EngineError> {
        parse_table(
            &v,
            "[workspace.metadata.reap]",
            Path::new("/x/Cargo.toml"),
            None,
        )
    }

    #[test]
    fn reads_keys_and_overrides() {
        let t = table(serde_json::json!({
            "timeout": "2m", "hang-retries": 2, "jobs": 3, "attribute": "off",
            "suite": { "p::slow": { "timeout": "10m" } },
            "allow": [ { "command": "^nscd", "reason": "shared daemon" } ]
        }))
        .unwrap();
        assert_eq!(t.limits.timeout, Some(Duration::from_secs(120)));
        assert_eq!(t.limits.hang_retries, Some(2));
        assert_eq!(t.jobs, Some(3));
        assert_eq!(t.attribute, Some(AttributeMode::Off));
        assert_eq!(t.suites["p::slow"].timeout, Some(Duration::from_secs(600)));
        assert!(t.allow[0].matches("p::x", "p", &["nscd".into(), "-F".into()]));
        assert!(!t.allow[0].matches("p::x", "p", &["sleep".into()]));
    }

    #[test]
    fn reads_the_watch_keys() {
        let t = table(serde_json::json!({
            "watch-dirs": ["telemetry", "/var/spool/x"],
            "sample-every": "10s",
            "max-growth": "memory=10MiB/h,threads=0"
        }))
        .unwrap();
        assert_eq!(
            t.watch.dirs,
            [
                std::path::PathBuf::from("/x/telemetry"),
                "/var/spool/x".into()
            ]
        );
        assert_eq!(t.watch.sample_every, Some(Duration::from_secs(10)));
        assert_eq!(
            t.watch.max_growth.as_deref(),
            Some("memory=10MiB/h,threads=0")
        );
        for (bad, says) in [
            (serde_json::json!({ "max-growth": "cpu=1" }), "`max-growth`"),
            (
                serde_json::json!({ "sample-every": "0s" }),
                "`sample-every`",
            ),
            (
                serde_json::json!({ "watch-dirs": "telemetry" }),
                "expected a sequence",
            ),
        ] {
            let e = table(bad).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("/x/Cargo.toml"), "{e}");
        }
    }

    #[test]
    fn errors_name_the_key_and_the_file() {
        let e = table(serde_json::json!({ "timout": "2m" }))
            .unwrap_err()
            .to_string();
        assert!(e.contains("timout") && e.contains("/x/Cargo.toml"), "{e}");
        let e = table(serde_json::json!({ "grace": "soon" }))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`grace`") && e.contains("not a duration"), "{e}");
        let e = table(serde_json::json!({ "allow": [ { "command": "x" } ] }))
            .unwrap_err()
            .to_string();
        assert!(e.contains("reason"), "{e}");
        let e = table(serde_json::json!({ "allow": [ { "command": "(", "reason": "r" } ] }))
            .unwrap_err()
            .to_string();
        assert!(e.contains("allow[0].command"), "{e}");
        for bad_id in ["", "p::", "p::/x", "a b", "::t"] {
            let e = table(serde_json::json!({ "suite": { bad_id: {} } }))
                .unwrap_err()
                .to_string();
            assert!(e.contains("<package>::<kind>/<name>"), "{bad_id}: {e}");
        }
        for id in ["my-pkg", "my-pkg::it", "my-pkg::bin/my-pkg", "p::doctest/p"] {
            assert!(is_suite_id(id), "{id}");
        }
    }

    #[test]
    fn keys_in_the_old_id_scheme_are_named_with_the_new_id() {
        use crate::discover::{test_suite, SuiteKind};
        let mut ws = table(serde_json::json!({
            "suite": { "p::p": {}, "p::it": {}, "p::gone": {}, "p": {} },
            "allow": [ { "command": "x", "reason": "r", "suite": "p::tool" } ]
        }))
        .unwrap();
        ws.limits = PartialLimits::default();
        let config = Config {
            workspace: ws,
            packages: BTreeMap::new(),
        };
        let suites = [
            test_suite("p", "p", "p", SuiteKind::Lib),
            test_suite("p::it", "p", "it", SuiteKind::Test),
            test_suite("p::bin/tool", "p", "tool", SuiteKind::Bin),
        ];
        assert_eq!(
            config.old_suite_keys(&suites),
            [
                "configuration: suite `p::p` matches no suite; the lib `p` of p is `p`",
                "configuration: suite `p::tool` matches no suite; the bin `tool` of p is \
                 `p::bin/tool`"
            ]
        );
    }

    #[test]
    fn precedence_cli_over_suite_over_package_over_workspace() {
        let defaults = Limits {
            timeout: Duration::from_secs(300),
            grace: Duration::from_secs(5),
            hang_retries: 1,
            settle: Duration::from_millis(100),
        };
        let mut c = Config::default();
        c.workspace.limits.timeout = Some(Duration::from_secs(100));
        c.workspace.limits.grace = Some(Duration::from_secs(2));
        let mut pt = Table::default();
        pt.limits.timeout = Some(Duration::from_secs(50));
        pt.suites.insert(
            "p::s".into(),
            PartialLimits {
                timeout: Some(Duration::from_secs(10)),
                ..Default::default()
            },
        );
        c.packages.insert("p".into(), pt);
        let l = c.limits_for("p::s", "p", PartialLimits::default(), defaults);
        assert_eq!(l.timeout, Duration::from_secs(10));
        assert_eq!(l.grace, Duration::from_secs(2));
        assert_eq!(
            c.limits_for("p::t", "p", PartialLimits::default(), defaults)
                .timeout,
            Duration::from_secs(50)
        );
        assert_eq!(
            c.limits_for("q::t", "q", PartialLimits::default(), defaults)
                .timeout,
            Duration::from_secs(100)
        );
        let cli = PartialLimits {
            timeout: Some(Duration::from_secs(1)),
            ..Default::default()
        };
        assert_eq!(
            c.limits_for("p::s", "p", cli, defaults).timeout,
            Duration::from_secs(1)
        );
    }
}
