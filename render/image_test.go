package render

import "testing"

// Image references follow the grammar docker and containerd accept.
func TestImageReferences(t *testing.T) {
	for ref, ok := range map[string]bool{
		"nginx":                            true,
		"nginx:1.27":                       true,
		"library/nginx:latest":             true,
		"registry.example.com/acme/shop:1": true,
		"registry.example.com:5000/a/b/c:v1.2.3-rc.1": true,
		"localhost:5000/app":                          true,
		"ghcr.io/acme/app@sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945":     true,
		"ghcr.io/acme/app:1.0@sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945": true,
		"my_org/app__x-y:tag_1":            true,
		"":                                 false,
		"nginx:":                           false,
		":1.0":                             false,
		"Nginx":                            false,
		"registry.example.com/Acme/shop":   false,
		"nginx:1.0:2.0":                    false,
		"nginx@sha256:short":               false,
		"has space":                        false,
		"-leading/dash":                    false,
		"a//b":                             false,
		"https://registry.example.com/app": false,
	} {
		c := checker{d: &document{src: Source{File: "x.yaml"}}}
		c.image(field("spec", "image"), ref)
		if got := len(c.problems) == 0; got != ok {
			t.Errorf("image %q: valid = %v, want %v (%v)", ref, got, ok, c.problems)
		}
	}
}
