//! The index structures the compiled matcher is built from: an interval stabbing index (which intervals
//! contain a point) and hash maps of small integer keys (with the policy-keyed hasher of
//! [`crrules_rules::hash`]).

pub use crrules_rules::hash::QuickHasher as IntHasher;
use crrules_rules::hash::QuickMap;
use std::collections::HashMap;

/// A map keyed by packed integers.
pub type IntMap<V> = QuickMap<u64, V>;

/// Which of a set of inclusive `u64` intervals contain a point. The intervals are sorted by their start
/// and laid out as an implicit balanced tree (the node for `[l, r)` is its middle element) in which every
/// node knows the largest end in its subtree, so a query visits `O(log n + hits)` nodes.
#[derive(Clone, Debug, Default)]
pub struct Stab {
    lo: Vec<u64>,
    hi: Vec<u64>,
    /// The value carried by each interval (a rule index).
    value: Vec<u32>,
    /// The largest `hi` of the subtree whose root is this element.
    max_hi: Vec<u64>,
}

impl Stab {
    /// An index of `(lo, hi, value)` intervals; intervals with `lo > hi` are dropped.
    pub fn new(mut intervals: Vec<(u64, u64, u32)>) -> Stab {
        intervals.retain(|&(lo, hi, _)| lo <= hi);
        intervals.sort_unstable();
        let mut stab = Stab {
            lo: intervals.iter().map(|i| i.0).collect(),
            hi: intervals.iter().map(|i| i.1).collect(),
            value: intervals.iter().map(|i| i.2).collect(),
            max_hi: vec![0; intervals.len()],
        };
        stab.fill_max(0, intervals.len());
        stab
    }

    /// Fills `max_hi` for the subtree over `[l, r)` and returns its largest end.
    fn fill_max(&mut self, l: usize, r: usize) -> u64 {
        if l >= r {
            return 0;
        }
        let mid = l + (r - l) / 2;
        let left = self.fill_max(l, mid);
        let right = self.fill_max(mid + 1, r);
        let max = self.hi[mid].max(left).max(right);
        self.max_hi[mid] = max;
        max
    }

    /// True when the index holds no interval.
    pub fn is_empty(&self) -> bool {
        self.lo.is_empty()
    }

    /// Appends the value of every interval containing `x` to `out` (in no particular order).
    pub fn stab(&self, x: u64, out: &mut Vec<u32>) {
        self.stab_in(0, self.lo.len(), x, out);
    }

    fn stab_in(&self, mut l: usize, r: usize, x: u64, out: &mut Vec<u32>) {
        // Recurse on the left half, loop on the right half: depth stays logarithmic.
        while l < r {
            let mid = l + (r - l) / 2;
            if self.max_hi[mid] < x {
                return;
            }
            self.stab_in(l, mid, x, out);
            if self.lo[mid] > x {
                return;
            }
            if self.hi[mid] >= x {
                out.push(self.value[mid]);
            }
            l = mid + 1;
        }
    }
}

/// Many short lists of rule numbers in one allocation, each found by its number (what a
/// `Vec<Vec<u32>>` holds, without a pointer to chase per list).
#[derive(Clone, Debug, Default)]
pub struct Lists {
    spans: Vec<(u32, u32)>,
    items: Vec<u32>,
}

impl Lists {
    /// Packs `lists`; list `i` of the result is `lists[i]`.
    pub fn new(lists: Vec<Vec<u32>>) -> Lists {
        let mut packed = Lists { spans: Vec::with_capacity(lists.len()), items: Vec::new() };
        for list in lists {
            packed.spans.push((packed.items.len() as u32, list.len() as u32));
            packed.items.extend(list);
        }
        packed
    }

    /// List `i` (empty when there is none).
    pub fn get(&self, i: usize) -> &[u32] {
        match self.spans.get(i) {
            Some(&(start, len)) => self.items.get(start as usize..(start + len) as usize).unwrap_or(&[]),
            None => &[],
        }
    }
}

/// Integer keys -> lists of rule numbers, ascending as pushed.
#[derive(Clone, Debug, Default)]
pub struct KeyedLists {
    keys: IntMap<u32>,
    lists: Lists,
}

impl KeyedLists {
    /// Packs key -> list pairs.
    pub fn new(map: HashMap<u64, Vec<u32>>) -> KeyedLists {
        let mut keys = IntMap::default();
        let mut lists = Vec::with_capacity(map.len());
        for (key, list) in map {
            keys.insert(key, lists.len() as u32);
            lists.push(list);
        }
        KeyedLists { keys, lists: Lists::new(lists) }
    }

    /// The list of `key` (empty when there is none).
    pub fn get(&self, key: u64) -> &[u32] {
        match self.keys.get(&key) {
            Some(&i) => self.lists.get(i as usize),
            None => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stab_finds_exactly_the_intervals_containing_a_point() {
        let intervals: Vec<(u64, u64, u32)> = (0..200u32)
            .map(|i| {
                let lo = u64::from(i.wrapping_mul(2_654_435_761) % 1000);
                let len = u64::from(i.wrapping_mul(40_503) % 97);
                (lo, lo + len, i)
            })
            .chain([(5, 3, 999), (0, u64::MAX, 1000)])
            .collect();
        let stab = Stab::new(intervals.clone());
        for x in (0..1200).chain([u64::MAX]) {
            let mut got = Vec::new();
            stab.stab(x, &mut got);
            got.sort_unstable();
            let mut want: Vec<u32> =
                intervals.iter().filter(|&&(lo, hi, _)| lo <= x && x <= hi).map(|&(_, _, v)| v).collect();
            want.sort_unstable();
            assert_eq!(got, want, "point {x}");
        }
        assert!(Stab::new(vec![(2, 1, 0)]).is_empty());
    }

    #[test]
    fn int_map_hashes_distinct_keys_apart() {
        let mut m: IntMap<u32> = IntMap::default();
        for k in 0..1000u64 {
            m.insert(k << 32 | k, k as u32);
        }
        assert_eq!(m.get(&(7 << 32 | 7)), Some(&7));
        assert_eq!(m.get(&7), None);
    }

    #[test]
    fn packed_lists_give_back_what_went_in() {
        let lists = Lists::new(vec![vec![1, 2], vec![], vec![7]]);
        assert_eq!((lists.get(0), lists.get(1), lists.get(2), lists.get(3)), (&[1, 2][..], &[][..], &[7][..], &[][..]));
        let keyed = KeyedLists::new(HashMap::from([(5, vec![3, 4]), (1 << 40, vec![9])]));
        assert_eq!((keyed.get(5), keyed.get(1 << 40), keyed.get(6)), (&[3, 4][..], &[9][..], &[][..]));
        assert!(KeyedLists::default().get(0).is_empty());
    }
}
