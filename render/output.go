package render

import (
	"encoding/json"
	"fmt"
	"io"

	"sigs.k8s.io/yaml"
)

// WriteYAML prints objects as a multi-document YAML stream, each preceded by
// a comment naming its source (and owner), so a reader can find what to edit.
// Keys are sorted, so the same objects always print the same bytes.
func WriteYAML(w io.Writer, objs []Object) error {
	for _, o := range objs {
		data, err := yaml.Marshal(o.Object.Object)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", o.Object.GetKind(), o.Object.GetName(), err)
		}
		header := "---\n# Source: " + o.Source.String() + "\n"
		if o.Owner != nil {
			header += "# Owner: " + o.Owner.Kind + " " + o.Owner.Name + "\n"
		}
		if _, err := io.WriteString(w, header); err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
	}
	return nil
}

// WriteJSON prints objects as one JSON document, a v1 List that kubectl and
// jq both understand.
func WriteJSON(w io.Writer, objs []Object) error {
	items := make([]interface{}, len(objs))
	for i, o := range objs {
		items[i] = o.Object.Object
	}
	list := map[string]interface{}{"apiVersion": "v1", "kind": "List", "items": items}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(list)
}
