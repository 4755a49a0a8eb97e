// Package snapshot records every sync of a Sync as a Snapshot object and
// reads them back: list, show, compare two snapshots object by object, and
// the objects a rollback re-applies. Snapshots are owned by their Sync
// (ownerReference), so deleting a Sync deletes its history.
package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/klauspost/compress/gzip"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"homeostat.dev/homeostat/render"
)

// Annotations that carry a rendered object's origin through a snapshot, so
// a rollback links children to their parents and errors still name files.
const (
	annotationOwner  = "snapshot.homeostat.dev/owner"
	annotationSource = "snapshot.homeostat.dev/source"
)

// Encode writes the rendered objects as gzip-compressed multi-document YAML.
// Each document is written in JSON, YAML's flow style, which encodes ten
// times faster than block style and reads back with any YAML parser; `homeostat
// snapshots show --objects` prints block style. Secrets are left out: a
// snapshot must never hold a secret value.
func Encode(objs []render.Object) ([]byte, error) {
	if len(objs) == 0 {
		return nil, nil
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		if o.Object == nil || isSecret(o.Object) {
			continue
		}
		u := o.Object.DeepCopy()
		ann := u.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		if o.Owner != nil {
			ann[annotationOwner] = strings.Join([]string{o.Owner.APIVersion, o.Owner.Kind, o.Owner.Namespace, o.Owner.Name}, "|")
		}
		if o.Source.File != "" {
			ann[annotationSource] = o.Source.String()
		}
		u.SetAnnotations(ann)
		b, err := json.Marshal(u.Object)
		if err != nil {
			return nil, fmt.Errorf("encode %s %s: %w", u.GetKind(), u.GetName(), err)
		}
		if _, err := zw.Write(slices.Concat([]byte("---\n"), b, []byte("\n"))); err != nil {
			return nil, fmt.Errorf("compress %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Decode reads what Encode wrote.
func Decode(data []byte) ([]render.Object, error) {
	if len(data) == 0 {
		return nil, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("snapshot objects: %w", err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(zr, 4096)
	var out []render.Object
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("snapshot objects: %w", err)
		}
		if len(u.Object) == 0 {
			continue
		}
		o := render.Object{Object: u}
		ann := u.GetAnnotations()
		if v, ok := ann[annotationOwner]; ok {
			p := strings.Split(v, "|")
			if len(p) == 4 {
				o.Owner = &render.OwnerRef{APIVersion: p[0], Kind: p[1], Namespace: p[2], Name: p[3]}
			}
		}
		if v, ok := ann[annotationSource]; ok {
			o.Source = parseSource(v)
		}
		delete(ann, annotationOwner)
		delete(ann, annotationSource)
		if len(ann) == 0 {
			ann = nil
		}
		u.SetAnnotations(ann)
		out = append(out, o)
	}
}

func parseSource(s string) render.Source {
	if i := strings.LastIndexByte(s, ':'); i > 0 {
		if n, err := strconv.Atoi(s[i+1:]); err == nil {
			return render.Source{File: s[:i], Line: n}
		}
	}
	return render.Source{File: s}
}

func isSecret(u *unstructured.Unstructured) bool {
	return u.GetKind() == "Secret" && u.GroupVersionKind().Group == ""
}
