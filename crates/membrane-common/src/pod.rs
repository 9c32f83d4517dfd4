//! `aya::Pod` for every map type, so userspace can read and write the maps.

// SAFETY: every type below is #[repr(C)], made of integers and byte arrays only, with
// explicit padding fields, so any bit pattern is valid and there are no holes.
unsafe impl aya::Pod for crate::DatapathConfig {}
unsafe impl aya::Pod for crate::CtKey {}
unsafe impl aya::Pod for crate::CtEntry {}
unsafe impl aya::Pod for crate::NatEntry {}
unsafe impl aya::Pod for crate::EndpointKey {}
unsafe impl aya::Pod for crate::EndpointInfo {}
unsafe impl aya::Pod for crate::NetnsEndpoint {}
unsafe impl aya::Pod for crate::MetricsValue {}
unsafe impl aya::Pod for crate::IpcacheAddr {}
unsafe impl aya::Pod for crate::IpcacheEntry {}
unsafe impl aya::Pod for crate::ServiceKey {}
unsafe impl aya::Pod for crate::ServiceValue {}
unsafe impl aya::Pod for crate::Backend {}
unsafe impl aya::Pod for crate::RevNat {}
unsafe impl aya::Pod for crate::AffinityKey {}
unsafe impl aya::Pod for crate::AffinityValue {}
unsafe impl aya::Pod for crate::MaglevKey {}
unsafe impl aya::Pod for crate::SockRevKey {}
unsafe impl aya::Pod for crate::FlowEvent {}
unsafe impl aya::Pod for crate::PolicyKey {}
unsafe impl aya::Pod for crate::PolicyEntry {}
