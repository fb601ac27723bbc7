//! The guest's boot as spans: kernel start to /init (from the kernel's own
//! clock), vminitd's setup with its steps, and the wait for the host. They
//! are made once, when the host opens the span stream with a trace context
//! (its boot span's), so they are children of the host's boot span and land
//! on the wall clock the host set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::building::{value, Building};
use super::context::Parent;
use super::Sink;
use crate::boot::{wall_time, BootClock};

pub struct BootSpans {
    clock: Arc<BootClock>,
    emitted: AtomicBool,
}

impl BootSpans {
    pub fn new(clock: Arc<BootClock>) -> Self {
        BootSpans {
            clock,
            emitted: AtomicBool::new(false),
        }
    }

    /// Sends the boot's spans to `sink`, once, under the host's `parent`.
    pub fn emit_once(&self, parent: Option<&Parent>, sink: &Sink) {
        let Some(parent) = parent else { return };
        if self.emitted.swap(true, Ordering::SeqCst) {
            return;
        }
        let c = &self.clock;
        let span = |name: &str, start: u64| {
            let mut b = Building::starting_at(name, wall_time(start));
            b.adopt(parent);
            b
        };
        let send = |b: Building, end: u64| {
            if let Some(s) = b.finish_at(wall_time(end)) {
                sink.send(s);
            }
        };
        let int = |v: u64| value(voidbox_api::traces::value::Kind::Int(v as i64));
        let mut kernel = span("guest.kernel", 0);
        kernel.set("boot.init_start_ns", int(c.init_start_ns()));
        send(kernel, c.init_start_ns());
        let init = span("guest.vminitd.init", c.init_start_ns());
        for (name, start, end) in c.steps() {
            let mut step = Building::starting_at(name, wall_time(start));
            step.child_of(&init);
            send(step, end);
        }
        send(init, c.serving_ns());
        let mut ready = span("guest.ready", c.serving_ns());
        ready.set("boot.ready_ns", int(c.ready_ns()));
        send(ready, c.ready_ns());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn boot_spans_are_children_of_the_host_span() {
        let (sink, buffer) = crate::trace::buffer::channel(64);
        let clock = Arc::new(BootClock::at_init_start());
        clock.step("guest.mounts", || ());
        clock.mark_serving();
        clock.mark_ready();
        let mut md = std::collections::HashMap::new();
        md.insert(
            "traceparent".to_string(),
            vec!["00-05050505050505050505050505050505-0606060606060606-01".to_string()],
        );
        let parent = crate::trace::context::extract(&md);
        let spans = BootSpans::new(clock);
        spans.emit_once(None, &sink);
        spans.emit_once(parent.as_ref(), &sink);
        spans.emit_once(parent.as_ref(), &sink);
        let mut rx = buffer.rx.lock().await;
        let mut got = Vec::new();
        while let Ok(s) = rx.try_recv() {
            assert_eq!(s.trace_id, vec![5; 16]);
            got.push(s);
        }
        let init = got.iter().find(|s| s.name == "guest.vminitd.init").unwrap();
        let mounts = got.iter().find(|s| s.name == "guest.mounts").unwrap();
        assert_eq!(init.parent_span_id, vec![6; 8]);
        assert_eq!(mounts.parent_span_id, init.span_id, "steps are the init's children");
        let mut names: Vec<_> = got.iter().map(|s| s.name.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            ["guest.kernel", "guest.mounts", "guest.ready", "guest.vminitd.init"],
            "once each"
        );
    }
}
