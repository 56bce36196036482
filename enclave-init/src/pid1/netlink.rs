//! Loopback up with 127.0.0.1/8, over rtnetlink (no `ip`, no `ifconfig`).
//!
//! Bringing `lo` up is not enough: in a Nitro enclave it then has no
//! address, and nothing can reach a server on localhost (field report 001).
//! So the address is added first (`RTM_NEWADDR`, an existing one is fine),
//! then the link is set up (`RTM_NEWLINK` with `IFF_UP`). Each message asks
//! for an acknowledgement, whose error code is the result.

use std::os::fd::AsRawFd;

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, sendto,
    socket,
};

use crate::pid1::StepOutcome;

const NLMSG_HDR_LEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const IFADDRMSG_LEN: usize = 8;
const RTA_HDR_LEN: usize = 4;
const LOOPBACK_V4: [u8; 4] = [127, 0, 0, 1];
const LOOPBACK_PREFIX: u8 = 8;
/// Room for one acknowledgement (an `nlmsgerr` echoing our request).
const ACK_BUF: usize = 1024;

fn header(buf: &mut Vec<u8>, msg_type: u16, flags: u16, seq: u32) {
    buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched by finish()
    buf.extend_from_slice(&msg_type.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
}

fn attribute(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = (RTA_HDR_LEN + data.len()) as u16;
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

fn finish(mut buf: Vec<u8>) -> Vec<u8> {
    let len = (buf.len() as u32).to_ne_bytes();
    buf[..4].copy_from_slice(&len);
    buf
}

/// `RTM_NEWADDR`: `addr/prefix` on interface `index`, host scope.
pub fn new_addr_message(index: u32, addr: [u8; 4], prefix: u8, seq: u32) -> Vec<u8> {
    let flags =
        (libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
    let mut buf = Vec::with_capacity(NLMSG_HDR_LEN + IFADDRMSG_LEN + 16);
    header(&mut buf, libc::RTM_NEWADDR, flags, seq);
    buf.push(libc::AF_INET as u8);
    buf.push(prefix);
    buf.push(0); // ifa_flags
    buf.push(libc::RT_SCOPE_HOST);
    buf.extend_from_slice(&index.to_ne_bytes());
    attribute(&mut buf, libc::IFA_LOCAL, &addr);
    attribute(&mut buf, libc::IFA_ADDRESS, &addr);
    finish(buf)
}

/// `RTM_NEWLINK`: set `IFF_UP` on interface `index`.
pub fn link_up_message(index: u32, seq: u32) -> Vec<u8> {
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
    let mut buf = Vec::with_capacity(NLMSG_HDR_LEN + IFINFOMSG_LEN);
    header(&mut buf, libc::RTM_NEWLINK, flags, seq);
    buf.push(libc::AF_UNSPEC as u8);
    buf.push(0);
    buf.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    buf.extend_from_slice(&(index as i32).to_ne_bytes());
    buf.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes()); // ifi_flags
    buf.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes()); // ifi_change
    finish(buf)
}

/// Reads the error code of an acknowledgement for `seq` (0 = success,
/// otherwise a negative errno).
pub fn parse_ack(buf: &[u8], seq: u32) -> Result<i32, String> {
    let mut at = 0;
    while at + NLMSG_HDR_LEN <= buf.len() {
        let field = |off: usize| -> [u8; 4] {
            let mut b = [0u8; 4];
            b.copy_from_slice(&buf[at + off..at + off + 4]);
            b
        };
        let len = u32::from_ne_bytes(field(0)) as usize;
        let msg_type = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
        let msg_seq = u32::from_ne_bytes(field(8));
        if len < NLMSG_HDR_LEN || at + len > buf.len() {
            return Err("malformed netlink reply".into());
        }
        if msg_type == libc::NLMSG_ERROR as u16 && msg_seq == seq {
            if len < NLMSG_HDR_LEN + 4 {
                return Err("short netlink error message".into());
            }
            return Ok(i32::from_ne_bytes(field(NLMSG_HDR_LEN)));
        }
        at += (len + 3) & !3;
    }
    Err("no acknowledgement in the netlink reply".into())
}

fn request(fd: &impl AsRawFd, message: &[u8], seq: u32) -> Result<i32, String> {
    let kernel = NetlinkAddr::new(0, 0);
    sendto(fd.as_raw_fd(), message, &kernel, MsgFlags::empty())
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; ACK_BUF];
    let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(|e| format!("recv: {e}"))?;
    parse_ack(&buf[..n], seq)
}

/// Assigns 127.0.0.1/8 to `lo` and brings it up.
pub fn loopback_up() -> StepOutcome {
    match configure_loopback() {
        Ok(detail) => StepOutcome::Done(detail),
        Err(err) => StepOutcome::Failed(err),
    }
}

fn configure_loopback() -> Result<String, String> {
    let index = nix::net::if_::if_nametoindex("lo").map_err(|e| format!("no interface lo: {e}"))?;
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )
    .map_err(|e| format!("netlink socket: {e}"))?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(|e| format!("netlink bind: {e}"))?;
    let address = match request(
        &fd,
        &new_addr_message(index, LOOPBACK_V4, LOOPBACK_PREFIX, 1),
        1,
    )? {
        0 => "127.0.0.1/8 assigned",
        code if -code == libc::EEXIST => "127.0.0.1/8 already assigned",
        code => {
            return Err(format!(
                "RTM_NEWADDR 127.0.0.1/8 on lo: {}",
                nix::errno::Errno::from_raw(-code)
            ));
        }
    };
    match request(&fd, &link_up_message(index, 2), 2)? {
        0 => Ok(format!("lo (index {index}) up, {address}")),
        code => Err(format!(
            "RTM_NEWLINK lo up: {} ({address})",
            nix::errno::Errno::from_raw(-code)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_well_formed() {
        let m = new_addr_message(1, LOOPBACK_V4, 8, 7);
        assert_eq!(m.len(), 16 + 8 + 8 + 8);
        assert_eq!(
            u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(m[16], libc::AF_INET as u8);
        assert_eq!(m[17], 8);
        assert_eq!(&m[28..32], &LOOPBACK_V4);
        let l = link_up_message(1, 8);
        assert_eq!(l.len(), 32);
        assert_eq!(
            u32::from_ne_bytes(l[24..28].try_into().unwrap()),
            libc::IFF_UP as u32
        );
    }

    #[test]
    fn acks() {
        let mut ack = Vec::new();
        header(&mut ack, libc::NLMSG_ERROR as u16, 0, 5);
        ack.extend_from_slice(&(-libc::EEXIST).to_ne_bytes());
        ack.extend_from_slice(&[0u8; 16]);
        let ack = finish(ack);
        assert_eq!(parse_ack(&ack, 5).unwrap(), -libc::EEXIST);
        assert!(parse_ack(&ack, 6).is_err());
        assert!(parse_ack(&ack[..10], 5).is_err());
        let mut bad = ack.clone();
        bad[0] = 200;
        assert!(parse_ack(&bad, 5).is_err());
    }
}
