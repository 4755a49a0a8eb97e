package agent

import (
	"encoding/json"
	"fmt"
)

// MaxResultSize is what fits in a container's termination message (the
// kubelet keeps at most 4096 bytes of it).
const MaxResultSize = 4096

// Encode renders r as compact JSON of at most limit bytes. It shortens the
// message first and then drops the results of steps that passed or were
// skipped, so the phase and the failed step always survive.
func Encode(r Result, limit int) []byte {
	b, _ := json.Marshal(r)
	if len(b) <= limit {
		return b
	}
	if over := len(b) - limit; len(r.Message) > 0 {
		keep := len(r.Message) - over - len(" ...")
		if keep < 0 {
			keep = 0
		}
		r.Message = r.Message[:keep] + " ..."
		if b, _ = json.Marshal(r); len(b) <= limit {
			return b
		}
	}
	var kept = r.Steps[:0:0]
	for _, s := range r.Steps {
		if s.Name == r.FailedStep {
			kept = append(kept, s)
		}
	}
	r.Message = fmt.Sprintf("%d step results omitted; see the build log", len(r.Steps)-len(kept))
	r.Steps = kept
	b, _ = json.Marshal(r)
	return b
}

// Decode reads a Result written by Encode.
func Decode(b []byte) (Result, error) {
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decode agent result: %w", err)
	}
	if r.Phase == "" {
		return r, fmt.Errorf("decode agent result: no phase")
	}
	return r, nil
}
