package instance

import "testing"

func TestVerifierMatches(t *testing.T) {
	v, err := ScramVerifier("s3cret:pw")
	if err != nil {
		t.Fatal(err)
	}
	// Another salt and iteration count than ScramVerifier's (a verifier
	// the server made itself is checked against a real server in
	// operators/postgres).
	other, err := scramVerifier("postgres", []byte("0123456789abcdef"), 8192)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, verifier, password string
		want                     bool
	}{
		{"its own password", v, "s3cret:pw", true},
		{"another password", v, "s3cret:pW", false},
		{"empty password", v, "", false},
		{"its salt and iterations, not ours", other, "postgres", true},
		{"md5 hashes are not scram", "md5a3556571e93b0d20722ba62be61e8c2d", "postgres", false},
		{"no password set", "", "postgres", false},
		{"truncated", "SCRAM-SHA-256$4096:tgeo1RK6NT2rymw5oHEmJg==", "postgres", false},
		{"bad iteration count", "SCRAM-SHA-256$x:tgeo1RK6NT2rymw5oHEmJg==$a:b", "postgres", false},
		{"bad salt", "SCRAM-SHA-256$4096:***$a:b", "postgres", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifierMatches(tt.verifier, tt.password); got != tt.want {
				t.Fatalf("VerifierMatches = %v, want %v", got, tt.want)
			}
		})
	}
}
