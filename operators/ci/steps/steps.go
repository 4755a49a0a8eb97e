// Package steps reads a repository's CI steps file (.homeostat-ci.yaml): the
// image the steps run in, sidecar services, environment, a timeout and the
// ordered steps. Parsing is pure and reports every problem with the file and
// line it is on, so a bad steps file becomes a failed build that says where
// to look instead of a crashed controller.
package steps

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"homeostat.dev/homeostat/render"
)

// Problem is one reason a steps file cannot be used: the renderer's type,
// so a steps file's problems print in the same FILE:LINE: form that editors
// and CI annotations read.
type Problem = render.Problem

// DefaultFile is where the steps file is looked for when a Pipeline names none.
const DefaultFile = ".homeostat-ci.yaml"

// DefaultTimeout bounds a build whose steps file sets no timeout, so a hung
// step cannot hold a pod forever.
const DefaultTimeout = 30 * time.Minute

// File is a parsed and validated steps file.
type File struct {
	// Image is the container image every step runs in.
	Image string
	// Services run beside the steps (as sidecars in a pod), reachable on localhost.
	Services []Service
	// Env is given to every step, sorted by name.
	Env []EnvVar
	// SecretEnv names Secret keys given to every step as environment, sorted by name.
	SecretEnv []SecretEnv
	// Timeout bounds the whole build.
	Timeout time.Duration
	// Steps run in order; the first failure stops the rest.
	Steps []Step
}

// Service is a sidecar container.
type Service struct {
	Name    string
	Image   string
	Env     []EnvVar
	Command []string
	// Line is where the service is defined, for messages.
	Line int
}

// EnvVar is one plain environment variable.
type EnvVar struct {
	Name  string
	Value string
}

// SecretEnv is an environment variable whose value is a key of a Secret.
type SecretEnv struct {
	Name   string
	Secret string
	Key    string
	// Line is where the variable is defined, for messages.
	Line int
}

// Step is one command, or a pause that holds the workspace for a person.
type Step struct {
	Name string
	// Run is a shell script run with `sh -c` in the workspace.
	Run string
	// Pause holds the build until it is resumed or times out.
	Pause bool
	// Line is where the step is defined, for messages.
	Line int
}

var (
	envName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	stepName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
)

// ReservedContainerNames are the container names the build pod uses itself,
// which services may not take.
var ReservedContainerNames = []string{"agent", "install", "clone", "homeostat-log"}

// parser collects problems while walking the YAML tree.
type parser struct {
	file     string
	problems []Problem
}

func (p *parser) add(n *yaml.Node, field, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.problems = append(p.problems, Problem{File: p.file, Line: line, Field: field, Message: fmt.Sprintf(format, args...)})
}

// Parse reads a steps file named file (the name only labels problems). It
// returns every problem found; the File is nil when there is any.
func Parse(file string, data []byte) (*File, []Problem) {
	p := &parser{file: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, []Problem{{File: file, Line: yamlErrorLine(err), Message: cleanYAMLError(err)}}
	}
	if len(doc.Content) == 0 {
		return nil, []Problem{{File: file, Line: 1, Message: "the steps file is empty"}}
	}
	f := p.top(doc.Content[0])
	if len(p.problems) > 0 {
		return nil, p.problems
	}
	return f, nil
}

func (p *parser) top(root *yaml.Node) *File {
	f := &File{Timeout: DefaultTimeout}
	if root.Kind != yaml.MappingNode {
		p.add(root, "", "the steps file must be a mapping with image and steps")
		return f
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		seen[k.Value] = true
		switch k.Value {
		case "image":
			f.Image = p.str(v, "image")
		case "services":
			f.Services = p.services(v)
		case "env":
			f.Env = p.env(v, "env")
		case "secretEnv":
			f.SecretEnv = p.secretEnv(v)
		case "timeout":
			f.Timeout = p.duration(v, "timeout")
		case "steps":
			f.Steps = p.steps(v)
		default:
			p.add(k, k.Value, "unknown field (known: image, services, env, secretEnv, timeout, steps)")
		}
	}
	if !seen["image"] {
		p.add(root, "image", "required: the image the steps run in")
	} else if f.Image == "" {
		p.add(root, "image", "must not be empty")
	}
	if !seen["steps"] {
		p.add(root, "steps", "required: at least one step")
	}
	return f
}

func (p *parser) str(v *yaml.Node, field string) string {
	if v.Kind != yaml.ScalarNode {
		p.add(v, field, "must be a string")
		return ""
	}
	return v.Value
}

func (p *parser) duration(v *yaml.Node, field string) time.Duration {
	s := p.str(v, field)
	if s == "" {
		return DefaultTimeout
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		p.add(v, field, "%q is not a positive duration such as 30m or 1h", s)
		return DefaultTimeout
	}
	return d
}

func (p *parser) env(v *yaml.Node, field string) []EnvVar {
	if v.Kind != yaml.MappingNode {
		p.add(v, field, "must be a mapping of NAME: value")
		return nil
	}
	var out []EnvVar
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		if !envName.MatchString(k.Value) {
			p.add(k, field+"."+k.Value, "not a valid environment variable name")
		}
		out = append(out, EnvVar{Name: k.Value, Value: p.str(val, field+"."+k.Value)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (p *parser) secretEnv(v *yaml.Node) []SecretEnv {
	if v.Kind != yaml.MappingNode {
		p.add(v, "secretEnv", "must be a mapping of NAME: {secret: S, key: K}")
		return nil
	}
	var out []SecretEnv
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		field := "secretEnv." + k.Value
		if !envName.MatchString(k.Value) {
			p.add(k, field, "not a valid environment variable name")
		}
		se := SecretEnv{Name: k.Value, Line: k.Line}
		fields := p.fields(val, field, "secret", "key")
		se.Secret, se.Key = fields["secret"], fields["key"]
		if val.Kind == yaml.MappingNode && (se.Secret == "" || se.Key == "") {
			p.add(val, field, "needs both secret and key")
		}
		out = append(out, se)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// fields reads a mapping of string fields, reporting unknown ones.
func (p *parser) fields(v *yaml.Node, field string, known ...string) map[string]string {
	out := map[string]string{}
	if v.Kind != yaml.MappingNode {
		p.add(v, field, "must be a mapping with %s", strings.Join(known, ", "))
		return out
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		if !contains(known, k.Value) {
			p.add(k, field+"."+k.Value, "unknown field (known: %s)", strings.Join(known, ", "))
			continue
		}
		out[k.Value] = p.str(val, field+"."+k.Value)
	}
	return out
}

func (p *parser) services(v *yaml.Node) []Service {
	if v.Kind != yaml.SequenceNode {
		p.add(v, "services", "must be a list")
		return nil
	}
	var out []Service
	names := map[string]bool{}
	for i, n := range v.Content {
		field := fmt.Sprintf("services[%d]", i)
		s := Service{Line: n.Line}
		if n.Kind != yaml.MappingNode {
			p.add(n, field, "must be a mapping with name and image")
			continue
		}
		for j := 0; j+1 < len(n.Content); j += 2 {
			k, val := n.Content[j], n.Content[j+1]
			switch k.Value {
			case "name":
				s.Name = p.str(val, field+".name")
			case "image":
				s.Image = p.str(val, field+".image")
			case "env":
				s.Env = p.env(val, field+".env")
			case "command":
				s.Command = p.strings(val, field+".command")
			default:
				p.add(k, field+"."+k.Value, "unknown field (known: name, image, env, command)")
			}
		}
		switch {
		case !dnsLabel.MatchString(s.Name) || len(s.Name) > 63:
			p.add(n, field+".name", "%q must be a lowercase DNS label (a-z, 0-9, -)", s.Name)
		case contains(ReservedContainerNames, s.Name):
			p.add(n, field+".name", "%q is reserved for the build's own containers", s.Name)
		case names[s.Name]:
			p.add(n, field+".name", "%q is used twice", s.Name)
		}
		names[s.Name] = true
		if s.Image == "" {
			p.add(n, field+".image", "required")
		}
		out = append(out, s)
	}
	return out
}

func (p *parser) strings(v *yaml.Node, field string) []string {
	if v.Kind != yaml.SequenceNode {
		p.add(v, field, "must be a list of strings")
		return nil
	}
	var out []string
	for _, n := range v.Content {
		out = append(out, p.str(n, field))
	}
	return out
}

func (p *parser) steps(v *yaml.Node) []Step {
	if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
		p.add(v, "steps", "must be a list of at least one step")
		return nil
	}
	var out []Step
	names := map[string]bool{}
	for i, n := range v.Content {
		field := fmt.Sprintf("steps[%d]", i)
		if n.Kind != yaml.MappingNode {
			p.add(n, field, "must be a mapping with name and run (or pause: true)")
			continue
		}
		s := Step{Line: n.Line}
		hasRun := false
		for j := 0; j+1 < len(n.Content); j += 2 {
			k, val := n.Content[j], n.Content[j+1]
			switch k.Value {
			case "name":
				s.Name = p.str(val, field+".name")
			case "run":
				hasRun = true
				s.Run = p.str(val, field+".run")
			case "pause":
				if val.Kind != yaml.ScalarNode || (val.Value != "true" && val.Value != "false") {
					p.add(val, field+".pause", "must be true or false")
				}
				s.Pause = val.Value == "true"
			default:
				p.add(k, field+"."+k.Value, "unknown field (known: name, run, pause)")
			}
		}
		switch {
		case !stepName.MatchString(s.Name):
			p.add(n, field+".name", "%q must start with a letter or digit and hold only letters, digits, '.', '_' and '-'", s.Name)
		case names[s.Name]:
			p.add(n, field+".name", "%q is used twice", s.Name)
		}
		names[s.Name] = true
		switch {
		case s.Pause && hasRun:
			p.add(n, field, "a step either runs a command or pauses, not both")
		case !s.Pause && strings.TrimSpace(s.Run) == "":
			p.add(n, field+".run", "required (or pause: true)")
		}
		out = append(out, s)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// yamlErrorLine digs the line number out of a yaml syntax error, which the
// library only offers as text.
func yamlErrorLine(err error) int {
	m := yamlLine.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

var yamlLinePrefix = regexp.MustCompile(`^line \d+: `)

func cleanYAMLError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	return yamlLinePrefix.ReplaceAllString(msg, "")
}

// Format joins problems into one message, one FILE:LINE: message per line,
// for a Build's status and its notification.
func Format(problems []Problem) string {
	lines := make([]string, len(problems))
	for i, p := range problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}
