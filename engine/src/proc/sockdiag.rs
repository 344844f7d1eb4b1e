//! Socket facts from NETLINK_SOCK_DIAG: one dump per family (unix, inet and inet6 for TCP and UDP, netlink,
//! packet) of one network namespace, keyed by socket inode. Never touches the sockets themselves.
//! The request builders and reply parsers are pure, as is [`pair_tcp`], which finds the other end of a TCP
//! connection over a local address in a namespace's dumps; [`dump`] and [`dump_in_netns`] do the I/O.

use crate::facts::{ByteString, SocketFacts};
use crrules_rules::vocab::{SockFamily, SockProto, SockState, SockType};
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType as NixSockType, recv, sendto, socket,
};
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;

const AF_UNIX: u8 = 1;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const AF_NETLINK: u8 = 16;
const AF_PACKET: u8 = 17;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_PEER: u16 = 2;
const UNIX_DIAG_RQLEN: u16 = 4;
/// Always sent, whatever the request shows: the socket's shutdown mask (one byte).
const UNIX_DIAG_SHUTDOWN: u16 = 6;
const UDIAG_SHOW_NAME: u32 = 0x1;
const UDIAG_SHOW_PEER: u32 = 0x4;
const UDIAG_SHOW_RQLEN: u32 = 0x10;
const NDIAG_PROTO_ALL: u8 = 255;
const NDIAG_SHOW_MEMINFO: u32 = 0x1;
const NDIAG_SHOW_GROUPS: u32 = 0x2;
const NETLINK_DIAG_MEMINFO: u16 = 0;
const NETLINK_DIAG_GROUPS: u16 = 1;
const PACKET_SHOW_INFO: u32 = 0x1;
const PACKET_DIAG_INFO: u16 = 0;

/// Sockets of one network namespace, by inode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SockTable {
    pub by_ino: HashMap<u64, SocketFacts>,
}

/// One sock_diag dump: a family, and for inet families a protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dump {
    Unix,
    Tcp,
    Udp,
    Tcp6,
    Udp6,
    Netlink,
    Packet,
}

impl Dump {
    /// Every dump.
    #[cfg(any(test, feature = "fuzzing"))]
    pub const ALL: [Dump; 7] = [Dump::Unix, Dump::Tcp, Dump::Udp, Dump::Tcp6, Dump::Udp6, Dump::Netlink, Dump::Packet];

    /// The request body (after the netlink header).
    pub fn request(self) -> Vec<u8> {
        match self {
            Dump::Unix => {
                // unix_diag_req: family, protocol, pad, states, ino, show, cookie[2]
                let mut unix = vec![AF_UNIX, 0, 0, 0];
                unix.extend_from_slice(&u32::MAX.to_ne_bytes());
                unix.extend_from_slice(&0u32.to_ne_bytes());
                unix.extend_from_slice(&(UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN).to_ne_bytes());
                unix.extend_from_slice(&[0xff; 8]);
                unix
            }
            Dump::Tcp | Dump::Udp | Dump::Tcp6 | Dump::Udp6 => {
                let family = if matches!(self, Dump::Tcp | Dump::Udp) { AF_INET } else { AF_INET6 };
                let proto = if matches!(self, Dump::Tcp | Dump::Tcp6) { IPPROTO_TCP } else { IPPROTO_UDP };
                // inet_diag_req_v2: family, protocol, ext, pad, states, then a zeroed 48-byte inet_diag_sockid
                let mut inet = vec![family, proto, 0, 0];
                inet.extend_from_slice(&u32::MAX.to_ne_bytes());
                inet.extend_from_slice(&[0; 48]);
                inet
            }
            Dump::Netlink | Dump::Packet => {
                let (family, proto) =
                    if self == Dump::Netlink { (AF_NETLINK, NDIAG_PROTO_ALL) } else { (AF_PACKET, 0) };
                // netlink_diag_req / packet_diag_req: family, protocol, pad, ino, show, cookie[2]; netlink
                // sockets with their memory use, whose receive allocation is the data waiting to be read,
                // and their multicast groups; packet sockets with their bound interface.
                let show =
                    if self == Dump::Netlink { NDIAG_SHOW_MEMINFO | NDIAG_SHOW_GROUPS } else { PACKET_SHOW_INFO };
                let mut req = vec![family, proto, 0, 0];
                req.extend_from_slice(&0u32.to_ne_bytes());
                req.extend_from_slice(&show.to_ne_bytes());
                req.extend_from_slice(&[0xff; 8]);
                req
            }
        }
    }
}

/// A netlink message with header around `body`.
fn message(body: &[u8], seq: u32) -> Vec<u8> {
    let len = (NLMSG_HDRLEN + body.len()) as u32;
    let mut msg = Vec::with_capacity(len as usize);
    msg.extend_from_slice(&len.to_ne_bytes());
    msg.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(body);
    msg
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The `(type, payload)` route attributes after a fixed-size header.
fn attributes(b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = usize::from(u16_at(b, at)?);
        let kind = u16_at(b, at + 2)?;
        if len < 4 {
            return None;
        }
        let payload = b.get(at + 4..at + len)?;
        at += align4(len);
        Some((kind & 0x3fff, payload))
    })
}

/// What one batch of reply bytes held.
#[derive(Debug, PartialEq, Eq)]
pub enum Batch {
    /// More messages follow.
    More,
    /// The dump ended.
    Done,
    /// The kernel refused the request (an errno; e.g. the family's diag module is not there).
    Failed(i32),
}

/// Parses one `recv` of dump replies into `table`.
pub fn parse_batch(bytes: &[u8], seq: u32, table: &mut SockTable) -> Batch {
    let mut at = 0;
    while at + NLMSG_HDRLEN <= bytes.len() {
        let (Some(len), Some(kind), Some(msg_seq)) = (u32_at(bytes, at), u16_at(bytes, at + 4), u32_at(bytes, at + 8))
        else {
            break;
        };
        let len = len as usize;
        if len < NLMSG_HDRLEN || at + len > bytes.len() {
            break;
        }
        let body = &bytes[at + NLMSG_HDRLEN..at + len];
        at += align4(len);
        if msg_seq != seq {
            continue;
        }
        // The code is a negative errno; `i32::MIN` has no positive counterpart (saturated, not overflowed).
        match kind {
            NLMSG_DONE => {
                let code = u32_at(body, 0).map_or(0, |c| c as i32);
                return if code < 0 { Batch::Failed(code.saturating_neg()) } else { Batch::Done };
            }
            NLMSG_ERROR => {
                let code = u32_at(body, 0).map_or(0, |c| c as i32);
                return if code < 0 { Batch::Failed(code.saturating_neg()) } else { Batch::Done };
            }
            SOCK_DIAG_BY_FAMILY => {
                if let Some((ino, facts)) = parse_diag(body) {
                    table.by_ino.insert(ino, facts);
                }
            }
            _ => {}
        }
    }
    Batch::More
}

/// One diag message (its family is its first byte) -> inode and facts.
pub fn parse_diag(body: &[u8]) -> Option<(u64, SocketFacts)> {
    match *body.first()? {
        AF_UNIX => parse_unix(body),
        AF_INET | AF_INET6 => parse_inet(body),
        AF_NETLINK => parse_netlink(body),
        AF_PACKET => parse_packet(body),
        _ => None,
    }
}

/// A unix socket's address, its bytes kept: a path (up to its NUL), `@name` for the abstract namespace
/// (every byte of the name, NULs included), none when unbound.
fn unix_name(raw: &[u8]) -> Option<ByteString> {
    match raw.split_first() {
        None => None,
        Some((0, abstract_name)) => Some(ByteString::new([&b"@"[..], abstract_name].concat())),
        Some(_) => {
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            Some(ByteString::from(&raw[..end]))
        }
    }
}

fn parse_unix(b: &[u8]) -> Option<(u64, SocketFacts)> {
    // unix_diag_msg: family, type, state, pad, ino, cookie[2]; then attributes
    let ino = u32_at(b, 4)?;
    let mut facts = SocketFacts {
        family: Some(SockFamily::Unix),
        sock_type: SockType::from_number(u16::from(b[1])),
        protocol: Some(SockProto::Unix),
        protocol_number: Some(0),
        state: SockState::from_tcp(*b.get(2)?),
        ..SocketFacts::default()
    };
    for (kind, payload) in attributes(b.get(16..)?) {
        match kind {
            UNIX_DIAG_NAME => facts.local = unix_name(payload),
            UNIX_DIAG_PEER => facts.peer_ino = u32_at(payload, 0).map(u64::from).filter(|&p| p != 0),
            UNIX_DIAG_RQLEN => {
                facts.rqueue = u32_at(payload, 0);
                facts.wqueue = u32_at(payload, 4);
            }
            UNIX_DIAG_SHUTDOWN => facts.shutdown = payload.first().copied().filter(|&m| m != 0),
            _ => {}
        }
    }
    Some((u64::from(ino), facts))
}

fn inet_addr(family: u8, b: &[u8], port: u16) -> Option<ByteString> {
    if family == AF_INET {
        let ip = Ipv4Addr::from(<[u8; 4]>::try_from(b.get(..4)?).ok()?);
        Some(format!("{ip}:{port}").into())
    } else {
        let ip = Ipv6Addr::from(<[u8; 16]>::try_from(b.get(..16)?).ok()?);
        Some(format!("[{ip}]:{port}").into())
    }
}

fn parse_inet(b: &[u8]) -> Option<(u64, SocketFacts)> {
    // inet_diag_msg: family, state, timer, retrans, sockid{sport, dport, src[16], dst[16], if, cookie[2]},
    // expires, rqueue, wqueue, uid, inode
    if b.len() < 72 {
        return None;
    }
    let family = b[0];
    let (sport, dport) = (be16_at(b, 4)?, be16_at(b, 6)?);
    let ino = u32_at(b, 68)?;
    let dst = b.get(24..40)?;
    let connected = dport != 0 || dst.iter().any(|&x| x != 0);
    // Which protocol the dump was for is not in the reply; a listening or connecting socket is TCP, and the
    // caller fixes the type from the request (see `dump_family`).
    let facts = SocketFacts {
        family: Some(if family == AF_INET { SockFamily::Inet } else { SockFamily::Inet6 }),
        state: SockState::from_tcp(b[1]),
        local: inet_addr(family, b.get(8..24)?, sport),
        peer: if connected { inet_addr(family, dst, dport) } else { None },
        rqueue: u32_at(b, 56),
        wqueue: u32_at(b, 60),
        ..SocketFacts::default()
    };
    Some((u64::from(ino), facts))
}

/// The groups of a netlink socket's group bitmap (the kernel's `unsigned long` words, bit N - 1 for group N).
fn netlink_groups(bitmap: &[u8]) -> Vec<u32> {
    const WORD: usize = std::mem::size_of::<libc::c_ulong>();
    let mut groups = Vec::new();
    for (w, word) in bitmap.chunks_exact(WORD).enumerate() {
        let mut bits = [0u8; 8];
        bits[..WORD].copy_from_slice(word);
        let bits = if WORD == 8 { u64::from_ne_bytes(bits) } else { u64::from(u32_at(word, 0).unwrap_or(0)) };
        groups.extend((0..WORD as u32 * 8).filter(|b| bits & (1 << b) != 0).map(|b| (w * WORD * 8) as u32 + b + 1));
    }
    groups
}

fn parse_netlink(b: &[u8]) -> Option<(u64, SocketFacts)> {
    // netlink_diag_msg: family, type, protocol, state, portid, dst_portid, dst_group, ino, cookie[2]; then
    // attributes (NETLINK_DIAG_MEMINFO: the `SK_MEMINFO_*` counters, receive allocation first;
    // NETLINK_DIAG_GROUPS: the group bitmap)
    let (portid, dst_portid, ino) = (u32_at(b, 4)?, u32_at(b, 8)?, u32_at(b, 16)?);
    let mut rmem = None;
    let mut groups = Vec::new();
    for (kind, payload) in attributes(b.get(28..).unwrap_or(&[])) {
        match kind {
            NETLINK_DIAG_MEMINFO => rmem = u32_at(payload, 0),
            NETLINK_DIAG_GROUPS => groups = netlink_groups(payload),
            _ => {}
        }
    }
    let facts = SocketFacts {
        groups,
        rqueue: rmem,
        family: Some(SockFamily::Netlink),
        sock_type: SockType::from_number(u16::from(b[1])),
        protocol: Some(SockProto::Netlink),
        protocol_number: Some(u16::from(*b.get(2)?)),
        state: Some(if *b.get(3)? == 1 { SockState::Established } else { SockState::Unconnected }),
        local: Some(portid.to_string().into()),
        peer: (dst_portid != 0).then(|| dst_portid.to_string().into()),
        ..SocketFacts::default()
    };
    Some((u64::from(ino), facts))
}

fn parse_packet(b: &[u8]) -> Option<(u64, SocketFacts)> {
    // packet_diag_msg: family, type, num (the protocol, which the kernel gives in host order: `ntohs`), ino,
    // cookie[2]; then attributes (PACKET_DIAG_INFO: packet_diag_info, the bound interface's index first, 0
    // for every interface)
    let ino = u32_at(b, 4)?;
    let ifindex = attributes(b.get(16..).unwrap_or(&[]))
        .find(|(kind, _)| *kind == PACKET_DIAG_INFO)
        .and_then(|(_, payload)| u32_at(payload, 0))
        .filter(|&i| i != 0);
    let facts = SocketFacts {
        ifindex,
        family: Some(SockFamily::Packet),
        sock_type: SockType::from_number(u16::from(b[1])),
        protocol: Some(SockProto::Packet),
        protocol_number: Some(u16_at(b, 2)?),
        state: Some(SockState::Unconnected),
        ..SocketFacts::default()
    };
    Some((u64::from(ino), facts))
}

/// Names unix peers by their address, where the peer socket has one.
pub(crate) fn name_unix_peers(table: &mut SockTable) {
    let names: Vec<(u64, ByteString)> = table
        .by_ino
        .iter()
        .filter_map(|(ino, f)| Some((*ino, f.peer_ino.and_then(|p| table.by_ino.get(&p)?.local.clone())?)))
        .collect();
    for (ino, name) in names {
        if let Some(f) = table.by_ino.get_mut(&ino) {
            f.peer = Some(name);
        }
    }
}

/// A TCP socket's `(local, remote)` addresses from its facts, `None` unless it has both (a listening or
/// unconnected socket has no remote). An IPv4-mapped IPv6 address is taken as the IPv4 address it is: a
/// dual-stack IPv6 socket shows its connection from an IPv4 socket that way.
pub fn tcp_endpoints(f: &SocketFacts) -> Option<(SocketAddr, SocketAddr)> {
    let parse = |text: &ByteString| -> Option<SocketAddr> {
        let addr: SocketAddr = std::str::from_utf8(text.as_bytes()).ok()?.parse().ok()?;
        Some(match addr {
            SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
                Some(v4) => SocketAddr::new(v4.into(), v6.port()),
                None => addr,
            },
            SocketAddr::V4(_) => addr,
        })
    };
    Some((parse(f.local.as_ref()?)?, parse(f.peer.as_ref()?)?))
}

/// True when a connection's remote address is one of its own network namespace's, so that its other end is
/// a socket of that namespace: a loopback address (127.0.0.0/8, `::1`), or the connection's own local
/// address (the kernel gives a connection to one of the namespace's addresses that address as its source,
/// unless the socket was bound to another first: such a connection is not told from one to another host).
pub fn remote_is_local(local: SocketAddr, remote: SocketAddr) -> bool {
    remote.ip().is_loopback() || remote.ip() == local.ip()
}

/// Names the peer socket (`peer_ino`) of each TCP connection among the sockets `mine` (inodes in `table`)
/// whose remote address is local ([`remote_is_local`]): the socket of `table`, one network namespace's TCP
/// dumps, whose local and remote addresses are this one's remote and local. Returns the connections over a
/// local address left without one (the peer is in a dump not made, closed, not accepted yet, or reached
/// through address translation). One pass over the table; nothing when no connection of `mine` is local.
pub fn pair_tcp(table: &mut SockTable, mine: &[u64]) -> Vec<u64> {
    let connection = |f: &SocketFacts| {
        if f.protocol != Some(SockProto::Tcp) || f.state == Some(SockState::Listen) {
            return None;
        }
        tcp_endpoints(f)
    };
    // By the addresses the peer has: (its local, its remote) = (my remote, my local).
    let mut wanted: HashMap<(SocketAddr, SocketAddr), u64> = HashMap::new();
    for &ino in mine {
        if let Some((local, remote)) = table.by_ino.get(&ino).and_then(connection)
            && remote_is_local(local, remote)
        {
            wanted.insert((remote, local), ino);
        }
    }
    if wanted.is_empty() {
        return Vec::new();
    }
    // A connection of a socket to itself (its own remote) is not paired: it has no other end.
    let mut found: HashMap<u64, u64> = HashMap::new();
    for (&ino, f) in &table.by_ino {
        if let Some(ends) = connection(f)
            && let Some(&me) = wanted.get(&ends)
            && me != ino
        {
            found.insert(me, ino);
        }
    }
    for (me, peer) in &found {
        if let Some(f) = table.by_ino.get_mut(me) {
            f.peer_ino = Some(*peer);
        }
    }
    let mut alone: Vec<u64> = wanted.into_values().filter(|ino| !found.contains_key(ino)).collect();
    alone.sort_unstable();
    alone
}

/// Sends one request and reads the dump into `table`. `Ok(false)` when the kernel refused this family.
fn dump_family(sock: &OwnedFd, body: &[u8], seq: u32, buf: &mut [u8], table: &mut SockTable) -> io::Result<bool> {
    let msg = message(body, seq);
    sendto(sock.as_raw_fd(), &msg, &NetlinkAddr::new(0, 0), MsgFlags::empty())?;
    let mut part = SockTable::default();
    loop {
        let n = recv(sock.as_raw_fd(), buf, MsgFlags::empty())?;
        if n == 0 {
            return Ok(false);
        }
        match parse_batch(&buf[..n], seq, &mut part) {
            Batch::More => continue,
            Batch::Done => break,
            Batch::Failed(_) => return Ok(false),
        }
    }
    // inet replies do not say the protocol: the request does.
    if matches!(body[0], AF_INET | AF_INET6) {
        let (sock_type, proto, number) = if body[1] == IPPROTO_TCP {
            (SockType::Stream, SockProto::Tcp, 6)
        } else {
            (SockType::Dgram, SockProto::Udp, 17)
        };
        for f in part.by_ino.values_mut() {
            f.sock_type = Some(sock_type);
            f.protocol = Some(proto);
            f.protocol_number = Some(number);
        }
    }
    // Time-wait and request sockets have no inode: they are not anyone's fd.
    part.by_ino.remove(&0);
    table.by_ino.extend(part.by_ino);
    Ok(true)
}

/// The bytes of every `recv` one dump gets, exactly as the kernel sent them (the last holds the end of the
/// dump, or the error): seeds for the sock_diag fuzz corpus, written by `examples/fuzz_seeds.rs`.
#[cfg(feature = "fuzzing")]
pub fn raw_replies(which: Dump, seq: u32) -> io::Result<Vec<Vec<u8>>> {
    let sock = socket(AddressFamily::Netlink, NixSockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkSockDiag)?;
    sendto(sock.as_raw_fd(), &message(&which.request(), seq), &NetlinkAddr::new(0, 0), MsgFlags::empty())?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut replies = Vec::new();
    loop {
        let n = recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        if n == 0 {
            return Ok(replies);
        }
        replies.push(buf[..n].to_vec());
        if parse_batch(&buf[..n], seq, &mut SockTable::default()) != Batch::More {
            return Ok(replies);
        }
    }
}

/// Makes the given dumps in the calling thread's network namespace.
pub fn dump(which: &[Dump]) -> io::Result<SockTable> {
    let mut table = SockTable::default();
    if which.is_empty() {
        return Ok(table);
    }
    let sock = socket(AddressFamily::Netlink, NixSockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkSockDiag)?;
    // The kernel caps one dump batch at 32 KiB.
    let mut buf = vec![0u8; 64 * 1024];
    for (i, d) in which.iter().enumerate() {
        dump_family(&sock, &d.request(), i as u32 + 1, &mut buf, &mut table)?;
    }
    name_unix_peers(&mut table);
    Ok(table)
}

/// Makes the given dumps in the network namespace `ns` (an open `/proc/PID/ns/net`), from a short-lived
/// thread that joins it: the caller's own threads never change namespace.
pub fn dump_in_netns(ns: OwnedFd, which: &[Dump]) -> io::Result<SockTable> {
    std::thread::scope(|s| {
        s.spawn(move || {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
            dump(which)
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the sock_diag thread failed")))
    })
}

/// The dump that lists a socket with these facts (from its protocol name), if any. The TCP dumps walk the
/// kernel's whole connection hash table (about 165 us each even on an idle host), so knowing a process
/// has no TCP socket saves most of a dump's cost.
pub fn dump_for(facts: &SocketFacts) -> Option<Dump> {
    Some(match (facts.family?, facts.protocol) {
        (SockFamily::Unix, _) => Dump::Unix,
        (SockFamily::Inet, Some(SockProto::Tcp)) => Dump::Tcp,
        (SockFamily::Inet, Some(SockProto::Udp)) => Dump::Udp,
        (SockFamily::Inet6, Some(SockProto::Tcp)) => Dump::Tcp6,
        (SockFamily::Inet6, Some(SockProto::Udp)) => Dump::Udp6,
        (SockFamily::Netlink, _) => Dump::Netlink,
        (SockFamily::Packet, _) => Dump::Packet,
        _ => return None,
    })
}

/// What a socket's protocol name (`getxattr(system.sockprotoname)`: `TCPv6`, `UNIX-STREAM`, `MPTCP`)
/// says without touching the socket: family, protocol and, where the protocol has one, the type.
pub fn facts_of_protoname(name: &str) -> SocketFacts {
    let protocol = SockProto::from_kernel_name(name);
    let sock_type = match protocol {
        SockProto::Tcp | SockProto::Mptcp | SockProto::Dccp => Some(SockType::Stream),
        SockProto::Udp | SockProto::Udplite | SockProto::Icmp => Some(SockType::Dgram),
        SockProto::Raw => Some(SockType::Raw),
        _ if name.eq_ignore_ascii_case("UNIX-STREAM") => Some(SockType::Stream),
        _ => None,
    };
    SocketFacts {
        family: Some(family_of_protoname(name)),
        sock_type,
        protocol: Some(protocol),
        ..SocketFacts::default()
    }
}

/// The family `getxattr(system.sockprotoname)` names (`UNIX-STREAM`, `TCPv6`, `NETLINK`...).
pub fn family_of_protoname(name: &str) -> SockFamily {
    let upper = name.to_ascii_uppercase();
    let base = upper.trim_end_matches('\0');
    if base.starts_with("UNIX") {
        SockFamily::Unix
    } else if base.ends_with("V6") {
        SockFamily::Inet6
    } else if ["TCP", "UDP", "UDP-LITE", "RAW", "PING", "MPTCP", "SCTP", "DCCP", "L2TP/IP"].contains(&base) {
        SockFamily::Inet
    } else if base == "NETLINK" {
        SockFamily::Netlink
    } else if base == "PACKET" {
        SockFamily::Packet
    } else if base.contains("VSOCK") {
        SockFamily::Vsock
    } else if base == "TIPC" {
        SockFamily::Tipc
    } else if base == "ALG" {
        SockFamily::Alg
    } else if base == "XDP" {
        SockFamily::Xdp
    } else if base == "MCTP" {
        SockFamily::Mctp
    } else if base.starts_with("CAN") {
        SockFamily::Can
    } else if ["L2CAP", "RFCOMM", "HCI", "SCO", "ISO", "BNEP", "HIDP", "CMTP"].contains(&base) {
        SockFamily::Bluetooth
    } else {
        SockFamily::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(kind: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(payload);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    #[test]
    fn unix_replies_with_names_and_peers() {
        let mut a = vec![AF_UNIX, 1, 1, 0];
        a.extend_from_slice(&100u32.to_ne_bytes());
        a.extend_from_slice(&[0; 8]);
        a.extend(attr(UNIX_DIAG_NAME, b"\0hidden"));
        a.extend(attr(UNIX_DIAG_PEER, &101u32.to_ne_bytes()));
        let mut rq = 3u32.to_ne_bytes().to_vec();
        rq.extend_from_slice(&4u32.to_ne_bytes());
        a.extend(attr(UNIX_DIAG_RQLEN, &rq));
        a.extend(attr(UNIX_DIAG_SHUTDOWN, &[0]));
        let mut b = vec![AF_UNIX, 1, 1, 0];
        b.extend_from_slice(&101u32.to_ne_bytes());
        b.extend_from_slice(&[0; 8]);
        b.extend(attr(UNIX_DIAG_NAME, b"/run/x.sock\0"));
        b.extend(attr(UNIX_DIAG_PEER, &100u32.to_ne_bytes()));
        b.extend(attr(UNIX_DIAG_SHUTDOWN, &[3]));
        let mut bytes = reply(SOCK_DIAG_BY_FAMILY, 1, &a);
        bytes.extend(reply(SOCK_DIAG_BY_FAMILY, 1, &b));
        let mut table = SockTable::default();
        assert_eq!(parse_batch(&bytes, 1, &mut table), Batch::More);
        assert_eq!(parse_batch(&reply(NLMSG_DONE, 1, &0u32.to_ne_bytes()), 1, &mut table), Batch::Done);
        name_unix_peers(&mut table);
        let sa = &table.by_ino[&100];
        assert_eq!(sa.family, Some(SockFamily::Unix));
        assert_eq!(sa.sock_type, Some(SockType::Stream));
        assert_eq!(sa.state, Some(SockState::Established));
        assert_eq!(sa.local.as_ref().unwrap(), "@hidden");
        assert_eq!(sa.peer.as_ref().unwrap(), "/run/x.sock");
        assert_eq!((sa.peer_ino, sa.rqueue, sa.wqueue), (Some(101), Some(3), Some(4)));
        assert_eq!(table.by_ino[&101].peer.as_ref().unwrap(), "@hidden");
        // A mask of 0 says nothing was shut down: no field.
        assert_eq!((sa.shutdown, table.by_ino[&101].shutdown), (None, Some(3)));
    }

    #[test]
    fn unix_addresses_keep_their_bytes() {
        assert_eq!(unix_name(b""), None);
        assert_eq!(unix_name(b"/run/\xff.sock\0\0").unwrap().as_bytes(), b"/run/\xff.sock");
        assert_eq!(unix_name(b"\0a\0\xfe\n").unwrap().as_bytes(), b"@a\0\xfe\n", "an abstract name is every byte");
    }

    #[test]
    fn inet_reply_and_errors() {
        let mut m = vec![AF_INET, 10, 0, 0];
        m.extend_from_slice(&8080u16.to_be_bytes());
        m.extend_from_slice(&0u16.to_be_bytes());
        let mut src = [0u8; 16];
        src[..4].copy_from_slice(&[127, 0, 0, 1]);
        m.extend_from_slice(&src);
        m.extend_from_slice(&[0; 16]);
        m.extend_from_slice(&[0; 12]);
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&1u32.to_ne_bytes());
        m.extend_from_slice(&128u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&555u32.to_ne_bytes());
        let (ino, f) = parse_diag(&m).unwrap();
        assert_eq!(ino, 555);
        assert_eq!(f.state, Some(SockState::Listen));
        assert_eq!(f.local.as_ref().unwrap(), "127.0.0.1:8080");
        assert_eq!(f.peer, None);
        assert_eq!((f.rqueue, f.wqueue), (Some(1), Some(128)));
        // A truncated message is skipped, not a panic; a reply for another request is ignored.
        assert_eq!(parse_diag(&m[..40]), None);
        let mut table = SockTable::default();
        assert_eq!(parse_batch(&reply(SOCK_DIAG_BY_FAMILY, 9, &m), 1, &mut table), Batch::More);
        assert!(table.by_ino.is_empty());
        let err = reply(NLMSG_ERROR, 1, &(-2i32).to_ne_bytes());
        assert_eq!(parse_batch(&err, 1, &mut table), Batch::Failed(2));
        assert_eq!(parse_batch(&[1, 2, 3], 1, &mut table), Batch::More);
    }

    /// Found by the sock_diag fuzz target (its input, little-endian: a `NLMSG_DONE` of sequence 4 whose code
    /// is `i32::MIN`): the code was negated with overflow, a panic in debug builds. An error message the same.
    #[test]
    fn sock_diag_end_with_the_lowest_error_code_does_not_panic() {
        let found = b"\x14\x00\x00\x00\x03\x00\x02\x00\x04\x00\x00\x00\x27\x05\x00\x00\x00\x00\x00\x80";
        if cfg!(target_endian = "little") {
            assert_eq!(parse_batch(found, 4, &mut SockTable::default()), Batch::Failed(i32::MAX));
        }
        for kind in [NLMSG_DONE, NLMSG_ERROR] {
            let bytes = reply(kind, 4, &i32::MIN.to_ne_bytes());
            assert_eq!(parse_batch(&bytes, 4, &mut SockTable::default()), Batch::Failed(i32::MAX));
        }
    }

    #[test]
    fn netlink_groups_and_packet_interfaces() {
        let mut m = vec![AF_NETLINK, 3, 0, 0];
        for v in [4242u32, 0, 0, 77, 0, 0] {
            m.extend_from_slice(&v.to_ne_bytes());
        }
        // Groups 1, 3 and 33 (bits 0, 2 and 32 of the first word; the kernel's words are unsigned longs).
        let mut bitmap = vec![0u8; 2 * std::mem::size_of::<libc::c_ulong>()];
        let word = std::mem::size_of::<libc::c_ulong>();
        let set = |bitmap: &mut Vec<u8>, bit: usize| {
            let (w, b) = (bit / (word * 8), bit % (word * 8));
            let mut v = [0u8; 8];
            v[..word].copy_from_slice(&bitmap[w * word..(w + 1) * word]);
            let n = u64::from_ne_bytes(v) | 1 << b;
            bitmap[w * word..(w + 1) * word].copy_from_slice(&n.to_ne_bytes()[..word]);
        };
        for bit in [0, 2, 32] {
            set(&mut bitmap, bit);
        }
        m.extend(attr(NETLINK_DIAG_GROUPS, &bitmap));
        m.extend(attr(NETLINK_DIAG_MEMINFO, &5u32.to_ne_bytes()));
        let (ino, f) = parse_diag(&m).unwrap();
        assert_eq!((ino, f.groups, f.rqueue), (77, vec![1, 3, 33], Some(5)));
        assert_eq!(f.local.unwrap(), "4242");
        let mut p = vec![AF_PACKET, 2];
        p.extend_from_slice(&0x0800u16.to_ne_bytes());
        p.extend_from_slice(&88u32.to_ne_bytes());
        p.extend_from_slice(&[0; 8]);
        let bare = p.clone();
        let mut info = 3u32.to_ne_bytes().to_vec();
        info.extend_from_slice(&[0; 20]);
        p.extend(attr(PACKET_DIAG_INFO, &info));
        let (ino, f) = parse_diag(&p).unwrap();
        assert_eq!(
            (ino, f.protocol_number, f.ifindex, f.sock_type),
            (88, Some(0x0800), Some(3), Some(SockType::Dgram))
        );
        assert_eq!(parse_diag(&bare).unwrap().1.ifindex, None, "no interface said: none");
        // The JSON shape: both left out when not known.
        let json = serde_json::to_value(SocketFacts::default()).unwrap();
        assert!(json.get("groups").is_none() && json.get("ifindex").is_none(), "{json}");
    }

    #[test]
    fn protonames_give_family_type_protocol_and_dump() {
        let cases = [
            ("UNIX-STREAM", SockFamily::Unix, Some(SockType::Stream), SockProto::Unix, Some(Dump::Unix)),
            ("UNIX", SockFamily::Unix, None, SockProto::Unix, Some(Dump::Unix)),
            ("TCPv6", SockFamily::Inet6, Some(SockType::Stream), SockProto::Tcp, Some(Dump::Tcp6)),
            ("UDP", SockFamily::Inet, Some(SockType::Dgram), SockProto::Udp, Some(Dump::Udp)),
            ("UDP-Lite", SockFamily::Inet, Some(SockType::Dgram), SockProto::Udplite, None),
            ("RAW", SockFamily::Inet, Some(SockType::Raw), SockProto::Raw, None),
            ("PINGv6", SockFamily::Inet6, Some(SockType::Dgram), SockProto::Icmp, None),
            ("MPTCP", SockFamily::Inet, Some(SockType::Stream), SockProto::Mptcp, None),
            ("NETLINK", SockFamily::Netlink, None, SockProto::Netlink, Some(Dump::Netlink)),
            ("PACKET", SockFamily::Packet, None, SockProto::Packet, Some(Dump::Packet)),
        ];
        for (name, family, sock_type, protocol, dump) in cases {
            let f = facts_of_protoname(name);
            assert_eq!((f.family, f.sock_type, f.protocol), (Some(family), sock_type, Some(protocol)), "{name}");
            assert_eq!(dump_for(&f), dump, "{name}");
        }
        for d in Dump::ALL {
            let r = d.request();
            assert!(matches!(r.len(), 20 | 24 | 56), "{d:?}: {}", r.len());
        }
    }

    /// One namespace's TCP dumps: a loopback pair, a pair between an IPv4 client and a dual-stack IPv6
    /// end, a connection to the namespace's own address, one to another host, one whose peer is gone (its
    /// time-wait or orphaned socket has no inode, so no entry), a socket connected to itself, and the
    /// listener whose local address the accepted connections share. Another namespace's table with the very
    /// same addresses pairs its own sockets only.
    #[test]
    fn tcp_connections_pair_by_their_swapped_addresses() {
        let tcp = |state: SockState, local: &str, peer: Option<&str>| SocketFacts {
            family: Some(if local.starts_with('[') { SockFamily::Inet6 } else { SockFamily::Inet }),
            protocol: Some(SockProto::Tcp),
            state: Some(state),
            local: Some(local.into()),
            peer: peer.map(Into::into),
            ..SocketFacts::default()
        };
        use SockState::{Established, Listen};
        let namespace = |base: u64| SockTable {
            by_ino: HashMap::from([
                (base, tcp(Listen, "127.0.0.1:8080", None)),
                (base + 1, tcp(Established, "127.0.0.1:8080", Some("127.0.0.1:41000"))),
                (base + 2, tcp(Established, "127.0.0.1:41000", Some("127.0.0.1:8080"))),
                (base + 3, tcp(Established, "[::ffff:127.0.0.1]:8443", Some("[::ffff:127.0.0.1]:42000"))),
                (base + 4, tcp(Established, "127.0.0.1:42000", Some("127.0.0.1:8443"))),
                (base + 5, tcp(Established, "192.0.2.2:43000", Some("192.0.2.2:9000"))),
                (base + 6, tcp(Established, "192.0.2.2:9000", Some("192.0.2.2:43000"))),
                (base + 7, tcp(Established, "192.0.2.2:44000", Some("93.184.216.34:443"))),
                (base + 8, tcp(SockState::CloseWait, "127.0.0.1:45000", Some("127.0.0.1:8080"))),
                (base + 9, tcp(Established, "127.0.0.1:46000", Some("127.0.0.1:46000"))),
                (base + 10, tcp(Established, "[::1]:47000", Some("[::1]:5432"))),
                (base + 11, tcp(Established, "[::1]:5432", Some("[::1]:47000"))),
            ]),
        };
        let (mut a, mut b) = (namespace(100), namespace(200));
        let mine: Vec<u64> = (100..112).collect();
        assert_eq!(pair_tcp(&mut a, &mine), [108, 109], "the peer closed; connected to itself");
        let peers: Vec<(u64, Option<u64>)> = (100..112).map(|i| (i, a.by_ino[&i].peer_ino)).collect();
        let expect = [None, Some(102), Some(101), Some(104), Some(103), Some(106), Some(105), None, None, None];
        let expect: Vec<(u64, Option<u64>)> =
            (100..112).zip(expect.into_iter().chain([Some(111), Some(110)])).collect();
        assert_eq!(peers, expect);
        assert_eq!(pair_tcp(&mut b, &[202]), Vec::<u64>::new());
        assert_eq!(b.by_ino[&202].peer_ino, Some(201), "the other namespace's socket of the same addresses");
        assert_eq!(b.by_ino[&201].peer_ino, None, "only the sockets asked about are given a peer");
        // Nothing local asked about: no pass over the table.
        assert_eq!(pair_tcp(&mut b, &[207, 200, 999]), Vec::<u64>::new());
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(remote_is_local(at("10.0.0.1:1"), at("127.3.4.5:80")));
        assert!(remote_is_local(at("[fd00::2]:1"), at("[fd00::2]:80")));
        assert!(!remote_is_local(at("[fd00::2]:1"), at("[fd00::3]:80")));
    }

    #[test]
    fn protonames() {
        assert_eq!(family_of_protoname("UNIX-STREAM"), SockFamily::Unix);
        assert_eq!(family_of_protoname("TCPv6"), SockFamily::Inet6);
        assert_eq!(family_of_protoname("UDP"), SockFamily::Inet);
        assert_eq!(family_of_protoname("NETLINK"), SockFamily::Netlink);
        assert_eq!(family_of_protoname("AF_VSOCK"), SockFamily::Vsock);
        assert_eq!(family_of_protoname("???"), SockFamily::Other);
    }
}

#[cfg(test)]
mod no_panic {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_reply_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512), seq in 0u32..3) {
            let mut table = SockTable::default();
            let _ = parse_batch(&bytes, seq, &mut table);
            let _ = parse_diag(&bytes);
            name_unix_peers(&mut table);
        }
    }
}
