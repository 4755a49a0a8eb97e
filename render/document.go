package render

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	yamlv2 "go.yaml.in/yaml/v2"
	"go.yaml.in/yaml/v3"
)

// document is one YAML document of the tree: a manifest as a JSON-compatible
// map, where it came from, and (for files read directly) the parsed node tree,
// which knows the line of every field so that problems can point at it.
type document struct {
	src  Source
	node *yaml.Node // the document's mapping node; nil when lines are unknown
	obj  map[string]interface{}
	// label names the object in problems when there are no lines to point
	// at (objects built by kustomize all come from one kustomization file).
	label string
}

// lineOf returns the line of the field at path (keys and [index] segments),
// or of its nearest ancestor that exists, or of the document's start.
func (d *document) lineOf(path fieldPath) int {
	if d.node == nil {
		return d.src.Line
	}
	n := d.node
	line := n.Line
	for _, seg := range path {
		n = resolveAlias(n)
		next, keyLine := child(n, seg)
		if next == nil {
			break
		}
		line = keyLine
		n = next
	}
	return line
}

// child finds a mapping value (with its key's line) or a sequence element.
func child(n *yaml.Node, seg pathSegment) (*yaml.Node, int) {
	switch {
	case n.Kind == yaml.MappingNode && !seg.isIndex:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == seg.key {
				return n.Content[i+1], n.Content[i].Line
			}
		}
	case n.Kind == yaml.SequenceNode && seg.isIndex:
		if seg.index >= 0 && seg.index < len(n.Content) {
			return n.Content[seg.index], n.Content[seg.index].Line
		}
	}
	return nil, 0
}

// resolveAlias follows aliases, at most a few steps, so that a crafted
// document cannot make line lookup loop.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; i < 8 && n != nil && n.Kind == yaml.AliasNode && n.Alias != nil; i++ {
		n = n.Alias
	}
	return n
}

// problem is a Problem about this document, located at the field's line.
func (d *document) problem(path fieldPath, format string, args ...interface{}) Problem {
	msg := fmt.Sprintf(format, args...)
	if d.label != "" {
		msg += " (in " + d.label + ")"
	}
	return Problem{File: d.src.File, Line: d.lineOf(path), Field: path.String(), Message: msg}
}

// parseDocuments splits a file into documents. A syntax error ends the file:
// the YAML parser cannot resynchronise after one, so it is the only problem
// reported for the file. Empty documents (only comments, or a stray ---) are
// skipped; every other document must be a mapping.
func parseDocuments(file string, data []byte) ([]document, []Problem) {
	var docs []document
	var problems []Problem
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var root yaml.Node
		err := dec.Decode(&root)
		if errors.Is(err, io.EOF) {
			return docs, problems
		}
		if err != nil {
			p := yamlProblem(file, err)
			if line := syntaxErrorLine(data); line > 0 {
				p.Line = line
			}
			return docs, append(problems, p)
		}
		if len(root.Content) == 0 {
			continue
		}
		n := root.Content[0]
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			continue
		}
		line := n.Line
		if n.Kind != yaml.MappingNode {
			problems = append(problems, Problem{File: file, Line: line, Message: "a manifest must be a mapping with apiVersion, kind and metadata"})
			continue
		}
		var raw interface{}
		if err := n.Decode(&raw); err != nil {
			problems = append(problems, yamlProblem(file, err))
			continue
		}
		v, err := normalize(raw, 0)
		if err != nil {
			problems = append(problems, Problem{File: file, Line: line, Message: err.Error()})
			continue
		}
		docs = append(docs, document{src: Source{File: file, Line: line}, node: n, obj: v.(map[string]interface{})})
	}
}

var yamlLine = regexp.MustCompile(`^line (\d+): `)

// yamlProblem turns a parser error ("yaml: line 3: did not find expected key")
// into a Problem on that line.
func yamlProblem(file string, err error) Problem {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	p := Problem{File: file}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	p.Message = "invalid YAML: " + msg
	return p
}

// syntaxErrorLine finds the line of a syntax error better than the parser's
// message does: yaml.v3 names the line before the start of the enclosing
// block, which may be far above the mistake. The v2 parser, a port of the same
// libyaml, names the offending token's line, 0-based for parser errors ("did
// not find expected ..."), 1-based for scanner errors.
func syntaxErrorLine(data []byte) int {
	dec := yamlv2.NewDecoder(bytes.NewReader(data))
	for {
		var v interface{}
		err := dec.Decode(&v)
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) {
			return 0
		}
		m := yamlLine.FindStringSubmatch(strings.TrimPrefix(err.Error(), "yaml: "))
		if m == nil {
			return 0
		}
		line, _ := strconv.Atoi(m[1])
		if strings.Contains(err.Error(), "did not find expected") {
			line++
		}
		if lines := bytes.Count(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) + 1; line > lines {
			line = lines
		}
		return line
	}
}

// maxDepth bounds nesting so that a hostile file cannot exhaust the stack.
const maxDepth = 1000

// normalize converts what the YAML decoder produced into the JSON-compatible
// types unstructured objects require: map[string]interface{}, []interface{},
// string, int64, float64, bool and nil.
func normalize(v interface{}, depth int) (interface{}, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("document nested deeper than %d levels", maxDepth)
	}
	switch t := v.(type) {
	case nil, string, bool, int64:
		return t, nil
	case int:
		return int64(t), nil
	case uint64:
		if t <= math.MaxInt64 {
			return int64(t), nil
		}
		return float64(t), nil
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return nil, fmt.Errorf("number %v cannot be represented in JSON", t)
		}
		return t, nil
	case []byte:
		return string(t), nil
	case []interface{}:
		out := make([]interface{}, len(t))
		for i, e := range t {
			n, err := normalize(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case map[string]interface{}:
		for k, e := range t {
			n, err := normalize(e, depth+1)
			if err != nil {
				return nil, err
			}
			t[k] = n
		}
		return t, nil
	case map[interface{}]interface{}:
		out := make(map[string]interface{}, len(t))
		for k, e := range t {
			key, ok := scalarKey(k)
			if !ok {
				return nil, fmt.Errorf("mapping key %v is not a string", k)
			}
			n, err := normalize(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[key] = n
		}
		return out, nil
	default:
		return nil, fmt.Errorf("value of type %T cannot be represented in JSON", v)
	}
}

// scalarKey accepts the keys YAML allows and JSON can hold: numbers and
// booleans are spelled as strings, as kubectl does.
func scalarKey(k interface{}) (string, bool) {
	switch t := k.(type) {
	case string:
		return t, true
	case int, int64, uint64, bool:
		return fmt.Sprint(t), true
	case float64:
		return strconv.FormatFloat(t, 'g', -1, 64), true
	case nil:
		return "null", true
	}
	return "", false
}
