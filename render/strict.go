package render

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"sync"
)

// decodeStrict decodes a document into a typed object the way the API server
// would with field validation set to Strict, but reports every unknown field
// and every value of the wrong type, each with its path and line, instead of
// stopping at the first. ok is false when the object could not be decoded
// (a wrong type); unknown fields alone leave it decoded, so that validation
// can still report the rest of what is wrong.
func decodeStrict(d *document, into interface{}) (problems []Problem, ok bool) {
	var r strictResult
	checkValue(d, d.obj, reflect.TypeOf(into).Elem(), make(fieldPath, 0, 8), &r)
	if r.typeErrors {
		return r.problems, false
	}
	data, err := json.Marshal(d.obj)
	if err != nil {
		return append(r.problems, d.problem(nil, "cannot encode as JSON: %v", err)), false
	}
	if err := json.Unmarshal(data, into); err != nil {
		// checkValue has already ruled out what it can; this is a backstop
		// for what only the target type knows.
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			p := field(strings.Split(te.Field, ".")...)
			return append(r.problems, d.problem(p, "cannot use a JSON %s as %s", te.Value, te.Type)), false
		}
		return append(r.problems, d.problem(nil, "%v", err)), false
	}
	return r.problems, true
}

// strictResult collects what checkValue finds.
type strictResult struct {
	problems []Problem
	// typeErrors is set when a value cannot be decoded into its field.
	typeErrors bool
}

func (r *strictResult) typeError(p Problem) {
	r.problems = append(r.problems, p)
	r.typeErrors = true
}

var unmarshalerType = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()

// checkValue walks a decoded value alongside the Go type it is meant for.
// It extends p in place (append, not at) to save an allocation per field:
// the walk is depth-first and a problem formats its path at once, so
// siblings overwriting each other's last segment is harmless.
func checkValue(d *document, v interface{}, t reflect.Type, p fieldPath, out *strictResult) {
	if v == nil {
		return // null is the zero value, as in JSON
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		// Durations, times, quantities: let the type parse its own text, so a
		// bad "30x" is reported at its own field.
		data, err := json.Marshal(v)
		if err == nil {
			err = reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON(data)
		}
		if err != nil {
			out.typeError(d.problem(p, "invalid value: %v", err))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]interface{})
		if !ok {
			out.typeError(d.problem(p, "expected an object, got %s", jsonKind(v)))
			return
		}
		fields := structFields(t)
		for _, k := range sortedKeys(m) {
			ft, known := fields[k]
			if !known {
				out.problems = append(out.problems, d.problem(append(p, pathSegment{key: k}), "unknown field %q", k))
				continue
			}
			checkValue(d, m[k], ft, append(p, pathSegment{key: k}), out)
		}
	case reflect.Map:
		m, ok := v.(map[string]interface{})
		if !ok {
			out.typeError(d.problem(p, "expected an object, got %s", jsonKind(v)))
			return
		}
		for _, k := range sortedKeys(m) {
			checkValue(d, m[k], t.Elem(), append(p, pathSegment{key: k}), out)
		}
	case reflect.Slice:
		s, ok := v.([]interface{})
		if !ok {
			out.typeError(d.problem(p, "expected a list, got %s", jsonKind(v)))
			return
		}
		for i, e := range s {
			checkValue(d, e, t.Elem(), append(p, pathSegment{index: i, isIndex: true}), out)
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			out.typeError(d.problem(p, "expected a string, got %s", jsonKind(v)))
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			out.typeError(d.problem(p, "expected true or false, got %s", jsonKind(v)))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		checkInteger(d, v, t, p, out)
	case reflect.Float32, reflect.Float64:
		switch v.(type) {
		case int64, float64:
		default:
			out.typeError(d.problem(p, "expected a number, got %s", jsonKind(v)))
		}
	}
}

func checkInteger(d *document, v interface{}, t reflect.Type, p fieldPath, out *strictResult) {
	bits := t.Bits()
	limit := math.Ldexp(1, bits-1)
	switch x := v.(type) {
	case int64:
		if bits < 64 && (float64(x) < -limit || float64(x) >= limit) {
			out.typeError(d.problem(p, "%d does not fit in a %d-bit integer", x, bits))
		}
	case float64:
		switch {
		case x != math.Trunc(x):
			out.typeError(d.problem(p, "expected an integer, got %v", x))
		case x < -limit || x >= limit:
			out.typeError(d.problem(p, "%v does not fit in a %d-bit integer", x, bits))
		}
	default:
		out.typeError(d.problem(p, "expected an integer, got %s", jsonKind(v)))
	}
}

// jsonKind names a value's type the way a YAML author thinks of it.
func jsonKind(v interface{}) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", x)
	case bool:
		return fmt.Sprintf("the boolean %v", x)
	case int64, float64:
		return fmt.Sprintf("the number %v", x)
	case []interface{}:
		return "a list"
	case map[string]interface{}:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// structFields maps JSON field names to types, with embedded (inline)
// structs such as TypeMeta flattened, as encoding/json does.
func structFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range structFields(ft) {
					m[k] = v
				}
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	fieldCache.Store(t, m)
	return m
}

func sortedKeys(m map[string]interface{}) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
