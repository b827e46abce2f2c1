//! Reading a node's /metrics: the Prometheus text, and one sample's value in it.

use crate::cluster::Node;

/// The node's /metrics text.
pub fn scrape(node: &Node) -> String {
    let r = node.api().get("/metrics").expect("GET /metrics");
    assert_eq!(r.status, 200, "/metrics: {}", r.body);
    r.body
}

/// A sample's value: `name` with its labels as the text writes them
/// (`gateway_api_cut_total{reason="head_too_large"}`).
pub fn metric(text: &str, name: &str) -> f64 {
    try_metric(text, name).unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

pub fn try_metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}
