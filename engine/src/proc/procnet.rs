//! Socket facts from `/proc/PID/net/{raw,raw6,icmp,icmp6,udplite,udplite6}`, by inode, for the inet
//! protocols the scanner does not ask sock_diag about: raw sockets (whose diag module a kernel may lack,
//! as this one does), ping sockets (which have none) and UDP-Lite. Each line gives a socket's local and
//! remote address, its state and its queues; a raw socket's local "port" is its protocol number. Sockets
//! these tables do not list are unbound (a raw socket is always listed). Never touches the sockets.
//! [`parse`] is pure; the caller reads the files in the process's network namespace.

use crate::facts::{ByteString, SocketFacts};
use crrules_rules::vocab::{SockFamily, SockProto, SockState, SockType};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

/// `IPPROTO_ICMP`, `IPPROTO_ICMPV6` and `IPPROTO_UDPLITE`.
const ICMP: u16 = 1;
const ICMPV6: u16 = 58;
const UDPLITE: u16 = 136;

/// One of the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Table {
    pub family: SockFamily,
    pub protocol: SockProto,
}

impl Table {
    /// Its file name under `/proc/PID/net/`.
    pub fn file(self) -> &'static str {
        match (self.protocol, self.family == SockFamily::Inet6) {
            (SockProto::Raw, false) => "raw",
            (SockProto::Raw, true) => "raw6",
            (SockProto::Icmp, false) => "icmp",
            (SockProto::Icmp, true) => "icmp6",
            (_, false) => "udplite",
            (_, true) => "udplite6",
        }
    }
}

/// The table that lists a socket with these facts (from its protocol name), if one does.
pub fn table_for(facts: &SocketFacts) -> Option<Table> {
    let family = facts.family.filter(|f| matches!(f, SockFamily::Inet | SockFamily::Inet6))?;
    let protocol = facts.protocol.filter(|p| matches!(p, SockProto::Raw | SockProto::Icmp | SockProto::Udplite))?;
    Some(Table { family, protocol })
}

/// The protocol number a socket of this family and protocol has, where its name says it (`None` for raw
/// sockets, which have any).
pub fn protocol_number(family: SockFamily, protocol: SockProto) -> Option<u16> {
    Some(match protocol {
        SockProto::Tcp => 6,
        SockProto::Udp => 17,
        SockProto::Udplite => UDPLITE,
        SockProto::Icmp if family == SockFamily::Inet6 => ICMPV6,
        SockProto::Icmp => ICMP,
        _ => return None,
    })
}

/// Every socket a table's text lists, by inode.
pub fn parse(table: Table, text: &str) -> HashMap<u64, SocketFacts> {
    text.lines().skip(1).filter_map(|line| parse_line(table, line)).collect()
}

/// `  70: 00000000:0001 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 20460209 2 ...`:
/// slot, local, remote, state, `tx_queue:rx_queue`, timer, retransmits, uid, timeout, inode.
fn parse_line(table: Table, line: &str) -> Option<(u64, SocketFacts)> {
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    let v6 = table.family == SockFamily::Inet6;
    let (local_ip, local_port) = address(words.get(1)?, v6)?;
    let (remote_ip, remote_port) = address(words.get(2)?, v6)?;
    let state = SockState::from_tcp(u8::from_str_radix(words.get(3)?, 16).ok()?);
    let (tx, rx) = words.get(4)?.split_once(':')?;
    let ino: u64 = words.get(9)?.parse().ok()?;
    let show =
        |ip: &str, port: u16| ByteString::from(if v6 { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") });
    let connected = remote_port != 0 || !is_unspecified(&remote_ip);
    let protocol_number = match table.protocol {
        SockProto::Raw => Some(local_port),
        other => protocol_number(table.family, other),
    };
    let facts = SocketFacts {
        family: Some(table.family),
        sock_type: Some(if table.protocol == SockProto::Raw { SockType::Raw } else { SockType::Dgram }),
        protocol: Some(table.protocol),
        protocol_number,
        state,
        local: Some(show(&local_ip, local_port)),
        peer: connected.then(|| show(&remote_ip, remote_port)),
        rqueue: u32::from_str_radix(rx, 16).ok(),
        wqueue: u32::from_str_radix(tx, 16).ok(),
        ..SocketFacts::default()
    };
    (ino != 0).then_some((ino, facts))
}

fn is_unspecified(ip: &str) -> bool {
    ip == "0.0.0.0" || ip == "::"
}

/// `0100007F:0035` -> ("127.0.0.1", 53): the address as the kernel's in-memory words printed in hex (so
/// each word's bytes are the address's bytes in order on any machine), the port as a number.
fn address(word: &str, v6: bool) -> Option<(String, u16)> {
    let (ip, port) = word.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let digits = if v6 { 32 } else { 8 };
    if ip.len() != digits {
        return None;
    }
    let mut bytes = Vec::with_capacity(digits / 2);
    for chunk in ip.as_bytes().chunks(8) {
        let word = u32::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    let text = if v6 {
        Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string()
    } else {
        Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string()
    };
    Some((text, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: Table = Table { family: SockFamily::Inet, protocol: SockProto::Raw };

    /// `ip` as the kernel prints an IPv4 address: its in-memory word in hex.
    fn word(ip: [u8; 4]) -> String {
        format!("{:08X}", u32::from_ne_bytes(ip))
    }

    #[test]
    fn raw_sockets_with_their_protocol_numbers() {
        let text = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
             \x20 70: 00000000:0001 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 20460209 2 00000000e985b2ff 0\n\
             \x20 12: {}:00FF {}:0000 01 00000010:00000020 00:00000000 00000000     0        0 555 2 0000000000000000 0\n",
            word([127, 0, 0, 1]),
            word([10, 1, 2, 3]),
        );
        let table = parse(RAW, &text);
        let icmp = &table[&20460209];
        assert_eq!(
            (icmp.protocol_number, icmp.state, icmp.sock_type),
            (Some(1), Some(SockState::Close), Some(SockType::Raw))
        );
        assert_eq!((icmp.local.as_ref().unwrap().as_bytes(), icmp.peer.as_ref()), (&b"0.0.0.0:1"[..], None));
        let connected = &table[&555];
        assert_eq!(connected.protocol_number, Some(255));
        assert_eq!(connected.local.as_ref().unwrap(), "127.0.0.1:255");
        assert_eq!(connected.peer.as_ref().unwrap(), "10.1.2.3:0");
        assert_eq!(
            (connected.wqueue, connected.rqueue, connected.state),
            (Some(16), Some(32), Some(SockState::Established))
        );
    }

    #[test]
    fn ipv6_ping_and_udplite() {
        let loopback: [u8; 16] = std::net::Ipv6Addr::LOCALHOST.octets();
        let words: String =
            loopback.chunks(4).map(|c| format!("{:08X}", u32::from_ne_bytes(c.try_into().unwrap()))).collect();
        let text = format!(
            "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
             \x20  3: {words}:1234 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 42 2 0000000000000000 0\n"
        );
        let ping = parse(Table { family: SockFamily::Inet6, protocol: SockProto::Icmp }, &text);
        assert_eq!(ping[&42].local.as_ref().unwrap(), "[::1]:4660");
        assert_eq!((ping[&42].protocol_number, ping[&42].sock_type), (Some(58), Some(SockType::Dgram)));
        let lite = parse(Table { family: SockFamily::Inet6, protocol: SockProto::Udplite }, &text);
        assert_eq!(lite[&42].protocol_number, Some(136));
        assert_eq!(Table { family: SockFamily::Inet6, protocol: SockProto::Udplite }.file(), "udplite6");
    }

    #[test]
    fn tables_for_protocols_and_garbage() {
        let named =
            |family, protocol| SocketFacts { family: Some(family), protocol: Some(protocol), ..SocketFacts::default() };
        assert_eq!(table_for(&named(SockFamily::Inet, SockProto::Raw)).map(Table::file), Some("raw"));
        assert_eq!(table_for(&named(SockFamily::Inet6, SockProto::Icmp)).map(Table::file), Some("icmp6"));
        assert_eq!(table_for(&named(SockFamily::Inet, SockProto::Tcp)), None);
        assert_eq!(table_for(&named(SockFamily::Unix, SockProto::Raw)), None);
        assert_eq!(protocol_number(SockFamily::Inet6, SockProto::Icmp), Some(58));
        assert_eq!(protocol_number(SockFamily::Inet, SockProto::Raw), None);
        for text in ["", "header only", "h\n 1: zz:1 00000000:0000 07 0:0 0 0 0 0 1", "h\n 1: 00000000:0001"] {
            assert!(parse(RAW, text).is_empty(), "{text:?}");
        }
    }
}
