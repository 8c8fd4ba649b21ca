//! The kernel's fast path for a wire's perfect directions: frames cross
//! from one port to the other inside the kernel, with no copy, while the
//! relay handles a direction only while it has conditions or a partition.
//!
//! Each port (`a`, `b`) has a `clsact` qdisc with one `u32` filter that
//! matches every frame, and one `mirred` action that redirects it to the
//! egress of either the other port (the kernel forwards the direction) or
//! a tap (`ra0`, `rb0`: the relay forwards it), the sending end of a veth
//! pair whose other end (`ra1`, `rb1`) the relay reads. Switching a
//! direction replaces that filter (`RTM_NEWTFILTER` with `NLM_F_REPLACE`,
//! same priority and handle): the kernel applies the old filter or the new
//! one to each frame, so no frame is lost or doubled at a switch.
//!
//! On a kernel without `clsact`, `u32` or `mirred`, there is no fast path
//! ([`Fast::open`] says so), and the relay reads the ports themselves.

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionMirrorOption, TcActionOption, TcActionType, TcAttribute,
    TcFilterU32Option, TcHandle, TcMessage, TcMirror, TcMirrorActionType, TcOption, TcU32Key,
    TcU32Selector, TcU32SelectorFlags,
};
use nix::errno::Errno;

use crate::error::{Error, NetlinkError};
use crate::fault::{self, Fault};
use crate::netlink::{Request, Rtnl};
use crate::netns::NetNs;

/// The taps, per direction: the end the filter redirects to, and the end
/// the relay reads.
const TAPS: [[&str; 2]; 2] = [["ra0", "ra1"], ["rb0", "rb1"]];
/// The filter's priority.
const PRIORITY: u32 = 1;
/// The filter's handle, `800::800`: the first node of the root hash table,
/// which the kernel would give it anyway; named, so that a replacement
/// finds it.
const HANDLE: TcHandle = TcHandle {
    major: 0x8000,
    minor: 0x0800,
};
/// The ingress hook of a `clsact` qdisc, a filter's parent (`ffff:fff2`).
const INGRESS: TcHandle = TcHandle {
    major: 0xffff,
    minor: TcHandle::MIN_INGRESS,
};
/// `ETH_P_ALL` (`linux/if_ether.h`): the filter sees every frame.
const ETH_P_ALL: u16 = 0x0003;

/// The fast path of a wire: the relay's rtnetlink socket in the hidden
/// namespace, and the links its filters name.
#[derive(Debug)]
pub(super) struct Fast {
    rtnl: Rtnl,
    /// The ports `a` and `b`, by index.
    ports: [u32; 2],
    /// The taps the filters redirect to in relay mode: `ra0`, `rb0`.
    taps: [u32; 2],
    /// The taps the relay reads: `ra1`, `rb1`.
    pub(super) reads: [u32; 2],
}

impl Fast {
    /// Sets up the fast path for `ports` (`a`, `b`, up) in `hidden`, both
    /// directions forwarded by the kernel: a wire starts perfect. `None`
    /// where the kernel lacks `clsact`, `u32` or `mirred` (or the fault
    /// `no-fast-path` is injected), with nothing of it left behind.
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`] when a tap cannot be made, or the kernel refuses
    /// the qdisc or a filter for another reason than a missing feature.
    pub(super) fn open(hidden: &NetNs, ports: [u32; 2]) -> Result<Option<Fast>, Error> {
        let step = "set up a wire's fast path in its hidden namespace";
        let failed = |source| Error::Netlink {
            step: step.to_owned(),
            source,
        };
        let rtnl = hidden.run(Rtnl::open)?.map_err(failed)?;
        let mut fast = Fast {
            rtnl,
            ports,
            taps: [0; 2],
            reads: [0; 2],
        };
        // The filters first, forwarding both ways: where the kernel lacks
        // a feature, nothing else has been made, and the qdiscs go at once.
        match fast.filters() {
            Ok(()) => {}
            Err(NetlinkError::Kernel(Errno::EOPNOTSUPP | Errno::ENOENT | Errno::EINVAL)) => {
                fast.close();
                return Ok(None);
            }
            Err(source) => {
                fast.close();
                return Err(failed(source));
            }
        }
        // The taps, for when a direction goes through the relay. The
        // hidden namespace's new links have IPv6 off already.
        for (from, [tap, read]) in TAPS.into_iter().enumerate() {
            hidden.add_veth(tap, hidden, read)?;
            for name in [tap, read] {
                let _ = hidden.set_mtu(name, 65_535);
                hidden.set_link_up(name)?;
            }
            fast.taps[from] = hidden.link(tap)?.index;
            fast.reads[from] = hidden.link(read)?.index;
        }
        Ok(Some(fast))
    }

    /// Adds each port's `clsact` qdisc and its filter to the other port.
    fn filters(&mut self) -> Result<(), NetlinkError> {
        if fault::injected(Fault::NoFastPath) {
            return Err(NetlinkError::Kernel(Errno::ENOENT));
        }
        for from in 0..2 {
            let qdisc = clsact(self.ports[from]);
            self.rtnl.request(
                RouteNetlinkMessage::NewQueueDiscipline(qdisc),
                Request::Create,
            )?;
            let filter = redirect(self.ports[from], self.ports[1 - from]);
            self.rtnl.request(
                RouteNetlinkMessage::NewTrafficFilter(filter),
                Request::Create,
            )?;
        }
        Ok(())
    }

    /// Removes the qdiscs, and so the filters, where the fast path is not
    /// to be.
    fn close(self) {
        let mut rtnl = self.rtnl;
        for port in self.ports {
            let qdisc = clsact(port);
            let _ = rtnl.request(RouteNetlinkMessage::DelQueueDiscipline(qdisc), Request::Ack);
        }
    }

    /// Has the kernel forward direction `from` (`kernel`), or the relay:
    /// replaces the port's filter, so that each frame meets one or the
    /// other.
    ///
    /// # Errors
    ///
    /// The kernel's errno: `ENODEV` once a port is gone with its end.
    pub(super) fn switch(&mut self, from: usize, kernel: bool) -> Result<(), NetlinkError> {
        let to = match kernel {
            true => self.ports[1 - from],
            false => self.taps[from],
        };
        let filter = redirect(self.ports[from], to);
        self.rtnl.request(
            RouteNetlinkMessage::NewTrafficFilter(filter),
            Request::Replace,
        )?;
        Ok(())
    }

    /// The frames the kernel has forwarded from each end so far: those its
    /// port received, less those redirected to its tap (received by the
    /// relay, or dropped on the way).
    ///
    /// # Errors
    ///
    /// The kernel's errno: `ENODEV` once a port is gone with its end.
    pub(super) fn forwarded(&mut self) -> Result<[u64; 2], NetlinkError> {
        let mut forwarded = [0; 2];
        for (from, forwarded) in forwarded.iter_mut().enumerate() {
            let (received, _, _) = self.stats(self.ports[from])?;
            let (_, sent, dropped) = self.stats(self.taps[from])?;
            *forwarded = received.saturating_sub(sent + dropped);
        }
        Ok(forwarded)
    }

    /// Link `index`'s packets received, sent, and dropped on sending.
    fn stats(&mut self, index: u32) -> Result<(u64, u64, u64), NetlinkError> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        let answers = self
            .rtnl
            .request(RouteNetlinkMessage::GetLink(link), Request::Ack)?;
        answers
            .into_iter()
            .find_map(|answer| match answer {
                RouteNetlinkMessage::NewLink(link) => {
                    link.attributes
                        .into_iter()
                        .find_map(|attribute| match attribute {
                            LinkAttribute::Stats64(stats) => {
                                Some((stats.rx_packets, stats.tx_packets, stats.tx_dropped))
                            }
                            _ => None,
                        })
                }
                _ => None,
            })
            .ok_or(NetlinkError::Kernel(Errno::ENODATA))
    }
}

/// A `clsact` qdisc on link `index`.
fn clsact(index: u32) -> TcMessage {
    let mut qdisc = TcMessage::with_index(index as i32);
    qdisc.header.handle = TcHandle {
        major: 0xffff,
        minor: 0,
    };
    qdisc.header.parent = TcHandle::CLSACT;
    qdisc
        .attributes
        .push(TcAttribute::Kind("clsact".to_owned()));
    qdisc
}

/// The filter on link `from`'s ingress that redirects every frame to the
/// egress of link `to`: `tc filter add dev FROM ingress prio 1 protocol
/// all handle 800::800 u32 match u32 0 0 action mirred egress redirect dev
/// TO`.
fn redirect(from: u32, to: u32) -> TcMessage {
    let mut filter = TcMessage::with_index(from as i32);
    filter.header.handle = HANDLE;
    filter.header.parent = INGRESS;
    filter.header.info = (PRIORITY << 16) | u32::from(ETH_P_ALL.to_be());
    let mut selector = TcU32Selector::default();
    selector.flags = TcU32SelectorFlags::Terminal;
    selector.nkeys = 1;
    // One key that every frame matches: mask 0, value 0.
    selector.keys.push(TcU32Key::default());
    let mut mirror = TcMirror::default();
    mirror.generic.action = TcActionType::Stolen;
    mirror.eaction = TcMirrorActionType::EgressRedir;
    mirror.ifindex = to;
    let mut action = TcAction::default();
    action.attributes = vec![
        TcActionAttribute::Kind("mirred".to_owned()),
        TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(
            mirror,
        ))]),
    ];
    filter.attributes = vec![
        TcAttribute::Kind("u32".to_owned()),
        TcAttribute::Options(vec![
            TcOption::U32(TcFilterU32Option::Selector(selector)),
            TcOption::U32(TcFilterU32Option::Action(vec![action])),
        ]),
    ];
    filter
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_utils::Emitable;

    fn bytes(message: &TcMessage) -> Vec<u8> {
        let mut buffer = vec![0; message.buffer_len()];
        message.emit(&mut buffer);
        buffer
    }

    /// What `tc filter add dev ifindex-5 ingress prio 1 protocol all handle
    /// 800::800 u32 match u32 0 0 action mirred egress redirect dev
    /// ifindex-7` sends, after the netlink header (`linux/pkt_cls.h`,
    /// `linux/tc_act/tc_mirred.h`).
    #[test]
    fn the_filter_is_a_u32_match_all_with_one_mirred_redirect() {
        #[rustfmt::skip]
        let expected: Vec<u8> = [
            // struct tcmsg: family, padding, ifindex 5, handle 800::800,
            // parent ffff:fff2 (clsact ingress), info (prio 1, ETH_P_ALL
            // in network order).
            &[0, 0, 0, 0], &5u32.to_ne_bytes()[..], &0x8000_0800u32.to_ne_bytes(),
            &0xffff_fff2u32.to_ne_bytes(),
            &((1u32 << 16) | u32::from(0x0003u16.to_be())).to_ne_bytes(),
            // TCA_KIND "u32"
            &[8, 0, 1, 0], b"u32\0",
            // TCA_OPTIONS (96 bytes)
            &[96, 0, 2, 0],
            //   TCA_U32_SEL: struct tc_u32_sel (flags TC_U32_TERMINAL,
            //   nkeys 1) and one struct tc_u32_key of zeros.
            &[36, 0, 5, 0], &[1, 0, 1, 0], &[0; 12], &[0; 16],
            //   TCA_U32_ACT: the action of order 1
            &[56, 0, 7, 0], &[52, 0, 1, 0],
            //     TCA_ACT_KIND "mirred", padded
            &[11, 0, 1, 0], b"mirred\0", &[0],
            //     TCA_ACT_OPTIONS (NLA_F_NESTED): TCA_MIRRED_PARMS,
            //     struct tc_mirred: tc_gen (index, capab, action
            //     TC_ACT_STOLEN, refcnt, bindcnt), eaction
            //     TCA_EGRESS_REDIR, ifindex 7.
            &[36, 0, 2, 0x80], &[32, 0, 2, 0],
            &[0; 8], &4i32.to_ne_bytes(), &[0; 8],
            &1i32.to_ne_bytes(), &7u32.to_ne_bytes(),
        ]
        .concat();
        assert_eq!(bytes(&redirect(5, 7)), expected);
    }

    /// What `tc qdisc add dev ifindex-5 clsact` sends, after the netlink
    /// header.
    #[test]
    fn the_qdisc_is_clsact() {
        #[rustfmt::skip]
        let expected: Vec<u8> = [
            &[0, 0, 0, 0], &5u32.to_ne_bytes()[..], &0xffff_0000u32.to_ne_bytes(),
            &0xffff_fff1u32.to_ne_bytes(), &[0; 4],
            &[11, 0, 1, 0], b"clsact\0", &[0],
        ]
        .concat();
        assert_eq!(bytes(&clsact(5)), expected);
    }
}
