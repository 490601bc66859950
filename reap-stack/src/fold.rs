//! A stack as a person reads it: the frames of the code under test, runs of std / libtest /
//! libc frames and of dependencies (an async runtime: tokio's `block_on` and its scheduler)
//! folded ("… 14 frames in std"), and a headline: the innermost frame of the code under test
//! and the call it is blocked in.

use std::path::Path;

use crate::{Frame, ThreadStack};

/// Whose code a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Rust's std, core, alloc, libtest.
    Std,
    /// The C library, the dynamic loader, the thread start.
    Libc,
    /// A crate from a registry or a git dependency (`~/.cargo/registry/src/…`,
    /// `~/.cargo/git/checkouts/…`): an async runtime, a client library.
    Deps,
    /// Anything else: the code under test, a C program.
    Code,
}

impl Category {
    fn name(self) -> &'static str {
        match self {
            Category::Std => "std",
            Category::Libc => "libc",
            Category::Deps => "dependencies",
            Category::Code => "code",
        }
    }
}

const STD_PREFIXES: &[&str] = &[
    "std::",
    "core::",
    "alloc::",
    "test::",
    "panic_unwind::",
    "__rust",
    "rust_begin_unwind",
];

const LIBC_FUNCTIONS: &[&str] = &[
    "_start",
    "__libc_start_main",
    "__libc_start_call_main",
    "start_thread",
    "clone",
    "clone3",
    "__clone3",
    "__clone",
];

/// Whose code `f` is.
pub fn category(f: &Frame) -> Category {
    let function = f.function.as_deref().unwrap_or("");
    let bare = function.trim_start_matches('<').trim_start_matches('&');
    let bare = bare.strip_prefix("dyn ").unwrap_or(bare);
    let std_file = f
        .file
        .as_deref()
        .is_some_and(|p| p.starts_with("/rustc/") || p.contains("/library/std/"));
    if STD_PREFIXES.iter().any(|p| bare.starts_with(p)) || std_file {
        return Category::Std;
    }
    let module = f.module.as_deref().unwrap_or("");
    if module.starts_with("libc.so")
        || module.starts_with("ld-linux")
        || module.starts_with("libpthread")
        || LIBC_FUNCTIONS.contains(&function)
    {
        return Category::Libc;
    }
    let dependency = f.file.as_deref().is_some_and(|p| {
        p.contains("/.cargo/registry/src/") || p.contains("/.cargo/git/checkouts/")
    });
    if dependency {
        return Category::Deps;
    }
    Category::Code
}

/// `path` relative to `root` when it is inside it.
fn shown_path<'a>(path: &'a str, root: Option<&Path>) -> std::borrow::Cow<'a, str> {
    match root.and_then(|r| Path::new(path).strip_prefix(r).ok()) {
        Some(rel) => rel.to_string_lossy().into_owned().into(),
        None => path.into(),
    }
}

/// `function  file:line` (or the module and address where there is no name).
fn frame_line(f: &Frame, root: Option<&Path>) -> String {
    let name = match &f.function {
        Some(n) => n.clone(),
        None => format!(
            "{:#x} in {}",
            f.address,
            f.module.as_deref().unwrap_or("(unknown)")
        ),
    };
    match (&f.file, f.line) {
        (Some(file), Some(line)) => format!("{name}  {}:{line}", shown_path(file, root)),
        (Some(file), None) => format!("{name}  {}", shown_path(file, root)),
        _ => name,
    }
}

/// Where the thread is blocked: its innermost frame of code under test and the call it
/// waits in (`hangs::recv_forever  tests/hang.rs:12  ← std::sync::mpsc::Receiver<T>::recv`);
/// the innermost frame of a dependency when it has none (a runtime's worker thread), else its
/// innermost frame.
pub fn headline(t: &ThreadStack, root: Option<&Path>) -> Option<String> {
    let innermost = |c| t.frames.iter().position(|f| category(f) == c);
    match innermost(Category::Code).or_else(|| innermost(Category::Deps)) {
        Some(k) => {
            let own = frame_line(&t.frames[k], root);
            Some(
                match k.checked_sub(1).and_then(|c| t.frames[c].function.as_ref()) {
                    Some(callee) => format!("{own}  ← {callee}"),
                    None => own,
                },
            )
        }
        None => t.frames.first().map(|f| frame_line(f, root)),
    }
}

/// A thread as the reports show it: a title line, its headline, then its frames with runs of
/// std and libc frames folded. Paths under `root` are shown relative to it.
pub fn render_thread(t: &ThreadStack, root: Option<&Path>) -> Vec<String> {
    let mut title = format!("thread '{}' (tid {}, {}", t.name, t.tid, t.state);
    if let Some(w) = &t.wchan {
        title.push_str(&format!(", in {w}"));
    }
    title.push(')');
    let mut out = vec![title];
    if let Some(h) = headline(t, root) {
        out.push(format!("  {h}"));
    }
    if let Some(e) = &t.error {
        out.push(format!("  ({e})"));
    }
    let mut k = 0;
    while k < t.frames.len() {
        let cat = category(&t.frames[k]);
        if cat == Category::Code {
            out.push(format!("    {}", frame_line(&t.frames[k], root)));
            k += 1;
            continue;
        }
        let run = t.frames[k..]
            .iter()
            .take_while(|f| category(f) == cat)
            .count();
        if run == 1 {
            out.push(format!("    {}", frame_line(&t.frames[k], root)));
        } else {
            out.push(format!("    … {run} frames in {}", cat.name()));
        }
        k += run;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str, file: Option<&str>, module: &str) -> Frame {
        Frame {
            address: 0x1000,
            function: Some(function.into()),
            file: file.map(str::to_string),
            line: file.map(|_| 12),
            module: Some(module.into()),
            inlined: false,
        }
    }

    fn thread(frames: Vec<Frame>) -> ThreadStack {
        ThreadStack {
            tid: 7,
            name: "recv_forever".into(),
            state: "S".into(),
            wchan: Some("futex_wait_queue".into()),
            frames,
            error: None,
        }
    }

    #[test]
    fn headline_names_the_test_frame_and_the_call_it_waits_in() {
        let t = thread(vec![
            frame("syscall", None, "libc.so.6"),
            frame(
                "std::sys::pal::unix::futex::futex_wait",
                Some("/rustc/x/library/std/src/sys/futex.rs"),
                "hang-1",
            ),
            frame(
                "std::sync::mpsc::Receiver<T>::recv",
                Some("/rustc/x/library/std/src/sync/mpsc.rs"),
                "hang-1",
            ),
            frame("hang::recv_forever", Some("/w/tests/hang.rs"), "hang-1"),
            frame(
                "core::ops::function::FnOnce::call_once",
                Some("/rustc/x/library/core/src/ops.rs"),
                "hang-1",
            ),
            frame(
                "test::run_test",
                Some("/rustc/x/library/test/src/lib.rs"),
                "hang-1",
            ),
            frame("start_thread", None, "libc.so.6"),
            frame("clone3", None, "libc.so.6"),
        ]);
        assert_eq!(
            headline(&t, Some(Path::new("/w"))).as_deref(),
            Some("hang::recv_forever  tests/hang.rs:12  ← std::sync::mpsc::Receiver<T>::recv")
        );
        let lines = render_thread(&t, Some(Path::new("/w")));
        assert_eq!(
            lines,
            vec![
                "thread 'recv_forever' (tid 7, S, in futex_wait_queue)",
                "  hang::recv_forever  tests/hang.rs:12  ← std::sync::mpsc::Receiver<T>::recv",
                "    syscall",
                "    … 2 frames in std",
                "    hang::recv_forever  tests/hang.rs:12",
                "    … 2 frames in std",
                "    … 2 frames in libc",
            ]
        );
    }

    #[test]
    fn a_c_program_without_debuginfo_shows_its_symbols() {
        let t = thread(vec![
            frame("clock_nanosleep", None, "libc.so.6"),
            frame("main", None, "sleep"),
        ]);
        assert_eq!(
            headline(&t, None).as_deref(),
            Some("main  ← clock_nanosleep")
        );
    }

    /// An async test under a runtime from crates.io: the runtime's frames fold as
    /// dependencies and the headline names the test and the runtime call it waits in.
    #[test]
    fn a_runtime_from_a_registry_folds_as_dependencies() {
        let tokio = "/home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.48.0/src";
        let t = thread(vec![
            frame("syscall", None, "libc.so.6"),
            frame(
                "std::thread::park",
                Some("/rustc/x/library/std/src/thread/mod.rs"),
                "t-1",
            ),
            frame(
                "tokio::runtime::park::Inner::park",
                Some(&format!("{tokio}/runtime/park.rs")),
                "t-1",
            ),
            frame(
                "tokio::runtime::runtime::Runtime::block_on",
                Some(&format!("{tokio}/runtime/runtime.rs")),
                "t-1",
            ),
            frame("t::waits_forever", Some("/w/tests/t.rs"), "t-1"),
            frame("start_thread", None, "libc.so.6"),
        ]);
        assert_eq!(
            headline(&t, Some(Path::new("/w"))).as_deref(),
            Some("t::waits_forever  tests/t.rs:12  ← tokio::runtime::runtime::Runtime::block_on")
        );
        let lines = render_thread(&t, Some(Path::new("/w")));
        assert_eq!(
            lines[2..],
            [
                "    syscall",
                "    std::thread::park  /rustc/x/library/std/src/thread/mod.rs:12",
                "    … 2 frames in dependencies",
                "    t::waits_forever  tests/t.rs:12",
                "    start_thread",
            ]
        );
        // A worker thread of the runtime, no code under test on it: its innermost frame of
        // the runtime.
        let worker = thread(t.frames[..4].to_vec());
        assert_eq!(
            headline(&worker, None).as_deref(),
            Some(&*format!(
                "tokio::runtime::park::Inner::park  {tokio}/runtime/park.rs:12  ← std::thread::park"
            ))
        );
    }
}
