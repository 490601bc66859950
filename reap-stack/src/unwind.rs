//! A stopped thread's registers and stack, unwound with framehop (DWARF CFI from
//! `.eh_frame`/`.debug_frame`, then frame pointers) on x86-64 and AArch64.

use std::io::IoSliceMut;

use framehop::{CacheNative, MayAllocateDuringUnwind, Unwinder, UnwinderNative};
use nix::sys::uio::{process_vm_readv, RemoteIoVec};
use nix::unistd::Pid;

use crate::modules::{self, Mapped};
use crate::symbols::Symbolizer;
use crate::Frame;

/// The most of a thread's stack read at once, from its stack pointer up.
const STACK_READ: u64 = 1 << 20;

/// A frame before symbolization: its address and the address to look up (one before a
/// return address: the call instruction, not what follows it).
#[derive(Debug, Clone, Copy)]
pub struct RawFrame {
    address: u64,
    lookup: u64,
}

/// The unwinder of one process: its modules loaded once for all its threads.
pub struct ProcessUnwinder {
    pid: i32,
    unwinder: UnwinderNative<Vec<u8>, MayAllocateDuringUnwind>,
    cache: CacheNative<MayAllocateDuringUnwind>,
    /// (path, start, end, bias) of each object.
    objects: Vec<(String, u64, u64, u64)>,
}

impl ProcessUnwinder {
    /// Load the unwind sections of every object mapped in `pid`. An object that cannot be
    /// read is left out: its frames unwind by frame pointer, and show without a name.
    pub fn new(pid: i32) -> ProcessUnwinder {
        let mut unwinder = UnwinderNative::new();
        let mut objects = Vec::new();
        let mapped: Vec<Mapped> = modules::mapped_objects(pid).unwrap_or_default();
        for m in &mapped {
            if let Ok(loaded) = modules::load(pid, m) {
                objects.push((m.path.clone(), m.start, m.end, loaded.bias));
                unwinder.add_module(loaded.module);
            }
        }
        ProcessUnwinder {
            pid,
            unwinder,
            cache: CacheNative::new(),
            objects,
        }
    }

    /// Unwind the stopped thread `tid`: its frames, and why they stop short if they do.
    pub fn unwind(
        &mut self,
        tid: i32,
        max_frames: usize,
    ) -> Result<(Vec<RawFrame>, Option<String>), String> {
        let (pc, regs, sp) = registers(tid)?;
        let stack = Stack::read(self.pid, tid, sp);
        let mut read = |addr: u64| stack.word(addr);
        let mut iter = self
            .unwinder
            .iter_frames(pc, regs, &mut self.cache, &mut read);
        let mut frames = Vec::new();
        loop {
            if frames.len() >= max_frames {
                return Ok((frames, Some(format!("cut at {max_frames} frames"))));
            }
            match iter.next() {
                Ok(Some(f)) => frames.push(RawFrame {
                    address: f.address(),
                    lookup: f.address_for_lookup(),
                }),
                Ok(None) => return Ok((frames, None)),
                // framehop ends most stacks that reached their root with an error too (it
                // cannot always tell): only a stack cut before any frame of code says so.
                Err(e) if frames.len() <= 1 => {
                    return Ok((frames, Some(format!("unwinding stopped: {e}"))))
                }
                Err(_) => return Ok((frames, None)),
            }
        }
    }

    /// The object holding `addr`: (path, bias).
    fn object_of(&self, addr: u64) -> Option<(&str, u64)> {
        self.objects
            .iter()
            .find(|(_, s, e, _)| (*s..*e).contains(&addr))
            .map(|(p, _, _, b)| (p.as_str(), *b))
    }

    /// Functions and lines for `frames`, inlined calls expanded.
    pub fn symbolize(&self, symbolizer: &mut Symbolizer, frames: &[RawFrame]) -> Vec<Frame> {
        frames
            .iter()
            .flat_map(|f| symbolizer.frames(f.address, f.lookup, self.object_of(f.lookup)))
            .collect()
    }
}

/// A copy of the top of a thread's stack, read in one `process_vm_readv`.
struct Stack {
    pid: i32,
    base: u64,
    bytes: Vec<u8>,
}

impl Stack {
    fn read(pid: i32, tid: i32, sp: u64) -> Stack {
        let end = modules::mapping_end(pid, sp)
            .unwrap_or(sp + 4096)
            .min(sp.saturating_add(STACK_READ));
        let mut bytes = vec![0u8; end.saturating_sub(sp) as usize];
        let n = read_remote(tid, sp, &mut bytes).unwrap_or(0);
        bytes.truncate(n);
        Stack {
            pid: tid,
            base: sp,
            bytes,
        }
    }

    /// The word at `addr`: from the copy, or read on its own.
    fn word(&self, addr: u64) -> Result<u64, ()> {
        let off = addr.checked_sub(self.base).ok_or(())? as usize;
        if let Some(b) = self.bytes.get(off..off + 8) {
            return Ok(u64::from_ne_bytes(b.try_into().map_err(|_| ())?));
        }
        let mut b = [0u8; 8];
        match read_remote(self.pid, addr, &mut b) {
            Ok(8) => Ok(u64::from_ne_bytes(b)),
            _ => Err(()),
        }
    }
}

fn read_remote(pid: i32, addr: u64, buf: &mut [u8]) -> nix::Result<usize> {
    let len = buf.len();
    let remote = [RemoteIoVec {
        base: addr as usize,
        len,
    }];
    process_vm_readv(Pid::from_raw(pid), &mut [IoSliceMut::new(buf)], &remote)
}

#[cfg(target_arch = "x86_64")]
type Regs = framehop::x86_64::UnwindRegsX86_64;
#[cfg(target_arch = "aarch64")]
type Regs = framehop::aarch64::UnwindRegsAarch64;

/// The stopped thread's (pc, unwind registers, stack pointer).
fn registers(tid: i32) -> Result<(u64, Regs, u64), String> {
    let r = nix::sys::ptrace::getregs(Pid::from_raw(tid))
        .map_err(|e| format!("reading its registers: {e}"))?;
    #[cfg(target_arch = "x86_64")]
    return Ok((r.rip, Regs::new(r.rip, r.rsp, r.rbp), r.rsp));
    #[cfg(target_arch = "aarch64")]
    return Ok((r.pc, Regs::new(r.regs[30], r.sp, r.regs[29]), r.sp));
}
