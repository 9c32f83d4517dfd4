//! Netlink link operations: connecting, finding, creating the veth pair, bringing links
//! up and deleting them, in whatever namespace the calling thread is in.

use crate::error::CniError;
use crate::result::MacAddr;
use futures::TryStreamExt;
use nix::errno::Errno;
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth};
use std::os::fd::{AsRawFd, BorrowedFd};

/// A link as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address, when the link has a 6-byte one.
    pub mac: Option<MacAddr>,
    /// Administratively up.
    pub up: bool,
    /// A veth.
    pub is_veth: bool,
}

impl Link {
    fn from_message(message: &LinkMessage) -> Self {
        let mut link = Link {
            index: message.header.index,
            name: String::new(),
            mac: None,
            up: message.header.flags.contains(LinkFlags::Up),
            is_veth: false,
        };
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::IfName(name) => link.name = name.clone(),
                LinkAttribute::Address(bytes) => {
                    link.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(MacAddr)
                }
                LinkAttribute::LinkInfo(infos) => {
                    link.is_veth = infos.contains(&LinkInfo::Kind(InfoKind::Veth))
                }
                _ => {}
            }
        }
        link
    }
}

/// Opens an rtnetlink connection bound to the calling thread's network namespace and
/// drives it on the current tokio runtime.
pub fn connect() -> Result<Handle, CniError> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(|source| CniError::Io {
        what: "opening a netlink socket".into(),
        source,
    })?;
    tokio::spawn(connection);
    Ok(handle)
}

/// True when a netlink error carries `errno`.
pub fn is_errno(error: &rtnetlink::Error, errno: Errno) -> bool {
    matches!(error, rtnetlink::Error::NetlinkError(message) if message.raw_code() == -(errno as i32))
}

/// The link named `name`, or `None` when there is none.
pub async fn find(handle: &Handle, name: &str) -> Result<Option<Link>, CniError> {
    let mut links = handle.link().get().match_name(name).execute();
    match links.try_next().await {
        Ok(message) => Ok(message.as_ref().map(Link::from_message)),
        Err(e) if is_errno(&e, Errno::ENODEV) => Ok(None),
        Err(source) => Err(CniError::Netlink {
            what: format!("looking up link {name}"),
            source,
        }),
    }
}

/// Like [`find`], but a missing link is an error.
pub async fn get(handle: &Handle, name: &str) -> Result<Link, CniError> {
    find(handle, name)
        .await?
        .ok_or_else(|| CniError::LinkVanished {
            name: name.to_string(),
        })
}

/// Creates a veth pair: `host` in the calling thread's namespace and `peer` directly in
/// the namespace `peer_netns`, both with `mtu`. The kernel creates both ends or neither.
pub async fn create_veth(
    handle: &Handle,
    host: &str,
    peer: &str,
    peer_netns: BorrowedFd<'_>,
    mtu: u32,
) -> Result<(), CniError> {
    let peer_message = LinkUnspec::new_with_name(peer)
        .mtu(mtu)
        .setns_by_fd(peer_netns.as_raw_fd())
        .build();
    let message = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(host)
        .mtu(mtu)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_message)))
        .build();
    handle
        .link()
        .add(message)
        .execute()
        .await
        .map_err(|source| {
            if is_errno(&source, Errno::EEXIST) {
                CniError::InterfaceExists {
                    name: format!("{host} or {peer}"),
                    place: "the node's or the pod's network namespace",
                }
            } else {
                CniError::Netlink {
                    what: format!("creating veth pair {host}/{peer}"),
                    source,
                }
            }
        })
}

/// Sets the link up.
pub async fn set_up(handle: &Handle, link: &Link) -> Result<(), CniError> {
    handle
        .link()
        .change(LinkUnspec::new_with_index(link.index).up().build())
        .execute()
        .await
        .map_err(|source| CniError::Netlink {
            what: format!("setting {} up", link.name),
            source,
        })
}

/// Deletes the veth named `name` if there is one; returns whether one was deleted.
/// Deleting one end of a veth deletes the other end, wherever it is. A link of that
/// name that is not a veth is not the plugin's and is left alone.
pub async fn delete_if_present(handle: &Handle, name: &str) -> Result<bool, CniError> {
    let Some(link) = find(handle, name).await?.filter(|link| link.is_veth) else {
        return Ok(false);
    };
    match handle.link().del(link.index).execute().await {
        Ok(()) => Ok(true),
        Err(e) if is_errno(&e, Errno::ENODEV) => Ok(false),
        Err(source) => Err(CniError::Netlink {
            what: format!("deleting link {name}"),
            source,
        }),
    }
}
