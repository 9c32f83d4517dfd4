//! The reconciler: keeps what it last wrote to the datapath and, given a new desired
//! state, writes only the difference — backends added or changed, frontends written or
//! removed, backends no frontend names any more removed — numbering them stably
//! through the [`Allocator`].
//!
//! Changed backends, then changed frontends, are written as one batch each (the datapath
//! writes a batch with a few syscalls, so a full sync of 100,000 Services takes about a
//! second, not many). A batch that fails is written again item by item, one owner at a
//! time, so that what failed is known exactly.
//!
//! A write that fails (a full map, above all) fails its Service alone: the Service keeps
//! what it had (or stays absent), every other Service is programmed, and the next pass
//! tries again. What a failed write may have left behind is marked unknown, and an
//! unknown frontend is rewritten whole on the next pass.
//!
//! After a restart the reconciler adopts the numbers of the earlier run with every
//! frontend and backend unknown: the first pass rewrites what is still wanted with the
//! same numbers (the pinned maps keep serving meanwhile) and removes the rest.

use super::allocator::Allocator;
use super::datapath::ServiceDatapath;
use super::error::ServicesError;
use super::model::{
    BackendAddr, BackendState, Backends, DesiredFrontend, DesiredState, FrontendAddr, Owner,
};
use membrane_common::lb::service_flags;
use membrane_datapath::{BackendSpec, Frontend, ServiceSpec};
use std::collections::{BTreeMap, BTreeSet};

/// What one pass did.
#[derive(Debug, Default)]
pub struct Report {
    /// Frontends written (both scopes count as one).
    pub frontends_written: usize,
    /// Frontends removed.
    pub frontends_removed: usize,
    /// Backends written.
    pub backends_written: usize,
    /// Backends removed.
    pub backends_removed: usize,
    /// What failed; each names its Service where it has one.
    pub failures: Vec<ServicesError>,
}

/// What the datapath holds for one numbered frontend.
#[derive(Debug)]
enum Applied {
    /// Exactly this.
    Written(DesiredFrontend),
    /// Not known: an earlier run wrote it, or a write failed part-way. Its slots may
    /// name these backends (any backend when `None`).
    Unknown(Option<BTreeSet<BackendAddr>>),
}

impl Applied {
    /// The backends its slots may name; `None` for any.
    fn may_name(&self) -> Option<BTreeSet<BackendAddr>> {
        match self {
            Applied::Written(frontend) => Some(frontend.all_backends().copied().collect()),
            Applied::Unknown(names) => names.clone(),
        }
    }
}

/// The datapath writes of one frontend: its scopes, the internal one first, and whether
/// an internal scope written before is to go.
struct Scopes {
    /// Each scope's spec and Maglev names, in the order they are written.
    writes: Vec<(ServiceSpec, Vec<Vec<u8>>)>,
    /// The frontend had an internal scope (or may have had) and has none now.
    drop_internal: bool,
}

/// The datapath's Services, as this reconciler last wrote them.
pub struct Reconciler<D> {
    datapath: D,
    allocator: Allocator,
    /// Every numbered frontend and what the datapath holds for it.
    frontends: BTreeMap<FrontendAddr, Applied>,
    /// Every numbered backend: its written state, or `None` when unknown.
    backends: BTreeMap<BackendAddr, Option<BackendState>>,
    /// Owners whose last write failed, with the error.
    failures: BTreeMap<Owner, String>,
}

impl<D: ServiceDatapath> Reconciler<D> {
    /// A reconciler writing to `datapath`, adopting every number `allocator` holds.
    pub fn new(datapath: D, allocator: Allocator) -> Reconciler<D> {
        let frontends = allocator
            .frontends()
            .keys()
            .map(|f| (*f, Applied::Unknown(None)))
            .collect();
        let backends = allocator.backends().keys().map(|b| (*b, None)).collect();
        Reconciler {
            datapath,
            allocator,
            frontends,
            backends,
            failures: BTreeMap::new(),
        }
    }

    /// What `frontend` was last written as, when known.
    pub fn applied(&self, frontend: &FrontendAddr) -> Option<&DesiredFrontend> {
        match self.frontends.get(frontend) {
            Some(Applied::Written(frontend)) => Some(frontend),
            _ => None,
        }
    }

    /// Why the last write of `owner` failed, if it did.
    pub fn failure(&self, owner: &Owner) -> Option<&str> {
        self.failures.get(owner).map(String::as_str)
    }

    /// The numbers in use.
    pub fn allocator(&self) -> &Allocator {
        &self.allocator
    }

    /// Writes the difference between what was written and `desired`. Fails only when
    /// the numbers cannot be stored; datapath failures are in the report.
    ///
    /// Frontends no longer wanted go first, and with them the backends nothing names
    /// any more, so that their room is free for what is written next; the backends the
    /// rewritten frontends stopped naming go last.
    pub fn reconcile(&mut self, desired: &DesiredState) -> Result<Report, ServicesError> {
        let mut report = Report::default();
        self.remove_frontends(desired, &mut report)?;
        self.remove_backends(desired, &mut report)?;
        let changed: Vec<FrontendAddr> = desired
            .frontends
            .iter()
            .filter(|(addr, want)| self.applied(addr) != Some(*want))
            .map(|(addr, _)| *addr)
            .collect();
        let changed_backends: Vec<BackendAddr> = desired
            .backends
            .iter()
            .filter(|(backend, state)| self.backends.get(backend) != Some(&Some(**state)))
            .map(|(backend, _)| *backend)
            .collect();
        self.allocator
            .allocate(changed_backends.iter(), changed.iter())?;
        for frontend in &changed {
            if self.allocator.rev_nat_index(frontend).is_some() {
                self.frontends
                    .entry(*frontend)
                    .or_insert_with(|| Applied::Unknown(Some(BTreeSet::new())));
            }
        }

        let missing = self.write_backends(desired, &changed_backends, &mut report);
        self.write_frontends(desired, &changed, &missing, &mut report);
        self.failures
            .retain(|owner, _| desired.frontends.values().any(|f| &f.owner == owner));
        self.remove_backends(desired, &mut report)?;
        Ok(report)
    }

    /// Writes the backends whose state changed, in one batch (when that fails, one by
    /// one, so that each refusal is reported with its Service); returns those the
    /// datapath does not hold as desired (not numbered, or refused).
    fn write_backends(
        &mut self,
        desired: &DesiredState,
        changed: &[BackendAddr],
        report: &mut Report,
    ) -> BTreeSet<BackendAddr> {
        let mut missing = BTreeSet::new();
        let mut writes = Vec::with_capacity(changed.len());
        for backend in changed {
            let state = desired.backends[backend];
            let Some(id) = self.allocator.backend_id(backend) else {
                missing.insert(*backend);
                continue;
            };
            self.backends.entry(*backend).or_insert(None);
            let spec = BackendSpec {
                addr: backend.addr,
                port: backend.port,
                proto: backend.proto.number(),
                terminating: state.terminating,
                local: state.local,
            };
            writes.push((*backend, (id, spec)));
        }
        let batch: Vec<(u32, BackendSpec)> = writes.iter().map(|(_, write)| *write).collect();
        let all = self.datapath.upsert_backends(&batch);
        for (backend, write) in writes {
            let written = match &all {
                Ok(()) => Ok(()),
                Err(_) => self.datapath.upsert_backends(&[write]),
            };
            match written {
                Ok(()) => {
                    self.backends
                        .insert(backend, Some(desired.backends[&backend]));
                    report.backends_written += 1;
                }
                Err(error) => {
                    missing.insert(backend);
                    let owner = desired
                        .frontends
                        .values()
                        .find(|f| f.all_backends().any(|b| *b == backend))
                        .map(|f| f.owner.clone())
                        .expect("every desired backend belongs to a desired frontend");
                    report.failures.push(datapath_error::<D>(
                        owner,
                        "writing backend",
                        backend.to_string(),
                        error,
                    ));
                }
            }
        }
        missing
    }

    /// Writes the `changed` frontends: every owner's in one batch; when that fails (a
    /// full map, above all), owner by owner, so that a failure is its owner's alone.
    fn write_frontends(
        &mut self,
        desired: &DesiredState,
        changed: &[FrontendAddr],
        missing: &BTreeSet<BackendAddr>,
        report: &mut Report,
    ) {
        let mut by_owner: BTreeMap<&Owner, Vec<FrontendAddr>> = BTreeMap::new();
        for frontend in changed {
            by_owner
                .entry(&desired.frontends[frontend].owner)
                .or_default()
                .push(*frontend);
        }
        let mut writes: Vec<(&Owner, Vec<(FrontendAddr, Scopes)>)> = Vec::new();
        for (owner, frontends) in by_owner {
            let scopes = frontends
                .iter()
                .map(|f| Ok((*f, self.scopes(f, &desired.frontends[f], missing)?)))
                .collect::<Result<Vec<_>, ServicesError>>();
            match scopes {
                Ok(scopes) => writes.push((owner, scopes)),
                Err(error) => self.fail(owner, error, report),
            }
        }
        let batch: Vec<(ServiceSpec, Vec<Vec<u8>>)> = writes
            .iter()
            .flat_map(|(_, scopes)| scopes.iter().flat_map(|(_, s)| s.writes.iter().cloned()))
            .collect();
        for (frontend, _) in writes.iter().flat_map(|(_, scopes)| scopes) {
            self.begin_write(frontend, &desired.frontends[frontend]);
        }
        let all = self.datapath.upsert_services(&batch);
        for (owner, scopes) in writes {
            let written = scopes.iter().try_for_each(|(frontend, scopes)| {
                let what = || frontend.to_string();
                if all.is_err() {
                    self.datapath
                        .upsert_services(&scopes.writes)
                        .map_err(|e| datapath_error::<D>(owner.clone(), "writing", what(), e))?;
                }
                self.finish_write(frontend, &desired.frontends[frontend], scopes)?;
                report.frontends_written += 1;
                Ok(())
            });
            match written {
                Ok(()) => {
                    self.failures.remove(owner);
                }
                Err(error) => self.fail(owner, error, report),
            }
        }
    }

    /// Records that `owner`'s write failed with `error`.
    fn fail(&mut self, owner: &Owner, error: ServicesError, report: &mut Report) {
        self.failures
            .insert(owner.clone(), crate::agent::chain(&error));
        report.failures.push(error);
    }

    /// The datapath writes of `frontend` as `want`, with the backends' ids.
    fn scopes(
        &self,
        frontend: &FrontendAddr,
        want: &DesiredFrontend,
        missing: &BTreeSet<BackendAddr>,
    ) -> Result<Scopes, ServicesError> {
        let owner = &want.owner;
        let index = self.allocator.rev_nat_index(frontend).ok_or_else(|| {
            ServicesError::IndexesExhausted {
                owner: owner.clone(),
                frontend: *frontend,
            }
        })?;
        let spec = |internal: bool, flags: u16, scope: &Backends| {
            let ids = |list: &[BackendAddr]| -> Result<Vec<u32>, ServicesError> {
                list.iter()
                    .map(|b| {
                        self.allocator
                            .backend_id(b)
                            .filter(|_| !missing.contains(b))
                            .ok_or_else(|| ServicesError::BackendMissing {
                                owner: owner.clone(),
                                backend: *b,
                            })
                    })
                    .collect()
            };
            let names: Vec<Vec<u8>> = if flags & service_flags::MAGLEV != 0 {
                scope.active.iter().map(BackendAddr::maglev_name).collect()
            } else {
                Vec::new()
            };
            let spec = ServiceSpec {
                frontend: Frontend {
                    addr: frontend.addr,
                    port: frontend.port,
                    proto: frontend.proto.number(),
                    internal,
                },
                rev_nat_index: index,
                flags,
                affinity_timeout_s: want.affinity_timeout_s,
                active: ids(&scope.active)?,
                terminating: ids(&scope.terminating)?,
            };
            Ok::<_, ServicesError>((spec, names))
        };
        // A head with TWO_SCOPES looks for the internal entry, so that is written first.
        // The internal scope has no Maglev table of its own (the table belongs to the
        // reverse-NAT index both scopes share), so it selects at random.
        let mut writes = Vec::with_capacity(2);
        if let Some(scope) = &want.internal {
            writes.push(spec(true, want.flags & !service_flags::MAGLEV, scope)?);
        }
        writes.push(spec(false, want.flags, &want.backends)?);
        let had_internal = self
            .applied(frontend)
            .is_none_or(|have| have.internal.is_some());
        Ok(Scopes {
            writes,
            drop_internal: want.internal.is_none() && had_internal,
        })
    }

    /// Marks `frontend` unknown while it is written as `want`: until every scope is
    /// written, its slots may name the old or the new backends.
    fn begin_write(&mut self, frontend: &FrontendAddr, want: &DesiredFrontend) {
        let may_name = self
            .frontends
            .get(frontend)
            .map_or(Some(BTreeSet::new()), Applied::may_name)
            .map(|mut names| {
                names.extend(want.all_backends().copied());
                names
            });
        self.frontends.insert(*frontend, Applied::Unknown(may_name));
    }

    /// Completes the write of `frontend` once its scopes are written: an internal scope
    /// it no longer has goes (after the head without TWO_SCOPES was written), and it is
    /// marked written as `want`.
    fn finish_write(
        &mut self,
        frontend: &FrontendAddr,
        want: &DesiredFrontend,
        scopes: &Scopes,
    ) -> Result<(), ServicesError> {
        if scopes.drop_internal {
            let external = scopes
                .writes
                .last()
                .expect("the external scope is always written");
            let scope = Frontend {
                internal: true,
                ..external.0.frontend
            };
            self.datapath.remove_service(&scope).map_err(|e| {
                datapath_error::<D>(
                    want.owner.clone(),
                    "removing the internal scope of",
                    frontend.to_string(),
                    e,
                )
            })?;
        }
        self.frontends
            .insert(*frontend, Applied::Written(want.clone()));
        Ok(())
    }

    /// Removes the frontends no longer desired, and releases their indexes.
    fn remove_frontends(
        &mut self,
        desired: &DesiredState,
        report: &mut Report,
    ) -> Result<(), ServicesError> {
        let stale: Vec<FrontendAddr> = self
            .frontends
            .keys()
            .filter(|f| !desired.frontends.contains_key(f))
            .copied()
            .collect();
        let mut removed = Vec::new();
        for frontend in stale {
            let scope = |internal| Frontend {
                addr: frontend.addr,
                port: frontend.port,
                proto: frontend.proto.number(),
                internal,
            };
            let result = self
                .datapath
                .remove_service(&scope(false))
                .and_then(|()| self.datapath.remove_service(&scope(true)));
            match result {
                Ok(()) => {
                    self.frontends.remove(&frontend);
                    removed.push(frontend);
                }
                Err(error) => {
                    let names = self.frontends.get(&frontend).and_then(Applied::may_name);
                    self.frontends.insert(frontend, Applied::Unknown(names));
                    report.failures.push(ServicesError::Remove {
                        what: format!("frontend {frontend}"),
                        source: Box::new(error),
                    });
                }
            }
        }
        report.frontends_removed += removed.len();
        self.allocator.release([], removed.iter())?;
        Ok(())
    }

    /// Removes the backends neither desired nor possibly named by a frontend, and
    /// releases their ids. While a frontend from an earlier run is unknown, nothing is
    /// removed: it may name any backend.
    fn remove_backends(
        &mut self,
        desired: &DesiredState,
        report: &mut Report,
    ) -> Result<(), ServicesError> {
        let mut named = BTreeSet::new();
        for applied in self.frontends.values() {
            match applied.may_name() {
                Some(names) => named.extend(names),
                None => return Ok(()),
            }
        }
        let stale: Vec<BackendAddr> = self
            .backends
            .keys()
            .filter(|b| !desired.backends.contains_key(b) && !named.contains(b))
            .copied()
            .collect();
        let mut removed = Vec::new();
        for backend in stale {
            let Some(id) = self.allocator.backend_id(&backend) else {
                self.backends.remove(&backend);
                continue;
            };
            match self.datapath.remove_backend(id) {
                Ok(()) => {
                    self.backends.remove(&backend);
                    removed.push(backend);
                }
                Err(error) => report.failures.push(ServicesError::Remove {
                    what: format!("backend {backend}"),
                    source: Box::new(error),
                }),
            }
        }
        report.backends_removed += removed.len();
        self.allocator.release(removed.iter(), [])?;
        Ok(())
    }
}

/// A datapath error of `owner`'s `what`: [`ServicesError::MapFull`] when a map had no
/// room.
fn datapath_error<D: ServiceDatapath>(
    owner: Owner,
    operation: &'static str,
    what: String,
    error: D::Error,
) -> ServicesError {
    match D::full_map(&error) {
        Some(map) => ServicesError::MapFull {
            owner,
            map,
            what,
            source: Box::new(error),
        },
        None => ServicesError::Datapath {
            owner,
            operation,
            what,
            source: Box::new(error),
        },
    }
}

#[cfg(test)]
mod tests;
