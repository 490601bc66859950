//! The ELF objects mapped in a process (`/proc/PID/maps`): their unwind sections for
//! framehop, their DWARF and symbol tables for addr2line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection, ObjectSegment};

/// One file-backed object mapped in the process.
pub struct Mapped {
    /// Its path as the process sees it.
    pub path: String,
    /// Where it is mapped (the union of its mappings).
    pub start: u64,
    pub end: u64,
    /// Its executable ranges.
    pub exec: Vec<(u64, u64)>,
    /// Its first mapping: (address, file offset).
    first: (u64, u64),
}

/// A line of /proc/PID/maps: (start, end, perms, offset, path).
fn parse_line(line: &str) -> Option<(u64, u64, &str, u64, &str)> {
    let mut it = line.splitn(6, ' ');
    let range = it.next()?;
    let perms = it.next()?;
    let offset = u64::from_str_radix(it.next()?, 16).ok()?;
    let _dev = it.next()?;
    let _inode = it.next()?;
    let path = it.next().unwrap_or("").trim_start();
    let (s, e) = range.split_once('-')?;
    Some((
        u64::from_str_radix(s, 16).ok()?,
        u64::from_str_radix(e, 16).ok()?,
        perms,
        offset,
        path,
    ))
}

/// The objects mapped in `pid` that have executable code, in address order.
pub fn mapped_objects(pid: i32) -> std::io::Result<Vec<Mapped>> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let mut by_path: BTreeMap<String, Mapped> = BTreeMap::new();
    for line in maps.lines() {
        let Some((start, end, perms, offset, path)) = parse_line(line) else {
            continue;
        };
        if !path.starts_with('/') || path.ends_with(" (deleted)") {
            continue;
        }
        let m = by_path.entry(path.to_string()).or_insert_with(|| Mapped {
            path: path.to_string(),
            start,
            end,
            exec: Vec::new(),
            first: (start, offset),
        });
        m.start = m.start.min(start);
        m.end = m.end.max(end);
        if start < m.first.0 {
            m.first = (start, offset);
        }
        if perms.as_bytes().get(2) == Some(&b'x') {
            m.exec.push((start, end));
        }
    }
    let mut out: Vec<Mapped> = by_path
        .into_values()
        .filter(|m| !m.exec.is_empty())
        .collect();
    out.sort_by_key(|m| m.start);
    Ok(out)
}

/// The stack mapping containing `sp`: its end.
pub fn mapping_end(pid: i32, addr: u64) -> Option<u64> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    maps.lines()
        .filter_map(parse_line)
        .find(|(s, e, ..)| (*s..*e).contains(&addr))
        .map(|(_, e, ..)| e)
}

/// The file of a mapped object, opened through the process's root (its mount namespace).
pub fn file_of(pid: i32, path: &str) -> PathBuf {
    let through_root = PathBuf::from(format!("/proc/{pid}/root{path}"));
    if through_root.exists() {
        through_root
    } else {
        PathBuf::from(path)
    }
}

/// An object loaded for unwinding: its framehop module and the bias (actual address minus
/// stated address).
pub struct Loaded {
    pub module: framehop::Module<Vec<u8>>,
    pub bias: u64,
}

/// Read `m`'s ELF file and build the framehop module for it.
pub fn load(pid: i32, m: &Mapped) -> Result<Loaded, String> {
    let file = file_of(pid, &m.path);
    let data = std::fs::read(&file).map_err(|e| format!("{}: {e}", m.path))?;
    let obj = object::File::parse(&*data).map_err(|e| format!("{}: {e}", m.path))?;
    let bias = bias_of(&obj, m.first).ok_or_else(|| format!("{}: no segment", m.path))?;
    let section = |name: &str| {
        obj.section_by_name(name).and_then(|s| {
            let range = s.address()..s.address() + s.size();
            s.uncompressed_data().ok().map(|d| (range, d.into_owned()))
        })
    };
    let (text_svma, text) = section(".text").unzip();
    let (eh_frame_svma, eh_frame) = section(".eh_frame").unzip();
    let (eh_frame_hdr_svma, eh_frame_hdr) = section(".eh_frame_hdr").unzip();
    let got_svma = section(".got").map(|(r, _)| r);
    let debug_frame = section(".debug_frame").map(|(_, d)| d);
    let info = framehop::ExplicitModuleSectionInfo {
        base_svma: 0,
        text_svma,
        text,
        got_svma,
        eh_frame_svma,
        eh_frame,
        eh_frame_hdr_svma,
        eh_frame_hdr,
        debug_frame,
        ..Default::default()
    };
    let module = framehop::Module::new(m.path.clone(), m.start..m.end, bias, info);
    Ok(Loaded { module, bias })
}

/// Actual minus stated address: the first mapping (`addr`, file `offset`) holds the segment
/// whose file range covers `offset`.
fn bias_of(obj: &object::File<'_>, (addr, offset): (u64, u64)) -> Option<u64> {
    obj.segments().find_map(|seg| {
        let (foff, fsize) = seg.file_range();
        let page_start = foff & !0xfff;
        (page_start <= offset && offset < foff + fsize.max(1)).then(|| {
            let stated = seg.address().wrapping_sub(foff).wrapping_add(offset);
            addr.wrapping_sub(stated)
        })
    })
}

/// A short name for a module: its file name.
pub fn short_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string())
}
