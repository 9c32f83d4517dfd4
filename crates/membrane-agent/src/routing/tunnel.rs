//! The tunnel device: a VXLAN device in collect-metadata (external) mode on the Linux
//! VXLAN port, up, with the uplink's MTU less the encapsulation overhead. Created once and
//! adopted on every later start.

use super::RoutingError;
use futures::TryStreamExt as _;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::{Handle, LinkUnspec, LinkVxlan};

/// The UDP port of the tunnel (Linux's and Cilium's VXLAN port).
pub const VXLAN_PORT: u16 = 8472;

/// Bytes VXLAN adds to every packet: outer IPv4 (20), UDP (8), VXLAN (8) and the inner
/// Ethernet header (14).
pub const VXLAN_OVERHEAD: u32 = 50;

/// The MTU of the tunnel device and of the pods behind it, for an uplink of `uplink_mtu`.
pub fn tunnel_mtu(uplink_mtu: u32) -> Result<u32, RoutingError> {
    uplink_mtu
        .checked_sub(VXLAN_OVERHEAD)
        .filter(|mtu| *mtu >= 1280)
        .ok_or(RoutingError::MtuTooSmall {
            uplink_mtu,
            overhead: VXLAN_OVERHEAD,
        })
}

/// Makes sure the VXLAN device `name` exists in collect-metadata mode with `mtu`, and is
/// up: created when missing, its MTU set and brought up when it exists (a restarted agent
/// adopts it). A device of that name that is not VXLAN is refused.
pub async fn ensure_device(handle: &Handle, name: &str, mtu: u32) -> Result<u32, RoutingError> {
    let failed = |operation| {
        move |source| RoutingError::Netlink {
            operation,
            target: format!("vxlan device {name}"),
            source,
        }
    };
    if let Some(existing) = find(handle, name).await? {
        let kind = kind_of(&existing);
        if kind != Some(InfoKind::Vxlan) {
            return Err(RoutingError::NotVxlan {
                device: name.to_string(),
                kind: kind.map_or_else(|| "unknown".to_string(), |k| k.to_string()),
            });
        }
        let index = existing.header.index;
        handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .mtu(mtu)
                    .arp(false)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(failed("configuring"))?;
        tracing::info!(device = name, index, mtu, "adopted the tunnel device");
        return Ok(index);
    }
    let device = LinkVxlan::new(name, 0)
        .port(VXLAN_PORT)
        .collect_metadata(true)
        .mtu(mtu)
        // The node's packets routed onto the device need no neighbour: the egress
        // program sets where they go.
        .arp(false)
        .up()
        .build();
    handle
        .link()
        .add(device)
        .execute()
        .await
        .map_err(failed("creating"))?;
    let created = find(handle, name)
        .await?
        .ok_or_else(|| RoutingError::NotVxlan {
            device: name.to_string(),
            kind: "vanished".to_string(),
        })?;
    tracing::info!(
        device = name,
        index = created.header.index,
        mtu,
        "created the tunnel device"
    );
    Ok(created.header.index)
}

async fn find(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, RoutingError> {
    match handle
        .link()
        .get()
        .match_name(name)
        .execute()
        .try_next()
        .await
    {
        Ok(found) => Ok(found),
        Err(error) if super::routes::is_gone(&error) => Ok(None),
        Err(source) => Err(RoutingError::Netlink {
            operation: "looking up",
            target: format!("device {name}"),
            source,
        }),
    }
}

fn kind_of(link: &LinkMessage) -> Option<InfoKind> {
    link.attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|info| match info {
                LinkInfo::Kind(kind) => Some(kind.clone()),
                _ => None,
            }),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tunnel_mtu_leaves_room_for_vxlan_and_refuses_tiny_uplinks() {
        assert_eq!(tunnel_mtu(1500).unwrap(), 1450);
        assert_eq!(tunnel_mtu(9000).unwrap(), 8950);
        assert!(matches!(
            tunnel_mtu(1300),
            Err(RoutingError::MtuTooSmall {
                uplink_mtu: 1300,
                ..
            })
        ));
    }
}
