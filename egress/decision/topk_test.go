package decision

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestSpaceSavingExactUnderCapacity(t *testing.T) {
	s := newSpaceSaving(10)
	for i := range 5 {
		for range i + 1 {
			s.add([]byte(fmt.Sprint("k", i)))
		}
	}
	got := s.top(3)
	want := []ssEntry{{key: "k4", count: 5}, {key: "k3", count: 4}, {key: "k2", count: 3}}
	if len(got) != len(want) {
		t.Fatalf("top(3) has %d entries, want 3", len(got))
	}
	for i := range want {
		if got[i].key != want[i].key || got[i].count != want[i].count || got[i].errBound != 0 {
			t.Errorf("top[%d] = %+v, want %s=%d exact", i, got[i], want[i].key, want[i].count)
		}
	}
}

func TestSpaceSavingGuarantees(t *testing.T) {
	for _, capacity := range []int{1, 7, 50} {
		t.Run(fmt.Sprint("capacity ", capacity), func(t *testing.T) {
			s := newSpaceSaving(capacity)
			rng := rand.New(rand.NewPCG(uint64(capacity), 3))
			truth := map[string]uint64{}
			const n = 20000
			zipf := rand.NewZipf(rand.New(rand.NewPCG(9, uint64(capacity))), 1.2, 1, 2000)
			for i := range n {
				var k string
				if i%3 == 0 {
					k = fmt.Sprint("u", rng.IntN(5000))
				} else {
					k = fmt.Sprint("z", zipf.Uint64())
				}
				truth[k]++
				s.add([]byte(k))
			}
			if len(s.heap) != min(capacity, len(truth)) || len(s.index) != len(s.heap) {
				t.Fatalf("tracks %d keys (index %d), want %d", len(s.heap), len(s.index), capacity)
			}
			var total uint64
			for i, e := range s.heap {
				total += e.count
				if e.pos != i || s.index[e.key] != e {
					t.Fatalf("entry %q: pos %d at %d, or index out of step", e.key, e.pos, i)
				}
				if i > 0 && s.heap[(i-1)/2].count > e.count {
					t.Fatalf("heap order broken at %d", i)
				}
				if tc := truth[e.key]; e.count < tc || e.count-e.errBound > tc {
					t.Errorf("%q: count %d (err %d), true %d: want count-err <= true <= count", e.key, e.count, e.errBound, tc)
				}
			}
			if total != n {
				t.Errorf("counts sum to %d, want %d (Space-Saving keeps the total)", total, n)
			}
			for k, tc := range truth {
				if tc > n/uint64(capacity) && s.index[k] == nil {
					t.Errorf("%q occurs %d > n/capacity times but is not tracked", k, tc)
				}
			}
		})
	}
}
