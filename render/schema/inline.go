package schema

import "strings"

const refPrefix = "#/components/schemas/"

// inline returns the named schema with every $ref replaced by the schema it
// names, the form structural schemas need. A reference back into a schema
// being inlined (JSONSchemaProps refers to itself) becomes "anything
// goes": such a field is not checked below that point.
func inline(schemas map[string]map[string]any, name string, stack []string) map[string]any {
	for _, s := range stack {
		if s == name {
			return map[string]any{"x-kubernetes-preserve-unknown-fields": true}
		}
	}
	src, ok := schemas[name]
	if !ok {
		return map[string]any{"x-kubernetes-preserve-unknown-fields": true}
	}
	return inlineNode(schemas, src, append(stack, name))
}

// inlineNode copies one schema node, resolving references below it.
func inlineNode(schemas map[string]map[string]any, n map[string]any, stack []string) map[string]any {
	if ref, ok := n["$ref"].(string); ok {
		return inline(schemas, strings.TrimPrefix(ref, refPrefix), stack)
	}
	out := map[string]any{}
	for k, v := range n {
		switch k {
		case "default", "x-kubernetes-group-version-kind", "x-kubernetes-patch-strategy", "x-kubernetes-patch-merge-key", "x-kubernetes-unions":
			// Not checked, and not all of them convert.
		case "allOf":
			// {allOf: [{$ref: X}]} is how OpenAPI v3 documents a field
			// of type X with a default.
			for _, e := range v.([]any) {
				for ek, ev := range inlineNode(schemas, e.(map[string]any), stack) {
					out[ek] = ev
				}
			}
		case "properties":
			props := map[string]any{}
			for name, p := range v.(map[string]any) {
				props[name] = inlineNode(schemas, p.(map[string]any), stack)
			}
			out[k] = props
		case "items", "additionalProperties":
			if m, ok := v.(map[string]any); ok {
				out[k] = inlineNode(schemas, m, stack)
			} else {
				out[k] = v
			}
		default:
			out[k] = v
		}
	}
	scalarUnion(out)
	if out["type"] == "object" && out["properties"] == nil && out["additionalProperties"] == nil {
		// RawExtension, FieldsV1 and the like: free-form objects.
		out["x-kubernetes-preserve-unknown-fields"] = true
	}
	return out
}

// scalarUnion rewrites the unions of scalar types built-in schemas use
// (IntOrString: integer or string; Quantity: string or number) into the
// forms apiextensions understands.
func scalarUnion(n map[string]any) {
	alts, ok := n["oneOf"].([]any)
	if !ok {
		alts, ok = n["anyOf"].([]any)
	}
	if !ok {
		return
	}
	types := map[string]bool{}
	for _, a := range alts {
		m, _ := a.(map[string]any)
		t, _ := m["type"].(string)
		if t == "" || len(m) != 1 {
			return // not a plain scalar union; leave it to the validator
		}
		types[t] = true
	}
	delete(n, "oneOf")
	delete(n, "anyOf")
	delete(n, "format")
	if len(types) == 2 && types["integer"] && types["string"] {
		n["x-kubernetes-int-or-string"] = true
		return
	}
	// string or number (Quantity): any scalar; the server parses it.
}
