//! A port of Go 1.19's `sort.Sort` (pattern-defeating quicksort, `src/sort/zsortinterface.go`).
//!
//! etcd sorts range results with `sort.Sort` (and `sort.Sort(sort.Reverse(..))` for DESCEND),
//! which is not stable: the order in which elements that compare equal come out depends on the
//! exact sequence of `Less`/`Swap` calls. This module reproduces that sequence step by step so
//! that ties come out in the same order as etcd's. `sort.Reverse` only swaps the arguments of
//! `Less`, so a descending sort is `go_sort(v, |a, b| key(b) < key(a))`.

/// Sorts `v` exactly like Go 1.19's `sort.Sort` would, given `less` as the `Less` method.
pub fn go_sort<T>(v: &mut [T], less: impl FnMut(&T, &T) -> bool) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let limit = bits_len(n as u64);
    let mut data = Data { v, less };
    data.pdqsort(0, n, limit);
}

/// Go's `bits.Len`: the number of bits needed to represent `x` (0 for 0).
fn bits_len(x: u64) -> u32 {
    u64::BITS - x.leading_zeros()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Hint {
    Unknown,
    Increasing,
    Decreasing,
}

/// Go's `xorshift` (with the go1.19 shift constants), seeded with the slice length.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }
}

/// The `sort.Interface` view of a slice: `Less(i, j)` and `Swap(i, j)` by index.
struct Data<'a, T, F> {
    v: &'a mut [T],
    less: F,
}

impl<T, F: FnMut(&T, &T) -> bool> Data<'_, T, F> {
    fn less(&mut self, i: usize, j: usize) -> bool {
        (self.less)(&self.v[i], &self.v[j])
    }

    fn swap(&mut self, i: usize, j: usize) {
        self.v.swap(i, j);
    }

    /// Sorts `[a, b)` by insertion sort.
    fn insertion_sort(&mut self, a: usize, b: usize) {
        for i in a + 1..b {
            let mut j = i;
            while j > a && self.less(j, j - 1) {
                self.swap(j, j - 1);
                j -= 1;
            }
        }
    }

    /// Restores the heap property of the heap rooted at `first` on `[lo, hi)`.
    fn sift_down(&mut self, lo: usize, hi: usize, first: usize) {
        let mut root = lo;
        loop {
            let mut child = 2 * root + 1;
            if child >= hi {
                return;
            }
            if child + 1 < hi && self.less(first + child, first + child + 1) {
                child += 1;
            }
            if !self.less(first + root, first + child) {
                return;
            }
            self.swap(first + root, first + child);
            root = child;
        }
    }

    fn heap_sort(&mut self, a: usize, b: usize) {
        let first = a;
        let hi = b - a;
        // build a heap with the greatest element at the top
        for i in (0..=(hi - 1) / 2).rev() {
            self.sift_down(i, hi, first);
        }
        // pop elements, largest first, into the end
        for i in (0..hi).rev() {
            self.swap(first, first + i);
            self.sift_down(0, i, first);
        }
    }

    /// Sorts `[a, b)`; `limit` is the number of allowed bad pivots before falling back to
    /// heapsort.
    fn pdqsort(&mut self, mut a: usize, mut b: usize, mut limit: u32) {
        const MAX_INSERTION: usize = 12;
        let mut was_balanced = true;
        let mut was_partitioned = true;
        loop {
            let length = b - a;
            if length <= MAX_INSERTION {
                self.insertion_sort(a, b);
                return;
            }
            if limit == 0 {
                self.heap_sort(a, b);
                return;
            }
            if !was_balanced {
                self.break_patterns(a, b);
                limit -= 1;
            }

            let (mut pivot, mut hint) = self.choose_pivot(a, b);
            if hint == Hint::Decreasing {
                self.reverse_range(a, b);
                pivot = (b - 1) - (pivot - a);
                hint = Hint::Increasing;
            }

            // the slice is likely already sorted
            if was_balanced
                && was_partitioned
                && hint == Hint::Increasing
                && self.partial_insertion_sort(a, b)
            {
                return;
            }

            // probably many duplicates: put the elements equal to the pivot first
            if a > 0 && !self.less(a - 1, pivot) {
                a = self.partition_equal(a, b, pivot);
                continue;
            }

            let (mid, already_partitioned) = self.partition(a, b, pivot);
            was_partitioned = already_partitioned;

            let (left_len, right_len) = (mid - a, b - mid);
            let balance_threshold = length / 8;
            if left_len < right_len {
                was_balanced = left_len >= balance_threshold;
                self.pdqsort(a, mid, limit);
                a = mid + 1;
            } else {
                was_balanced = right_len >= balance_threshold;
                self.pdqsort(mid + 1, b, limit);
                b = mid;
            }
        }
    }

    /// One quicksort partition of `[a, b)` around `v[pivot]`; returns the pivot's new index
    /// and whether the range was already partitioned.
    fn partition(&mut self, a: usize, b: usize, pivot: usize) -> (usize, bool) {
        self.swap(a, pivot);
        // i and j are inclusive bounds of what remains to be partitioned
        let (mut i, mut j) = (a + 1, b - 1);
        while i <= j && self.less(i, a) {
            i += 1;
        }
        while i <= j && !self.less(j, a) {
            j -= 1;
        }
        if i > j {
            self.swap(j, a);
            return (j, true);
        }
        self.swap(i, j);
        i += 1;
        j -= 1;
        loop {
            while i <= j && self.less(i, a) {
                i += 1;
            }
            while i <= j && !self.less(j, a) {
                j -= 1;
            }
            if i > j {
                break;
            }
            self.swap(i, j);
            i += 1;
            j -= 1;
        }
        self.swap(j, a);
        (j, false)
    }

    /// Partitions `[a, b)` (which holds nothing smaller than `v[pivot]`) into the elements
    /// equal to the pivot followed by the greater ones; returns the start of the latter.
    fn partition_equal(&mut self, a: usize, b: usize, pivot: usize) -> usize {
        self.swap(a, pivot);
        let (mut i, mut j) = (a + 1, b - 1);
        loop {
            while i <= j && !self.less(a, i) {
                i += 1;
            }
            while i <= j && self.less(a, j) {
                j -= 1;
            }
            if i > j {
                break;
            }
            self.swap(i, j);
            i += 1;
            j -= 1;
        }
        i
    }

    /// Partially sorts `[a, b)`; returns whether it is sorted at the end.
    fn partial_insertion_sort(&mut self, a: usize, b: usize) -> bool {
        const MAX_STEPS: usize = 5;
        const SHORTEST_SHIFTING: usize = 50;
        let mut i = a + 1;
        for _ in 0..MAX_STEPS {
            while i < b && !self.less(i, i - 1) {
                i += 1;
            }
            if i == b {
                return true;
            }
            if b - a < SHORTEST_SHIFTING {
                return false;
            }
            self.swap(i, i - 1);
            // shift the smaller one to the left (Go bounds this by 1, not by a + 1)
            if i - a >= 2 {
                let mut j = i - 1;
                while j >= 1 {
                    if !self.less(j, j - 1) {
                        break;
                    }
                    self.swap(j, j - 1);
                    j -= 1;
                }
            }
            // shift the greater one to the right
            if b - i >= 2 {
                for j in i + 1..b {
                    if !self.less(j, j - 1) {
                        break;
                    }
                    self.swap(j, j - 1);
                }
            }
        }
        false
    }

    /// Scatters three elements around the middle to break patterns that cause imbalanced
    /// partitions.
    fn break_patterns(&mut self, a: usize, b: usize) {
        let length = b - a;
        if length >= 8 {
            let mut random = XorShift(length as u64);
            let modulus = 1u64 << bits_len(length as u64);
            let mid = a + (length / 4) * 2;
            for idx in mid - 1..=mid + 1 {
                let mut other = (random.next() & (modulus - 1)) as usize;
                if other >= length {
                    other -= length;
                }
                self.swap(idx, a + other);
            }
        }
    }

    /// Chooses a pivot in `[a, b)`: a static one below 8 elements, the median of three below
    /// 50, Tukey's ninther above.
    fn choose_pivot(&mut self, a: usize, b: usize) -> (usize, Hint) {
        const SHORTEST_NINTHER: usize = 50;
        const MAX_SWAPS: u32 = 4 * 3;
        let l = b - a;
        let mut swaps = 0;
        let mut i = a + l / 4;
        let mut j = a + l / 4 * 2;
        let mut k = a + l / 4 * 3;
        if l >= 8 {
            if l >= SHORTEST_NINTHER {
                i = self.median(i - 1, i, i + 1, &mut swaps);
                j = self.median(j - 1, j, j + 1, &mut swaps);
                k = self.median(k - 1, k, k + 1, &mut swaps);
            }
            j = self.median(i, j, k, &mut swaps);
        }
        match swaps {
            0 => (j, Hint::Increasing),
            MAX_SWAPS => (j, Hint::Decreasing),
            _ => (j, Hint::Unknown),
        }
    }

    /// Returns `(a, b)` ordered so that `v[first] <= v[second]`, counting a swap.
    fn order2(&mut self, a: usize, b: usize, swaps: &mut u32) -> (usize, usize) {
        if self.less(b, a) {
            *swaps += 1;
            (b, a)
        } else {
            (a, b)
        }
    }

    /// The index of the median of `v[a]`, `v[b]`, `v[c]`.
    fn median(&mut self, a: usize, b: usize, c: usize, swaps: &mut u32) -> usize {
        let (a, b) = self.order2(a, b, swaps);
        let (b, _) = self.order2(b, c, swaps);
        let (_, b) = self.order2(a, b, swaps);
        b
    }

    fn reverse_range(&mut self, a: usize, b: usize) {
        let (mut i, mut j) = (a, b - 1);
        while i < j {
            self.swap(i, j);
            i += 1;
            j -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator for test inputs.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            // splitmix64
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }

    #[test]
    fn sorts_like_reference() {
        let mut rng = Rng(1);
        for n in (0..300).chain([500, 1000, 4096]) {
            for &range in &[2u64, 3, 10, 1000, u64::MAX] {
                let mut v: Vec<(u64, usize)> = (0..n).map(|i| (rng.next() % range, i)).collect();
                let mut want: Vec<u64> = v.iter().map(|x| x.0).collect();
                want.sort_unstable();
                go_sort(&mut v, |a, b| a.0 < b.0);
                let got: Vec<u64> = v.iter().map(|x| x.0).collect();
                assert_eq!(got, want, "n={n} range={range}");
                // still a permutation of the input
                let mut idx: Vec<usize> = v.iter().map(|x| x.1).collect();
                idx.sort_unstable();
                assert!(idx.iter().copied().eq(0..n));
            }
        }
    }

    #[test]
    fn sorts_patterns() {
        for n in [13usize, 49, 50, 51, 100, 1000, 5000] {
            let inputs: Vec<Vec<u64>> = vec![
                (0..n as u64).collect(),
                (0..n as u64).rev().collect(),
                vec![7; n],
                (0..n as u64).map(|i| i % 2).collect(),
                // organ pipe
                (0..n as u64).map(|i| i.min(n as u64 - i)).collect(),
                // sawtooth
                (0..n as u64).map(|i| i % 17).collect(),
                // sorted with a few swaps
                (0..n as u64).map(|i| if i % 97 == 3 { 0 } else { i }).collect(),
            ];
            for mut v in inputs {
                let mut want = v.clone();
                want.sort_unstable();
                go_sort(&mut v, |a, b| a < b);
                assert_eq!(v, want, "n={n}");
                let mut rev = want.clone();
                rev.reverse();
                go_sort(&mut v, |a, b| b < a);
                assert_eq!(v, rev, "n={n} descending");
            }
        }
    }

    #[test]
    fn heap_sort_fallback_sorts() {
        let mut rng = Rng(7);
        let mut v: Vec<u64> = (0..200).map(|_| rng.next() % 50).collect();
        let mut want = v.clone();
        want.sort_unstable();
        let n = v.len();
        let mut data = Data {
            v: &mut v,
            less: |a: &u64, b: &u64| a < b,
        };
        data.pdqsort(0, n, 0);
        assert_eq!(v, want);
    }

    #[test]
    fn small_inputs_are_stable() {
        // up to 12 elements Go uses insertion sort, which keeps ties in input order
        let mut v: Vec<(u8, usize)> = (0..12).map(|i| ((i % 3) as u8, i)).collect();
        go_sort(&mut v, |a, b| a.0 < b.0);
        let idx: Vec<usize> = v.iter().map(|x| x.1).collect();
        assert_eq!(idx, [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11]);
    }

    /// Sorts `vals` both ways and returns the original indices in output order.
    fn orders(vals: &[u64]) -> (Vec<usize>, Vec<usize>) {
        let mut asc: Vec<(u64, usize)> = vals.iter().copied().zip(0..).collect();
        go_sort(&mut asc, |a, b| a.0 < b.0);
        let mut desc: Vec<(u64, usize)> = vals.iter().copied().zip(0..).collect();
        go_sort(&mut desc, |a, b| b.0 < a.0);
        (
            asc.iter().map(|x| x.1).collect(),
            desc.iter().map(|x| x.1).collect(),
        )
    }

    // The expected orders below are what etcd 3.4.23 (go1.19.8) returns for these values
    // stored under keys in index order and fetched with --sort-by=VALUE (ASCEND / DESCEND).

    #[test]
    fn ties_like_go_small() {
        // 13 elements: the smallest input that goes through pdqsort's partitioning
        let vals: Vec<u64> = (0..13).map(|i| (i * 5) % 3).collect();
        let (asc, desc) = orders(&vals);
        assert_eq!(asc, [6, 3, 0, 9, 12, 2, 5, 8, 11, 1, 4, 7, 10]);
        assert_eq!(desc, [1, 4, 10, 7, 8, 2, 11, 5, 6, 9, 0, 3, 12]);
    }

    #[test]
    fn ties_like_go_forty() {
        let vals: Vec<u64> = (0..40).map(|i| i % 3).collect();
        let (asc, desc) = orders(&vals);
        assert_eq!(
            asc,
            [
                15, 39, 36, 3, 33, 30, 6, 27, 24, 9, 0, 21, 12, 18, 10, 4, 16, 1, 13, 19, 37, 34, 22, 31, 28,
                25, 7, 14, 8, 29, 5, 23, 32, 26, 11, 35, 2, 20, 38, 17
            ]
        );
        assert_eq!(
            desc,
            [
                14, 38, 2, 35, 32, 5, 29, 26, 8, 23, 20, 11, 17, 10, 4, 1, 16, 37, 34, 19, 13, 31, 22, 28, 7,
                25, 0, 24, 9, 6, 30, 21, 27, 33, 36, 3, 18, 12, 15, 39
            ]
        );
    }

    #[test]
    fn ties_like_go_decreasing_hint() {
        // mostly decreasing: choosePivot reports a decreasing hint and the range is reversed
        let mut rng = Rng(70);
        let vals: Vec<u64> = (0..74)
            .map(|i| {
                if rng.next().is_multiple_of(4) {
                    rng.next() % 8
                } else {
                    (74 - i) / 3
                }
            })
            .collect();
        let (asc, desc) = orders(&vals);
        assert_eq!(
            asc,
            [
                72, 55, 73, 15, 48, 49, 71, 70, 69, 41, 19, 62, 68, 66, 52, 23, 64, 1, 63, 67, 65, 61, 60,
                54, 58, 50, 25, 37, 59, 46, 24, 56, 53, 51, 57, 45, 47, 42, 43, 44, 40, 39, 36, 38, 33, 35,
                34, 30, 31, 32, 27, 28, 29, 26, 22, 21, 20, 18, 16, 17, 13, 12, 14, 11, 10, 9, 8, 6, 7, 5, 4,
                3, 2, 0
            ]
        );
        assert_eq!(
            desc,
            [
                0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 18, 20, 21, 22, 26, 27, 28, 29, 32,
                30, 31, 35, 34, 33, 38, 36, 39, 40, 42, 44, 43, 47, 45, 51, 57, 53, 56, 46, 24, 37, 59, 58,
                50, 25, 60, 61, 54, 64, 63, 67, 65, 1, 68, 66, 23, 52, 62, 41, 19, 49, 69, 70, 71, 15, 48,
                55, 72, 73
            ]
        );
    }

    #[test]
    fn ties_like_go_heap_sort_fallback() {
        // geometric distribution: many bad pivots, breakPatterns and the heapsort fallback
        let mut rng = Rng(261);
        let vals: Vec<u64> = (0..121)
            .map(|_| u64::from((rng.next() | 1).leading_zeros()))
            .collect();
        let (asc, desc) = orders(&vals);
        assert_eq!(
            asc,
            [
                60, 92, 2, 119, 118, 117, 116, 115, 114, 111, 109, 62, 108, 106, 105, 15, 16, 17, 18, 19, 20,
                21, 104, 23, 24, 25, 26, 27, 28, 29, 103, 31, 101, 33, 34, 35, 100, 99, 38, 96, 1, 91, 89,
                85, 44, 80, 78, 47, 48, 75, 61, 73, 70, 69, 68, 67, 66, 64, 11, 59, 50, 55, 22, 7, 8, 40, 56,
                90, 9, 53, 10, 71, 12, 51, 74, 49, 13, 77, 14, 79, 30, 36, 82, 83, 37, 43, 98, 97, 88, 32,
                65, 120, 113, 3, 63, 95, 57, 54, 86, 110, 52, 107, 102, 93, 41, 72, 4, 6, 0, 84, 5, 45, 81,
                87, 94, 112, 58, 42, 76, 39, 46
            ]
        );
        assert_eq!(
            desc,
            [
                46, 39, 42, 58, 112, 76, 4, 45, 6, 5, 0, 72, 81, 84, 87, 94, 107, 113, 63, 120, 95, 110, 57,
                93, 54, 52, 102, 86, 3, 41, 74, 32, 7, 12, 79, 77, 36, 37, 10, 9, 40, 83, 8, 43, 98, 82, 13,
                14, 71, 49, 65, 51, 88, 53, 90, 55, 56, 22, 97, 30, 60, 91, 62, 59, 64, 50, 66, 67, 68, 69,
                70, 48, 47, 73, 44, 75, 38, 35, 78, 34, 80, 33, 31, 29, 28, 85, 27, 26, 25, 89, 24, 61, 92,
                23, 21, 20, 96, 19, 18, 99, 100, 101, 17, 103, 104, 105, 106, 16, 108, 109, 15, 111, 11, 2,
                114, 115, 116, 117, 118, 119, 1
            ]
        );
    }
}
