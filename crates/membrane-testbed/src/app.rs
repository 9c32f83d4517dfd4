//! Deploys an application from Kubernetes manifests (such as the repository's
//! `examples/`) onto test-bed nodes, as a cluster would: objects stored through an
//! agent's API, each Pod created through the real CNI plugin on the node chosen for it,
//! servers started in the pods whose first container's args begin with `serve`, and
//! EndpointSlices filled with the addresses the CNI gave the pods their `targetRef`s name.

use crate::node::Node;
use crate::pod::{Pod, PodError};
use crate::workload::{self, DEFAULT_PORTS, Server, WorkloadError};
use membrane_api::{ApplyReport, ApplyRequest, ClientError, DeleteReport, DeleteRequest};
use membrane_api::{ObjectRefWire, paths};
use membrane_model::k8s::api::core::v1::Pod as PodObject;
use membrane_model::k8s::api::discovery::v1::EndpointSlice;
use membrane_model::{Kind, ManifestError, Object, parse_manifests};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Errors of deploying an application.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A manifest file or directory could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A manifest is not valid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The agent refused or could not be reached.
    #[error("the agent of node {node} failed to store the objects")]
    Api {
        /// The node whose agent was asked.
        node: String,
        /// The client error.
        #[source]
        source: ClientError,
    },
    /// A pod could not be created.
    #[error(transparent)]
    Pod(#[from] PodError),
    /// A pod's server did not start.
    #[error("the server of pod {pod} did not start")]
    Serve {
        /// The pod.
        pod: String,
        /// The workload error.
        #[source]
        source: WorkloadError,
    },
    /// An EndpointSlice names a pod the manifests do not create.
    #[error("EndpointSlice {slice}: endpoint {index} names pod {pod}, which is not deployed")]
    UnknownTarget {
        /// The slice, `namespace/name`.
        slice: String,
        /// The endpoint's index.
        index: usize,
        /// The pod named, `namespace/name`.
        pod: String,
    },
    /// A pod has no address of the slice's family.
    #[error("EndpointSlice {slice}: pod {pod} has no {family} address")]
    NoAddress {
        /// The slice, `namespace/name`.
        slice: String,
        /// The pod, `namespace/name`.
        pod: String,
        /// The slice's address type.
        family: String,
    },
}

/// The manifests of `path` (a file, or a directory's `*.yaml`, `*.yml` and `*.json` in
/// name order), parsed and validated.
pub fn load(path: &Path) -> Result<Vec<Object>, AppError> {
    let read_err = |source| AppError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).map_err(read_err)? {
            let file = entry.map_err(read_err)?.path();
            let manifest = file
                .extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json");
            if manifest {
                files.push(file);
            }
        }
        files.sort();
    } else {
        files.push(path.to_path_buf());
    }
    let mut objects = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| AppError::Read {
            path: file.clone(),
            source,
        })?;
        objects.extend(parse_manifests(&text, &file.display().to_string())?);
    }
    Ok(objects)
}

/// A deployed application: its pods (with their servers) and the objects stored.
/// [`App::remove`] deletes the objects; dropping it removes the pods (CNI DEL).
#[derive(Debug)]
pub struct App<'n> {
    pods: Vec<Pod<'n>>,
    _servers: Vec<Server>,
    refs: Vec<ObjectRefWire>,
    api: &'n Node,
}

impl<'n> App<'n> {
    /// Stores `objects` through `api`'s agent, creates every Pod on the node `place`
    /// picks for it (by `namespace/name`), starts servers, and stores the EndpointSlices
    /// with the pods' real addresses. Pod objects are stored before their pods are
    /// created, so that their labels make their identities.
    pub fn deploy(
        api: &'n Node,
        objects: Vec<Object>,
        place: impl Fn(&str) -> &'n Node,
    ) -> Result<App<'n>, AppError> {
        let (slices, others): (Vec<Object>, Vec<Object>) = objects
            .into_iter()
            .partition(|o| o.kind() == Kind::EndpointSlice);
        let refs = others.iter().chain(&slices).map(wire_ref).collect();
        apply(api, &others)?;
        let mut app = App {
            pods: Vec::new(),
            _servers: Vec::new(),
            refs,
            api,
        };
        for object in &others {
            let Object::Pod(pod) = object else { continue };
            let (namespace, name) = namespace_name(object);
            let created = Pod::create(place(&format!("{namespace}/{name}")), &namespace, &name)?;
            if serves(pod) {
                let server =
                    workload::serve(&created, DEFAULT_PORTS).map_err(|source| AppError::Serve {
                        pod: created.full_name(),
                        source,
                    })?;
                app._servers.push(server);
            }
            app.pods.push(created);
        }
        let filled = slices
            .into_iter()
            .map(|slice| app.fill(slice))
            .collect::<Result<Vec<_>, _>>()?;
        apply(api, &filled)?;
        Ok(app)
    }

    /// The pods, in manifest order.
    pub fn pods(&self) -> &[Pod<'n>] {
        &self.pods
    }

    /// The pod `namespace/name`.
    pub fn pod(&self, full_name: &str) -> Option<&Pod<'n>> {
        self.pods.iter().find(|p| p.full_name() == full_name)
    }

    /// Deletes every object the application stored (the pods stay until drop).
    pub fn remove(&self) -> Result<DeleteReport, AppError> {
        let request = DeleteRequest {
            refs: self.refs.clone(),
        };
        let client = self.api.agent().client();
        block_on(async move { client.post(paths::OBJECTS_DELETE, &request).await }).map_err(
            |source| AppError::Api {
                node: self.api.name().to_string(),
                source,
            },
        )
    }

    /// `slice` with each endpoint's addresses and node taken from its target pod.
    fn fill(&self, mut object: Object) -> Result<Object, AppError> {
        let (namespace, name) = namespace_name(&object);
        let Object::EndpointSlice(slice) = &mut object else {
            return Ok(object);
        };
        let slice_name = format!("{namespace}/{name}");
        let v6 = slice.address_type == "IPv6";
        fill_slice(slice, &slice_name, &namespace, |pod| {
            self.pod(pod).map(|p| {
                let address = match v6 {
                    true => p.ipv6().map(IpAddr::V6),
                    false => p.ipv4().map(IpAddr::V4),
                };
                (address, p.node_name().to_string())
            })
        })?;
        Ok(object)
    }
}

/// Fills every endpoint of `slice` from `lookup` (`namespace/name` of the target pod →
/// its address of the slice's family and its node).
fn fill_slice(
    slice: &mut EndpointSlice,
    slice_name: &str,
    namespace: &str,
    lookup: impl Fn(&str) -> Option<(Option<IpAddr>, String)>,
) -> Result<(), AppError> {
    let family = slice.address_type.clone();
    for (index, endpoint) in slice.endpoints.iter_mut().enumerate() {
        let Some(target) = &endpoint.target_ref else {
            continue;
        };
        let pod = format!(
            "{}/{}",
            target.namespace.as_deref().unwrap_or(namespace),
            target.name.as_deref().unwrap_or_default()
        );
        let (address, node) = lookup(&pod).ok_or_else(|| AppError::UnknownTarget {
            slice: slice_name.to_string(),
            index,
            pod: pod.clone(),
        })?;
        let address = address.ok_or_else(|| AppError::NoAddress {
            slice: slice_name.to_string(),
            pod,
            family: family.clone(),
        })?;
        endpoint.addresses = vec![address.to_string()];
        endpoint.node_name = Some(node);
    }
    Ok(())
}

/// True when the pod's first container runs a server (its args begin with `serve`).
fn serves(pod: &PodObject) -> bool {
    pod.spec
        .as_ref()
        .and_then(|spec| spec.containers.first())
        .and_then(|c| c.args.as_ref())
        .and_then(|args| args.first())
        .is_some_and(|first| first == "serve")
}

fn namespace_name(object: &Object) -> (String, String) {
    let meta = object.metadata();
    (
        meta.namespace.clone().unwrap_or_else(|| "default".into()),
        meta.name.clone().unwrap_or_default(),
    )
}

fn wire_ref(object: &Object) -> ObjectRefWire {
    let (namespace, name) = namespace_name(object);
    ObjectRefWire {
        kind: object.kind().to_string(),
        namespace: object.kind().is_namespaced().then_some(namespace),
        name,
    }
}

fn apply(node: &Node, objects: &[Object]) -> Result<ApplyReport, AppError> {
    let request = ApplyRequest {
        objects: objects.iter().map(Object::to_value).collect(),
    };
    let client = node.agent().client();
    block_on(async move { client.post(paths::OBJECTS_APPLY, &request).await }).map_err(|source| {
        AppError::Api {
            node: node.name().to_string(),
            source,
        }
    })
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds")
        .block_on(future)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples(dir: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(dir)
    }

    #[test]
    fn the_shop_example_parses_into_the_kinds_a_cluster_holds() {
        let objects = load(&examples("shop")).unwrap();
        let count = |kind: Kind| objects.iter().filter(|o| o.kind() == kind).count();
        assert_eq!(count(Kind::Namespace), 2);
        assert_eq!(count(Kind::Pod), 5);
        assert_eq!(count(Kind::Service), 3);
        assert_eq!(count(Kind::EndpointSlice), 3);
        assert_eq!(count(Kind::NetworkPolicy), 1);
        assert_eq!(count(Kind::CiliumNetworkPolicy), 1);
        let servers = objects
            .iter()
            .filter(|o| matches!(o, Object::Pod(p) if serves(p)))
            .count();
        assert_eq!(servers, 4, "every shop pod but the client serves");
    }

    #[test]
    fn the_connectivity_example_parses() {
        let objects = load(&examples("connectivity")).unwrap();
        assert_eq!(objects.len(), 6);
    }

    #[test]
    fn slices_get_their_target_pods_addresses_and_nodes_or_name_the_missing_pod() {
        let objects = load(&examples("shop")).unwrap();
        let mut slice = objects
            .into_iter()
            .find_map(|o| match o {
                Object::EndpointSlice(s) if s.metadata.name.as_deref() == Some("api-ipv4") => {
                    Some(s)
                }
                _ => None,
            })
            .unwrap();
        let lookup = |pod: &str| match pod {
            "shop/api-0" => Some((Some("10.200.1.5".parse().unwrap()), "node-a".to_string())),
            "shop/api-1" => Some((Some("10.200.2.7".parse().unwrap()), "node-b".to_string())),
            _ => None,
        };
        fill_slice(&mut slice, "shop/api-ipv4", "shop", lookup).unwrap();
        let filled: Vec<(String, String)> = slice
            .endpoints
            .iter()
            .map(|e| (e.addresses[0].clone(), e.node_name.clone().unwrap()))
            .collect();
        assert_eq!(
            filled,
            [
                ("10.200.1.5".to_string(), "node-a".to_string()),
                ("10.200.2.7".to_string(), "node-b".to_string())
            ]
        );
        let err = fill_slice(&mut slice, "shop/api-ipv4", "shop", |_| None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "EndpointSlice shop/api-ipv4: endpoint 0 names pod shop/api-0, which is not deployed"
        );
    }
}
