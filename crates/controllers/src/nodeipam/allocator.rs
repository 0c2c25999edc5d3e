//! Which node subnets are taken: rebuilt from the Nodes as cached, plus the
//! assignments this controller has written but not yet seen come back.
//!
//! Rebuilding on every allocation (rather than keeping books updated by
//! events) makes deletions, nodes whose CIDR someone else set, and relists
//! after a broken watch all come out right without special cases; with one
//! entry per node it costs microseconds.

use std::collections::{HashMap, HashSet};

use super::cidr::{Cidr, CidrSet};

/// The subnets in use, and the pending assignments.
#[derive(Debug)]
pub struct Allocator {
    /// The empty layout, copied on each rebuild.
    empty: CidrSet,
    /// The layout with every subnet in use marked.
    set: CidrSet,
    /// Nodes given a subnet whose cached copy does not show it yet.
    pending: HashMap<String, Cidr>,
}

impl Allocator {
    /// An allocator over an (empty) layout.
    pub fn new(layout: CidrSet) -> Allocator {
        Allocator {
            set: layout.clone(),
            empty: layout,
            pending: HashMap::new(),
        }
    }

    /// Rebuild from the Nodes as cached: `(name, its pod CIDR if it has
    /// one)`. A CIDR outside the layout (set by hand, or from an earlier
    /// cluster CIDR) is the node's to keep but takes nothing from the
    /// layout. A pending assignment ends when its node shows a CIDR or is
    /// gone, and gives way if another node shows the same subnet.
    pub fn sync<'a>(&mut self, nodes: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) {
        let mut set = self.empty.clone();
        let mut waiting = HashSet::new();
        for (name, cidr) in nodes {
            match cidr {
                Some(c) => {
                    if let Ok(c) = c.parse::<Cidr>() {
                        set.occupy(&c);
                    }
                }
                None => {
                    waiting.insert(name.to_string());
                }
            }
        }
        self.pending
            .retain(|name, c| waiting.contains(name) && !set.is_used(c));
        for c in self.pending.values() {
            set.occupy(c);
        }
        self.set = set;
    }

    /// The subnet for a node without one: what it was already assigned (a
    /// retried write must not take a second subnet), else the lowest free.
    /// `None` when every subnet is taken.
    pub fn assign(&mut self, node: &str) -> Option<Cidr> {
        if let Some(c) = self.pending.get(node) {
            return Some(*c);
        }
        let c = self.set.allocate()?;
        self.pending.insert(node.to_string(), c);
        Some(c)
    }

    /// Drop a node's pending assignment (its Node is gone, or someone else
    /// set its CIDR first).
    pub fn release(&mut self, node: &str) {
        if let Some(c) = self.pending.remove(node) {
            self.set.release(&c);
        }
    }

    /// How many subnets are free.
    pub fn free(&self) -> u64 {
        self.set.free()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // fixtures are literals built by the tests
mod tests {
    use super::*;

    fn allocator(cluster: &str) -> Allocator {
        Allocator::new(CidrSet::new(cluster.parse().unwrap(), 24).unwrap())
    }

    fn s(c: Option<Cidr>) -> Option<String> {
        c.map(|c| c.to_string())
    }

    #[test]
    fn cidrs_nodes_hold_are_skipped_and_a_retry_gets_the_same_one() {
        let mut a = allocator("10.244.0.0/16");
        a.sync([
            ("old", Some("10.244.0.0/24")),
            ("new", None),
            ("manual", Some("192.168.1.0/24")),
        ]);
        assert_eq!(s(a.assign("new")), Some("10.244.1.0/24".into()));
        assert_eq!(
            s(a.assign("new")),
            Some("10.244.1.0/24".into()),
            "same node, same subnet"
        );
        // Written but not seen yet: still taken after a rebuild.
        a.sync([
            ("old", Some("10.244.0.0/24")),
            ("new", None),
            ("other", None),
        ]);
        assert_eq!(s(a.assign("other")), Some("10.244.2.0/24".into()));
        // Seen: no longer pending, still taken.
        a.sync([
            ("old", Some("10.244.0.0/24")),
            ("new", Some("10.244.1.0/24")),
            ("other", Some("10.244.2.0/24")),
            ("third", None),
        ]);
        assert_eq!(s(a.assign("third")), Some("10.244.3.0/24".into()));
    }

    #[test]
    fn a_deleted_node_frees_its_subnet() {
        let mut a = allocator("10.244.0.0/23");
        a.sync([
            ("a", Some("10.244.0.0/24")),
            ("b", Some("10.244.1.0/24")),
            ("c", None),
        ]);
        assert_eq!(a.free(), 0);
        assert_eq!(a.assign("c"), None, "exhausted");
        a.sync([("b", Some("10.244.1.0/24")), ("c", None)]);
        assert_eq!(s(a.assign("c")), Some("10.244.0.0/24".into()));
    }

    #[test]
    fn a_pending_assignment_gives_way_to_a_node_that_shows_the_subnet() {
        let mut a = allocator("10.244.0.0/16");
        a.sync([("x", None)]);
        assert_eq!(s(a.assign("x")), Some("10.244.0.0/24".into()));
        // Someone else gave 10.244.0.0/24 to y before x's write landed.
        a.sync([("x", None), ("y", Some("10.244.0.0/24"))]);
        assert_eq!(s(a.assign("x")), Some("10.244.1.0/24".into()));
        // A node that vanished while pending frees its subnet.
        a.sync([("y", Some("10.244.0.0/24"))]);
        assert_eq!(a.free(), 255);
        a.sync([("y", Some("10.244.0.0/24")), ("z", None)]);
        assert_eq!(s(a.assign("z")), Some("10.244.1.0/24".into()));
        assert_eq!(a.free(), 254);
        a.release("z");
        assert_eq!(a.free(), 255);
    }
}
