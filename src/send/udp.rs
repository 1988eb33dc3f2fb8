//! Datagram sending: one message per datagram, many datagrams per system
//! call with `sendmmsg` on Linux, a plain `send` loop elsewhere (or when
//! asked, for comparison). Sees a [`Batch`] and a connected socket only.

use super::batch::Batch;
use crate::syslog::frame::Framing;
use mio::net::UdpSocket;
use std::io;

/// Datagrams handed to one `sendmmsg` call.
pub const DATAGRAMS_PER_CALL: usize = 256;

/// Reused `mmsghdr`/`iovec` arrays (raw pointers into the batch being
/// sent; filled and used within one call, so nothing dangles).
pub struct DatagramScratch {
    #[cfg(target_os = "linux")]
    headers: Vec<libc::mmsghdr>,
    #[cfg(target_os = "linux")]
    iovecs: Vec<libc::iovec>,
}

impl Default for DatagramScratch {
    fn default() -> Self {
        Self {
            #[cfg(target_os = "linux")]
            // SAFETY: mmsghdr and iovec are plain C structs; all-zero is a
            // valid (empty) value for both.
            headers: vec![unsafe { std::mem::zeroed() }; DATAGRAMS_PER_CALL],
            #[cfg(target_os = "linux")]
            iovecs: vec![unsafe { std::mem::zeroed() }; DATAGRAMS_PER_CALL],
        }
    }
}

/// Sends messages `first..` of `batch`, as many as one call takes.
/// Returns how many were sent (at least one) or the error of the first.
pub fn send_datagrams(
    socket: &UdpSocket,
    batch: &Batch,
    first: usize,
    framing: Framing,
    use_sendmmsg: bool,
    scratch: &mut DatagramScratch,
) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    if use_sendmmsg {
        return send_mmsg(socket, batch, first, framing, scratch);
    }
    let _ = (use_sendmmsg, &scratch);
    let end = batch.messages().min(first + DATAGRAMS_PER_CALL);
    let mut sent = 0;
    for index in first..end {
        match socket.send(batch.payload(index, framing)) {
            Ok(_) => sent += 1,
            Err(err) if sent > 0 && err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) => return if sent > 0 { Ok(sent) } else { Err(err) },
        }
    }
    Ok(sent)
}

#[cfg(target_os = "linux")]
fn send_mmsg(
    socket: &UdpSocket,
    batch: &Batch,
    first: usize,
    framing: Framing,
    scratch: &mut DatagramScratch,
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let count = (batch.messages() - first).min(DATAGRAMS_PER_CALL);
    for i in 0..count {
        let payload = batch.payload(first + i, framing);
        scratch.iovecs[i] = libc::iovec { iov_base: payload.as_ptr() as *mut libc::c_void, iov_len: payload.len() };
        // SAFETY: zeroed msghdr is valid; only the iovec fields are set.
        let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
        header.msg_iov = &mut scratch.iovecs[i];
        header.msg_iovlen = 1;
        scratch.headers[i] = libc::mmsghdr { msg_hdr: header, msg_len: 0 };
    }
    let fd = socket.as_raw_fd();
    let headers = scratch.headers.as_mut_ptr();
    socket.try_io(|| {
        // SAFETY: `headers[..count]` are initialised above and point into
        // `iovecs` and the batch, both alive for this call; the socket is
        // connected so no address is needed.
        let rc = unsafe { libc::sendmmsg(fd, headers, count as libc::c_uint, libc::MSG_DONTWAIT) };
        if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc as usize) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_arrive_one_message_each_with_and_without_sendmmsg() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        sender.connect(receiver.local_addr().unwrap()).unwrap();
        let mut batch = Batch::default();
        for i in 0..100 {
            Framing::NewLine.frame(format!("message {i}").as_bytes(), &mut batch.bytes);
            batch.ends.push(batch.bytes.len());
        }
        let mut scratch = DatagramScratch::default();
        for mmsg in [true, false] {
            let mut at = 0;
            while at < batch.messages() {
                at += send_datagrams(&sender, &batch, at, Framing::NewLine, mmsg, &mut scratch).unwrap();
            }
            let mut buf = [0u8; 100];
            for i in 0..100 {
                let n = receiver.recv(&mut buf).unwrap();
                assert_eq!(&buf[..n], format!("message {i}").as_bytes());
            }
        }
    }
}
