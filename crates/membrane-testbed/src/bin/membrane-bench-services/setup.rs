//! One path made ready at one number of Services: its own bed, the Services programmed
//! (timed, and one more added, timed) and where its client runs and connects to.

use crate::catalog;
use crate::kube_proxy::{self, RuleShape};
use crate::membrane::Membrane;
use crate::table::Path;
use crate::topology::{self, BACKENDS, Bed};
use anyhow::{Context, ensure};
use membrane_testbed::Place;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A path ready to be measured. Field order is drop order: the datapath goes before
/// the namespaces it is attached in.
pub struct Ready {
    /// Which path.
    pub path: Path,
    membrane: Option<Membrane>,
    bed: Bed,
    /// First address of the block the new connections are spread over.
    pub first: SocketAddr,
    /// How many addresses the block has.
    pub spread: u64,
    /// Where the request/response connection goes.
    pub established: SocketAddr,
    /// Time to program every Service.
    pub program: Option<Duration>,
    /// Time to add one more.
    pub add_one: Option<Duration>,
    /// Kernel memory of the load-balancing maps and of every map.
    pub memory: Option<(u64, u64)>,
}

impl Ready {
    /// Runs `f` with the place this path's client runs in.
    pub fn with_client<R>(&self, f: impl FnOnce(&dyn Place) -> R) -> R {
        match (&self.membrane, self.path) {
            (Some(membrane), Path::SocketLb) => f(&membrane.socket_lb_client(&self.bed.client)),
            _ => f(&self.bed.client),
        }
    }

    /// The datapath's drop counters, when this path has one.
    pub fn drops(&self) -> Option<String> {
        self.membrane.as_ref().map(Membrane::drops)
    }

    fn services(path: Path, bed: Bed, n: u32) -> Ready {
        Ready {
            path,
            membrane: None,
            bed,
            first: catalog::frontend(0),
            spread: u64::from(n + 1),
            established: catalog::frontend(n / 2),
            program: None,
            add_one: None,
            memory: None,
        }
    }
}

/// The client straight to the backends: no Service, no rules, no eBPF.
pub fn direct() -> anyhow::Result<Ready> {
    let bed = Bed::create()?;
    let backend = topology::first_backend();
    Ok(Ready {
        first: backend,
        spread: u64::from(BACKENDS),
        established: backend,
        ..Ready::services(Path::Direct, bed, 0)
    })
}

/// A kube-proxy rule shape with `n` Services, then one more.
pub fn kube_proxy(
    path: Path,
    shape: &dyn RuleShape,
    n: u32,
    timeout: Duration,
) -> anyhow::Result<Ready> {
    let bed = Bed::create()?;
    let program = kube_proxy::load(&bed, shape, &shape.program_all(n), timeout)
        .with_context(|| format!("loading {n} Services"))?;
    let add = kube_proxy::load(&bed, shape, &shape.add_one(n), timeout)
        .context("adding one more Service")?;
    Ok(Ready {
        program: Some(program),
        add_one: Some(add),
        ..Ready::services(path, bed, n)
    })
}

/// Membrane with `n` Services, then one more; `path` says whether the client uses the
/// socket LB ([`Path::SocketLb`]), is balanced per packet, or connects straight to the
/// backends ([`Path::MembraneDirect`]).
pub fn membrane(path: Path, n: u32) -> anyhow::Result<Ready> {
    let bed = Bed::create()?;
    let mut membrane = Membrane::load(&bed, n)?;
    let program = membrane.program(n)?;
    let started = Instant::now();
    membrane.add(n)?;
    let add = started.elapsed();
    let entries = membrane.service_entries();
    ensure!(
        entries == (n as usize + 1) * (usize::from(BACKENDS) + 1),
        "the services map holds {entries} entries for {} Services",
        n + 1
    );
    let footprint = membrane.footprint()?;
    if path == Path::MembraneDirect {
        let backend = topology::first_backend();
        return Ok(Ready {
            membrane: Some(membrane),
            first: backend,
            spread: u64::from(BACKENDS),
            established: backend,
            ..Ready::services(path, bed, n)
        });
    }
    Ok(Ready {
        membrane: Some(membrane),
        program: Some(program),
        add_one: Some(add),
        memory: Some((footprint.lb_bytes, footprint.all_bytes)),
        ..Ready::services(path, bed, n)
    })
}
