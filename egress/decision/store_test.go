package decision

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/egressd/egressd/serviceentry/vocab"
)

func TestStoreRings(t *testing.T) {
	tests := map[string]struct {
		in      []vocab.Verdict // verdicts, consumed in order, IDs from 1
		wantIDs []uint64        // Query with a large limit: newest first
	}{
		"both rings, merged newest first": {
			in:      []vocab.Verdict{"deny", "allow", "audit-deny", "allow"},
			wantIDs: []uint64{4, 3, 2, 1},
		},
		"allowed flood does not evict denials": {
			in:      append([]vocab.Verdict{"deny", "audit-deny"}, repeat("allow", 100)...),
			wantIDs: []uint64{102, 101, 100, 2, 1},
		},
		"denied ring evicts its oldest": {
			in:      append([]vocab.Verdict{"allow"}, repeat("deny", 7)...),
			wantIDs: []uint64{8, 7, 6, 5, 4, 1},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := NewStore(StoreConfig{Capacity: 5, AllowedCapacity: 3})
			for i, v := range tc.in {
				s.Consume(dec(uint64(i+1), v, "a.test"))
			}
			got := ids(s.Query(Query{Limit: 1000}))
			if diff := cmp.Diff(tc.wantIDs, got); diff != "" {
				t.Errorf("stored IDs (-want +got):\n%s", diff)
			}
			if s.Len() != len(tc.wantIDs) {
				t.Errorf("Len() = %d, want %d", s.Len(), len(tc.wantIDs))
			}
		})
	}
}

func repeat(v vocab.Verdict, n int) []vocab.Verdict {
	return slices.Repeat([]vocab.Verdict{v}, n)
}

func TestStoreLimit(t *testing.T) {
	s := NewStore(StoreConfig{Capacity: 150, AllowedCapacity: 150})
	for i := range 300 {
		v := vocab.VerdictAllow
		if i%2 == 0 {
			v = vocab.VerdictDeny
		}
		s.Consume(dec(uint64(i+1), v, "a.test"))
	}
	for _, tc := range []struct{ limit, want int }{
		{0, DefaultQueryLimit},
		{5, 5},
		{1 << 20, 300}, // capped at the capacity
	} {
		got := s.Query(Query{Limit: tc.limit})
		if len(got) != tc.want {
			t.Errorf("Limit %d: got %d decisions, want %d", tc.limit, len(got), tc.want)
		}
		if len(got) > 0 && got[0].ID != 300 {
			t.Errorf("Limit %d: first is %d, want the newest (300)", tc.limit, got[0].ID)
		}
	}
}

func TestStoreDefaults(t *testing.T) {
	s := NewStore(StoreConfig{})
	if got, want := s.capacity(), DefaultStoreCapacity+DefaultAllowedCapacity; got != want {
		t.Errorf("capacity %d, want %d", got, want)
	}
}

func TestStoreConcurrentReads(t *testing.T) {
	s := NewStore(StoreConfig{Capacity: 100, AllowedCapacity: 100})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 5000 {
			v := vocab.VerdictAllow
			if i%3 == 0 {
				v = vocab.VerdictDeny
			}
			d := dec(uint64(i+1), v, fmt.Sprintf("h%d.test", i%7))
			d.Chain = &Chain{ID: fmt.Sprint("c", i%10), Hop: i % 3}
			s.Consume(d)
		}
	})
	for range 100 {
		s.Query(Query{Host: "*.test"})
		s.Aggregate(Query{}, 5)
		s.Chains(Query{})
		s.Len()
	}
	wg.Wait()
}

func TestStoreAfterID(t *testing.T) {
	tests := map[string]struct {
		in   []uint64 // IDs in consume order
		want []uint64
	}{
		"stream order: the scan stops early": {[]uint64{1, 2, 3, 4, 5, 6}, []uint64{6, 5}},
		"unordered IDs: full scan":           {[]uint64{5, 3, 9, 1, 7, 2}, []uint64{7, 9, 5}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := NewStore(StoreConfig{Capacity: 10, AllowedCapacity: 10})
			for i, id := range tc.in {
				v := vocab.VerdictAllow
				if i%2 == 0 {
					v = vocab.VerdictDeny
				}
				s.Consume(dec(id, v, "a.test"))
			}
			if diff := cmp.Diff(tc.want, ids(s.Query(Query{AfterID: 4}))); diff != "" {
				t.Errorf("IDs (-want +got):\n%s", diff)
			}
		})
	}
}
