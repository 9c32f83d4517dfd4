//! Loads, pins and attaches the eBPF programs and maps, and gives typed access to the maps.
//!
//! Everything the datapath needs survives the agent: maps are pinned by name under the
//! node's pin directory and tc links are pinned under `<pin dir>/links`, so packets keep
//! flowing while the agent is stopped, and a restarted agent adopts the pinned state
//! (replacing each link's program atomically) without breaking connections.

mod acceleration;
mod attach;
mod batch;
mod conntrack;
mod error;
mod events;
mod layout;
mod loader;
mod maglev;
mod maps;
mod netns;
mod pinned;
mod policy;
mod pressure;
mod services;
mod sizes;
mod sock_lb;
pub mod test_run;

pub use acceleration::{Acceleration, Attached};
pub use conntrack::{CtStats, CtTimeouts};
pub use error::DatapathError;
pub use events::EventReader;
pub use layout::{MapLayout, ReplacedMap};
pub use loader::{Datapath, DatapathOptions, EndpointSpec, FlowEvents, PolicyEnforcement, Routing};
pub use maglev::{is_prime, table as maglev_table};
pub use maps::ReasonCounter;
pub use netns::netns_cookie;
pub use pinned::{
    BackendEntry, EndpointRow, IpcacheRow, NatMapping, PinnedMaps, PolicyRow, ServiceSlot, Tuple,
};
pub use policy::{Direction, PolicyRule, port_prefixes};
pub use pressure::MapPressure;
pub use services::{BackendSpec, Frontend, ServiceSpec};
pub use sizes::{MapMemory, MapSizes, pinned_memory};
