//! Non-blocking TCP connect: what `std` lacks for an event loop
//! (`TcpStream::connect` blocks until the handshake ends).

use std::io;
use std::mem::size_of;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};

/// Starts a TCP connection to `addr` without waiting for it: the stream is
/// non-blocking and close-on-exec, and becomes writable once connected (a
/// refused or failed connect shows up as an error on the first read or
/// write). Reads and writes before then fail with `WouldBlock`.
///
/// # Errors
///
/// `socket(2)` fails, or `connect(2)` fails at once (other than `EINPROGRESS`).
///
/// Python: `s.setblocking(False); s.connect_ex(addr)` (`EINPROGRESS` expected)
pub fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let kind = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: socket takes three integers and returns a new fd or -1.
    let fd = unsafe { libc::socket(domain, kind, 0) };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: all-zero bytes are a valid sockaddr_storage (plain integers).
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    // SAFETY: `storage` holds a socket address of `len` bytes; the fd is ours.
    let ret = unsafe {
        libc::connect(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            (&raw const storage).cast(),
            len as libc::socklen_t,
        )
    };
    let err = io::Error::last_os_error();
    // EINTR: the handshake goes on in the background, as with EINPROGRESS.
    if ret == -1 && !matches!(err.raw_os_error(), Some(libc::EINPROGRESS | libc::EINTR)) {
        return Err(err);
    }
    Ok(TcpStream::from(socket))
}
