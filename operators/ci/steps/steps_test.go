package steps

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestParseValidFile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f, problems := Parse("full.yaml", data)
	if problems != nil {
		t.Fatalf("unexpected problems: %v", Format(problems))
	}
	want := &File{
		Image: "golang:1.26",
		Services: []Service{{Name: "db", Image: "postgres:16", Line: 3,
			Env: []EnvVar{{Name: "POSTGRES_PASSWORD", Value: "test"}}}},
		Env:       []EnvVar{{Name: "CGO_ENABLED", Value: "0"}, {Name: "GOFLAGS", Value: "-mod=mod"}},
		SecretEnv: []SecretEnv{{Name: "TOKEN", Secret: "ci-token", Key: "token", Line: 5}},
		Timeout:   30 * time.Minute,
		Steps: []Step{
			{Name: "test", Run: "go test ./...", Line: 8},
			{Name: "build", Run: "go build ./cmd/...", Line: 9},
			{Name: "debug", Pause: true, Line: 10},
		},
	}
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("got  %+v\nwant %+v", f, want)
	}
}

func TestParseDefaultsTimeout(t *testing.T) {
	f, problems := Parse("x", []byte("image: alpine\nsteps:\n- {name: a, run: 'true'}\n"))
	if problems != nil {
		t.Fatal(Format(problems))
	}
	if f.Timeout != DefaultTimeout {
		t.Fatalf("timeout %v, want %v", f.Timeout, DefaultTimeout)
	}
}

// TestParseReportsFileAndLine proves every problem names the line it is on,
// which is what a failed build shows its author.
func TestParseReportsFileAndLine(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"syntax error", "image: a\nsteps:\n- name: x\n  run: a: b\n", []string{"ci.yaml:4: mapping values are not allowed in this context"}},
		{"empty", "", []string{"ci.yaml:1: the steps file is empty"}},
		{"not a mapping", "- a\n", []string{"ci.yaml:1: the steps file must be a mapping with image and steps"}},
		{"missing image and steps", "env: {A: b}\n", []string{
			"ci.yaml:1: image: required: the image the steps run in",
			"ci.yaml:1: steps: required: at least one step"}},
		{"unknown top-level field", "image: a\nstep:\n  - {name: x, run: y}\nsteps: [{name: x, run: y}]\n", []string{
			"ci.yaml:2: step: unknown field (known: image, services, env, secretEnv, timeout, steps)"}},
		{"step without run", "image: a\nsteps:\n  - name: ok\n    run: echo\n  - name: broken\n", []string{
			"ci.yaml:5: steps[1].run: required (or pause: true)"}},
		{"duplicate step", "image: a\nsteps:\n- {name: x, run: a}\n- {name: x, run: b}\n", []string{
			"ci.yaml:4: steps[1].name: \"x\" is used twice"}},
		{"run and pause", "image: a\nsteps:\n- {name: x, run: a, pause: true}\n", []string{
			"ci.yaml:3: steps[0]: a step either runs a command or pauses, not both"}},
		{"bad step name", "image: a\nsteps:\n- {name: 'has space', run: a}\n", []string{
			"ci.yaml:3: steps[0].name: \"has space\" must start with a letter or digit and hold only letters, digits, '.', '_' and '-'"}},
		{"bad timeout", "image: a\ntimeout: soon\nsteps: [{name: x, run: y}]\n", []string{
			"ci.yaml:2: timeout: \"soon\" is not a positive duration such as 30m or 1h"}},
		{"bad env name", "image: a\nenv:\n  1BAD: x\nsteps: [{name: x, run: y}]\n", []string{
			"ci.yaml:3: env.1BAD: not a valid environment variable name"}},
		{"secretEnv without key", "image: a\nsecretEnv:\n  T: {secret: s}\nsteps: [{name: x, run: y}]\n", []string{
			"ci.yaml:3: secretEnv.T: needs both secret and key"}},
		{"reserved service name", "image: a\nservices:\n- {name: agent, image: b}\nsteps: [{name: x, run: y}]\n", []string{
			"ci.yaml:3: services[0].name: \"agent\" is reserved for the build's own containers"}},
		{"service without image", "image: a\nservices:\n- {name: db}\nsteps: [{name: x, run: y}]\n", []string{
			"ci.yaml:3: services[0].image: required"}},
		{"pause not a bool", "image: a\nsteps:\n- name: x\n  pause: yes please\n", []string{
			"ci.yaml:4: steps[0].pause: must be true or false",
			"ci.yaml:3: steps[0].run: required (or pause: true)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, problems := Parse("ci.yaml", []byte(c.yaml))
			if f != nil {
				t.Fatalf("got a file despite problems")
			}
			var got []string
			for _, p := range problems {
				got = append(got, p.Error())
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("problems:\n got  %q\n want %q", got, c.want)
			}
		})
	}
}
