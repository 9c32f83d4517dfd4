//! `membrane get`: list what the agent knows, as a table, JSON or YAML.

mod rows;

use crate::error::CliError;
use crate::output::{self, Format, Table};
use clap::ValueEnum;
use membrane_api::{
    AgentStatus, Client, ClientError, Endpoint, Identity, ListRequest, NodeInfo, ServiceFrontend,
    paths,
};
use membrane_model::k8s::api::core::v1::PodIP;
use membrane_model::{Kind, Object};
use serde_json::{Value, json};
use std::io::Write;
use std::net::IpAddr;

/// List nodes, pods, endpoints, services, frontends, identities, policies or namespaces.
///
/// Without -n, every namespace is listed (unlike kubectl, which lists `default`).
/// `policies` lists NetworkPolicies, CiliumNetworkPolicies and
/// CiliumClusterwideNetworkPolicies together. `frontends` lists what the node
/// load-balances: every Service address (cluster IP, NodePort, LoadBalancer, external
/// IP, hostPort) with its backends. JSON and YAML output of stored objects is a `v1`
/// `List`, which `membrane apply -f -` accepts back.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  membrane get pods\n  membrane get services -n shop\n  membrane get policies -o yaml\n  membrane get endpoints -o json\n  membrane get nodes"
)]
pub struct Args {
    /// What to list.
    resource: Resource,

    /// Only this namespace (ignored for nodes, namespaces and identities).
    #[arg(short, long)]
    namespace: Option<String>,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    output: Format,
}

/// The things `get` lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Resource {
    /// The nodes registered in the cluster state (each agent registers its own).
    #[value(alias = "node", alias = "no")]
    Nodes,
    /// Pods.
    #[value(alias = "pod", alias = "po")]
    Pods,
    /// The endpoints the agent manages on its node.
    #[value(alias = "endpoint", alias = "ep")]
    Endpoints,
    /// Services.
    #[value(alias = "service", alias = "svc")]
    Services,
    /// The Service frontends the node load-balances, with their backends.
    #[value(alias = "frontend", alias = "lb")]
    Frontends,
    /// Security identities.
    #[value(alias = "identity", alias = "id")]
    Identities,
    /// NetworkPolicies and Cilium policies.
    #[value(alias = "policy", alias = "netpol")]
    Policies,
    /// Namespaces.
    #[value(alias = "namespace", alias = "ns")]
    Namespaces,
}

impl Resource {
    /// The stored kinds listed for this resource (none for nodes, endpoints, frontends
    /// and identities, which are not stored objects).
    fn kinds(self) -> &'static [Kind] {
        match self {
            Resource::Pods => &[Kind::Pod],
            Resource::Services => &[Kind::Service],
            Resource::Namespaces => &[Kind::Namespace],
            Resource::Policies => &[
                Kind::NetworkPolicy,
                Kind::CiliumNetworkPolicy,
                Kind::CiliumClusterwideNetworkPolicy,
            ],
            Resource::Nodes | Resource::Endpoints | Resource::Identities | Resource::Frontends => {
                &[]
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Resource::Nodes => "nodes",
            Resource::Pods => "pods",
            Resource::Endpoints => "endpoints",
            Resource::Services => "services",
            Resource::Frontends => "frontends",
            Resource::Identities => "identities",
            Resource::Policies => "policies",
            Resource::Namespaces => "namespaces",
        }
    }
}

/// Asks the agent and prints the answer.
pub async fn run(client: &Client, args: Args) -> Result<(), CliError> {
    let namespace = args.namespace.as_deref();
    let table = match args.resource {
        Resource::Nodes => nodes(client, args.output).await?,
        Resource::Endpoints => endpoints(client, namespace, args.output).await?,
        Resource::Identities => identities(client, args.output).await?,
        Resource::Frontends => frontends(client, namespace, args.output).await?,
        resource => objects(client, resource, namespace, args.output).await?,
    };
    let Some(table) = table else { return Ok(()) };
    if table.is_empty() {
        match namespace {
            Some(ns) => eprintln!("no {} found in namespace {ns}", args.resource.name()),
            None => eprintln!("no {} found", args.resource.name()),
        }
        return Ok(());
    }
    table.write(&mut std::io::stdout().lock())?;
    Ok(())
}

/// Prints `value` in a structured format and returns `None`, or returns the table
/// `build` makes for [`Format::Table`].
fn present(
    format: Format,
    value: &impl serde::Serialize,
    build: impl FnOnce() -> Table,
) -> Result<Option<Table>, CliError> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Table => return Ok(Some(build())),
        Format::Json => output::json(&mut out, value)?,
        Format::Yaml => output::yaml(&mut out, value)?,
    }
    out.flush()?;
    Ok(None)
}

/// A 404 for a whole path means this agent does not serve it yet.
fn unserved(err: ClientError, what: &'static str, path: &'static str) -> CliError {
    match err {
        ClientError::Api { status: 404, .. } => CliError::NotAvailable { what, path },
        other => other.into(),
    }
}

async fn objects(
    client: &Client,
    resource: Resource,
    namespace: Option<&str>,
    format: Format,
) -> Result<Option<Table>, CliError> {
    let mut values = Vec::new();
    let mut objects = Vec::new();
    for &kind in resource.kinds() {
        let request = ListRequest {
            kind: Some(kind.to_string()),
            namespace: namespace
                .filter(|_| kind.is_namespaced())
                .map(str::to_string),
        };
        let listed: Vec<Value> = client
            .post(paths::OBJECTS_LIST, &request)
            .await
            .map_err(|e| unserved(e, "stored objects", paths::OBJECTS_LIST))?;
        for value in listed {
            let object = Object::from_value(kind, value.clone())
                .map_err(|source| CliError::Listed { kind, source })?;
            objects.push(object);
            values.push(value);
        }
    }
    if resource == Resource::Pods && format == Format::Table {
        locate_local_pods(client, &mut objects).await?;
    }
    let list = json!({"apiVersion": "v1", "kind": "List", "items": values});
    present(format, &list, || rows::objects(resource, &objects))
}

/// Fills the node and addresses of the Pods running on the agent's node from its
/// endpoint records, where the stored object has none (nothing writes a Pod's status
/// back to the cluster state; the CNI plugin registers the addresses with the agent).
async fn locate_local_pods(client: &Client, objects: &mut [Object]) -> Result<(), CliError> {
    let status: AgentStatus = client.get(paths::STATUS).await?;
    let endpoints: Vec<Endpoint> = client.get(paths::ENDPOINT_LIST).await?;
    for object in objects {
        let meta = object.metadata();
        let (namespace, name) = (meta.namespace.clone(), meta.name.clone());
        let Object::Pod(pod) = object else { continue };
        let Some(r) = endpoints
            .iter()
            .map(|e| &e.registration)
            .find(|r| r.pod_namespace == namespace && r.pod_name == name)
        else {
            continue;
        };
        let spec = pod.spec.get_or_insert_with(Default::default);
        spec.node_name.get_or_insert_with(|| status.node.clone());
        let pod_status = pod.status.get_or_insert_with(Default::default);
        if pod_status.pod_ips.as_ref().is_none_or(Vec::is_empty) {
            let ips: Vec<String> = [r.ipv4.map(IpAddr::V4), r.ipv6.map(IpAddr::V6)]
                .into_iter()
                .flatten()
                .map(|ip| ip.to_string())
                .collect();
            pod_status.pod_ips = Some(ips.into_iter().map(|ip| PodIP { ip }).collect());
        }
    }
    Ok(())
}

async fn endpoints(
    client: &Client,
    namespace: Option<&str>,
    format: Format,
) -> Result<Option<Table>, CliError> {
    let mut endpoints: Vec<Endpoint> = client.get(paths::ENDPOINT_LIST).await?;
    if let Some(ns) = namespace {
        endpoints.retain(|e| e.registration.pod_namespace.as_deref() == Some(ns));
    }
    endpoints.sort_by_key(|e| e.id);
    present(format, &endpoints, || rows::endpoints(&endpoints))
}

async fn nodes(client: &Client, format: Format) -> Result<Option<Table>, CliError> {
    let nodes: Vec<NodeInfo> = client.get(paths::NODES).await?;
    present(format, &nodes, || rows::nodes(&nodes))
}

async fn identities(client: &Client, format: Format) -> Result<Option<Table>, CliError> {
    let identities: Vec<Identity> = client
        .get(paths::IDENTITY_LIST)
        .await
        .map_err(|e| unserved(e, "identities", paths::IDENTITY_LIST))?;
    present(format, &identities, || rows::identities(&identities))
}

async fn frontends(
    client: &Client,
    namespace: Option<&str>,
    format: Format,
) -> Result<Option<Table>, CliError> {
    let mut frontends: Vec<ServiceFrontend> = client
        .get(paths::SERVICES)
        .await
        .map_err(|e| unserved(e, "Service frontends", paths::SERVICES))?;
    if let Some(ns) = namespace {
        frontends.retain(|f| f.namespace == ns);
    }
    present(format, &frontends, || rows::frontends(&frontends))
}
