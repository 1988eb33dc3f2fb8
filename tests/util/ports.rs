//! Ports for servers the tests cannot ask to bind port 0 (rsyslogd; a
//! receiver restarted on the port it had; a destination that is down
//! first and comes up later), held from reservation to use.
//!
//! Binding port 0 and dropping the socket leaves the port free for anyone
//! until it is bound again, and several engineers run these tests on the
//! same machine at once. A [`ReservedPort`] is instead taken below the
//! kernel's ephemeral range (so no `bind(0)` and no outgoing connection
//! gets it) and guarded by an exclusive `flock` on a file per port in the
//! temporary directory, which every test process honours; the lock lasts
//! as long as the value. Readiness of the server that then binds it is
//! checked by owner (`listening_owned_by`), not by "something accepts".

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// A port number nobody else in these tests will hand out while this
/// value lives.
#[derive(Debug)]
pub struct ReservedPort {
    port: u16,
    _lock: File,
}

impl ReservedPort {
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Reserves a port that is free for TCP and UDP on 127.0.0.1.
pub fn reserve() -> ReservedPort {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join("cefwire-test-ports");
    std::fs::create_dir_all(&dir).unwrap();
    let (low, high) = candidate_range();
    let span = u32::from(high - low);
    // Start somewhere different in each process and call.
    let seed = std::process::id().wrapping_mul(2_654_435_761) ^ NEXT.fetch_add(7919, Ordering::Relaxed);
    for step in 0..span {
        let port = low + ((seed.wrapping_add(step)) % span) as u16;
        let Some(lock) = try_lock(dir.join(port.to_string())) else { continue };
        let free = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if free {
            return ReservedPort { port, _lock: lock };
        }
    }
    panic!("no free port in {low}..{high}");
}

/// Ports below the ephemeral range (`ip_local_port_range`), above the
/// well-known ones.
fn candidate_range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let high = ephemeral_low.saturating_sub(1).max(12_000);
    (high.saturating_sub(10_000).max(10_000), high)
}

fn try_lock(path: PathBuf) -> Option<File> {
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(path).ok()?;
    // SAFETY: flock on a descriptor we own; released when the file closes.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    locked.then_some(file)
}

/// Which socket table to look in.
#[derive(Clone, Copy, Debug)]
pub enum Protocol {
    Tcp,
    Udp,
}

/// Whether process `pid` holds a socket bound to 127.0.0.1:`port` (a
/// listening one for TCP): readiness of *that* process, not of whoever
/// answers on the port.
pub fn listening_owned_by(pid: u32, port: u16, protocol: Protocol) -> bool {
    let (table, wanted_state) = match protocol {
        Protocol::Tcp => ("/proc/net/tcp", "0A"), // TCP_LISTEN
        Protocol::Udp => ("/proc/net/udp", "07"), // TCP_CLOSE: an unconnected UDP socket
    };
    let Ok(text) = std::fs::read_to_string(table) else { return false };
    let local = format!("0100007F:{port:04X}");
    let inodes: Vec<String> = text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&wanted_state))
                .then(|| fields.get(9).map(|s| (*s).to_owned()))
                .flatten()
        })
        .collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.filter_map(Result::ok).filter_map(|fd| std::fs::read_link(fd.path()).ok()).any(|target| {
        let target = target.to_string_lossy();
        inodes.iter().any(|inode| target == format!("socket:[{inode}]"))
    })
}
