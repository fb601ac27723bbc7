//! Traces as trees: the terminal waterfall and the Mermaid gantt chart of
//! `make jaeger-gantt` and `make demo`, from spans received over OTLP, read
//! from an OTLP JSON file, or fetched from Jaeger.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use crate::otlp::Span;

pub struct Tree<'a> {
    spans: Vec<&'a Span>,
    children: HashMap<&'a str, Vec<usize>>,
    roots: Vec<usize>,
}

impl<'a> Tree<'a> {
    /// Spans whose parent is absent are roots. Siblings are in start order.
    pub fn new(spans: &'a [Span]) -> Tree<'a> {
        let mut sorted: Vec<&Span> = spans.iter().collect();
        sorted.sort_by_key(|s| (s.start_ns, std::cmp::Reverse(s.end_ns)));
        let ids: HashSet<&str> = sorted.iter().map(|s| s.span_id.as_str()).collect();
        let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut roots = Vec::new();
        for (i, s) in sorted.iter().enumerate() {
            if !s.parent_span_id.is_empty() && ids.contains(s.parent_span_id.as_str()) {
                children.entry(s.parent_span_id.as_str()).or_default().push(i);
            } else {
                roots.push(i);
            }
        }
        Tree {
            spans: sorted,
            children,
            roots,
        }
    }

    fn walk(&self, i: usize, depth: usize, f: &mut impl FnMut(&Span, usize)) {
        f(self.spans[i], depth);
        for &c in self.children.get(self.spans[i].span_id.as_str()).into_iter().flatten() {
            self.walk(c, depth + 1, f);
        }
    }

    /// Depth-first, parents before children.
    pub fn each(&self, mut f: impl FnMut(&Span, usize)) {
        for &r in &self.roots {
            self.walk(r, 0, &mut f);
        }
    }

    fn t0(&self) -> u64 {
        self.spans.iter().map(|s| s.start_ns).min().unwrap_or(0)
    }

    fn t1(&self) -> u64 {
        self.spans.iter().map(|s| s.end_ns).max().unwrap_or(0)
    }

    /// An indented tree with durations, offsets and a bar per span:
    /// the guest's spans are marked `vm`, containerd's `ctd`.
    pub fn waterfall(&self, width: usize) -> String {
        let (t0, t1) = (self.t0(), self.t1());
        let total = t1.saturating_sub(t0).max(1) as f64;
        let mut out = String::new();
        self.each(|s, depth| {
            let name = format!("{}{}", "  ".repeat(depth), s.name);
            let from = (s.start_ns.saturating_sub(t0) as f64 / total * width as f64) as usize;
            let len = ((s.end_ns.saturating_sub(s.start_ns) as f64 / total * width as f64).round() as usize).max(1);
            let bar = format!(
                "{}{}",
                " ".repeat(from.min(width)),
                "█".repeat(len.min(width - from.min(width)).max(1))
            );
            let tag = match Side::of(&s.service) {
                Side::Guest => "vm ",
                Side::Containerd => "ctd",
                Side::Shim => "   ",
            };
            let _ = writeln!(
                out,
                "{name:<40} {tag} {:>9.1} ms  @{:>8.1}  |{bar:<width$}|",
                s.end_ns.saturating_sub(s.start_ns) as f64 / 1e6,
                s.start_ns.saturating_sub(t0) as f64 / 1e6,
            );
        });
        out
    }

    /// A Mermaid `gantt` chart: one section per root, milliseconds from the
    /// trace's start.
    pub fn mermaid(&self, title: &str) -> String {
        let t0 = self.t0();
        let mut out = format!("gantt\n    title {title}\n    dateFormat x\n    axisFormat %s.%L s\n");
        let mut n = 0;
        self.each(|s, depth| {
            if depth == 0 {
                let _ = writeln!(out, "    section {}", chart_text(&s.name));
            }
            n += 1;
            let start = s.start_ns.saturating_sub(t0) / 1_000_000;
            let end = (s.end_ns.saturating_sub(t0) / 1_000_000).max(start + 1);
            let service = match Side::of(&s.service) {
                Side::Guest => "vm",
                Side::Containerd => "containerd",
                Side::Shim => "shim",
            };
            let label = format!("{}{} ({service})", ". ".repeat(depth), chart_text(&s.name));
            let _ = writeln!(out, "    {label} :s{n}, {start}, {end}");
        });
        out
    }
}

/// A span name as Mermaid can take it in a task or section line: a colon
/// would end the label early (the task loses its bar), a line break ends
/// the line (a parse error), so both become spaces, as other control
/// characters do.
fn chart_text(name: &str) -> String {
    name.chars()
        .map(|c| if c == ':' || c.is_control() { ' ' } else { c })
        .collect()
}

/// Whose span it is, by service name.
enum Side {
    Guest,
    Containerd,
    Shim,
}

impl Side {
    fn of(service: &str) -> Side {
        if service.ends_with("-vm") {
            Side::Guest
        } else if service == "containerd" {
            Side::Containerd
        } else {
            Side::Shim
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: &str, name: &str) -> Span {
        Span {
            service: "voidbox".into(),
            trace_id: "ab".into(),
            span_id: id.into(),
            parent_span_id: parent.into(),
            name: name.into(),
            start_ns: 1_000_000,
            end_ns: 3_000_000,
            attributes: Default::default(),
            resource: Default::default(),
            status_code: 0,
            status_message: String::new(),
            events: Vec::new(),
        }
    }

    #[test]
    fn names_that_would_break_a_chart_line_are_flattened() {
        let spans = [span("01", "", "root\nsection x"), span("02", "01", "a:b\r\n\tc")];
        let chart = Tree::new(&spans).mermaid("t");
        assert_eq!(
            chart.lines().skip(4).collect::<Vec<_>>(),
            [
                "    section root section x",
                "    root section x (shim) :s1, 0, 2",
                "    . a b   c (shim) :s2, 0, 2"
            ]
        );
    }
}
