//! What the tracing tests assert about a trace, each with a message that
//! says which span broke which rule.

use std::collections::{HashMap, HashSet};

use crate::otlp::Span;

pub const SHIM: &str = "voidbox";
pub const GUEST: &str = "voidbox-vm";

/// The shim's spans of one container's run (Create to Shutdown).
pub const SHIM_SPANS: &[&str] = &[
    "Create",
    "BundleLoad",
    "MountSetup",
    "VMBoot",
    "VMSpawn",
    "WaitForReady",
    "ClockSync",
    "BundleTransfer",
    "IOSetup",
    "TaskCreate",
    "Start",
    "WaitForExit",
    "Wait",
    "Delete",
    "SpanDrain",
    "ClockSample",
    "GuestShutdown",
    "LastSpans",
    "VMStop",
    "Cleanup",
    "Unmount",
    "Shutdown",
];
/// The guest's spans of the same run. (No `task.delete`: a VM that ends
/// with its container takes the container's state with it.)
pub const GUEST_SPANS: &[&str] = &[
    "guest.kernel",
    "guest.vminitd.init",
    "guest.mounts",
    "guest.tracing",
    "guest.cgroups",
    "guest.network",
    "guest.runtime",
    "guest.services",
    "guest.ready",
    "bundle.put",
    "task.create",
    "mount.rootfs",
    "stdio.connect",
    "crun.create",
    "task.start",
    "crun.start",
    "process.wait",
];

/// The clock uncertainty VMBoot recorded, in ns.
pub fn uncertainty(spans: &[Span]) -> Result<u64, String> {
    spans
        .iter()
        .find(|s| s.name == "VMBoot")
        .and_then(|s| s.attributes.get("clock.uncertainty_ns"))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| "VMBoot records no clock uncertainty".into())
}

/// One container's run as one trace across the VM: every span in `trace`,
/// every root a child of `parent` (the client's span), every shim and guest
/// span of the run there, every guest span's parent in the trace, and the
/// guest spans under host parents inside them on the host clock.
pub fn one_container_trace(spans: &[Span], trace: &str, parent: &str) -> Result<(), String> {
    let stray: Vec<String> = spans
        .iter()
        .filter(|s| s.trace_id != trace)
        .map(|s| format!("{} ({})", s.name, s.service))
        .collect();
    if !stray.is_empty() {
        return Err(format!("spans outside the client's trace: {stray:?}"));
    }
    one_trace(spans)?;
    let roots = roots(spans);
    if !roots.iter().all(|(_, p)| p == parent) {
        return Err(format!("the host root is not the client's span: {roots:?}"));
    }
    for (service, want) in [(SHIM, SHIM_SPANS), (GUEST, GUEST_SPANS)] {
        let gone = missing(spans, service, want);
        if !gone.is_empty() {
            return Err(format!("{service} spans missing: {gone:?}"));
        }
    }
    guest_parents_exist(spans)?;
    let slack = uncertainty(spans)?;
    let checked = guest_inside_host_parents(spans, slack).map_err(|e| format!("clock test (±{slack} ns):\n{e}"))?;
    if checked < 5 {
        return Err(format!("only {checked} guest spans with host parents"));
    }
    Ok(())
}

/// All spans share one trace id; returns it.
pub fn one_trace(spans: &[Span]) -> Result<String, String> {
    let ids: HashSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    match ids.len() {
        1 => Ok(ids.into_iter().next().unwrap().to_string()),
        0 => Err("no spans".into()),
        n => Err(format!("{n} trace ids: {ids:?}")),
    }
}

/// Spans whose parent is not in the trace: (span name, parent id).
pub fn roots(spans: &[Span]) -> Vec<(String, String)> {
    let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    spans
        .iter()
        .filter(|s| !ids.contains(s.parent_span_id.as_str()))
        .map(|s| (s.name.clone(), s.parent_span_id.clone()))
        .collect()
}

/// Every guest span's parent is in the trace.
pub fn guest_parents_exist(spans: &[Span]) -> Result<(), String> {
    let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let orphans: Vec<&str> = spans
        .iter()
        .filter(|s| s.service == GUEST && !ids.contains(s.parent_span_id.as_str()))
        .map(|s| s.name.as_str())
        .collect();
    if orphans.is_empty() {
        Ok(())
    } else {
        Err(format!("guest spans without a parent in the trace: {orphans:?}"))
    }
}

/// The clock test: every guest span whose parent is a host span lies inside
/// the parent's interval, give or take `slack_ns` (the measured uncertainty).
/// Returns how many spans it checked.
pub fn guest_inside_host_parents(spans: &[Span], slack_ns: u64) -> Result<usize, String> {
    let by_id: HashMap<&str, &Span> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let mut checked = 0;
    let mut bad = Vec::new();
    for s in spans.iter().filter(|s| s.service == GUEST) {
        let Some(p) = by_id.get(s.parent_span_id.as_str()) else {
            continue;
        };
        if p.service == GUEST {
            continue;
        }
        checked += 1;
        let early = p.start_ns.saturating_sub(s.start_ns);
        let late = s.end_ns.saturating_sub(p.end_ns);
        if early > slack_ns || late > slack_ns {
            bad.push(format!(
                "{} [{}..{}] outside its host parent {} [{}..{}] (starts {:.3} ms early, ends {:.3} ms late)",
                s.name,
                s.start_ns,
                s.end_ns,
                p.name,
                p.start_ns,
                p.end_ns,
                early as f64 / 1e6,
                late as f64 / 1e6
            ));
        }
    }
    if bad.is_empty() {
        Ok(checked)
    } else {
        Err(bad.join("\n"))
    }
}

/// The names of `service`'s spans.
pub fn names(spans: &[Span], service: &str) -> HashSet<String> {
    spans
        .iter()
        .filter(|s| s.service == service)
        .map(|s| s.name.clone())
        .collect()
}

/// Which of `want` are missing from `service`'s spans.
pub fn missing(spans: &[Span], service: &str, want: &[&str]) -> Vec<String> {
    let have = names(spans, service);
    want.iter()
        .filter(|w| !have.contains(**w))
        .map(|w| w.to_string())
        .collect()
}

/// The service name containerd's own spans carry.
pub const CONTAINERD: &str = "containerd";

/// A trace as a propagating containerd (≥ 2.0) makes it: every span of the
/// shim and the guest has its parent present, and every shim RPC span is a
/// child of one of containerd's spans, in the same trace.
pub fn under_containerd(spans: &[Span]) -> Result<(), String> {
    let by_id: HashMap<&str, &Span> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let orphans: Vec<String> = spans
        .iter()
        .filter(|s| s.service != CONTAINERD && !by_id.contains_key(s.parent_span_id.as_str()))
        .map(|s| format!("{} ({}) parent {:?}", s.name, s.service, s.parent_span_id))
        .collect();
    if !orphans.is_empty() {
        return Err(format!("spans whose parent is missing: {orphans:?}"));
    }
    for rpc in spans
        .iter()
        .filter(|s| s.service == SHIM && s.attributes.get("rpc.system").map(String::as_str) == Some("ttrpc"))
    {
        let parent = by_id[rpc.parent_span_id.as_str()];
        if parent.service != CONTAINERD || parent.trace_id != rpc.trace_id {
            return Err(format!(
                "the shim's {} is under {} ({}), not containerd's",
                rpc.name, parent.name, parent.service
            ));
        }
    }
    Ok(())
}

/// Whether every span's parent has arrived (roots and containerd's own
/// spans aside): for waiting on containerd's batched export.
pub fn parented(spans: &[Span]) -> bool {
    let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    spans
        .iter()
        .all(|s| s.service == CONTAINERD || s.parent_span_id.is_empty() || ids.contains(s.parent_span_id.as_str()))
}

/// `span`'s ancestors in the trace, nearest first.
pub fn ancestors<'a>(spans: &'a [Span], span: &Span) -> Vec<&'a Span> {
    let by_id: HashMap<&str, &Span> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let mut out = Vec::new();
    let mut parent = span.parent_span_id.as_str();
    while let Some(p) = by_id.get(parent) {
        out.push(*p);
        parent = p.parent_span_id.as_str();
        if out.len() > spans.len() {
            break;
        }
    }
    out
}

/// The shim's Create span of container `id`.
pub fn create_of<'a>(spans: &'a [Span], id: &str) -> Option<&'a Span> {
    spans.iter().find(|s| {
        s.service == SHIM && s.name == "Create" && s.attributes.get("container.id").map(String::as_str) == Some(id)
    })
}

/// A pod's trace: exactly one VMBoot, under the sandbox's Create; each
/// member's Create without one; each member's guest work in the trace.
pub fn pod_shape(spans: &[Span], sandbox: &str, members: &[&str]) -> Result<(), String> {
    let boots: Vec<&Span> = spans.iter().filter(|s| s.name == "VMBoot").collect();
    if boots.len() != 1 {
        return Err(format!("{} VMBoot spans, not one", boots.len()));
    }
    let sandbox_create = create_of(spans, sandbox).ok_or("no Create span of the sandbox")?;
    if !ancestors(spans, boots[0])
        .iter()
        .any(|a| a.span_id == sandbox_create.span_id)
    {
        return Err("VMBoot is not under the sandbox's Create".into());
    }
    for id in members {
        create_of(spans, id).ok_or_else(|| format!("no Create span of {id}"))?;
        let guest = spans
            .iter()
            .find(|s| s.name == "task.create" && s.attributes.get("container.id").map(String::as_str) == Some(*id))
            .ok_or_else(|| format!("no guest task.create of {id}"))?;
        if !ancestors(spans, guest).iter().any(|a| a.name == "Create") {
            return Err(format!("the guest's task.create of {id} is not under a Create"));
        }
    }
    Ok(())
}

/// How one guest span sits in its host parent, on the host clock.
#[derive(Debug, Clone)]
pub struct Nesting {
    pub name: String,
    pub parent: String,
    /// The parent's start, Unix ns.
    pub parent_start_ns: u64,
    /// How far the guest span starts before its parent does (negative:
    /// after, inside), and ends after it (negative: before, inside), ns.
    pub early_ns: i64,
    pub late_ns: i64,
}

impl Nesting {
    /// How far outside its parent the span reaches (≤ 0: inside).
    pub fn outside_ns(&self) -> i64 {
        self.early_ns.max(self.late_ns)
    }
}

/// Every guest span whose parent is a host span, and how it sits in it.
pub fn guest_nesting(spans: &[Span]) -> Vec<Nesting> {
    let by_id: HashMap<&str, &Span> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    spans
        .iter()
        .filter(|s| s.service == GUEST)
        .filter_map(|s| {
            let p = by_id.get(s.parent_span_id.as_str())?;
            (p.service != GUEST).then(|| Nesting {
                name: s.name.clone(),
                parent: p.name.clone(),
                parent_start_ns: p.start_ns,
                early_ns: p.start_ns as i64 - s.start_ns as i64,
                late_ns: s.end_ns as i64 - p.end_ns as i64,
            })
        })
        .collect()
}
