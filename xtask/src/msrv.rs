//! The MSRV in the workspace `Cargo.toml` must be true for the locked
//! dependencies: no package the lockfile builds on this platform may declare
//! a newer `rust-version`. No other toolchain can be installed here to try
//! the declared one, so this reads what every locked package declares
//! (`cargo metadata --locked --filter-platform HOST`) and compares.

use anyhow::{bail, Context, Result};
use std::process::Command;

/// `1.80` / `1.80.1` as comparable numbers (missing parts are 0).
fn version(v: &str) -> Result<(u64, u64, u64)> {
    let mut parts = v.split('.').map(|p| p.parse::<u64>());
    let mut next = || parts.next().transpose().map(|p| p.unwrap_or(0));
    Ok((
        next().with_context(|| format!("bad version {v}"))?,
        next().with_context(|| format!("bad version {v}"))?,
        next().with_context(|| format!("bad version {v}"))?,
    ))
}

/// The locked packages (name, their rust-version) newer than the workspace's, and that.
pub fn check() -> Result<(String, Vec<(String, String)>)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    let rustc = String::from_utf8_lossy(&rustc.stdout).into_owned();
    let Some(host) = rustc.lines().find_map(|l| l.strip_prefix("host: ")) else {
        bail!("rustc -vV names no host: {rustc}");
    };
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(["--filter-platform", host])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .context("workspace_members")?
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    let packages = meta["packages"].as_array().context("packages")?;
    let declared = packages
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| members.contains(&id)))
        .filter_map(|p| p["rust_version"].as_str())
        .max_by_key(|v| version(v).unwrap_or_default())
        .context("no workspace member declares rust-version")?
        .to_string();
    let msrv = version(&declared)?;
    let mut newer = Vec::new();
    for p in packages {
        if let Some(v) = p["rust_version"].as_str() {
            if version(v)? > msrv {
                newer.push((p["name"].as_str().unwrap_or("?").to_string(), v.to_string()));
            }
        }
    }
    Ok((declared, newer))
}

#[cfg(test)]
mod tests {
    #[test]
    fn declared_rust_version_is_true_for_the_locked_dependencies() {
        let (declared, newer) = super::check().unwrap();
        assert!(
            newer.is_empty(),
            "rust-version = \"{declared}\" in Cargo.toml, but these locked packages need more: {newer:?}"
        );
    }

    #[test]
    fn versions_compare_by_number() {
        assert!(super::version("1.91").unwrap() > super::version("1.9.5").unwrap());
        assert_eq!(super::version("1.80").unwrap(), (1, 80, 0));
    }
}
