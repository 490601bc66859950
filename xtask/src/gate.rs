//! The non-Linux compile-time gate of both published crates.
//!
//! This machine has no non-Linux standard library, so `cargo check --target <non-linux>` cannot
//! run here. The test checks what it can: each crate's lib.rs carries the gate (the cfg line and
//! the `compile_error!` right under it), and the gate's two lines, compiled by rustc with the
//! condition flipped to one that holds on this host (`target_os = "linux"` becomes
//! `target_os = "none"`), fail the build with exactly that message.

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    const GATE_CFG: &str = "#[cfg(not(target_os = \"linux\"))]";

    /// The gate's two lines in `crate_dir/src/lib.rs`, and its message.
    fn gate(crate_dir: &str) -> (String, String) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let lib =
            std::fs::read_to_string(root.join(crate_dir).join("src/lib.rs")).expect("read lib.rs");
        let mut lines = lib.lines().skip_while(|l| l.trim() != GATE_CFG);
        let cfg = lines
            .next()
            .unwrap_or_else(|| panic!("{crate_dir}: no {GATE_CFG}"));
        let call = lines.next().expect("a line after the gate's cfg");
        let message = call
            .strip_prefix("compile_error!(\"")
            .and_then(|m| m.strip_suffix("\");"))
            .unwrap_or_else(|| panic!("{crate_dir}: not a compile_error! under the cfg: {call}"));
        (format!("{cfg}\n{call}\n"), message.to_string())
    }

    #[test]
    fn both_crates_refuse_to_build_off_linux_with_one_line() {
        let tmp = std::env::temp_dir().join(format!("xtask-gate-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).expect("scratch dir");
        for (crate_dir, name) in [
            ("cargo-reap", "cargo-reap"),
            ("reap-probe", "reap-probe"),
            ("reap-stack", "reap-stack"),
        ] {
            let (gate, message) = gate(crate_dir);
            assert!(
                message.starts_with(&format!("{name} supports Linux only: "))
                    && message.contains("procfs"),
                "{crate_dir}: {message}"
            );
            // On this (Linux) host the real gate compiles to nothing: flip the condition.
            let src = tmp.join(format!("{name}.rs"));
            let flipped = gate.replace("target_os = \"linux\"", "target_os = \"none\"");
            std::fs::write(&src, flipped).expect("write the gate");
            let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
            let out = Command::new(rustc)
                .args(["--crate-type", "lib", "--emit", "metadata", "--out-dir"])
                .arg(&tmp)
                .arg(&src)
                .output()
                .expect("run rustc");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{crate_dir}: the gate compiled");
            assert!(
                stderr.contains(&format!("error: {message}")),
                "{crate_dir}: {stderr}"
            );
        }
        std::fs::remove_dir_all(&tmp).expect("remove the scratch dir");
    }
}
