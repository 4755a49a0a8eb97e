package sync

import (
	"encoding/json"
	"fmt"
	"testing"
)

// A large inventory is held compressed, small enough for etcd, and reads
// back whole; a small one stays a readable list.
func TestInventoryEncoding(t *testing.T) {
	for _, n := range []int{0, 3, CompressAbove, CompressAbove + 1, 30000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var inv Inventory
			for i := range n {
				inv = append(inv, Ref{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: fmt.Sprintf("team-%d", i%20), Name: fmt.Sprintf("app-%05d", i)})
			}
			list, compressed := EncodeInventory(inv)
			if (compressed != nil) != (n > CompressAbove) {
				t.Fatalf("%d entries: compressed %v", n, compressed != nil)
			}
			body, _ := json.Marshal(map[string]any{"inventory": list, "inventoryCompressed": compressed})
			if len(body) > 512<<10 {
				t.Fatalf("%d entries take %d bytes in the status", n, len(body))
			}
			back, err := DecodeInventory(list, compressed)
			if err != nil {
				t.Fatal(err)
			}
			if len(back) != n || len(inv.Minus(back)) != 0 {
				t.Fatalf("round trip lost entries: %d -> %d", n, len(back))
			}
		})
	}
	if _, err := DecodeInventory(nil, []byte("not gzip")); err == nil {
		t.Fatal("a corrupt compressed inventory must fail, not read as empty")
	}
}
