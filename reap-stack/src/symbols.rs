//! Addresses to functions and source lines: DWARF through addr2line (inlined frames
//! included), the ELF symbol table where there is no debuginfo, Rust names demangled.

use std::collections::HashMap;

use crate::modules::{file_of, short_name};
use crate::Frame;

/// The symbol tables of the objects of one process, loaded when first needed.
pub struct Symbolizer {
    pid: i32,
    loaders: HashMap<String, Option<addr2line::Loader>>,
}

impl Symbolizer {
    pub fn new(pid: i32) -> Symbolizer {
        Symbolizer {
            pid,
            loaders: HashMap::new(),
        }
    }

    /// The frames (innermost first: inlined calls, then the function holding them) at
    /// `address` (`lookup`: the address to look up, one before a return address) in the
    /// object `path` mapped with `bias`.
    pub fn frames(&mut self, address: u64, lookup: u64, module: Option<(&str, u64)>) -> Vec<Frame> {
        let bare = Frame {
            address,
            function: None,
            file: None,
            line: None,
            module: module.map(|(p, _)| short_name(p)),
            inlined: false,
        };
        let Some((path, bias)) = module else {
            return vec![bare];
        };
        let pid = self.pid;
        let loader = self
            .loaders
            .entry(path.to_string())
            .or_insert_with(|| addr2line::Loader::new(file_of(pid, path)).ok());
        let Some(loader) = loader.as_ref() else {
            return vec![bare];
        };
        let svma = lookup.wrapping_sub(bias);
        let mut out = Vec::new();
        if let Ok(mut iter) = loader.find_frames(svma) {
            while let Ok(Some(f)) = iter.next() {
                let function = f
                    .function
                    .as_ref()
                    .and_then(|n| n.raw_name().ok())
                    .map(|n| demangle(&n));
                let (file, line) = f
                    .location
                    .map(|l| (l.file.map(str::to_string), l.line))
                    .unwrap_or((None, None));
                out.push(Frame {
                    function,
                    file,
                    line,
                    inlined: true,
                    ..bare.clone()
                });
            }
        }
        if let Some(last) = out.last_mut() {
            last.inlined = false;
        }
        if out.iter().all(|f| f.function.is_none()) {
            let function = loader.find_symbol(svma).map(demangle);
            match out.first_mut() {
                Some(f) => f.function = function,
                None => out.push(Frame { function, ..bare }),
            }
        }
        out
    }
}

/// A Rust symbol demangled without its hash; any other name as it is.
pub fn demangle(name: &str) -> String {
    match rustc_demangle::try_demangle(name) {
        Ok(d) => format!("{d:#}"),
        Err(_) => name.to_string(),
    }
}
