package render

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// FieldLine returns the line of a field (spelled as kubectl and the API
// server spell it: "spec.template.spec.containers[0].image") in the
// document an object was rendered from, or the nearest ancestor's line.
// When the document cannot be found again (objects built by kustomize, or
// children of a high-level kind, whose fields are not in the file) it is the
// object's own line, src.Line.
func FieldLine(fsys fs.FS, src Source, path string) int {
	if src.Line == 0 {
		return 0
	}
	data, err := fs.ReadFile(fsys, src.File)
	if err != nil {
		return src.Line
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var root yaml.Node
		if err := dec.Decode(&root); err != nil {
			if !errors.Is(err, io.EOF) {
				return src.Line
			}
			return src.Line
		}
		if len(root.Content) == 0 || root.Content[0].Line != src.Line {
			continue
		}
		d := document{src: src, node: root.Content[0]}
		return d.lineOf(parseFieldPath(path))
	}
}

// parseFieldPath reads "a.b[0].c" and "metadata.labels[app.kubernetes.io/name]".
func parseFieldPath(p string) fieldPath {
	var out fieldPath
	for p != "" {
		switch p[0] {
		case '.':
			p = p[1:]
		case '[':
			end := strings.IndexByte(p, ']')
			if end < 0 {
				return out
			}
			inner := p[1:end]
			if i, err := strconv.Atoi(inner); err == nil {
				out = append(out, pathSegment{index: i, isIndex: true})
			} else {
				out = append(out, pathSegment{key: inner})
			}
			p = p[end+1:]
		default:
			end := strings.IndexAny(p, ".[")
			if end < 0 {
				end = len(p)
			}
			out = append(out, pathSegment{key: p[:end]})
			p = p[end:]
		}
	}
	return out
}
