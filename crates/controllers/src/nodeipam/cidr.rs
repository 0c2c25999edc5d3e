//! IPv4 CIDR arithmetic for the node IPAM controller: a cluster CIDR cut
//! into equal node subnets, handed out lowest first.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Why a CIDR or a subnet layout was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not `a.b.c.d/n` with `n` at most 32.
    #[error("{0:?} is not an IPv4 CIDR (a.b.c.d/n)")]
    Parse(String),
    /// The node subnets would be larger than the cluster CIDR, or smaller
    /// than one address.
    #[error("a node mask of /{node_mask} does not fit in {cluster}: it must be between /{} and /32", cluster.prefix())]
    NodeMask {
        /// The cluster CIDR.
        cluster: Cidr,
        /// The requested node subnet prefix length.
        node_mask: u8,
    },
}

/// An IPv4 network, its host bits cleared (`10.244.3.0/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    network: Ipv4Addr,
    prefix: u8,
}

/// The cluster CIDR skiff cuts node subnets from unless told otherwise.
pub const DEFAULT_CLUSTER_CIDR: Cidr = Cidr {
    network: Ipv4Addr::new(10, 244, 0, 0),
    prefix: 16,
};

/// The netmask of a prefix length as an integer.
fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

impl Cidr {
    /// The network of `addr` with a `prefix`-bit mask (host bits are
    /// cleared, as Go's `net.ParseCIDR` does). `None` if `prefix > 32`.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Cidr> {
        (prefix <= 32).then(|| Cidr {
            network: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    /// The first address.
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether an address lies in this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.network)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let bad = || CidrError::Parse(s.to_string());
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        Cidr::new(addr, prefix).ok_or_else(bad)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A cluster CIDR cut into node subnets of `/node_mask`, numbered from 0 at
/// the lowest address, with the ones in use.
#[derive(Debug, Clone)]
pub struct CidrSet {
    cluster: Cidr,
    node_mask: u8,
    used: BTreeSet<u64>,
}

impl CidrSet {
    /// The subnets of `cluster` with a `/node_mask` each.
    pub fn new(cluster: Cidr, node_mask: u8) -> Result<CidrSet, CidrError> {
        if node_mask < cluster.prefix || node_mask > 32 {
            return Err(CidrError::NodeMask { cluster, node_mask });
        }
        Ok(CidrSet {
            cluster,
            node_mask,
            used: BTreeSet::new(),
        })
    }

    /// How many node subnets there are.
    pub fn capacity(&self) -> u64 {
        1u64 << (self.node_mask - self.cluster.prefix)
    }

    /// How many are free.
    pub fn free(&self) -> u64 {
        self.capacity() - self.used.len() as u64
    }

    /// Address bits inside one node subnet.
    fn host_bits(&self) -> u32 {
        32 - u32::from(self.node_mask)
    }

    /// The subnet with this number (below [`CidrSet::capacity`]).
    fn subnet(&self, index: u64) -> Cidr {
        // In u64, so that a /0 node mask (one subnet, 32 host bits) shifts.
        let offset = (index << self.host_bits()) as u32;
        Cidr {
            network: Ipv4Addr::from(u32::from(self.cluster.network) + offset),
            prefix: self.node_mask,
        }
    }

    /// The number of a subnet, if it is exactly one of this set's.
    pub fn index_of(&self, c: &Cidr) -> Option<u64> {
        if c.prefix != self.node_mask || !self.cluster.contains(c.network) {
            return None;
        }
        let offset = u32::from(c.network) - u32::from(self.cluster.network);
        Some(u64::from(offset) >> self.host_bits())
    }

    /// Mark a subnet used; `false` if it is not one of this set's.
    pub fn occupy(&mut self, c: &Cidr) -> bool {
        match self.index_of(c) {
            Some(i) => {
                self.used.insert(i);
                true
            }
            None => false,
        }
    }

    /// Whether a subnet of this set is in use.
    pub fn is_used(&self, c: &Cidr) -> bool {
        self.index_of(c).is_some_and(|i| self.used.contains(&i))
    }

    /// Take the lowest free subnet; `None` when all are used.
    pub fn allocate(&mut self) -> Option<Cidr> {
        // The first gap in the sorted used numbers.
        let mut candidate = 0u64;
        for &i in &self.used {
            if i != candidate {
                break;
            }
            candidate += 1;
        }
        if candidate >= self.capacity() {
            return None;
        }
        self.used.insert(candidate);
        Some(self.subnet(candidate))
    }

    /// Free a subnet.
    pub fn release(&mut self, c: &Cidr) {
        if let Some(i) = self.index_of(c) {
            self.used.remove(&i);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // fixtures are literals built by the tests
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_clear_host_bits_and_print_back() {
        assert_eq!(cidr("10.244.0.0/16").to_string(), "10.244.0.0/16");
        assert_eq!(cidr("10.244.7.9/24").to_string(), "10.244.7.0/24");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        for bad in [
            "10.244.0.0",
            "10.244.0.0/33",
            "10.244.0.0/",
            "10.244.0.0/+8",
            "fd00::/64",
            "x/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        let c = cidr("10.244.0.0/16");
        assert!(c.contains("10.244.255.1".parse().unwrap()));
        assert!(!c.contains("10.245.0.1".parse().unwrap()));
    }

    #[test]
    fn a_slash_16_holds_256_node_slash_24s_numbered_from_the_bottom() {
        let mut set = CidrSet::new(cidr("10.244.0.0/16"), 24).unwrap();
        assert_eq!(set.capacity(), 256);
        assert_eq!(set.allocate(), Some(cidr("10.244.0.0/24")));
        assert_eq!(set.allocate(), Some(cidr("10.244.1.0/24")));
        assert_eq!(set.index_of(&cidr("10.244.255.0/24")), Some(255));
        assert_eq!(set.index_of(&cidr("10.244.3.0/25")), None, "wrong size");
        assert_eq!(set.index_of(&cidr("10.245.0.0/24")), None, "outside");
        assert_eq!(set.free(), 254);
    }

    #[test]
    fn allocation_skips_used_subnets_and_reuses_released_ones() {
        let mut set = CidrSet::new(cidr("10.244.0.0/16"), 24).unwrap();
        assert!(set.occupy(&cidr("10.244.0.0/24")));
        assert!(set.occupy(&cidr("10.244.2.0/24")));
        assert!(!set.occupy(&cidr("192.168.0.0/24")));
        assert_eq!(set.allocate(), Some(cidr("10.244.1.0/24")));
        assert_eq!(set.allocate(), Some(cidr("10.244.3.0/24")));
        set.release(&cidr("10.244.0.0/24"));
        assert!(!set.is_used(&cidr("10.244.0.0/24")));
        assert_eq!(
            set.allocate(),
            Some(cidr("10.244.0.0/24")),
            "lowest free first"
        );
    }

    #[test]
    fn an_exhausted_set_allocates_nothing_until_one_is_released() {
        let mut set = CidrSet::new(cidr("10.244.0.0/23"), 24).unwrap();
        assert!(set.allocate().is_some() && set.allocate().is_some());
        assert_eq!(set.allocate(), None);
        assert_eq!(set.free(), 0);
        set.release(&cidr("10.244.1.0/24"));
        assert_eq!(set.allocate(), Some(cidr("10.244.1.0/24")));
    }

    #[test]
    fn node_masks_must_fit_the_cluster_cidr() {
        assert!(CidrSet::new(cidr("10.244.0.0/16"), 15).is_err());
        assert!(CidrSet::new(cidr("10.244.0.0/16"), 33).is_err());
        let mut whole = CidrSet::new(cidr("10.244.0.0/24"), 24).unwrap();
        assert_eq!(whole.allocate(), Some(cidr("10.244.0.0/24")));
        assert_eq!(whole.allocate(), None);
        let mut single = CidrSet::new(cidr("10.0.0.0/30"), 32).unwrap();
        assert_eq!(single.capacity(), 4);
        single.allocate();
        assert_eq!(single.allocate(), Some(cidr("10.0.0.1/32")));
        assert_eq!(single.index_of(&cidr("10.0.0.3/32")), Some(3));
    }
}
