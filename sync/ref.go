package sync

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// Ref identifies one object. Two Refs name the same object when their ID is
// equal: the version is kept only to reach the object, not to tell objects apart.
type Ref struct {
	Group, Version, Kind, Namespace, Name string
}

// RefOf reads the Ref of an object.
func RefOf(u *unstructured.Unstructured) Ref {
	gvk := u.GroupVersionKind()
	return Ref{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: u.GetNamespace(), Name: u.GetName()}
}

// String is "Kind/namespace/name", or "Kind/name" for cluster-scoped objects.
func (r Ref) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// ID is the version-independent identity "group/Kind/namespace/name".
func (r Ref) ID() string { return r.Group + "/" + r.Kind + "/" + r.Namespace + "/" + r.Name }

// GVK is the object's group, version and kind.
func (r Ref) GVK() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
}

// API converts the Ref to the inventory entry of the Sync's status.
func (r Ref) API() v1alpha1.ResourceRef {
	return v1alpha1.ResourceRef{Group: r.Group, Version: r.Version, Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
}

// RefFromAPI converts an inventory entry back.
func RefFromAPI(r v1alpha1.ResourceRef) Ref {
	return Ref{Group: r.Group, Version: r.Version, Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
}

// Inventory is the set of objects a Sync applied and owns.
type Inventory []Ref

// InventoryFromAPI reads a Sync's status.inventory.
func InventoryFromAPI(in []v1alpha1.ResourceRef) Inventory {
	out := make(Inventory, 0, len(in))
	for _, r := range in {
		out = append(out, RefFromAPI(r))
	}
	return out
}

// API converts the inventory to the Sync's status form, sorted for stable diffs.
func (inv Inventory) API() []v1alpha1.ResourceRef {
	s := append(Inventory(nil), inv...)
	sort.Slice(s, func(i, j int) bool { return s[i].ID() < s[j].ID() })
	out := make([]v1alpha1.ResourceRef, 0, len(s))
	for _, r := range s {
		out = append(out, r.API())
	}
	return out
}

// IDs is the set of the inventory's IDs: one lookup per object instead of
// a scan of the inventory (30,000 objects missing from a 30,000-entry
// inventory, after a controller was killed between its inventory intent
// and its writes, would otherwise take 900 million comparisons).
func (inv Inventory) IDs() map[string]bool {
	out := make(map[string]bool, len(inv))
	for _, r := range inv {
		out[r.ID()] = true
	}
	return out
}

// Contains reports whether ref (by ID) is in the inventory; for one lookup
// (IDs is the set for many).
func (inv Inventory) Contains(ref Ref) bool {
	for _, r := range inv {
		if r.ID() == ref.ID() {
			return true
		}
	}
	return false
}

// Minus returns the entries of inv whose ID is not in keep: what a prune deletes.
func (inv Inventory) Minus(keep Inventory) Inventory {
	ids := keep.IDs()
	var out Inventory
	for _, r := range inv {
		if !ids[r.ID()] {
			out = append(out, r)
		}
	}
	return out
}

// CompressAbove is the inventory size above which a status holds the
// inventory gzip-compressed: 30,000 entries as a list would pass etcd's
// 1.5 MiB object limit, compressed they take a few hundred KiB.
const CompressAbove = 1000

// EncodeInventory is the status form of an inventory: a sorted list, or,
// above CompressAbove entries, gzip-compressed tab-separated lines.
func EncodeInventory(inv Inventory) ([]v1alpha1.ResourceRef, []byte) {
	if len(inv) <= CompressAbove {
		return inv.API(), nil
	}
	s := append(Inventory(nil), inv...)
	sort.Slice(s, func(i, j int) bool { return s[i].ID() < s[j].ID() })
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	for _, r := range s {
		// Writes to a bytes.Buffer do not fail.
		_, _ = fmt.Fprintf(zw, "%s\t%s\t%s\t%s\t%s\n", r.Group, r.Version, r.Kind, r.Namespace, r.Name)
	}
	_ = zw.Close()
	return nil, buf.Bytes()
}

// DecodeInventory reads an inventory in either status form.
func DecodeInventory(list []v1alpha1.ResourceRef, compressed []byte) (Inventory, error) {
	if len(compressed) == 0 {
		return InventoryFromAPI(list), nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(compressed))
	if err != nil {
		return nil, fmt.Errorf("compressed inventory: %w", err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("compressed inventory: %w", err)
	}
	var out Inventory
	for line := range strings.SplitSeq(strings.TrimSuffix(string(data), "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			return nil, fmt.Errorf("compressed inventory: bad entry %q", line)
		}
		out = append(out, Ref{Group: f[0], Version: f[1], Kind: f[2], Namespace: f[3], Name: f[4]})
	}
	return out, nil
}

// SyncInventory reads a Sync's inventory from its status.
func SyncInventory(st v1alpha1.SyncStatus) (Inventory, error) {
	return DecodeInventory(st.Inventory, st.InventoryCompressed)
}

// SetSyncInventory writes inv into a Sync's status, compressed when large.
func SetSyncInventory(st *v1alpha1.SyncStatus, inv Inventory) {
	st.Inventory, st.InventoryCompressed = EncodeInventory(inv)
	st.InventoryCount = int32(len(inv))
}
