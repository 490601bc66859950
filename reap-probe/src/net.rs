//! The kernel's socket tables (`/proc/PID/net/{tcp,tcp6,udp,udp6,unix}`), indexed by inode.
//!
//! A file descriptor only says `socket:[INODE]`; what the socket is (protocol, state, addresses,
//! queues) is in the tables of the network namespace the socket lives in. They are read through
//! `/proc/PID/net/`, which shows the namespace of process PID, so a process in a container (its
//! own network namespace) is joined with its own tables. Each table is read and parsed once per
//! namespace and forensics call (see [`NetCache`]), never once per descriptor.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::rc::Rc;

use procfs::process::Process;

use crate::process::{read_relative, readlink_relative, still_there};
use crate::ProbeError;

/// What the tables say about one socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SocketEntry {
    /// `tcp`, `tcp6`, `udp`, `udp6`, `unix-stream`, `unix-dgram`, `unix-seqpacket`.
    pub proto: String,
    /// `ESTABLISHED`, `LISTEN`, `CLOSE-WAIT`, ... (TCP, as `ss` names them); `UNCONN` or
    /// `ESTABLISHED` (UDP); `LISTEN`, `CONNECTED`, `UNCONNECTED`, ... (Unix).
    pub state: Option<String>,
    /// `127.0.0.1:8080`, `[::1]:8080`; for Unix sockets the bound path (`@name` if abstract).
    pub local: Option<String>,
    /// The peer's address; `None` when not connected (all zeros) and for Unix sockets.
    pub remote: Option<String>,
    /// Bytes received and not yet read (a listening TCP socket: connections not yet accepted).
    pub rx_queue: Option<u64>,
    /// Bytes sent and not yet acknowledged by the peer (TCP) or not yet sent (UDP).
    pub tx_queue: Option<u64>,
}

/// The socket tables of one network namespace.
#[derive(Debug, Default)]
pub(crate) struct NetTables {
    sockets: HashMap<u64, SocketEntry>,
    /// Tables that exist but could not be read (`net/tcp: permission denied`).
    pub unreadable: Vec<String>,
}

/// The tables a process can have, with the protocol name each one gives its sockets.
const INET_TABLES: [(&str, &str); 4] = [
    ("net/tcp", "tcp"),
    ("net/tcp6", "tcp6"),
    ("net/udp", "udp"),
    ("net/udp6", "udp6"),
];

impl NetTables {
    /// Read every table of the namespace of the process behind `proc`.
    ///
    /// A table that does not exist (no IPv6 in this kernel) is simply empty; one that cannot be
    /// read is noted in [`NetTables::unreadable`]. Only the process vanishing is an error.
    pub(crate) fn load(proc: &Process) -> Result<NetTables, ProbeError> {
        let mut tables = NetTables::default();
        for (file, proto) in INET_TABLES {
            if let Some(buf) = tables.read(proc, file)? {
                parse_inet(&buf, proto, &mut tables.sockets);
            }
        }
        if let Some(buf) = tables.read(proc, "net/unix")? {
            parse_unix(&buf, &mut tables.sockets);
        }
        Ok(tables)
    }

    fn read(&mut self, proc: &Process, file: &str) -> Result<Option<Vec<u8>>, ProbeError> {
        match read_relative(proc, file, 16 * 1024) {
            Ok(buf) => Ok(Some(buf)),
            Err(ProbeError::Gone(pid)) if !still_there(proc) => Err(ProbeError::Gone(pid)),
            Err(ProbeError::Gone(_)) => Ok(None),
            Err(e) => {
                self.unreadable.push(format!("{file}: {e}"));
                Ok(None)
            }
        }
    }

    /// The socket with this inode, if it is in one of the tables.
    pub(crate) fn get(&self, inode: u64) -> Option<&SocketEntry> {
        self.sockets.get(&inode)
    }
}

/// Socket tables per network namespace, read at most once each during one forensics call or tree.
#[derive(Debug, Default)]
pub(crate) struct NetCache {
    /// Keyed by the namespace's inode (`/proc/PID/ns/net` -> `net:[INODE]`).
    by_namespace: HashMap<u64, Rc<NetTables>>,
}

impl NetCache {
    /// The tables of the namespace of the process behind `proc`, read now if not yet cached.
    pub(crate) fn tables_for(&mut self, proc: &Process) -> Result<Rc<NetTables>, ProbeError> {
        let namespace = readlink_relative(proc, "ns/net")
            .ok()
            .and_then(|link| parse_namespace_inode(&link));
        // Without the namespace identity (not permitted to see it) nothing can be shared safely.
        let Some(namespace) = namespace else {
            return NetTables::load(proc).map(Rc::new);
        };
        if let Some(tables) = self.by_namespace.get(&namespace) {
            return Ok(tables.clone());
        }
        let tables = Rc::new(NetTables::load(proc)?);
        self.by_namespace.insert(namespace, tables.clone());
        Ok(tables)
    }
}

/// `net:[4026531833]` -> 4026531833.
fn parse_namespace_inode(link: &str) -> Option<u64> {
    link.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// Parse a `/proc/net/{tcp,tcp6,udp,udp6}` table into `out`, keyed by inode.
///
/// ```text
///   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
///    0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 43121 ...
/// ```
///
/// Entries with inode 0 (TIME-WAIT and request minisockets, which belong to no descriptor) and
/// lines that do not parse are skipped.
pub(crate) fn parse_inet(buf: &[u8], proto: &str, out: &mut HashMap<u64, SocketEntry>) {
    let udp = proto.starts_with("udp");
    for line in String::from_utf8_lossy(buf).lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 10 {
            continue;
        }
        let Ok(inode) = fields[9].parse::<u64>() else {
            continue;
        };
        if inode == 0 {
            continue;
        }
        let Ok(code) = u8::from_str_radix(fields[3], 16) else {
            continue;
        };
        let (tx, rx) = fields[4].split_once(':').unwrap_or(("", ""));
        let local = parse_addr(fields[1]);
        let remote = parse_addr(fields[2]).filter(|a| !a.ip().is_unspecified() || a.port() != 0);
        let state = if udp {
            udp_state_name(code)
        } else {
            tcp_state_name(code)
        };
        out.insert(
            inode,
            SocketEntry {
                proto: proto.to_owned(),
                state: Some(state),
                local: local.map(|a| a.to_string()),
                remote: remote.map(|a| a.to_string()),
                rx_queue: u64::from_str_radix(rx, 16).ok(),
                tx_queue: u64::from_str_radix(tx, 16).ok(),
            },
        );
    }
}

/// Parse a `/proc/net/{tcp,udp}` address, `0100007F:1F90` or (IPv6) 32 hex digits, a colon and
/// the port.
///
/// The kernel prints each 32-bit word of the address (network byte order in memory) as a native
/// integer with `%08X`, so each word's bytes come back with `to_ne_bytes` (on x86 and ARM, little
/// endian: `0100007F` is 127.0.0.1). The port is printed in host order.
pub(crate) fn parse_addr(field: &str) -> Option<SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = ip.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    match ip.len() {
        8 => Some(SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::from(word(0)?),
            port,
        ))),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(bytes),
                port,
                0,
                0,
            )))
        }
        _ => None,
    }
}

/// TCP state code (`st` column, `include/net/tcp_states.h`) as `ss` names it.
pub(crate) fn tcp_state_name(code: u8) -> String {
    let name = match code {
        0x01 => "ESTABLISHED",
        0x02 => "SYN-SENT",
        0x03 => "SYN-RECV",
        0x04 => "FIN-WAIT-1",
        0x05 => "FIN-WAIT-2",
        0x06 => "TIME-WAIT",
        0x07 => "CLOSE",
        0x08 => "CLOSE-WAIT",
        0x09 => "LAST-ACK",
        0x0A => "LISTEN",
        0x0B => "CLOSING",
        0x0C => "NEW-SYN-RECV",
        0x0D => "BOUND-INACTIVE",
        _ => return format!("state {code:#04x}"),
    };
    name.to_owned()
}

/// UDP sockets reuse the TCP codes: 01 connected, 07 not (`ss` says `UNCONN`).
fn udp_state_name(code: u8) -> String {
    match code {
        0x07 => "UNCONN".to_owned(),
        _ => tcp_state_name(code),
    }
}

/// `__SO_ACCEPTCON` in the `Flags` column of `/proc/net/unix`: a listening socket.
const UNIX_ACCEPTCON: u32 = 1 << 16;

/// Parse `/proc/net/unix` into `out`, keyed by inode.
///
/// ```text
/// Num       RefCount Protocol Flags    Type St Inode Path
/// 000000003e1b2b8a: 00000002 00000000 00010000 0001 01 28123 /run/x.sock
/// ```
///
/// The table has no queue sizes (those need `sock_diag` netlink): `rx_queue` and `tx_queue` stay
/// `None`.
pub(crate) fn parse_unix(buf: &[u8], out: &mut HashMap<u64, SocketEntry>) {
    for line in String::from_utf8_lossy(buf).lines().skip(1) {
        let mut rest = line.trim_start();
        let mut fields = [""; 7];
        let mut complete = true;
        for field in &mut fields {
            rest = rest.trim_start();
            let end = rest.find(' ').unwrap_or(rest.len());
            if end == 0 {
                complete = false;
                break;
            }
            *field = &rest[..end];
            rest = &rest[end..];
        }
        if !complete {
            continue;
        }
        let [_, _, _, flags, kind, state, inode] = fields;
        let (Ok(flags), Ok(kind), Ok(state), Ok(inode)) = (
            u32::from_str_radix(flags, 16),
            u16::from_str_radix(kind, 16),
            u8::from_str_radix(state, 16),
            inode.parse::<u64>(),
        ) else {
            continue;
        };
        let proto = match kind {
            1 => "unix-stream".to_owned(),
            2 => "unix-dgram".to_owned(),
            5 => "unix-seqpacket".to_owned(),
            other => format!("unix-type-{other}"),
        };
        let state = if flags & UNIX_ACCEPTCON != 0 {
            "LISTEN".to_owned()
        } else {
            match state {
                1 => "UNCONNECTED".to_owned(),
                2 => "CONNECTING".to_owned(),
                3 => "CONNECTED".to_owned(),
                4 => "DISCONNECTING".to_owned(),
                other => format!("state {other:#04x}"),
            }
        };
        let path = rest.strip_prefix(' ').unwrap_or(rest);
        out.insert(
            inode,
            SocketEntry {
                proto,
                state: Some(state),
                local: (!path.is_empty()).then(|| path.to_owned()),
                remote: None,
                rx_queue: None,
                tx_queue: None,
            },
        );
    }
}
