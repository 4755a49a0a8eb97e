package schema

import (
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"homeostat.dev/homeostat/render"
)

// Check validates rendered objects, after learning the CRDs among them,
// and returns every violation as a problem at the file and line of the
// field (read again from fsys, the tree they were rendered from), and the
// kinds that had no schema, as "group/version Kind".
func (v *Validator) Check(fsys fs.FS, objs []render.Object) (problems []render.Problem, skipped []string) {
	for _, o := range objs {
		gvk := o.Object.GroupVersionKind()
		if gvk.Group == "apiextensions.k8s.io" && gvk.Kind == "CustomResourceDefinition" {
			if err := v.AddCRD(o.Object); err != nil {
				problems = append(problems, render.Problem{File: o.Source.File, Line: max(o.Source.Line, 1), Message: err.Error()})
			}
		}
	}
	noSchema := map[string]bool{}
	for _, o := range objs {
		vs, known, err := v.Validate(o.Object)
		if err != nil {
			problems = append(problems, render.Problem{File: o.Source.File, Line: max(o.Source.Line, 1), Message: err.Error()})
			continue
		}
		if !known {
			gvk := o.Object.GroupVersionKind()
			noSchema[strings.TrimPrefix(gvk.GroupVersion().String()+" "+gvk.Kind, "/")] = true
			continue
		}
		for _, e := range vs {
			problems = append(problems, problem(fsys, o, e.Field, e.Message))
		}
	}
	for k := range noSchema {
		skipped = append(skipped, k)
	}
	sort.Strings(skipped)
	sort.SliceStable(problems, func(i, j int) bool {
		if problems[i].File != problems[j].File {
			return problems[i].File < problems[j].File
		}
		return problems[i].Line < problems[j].Line
	})
	return problems, skipped
}

// problem locates one violation. Fields of a high-level kind's children
// are not in any file: the problem names the child and points at its
// parent's line.
func problem(fsys fs.FS, o render.Object, fieldPath, msg string) render.Problem {
	line := o.Source.Line
	label := ""
	if o.Owner == nil {
		line = render.FieldLine(fsys, o.Source, fieldPath)
	}
	if o.Owner != nil || o.Source.Line == 0 {
		label = fmt.Sprintf(" (in %s %s)", o.Object.GetKind(), o.Object.GetName())
	}
	return render.Problem{File: o.Source.File, Line: max(line, 1), Field: fieldPath, Message: msg + label}
}
