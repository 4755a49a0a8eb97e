package postgres

import "time"

// sighting is the last sign of life of an instance: the operator reached
// it, or its heartbeat annotation changed.
type sighting struct {
	heartbeat string
	at        time.Time
}

// noteSeen records a sign of life. The heartbeat's value is a timestamp of
// the instance's clock; only its changing counts, on the operator's clock,
// so clocks need not agree. An instance first noticed now counts as seen
// now: after an operator restart, it waits a whole bound.
func (r *PostgresReconciler) noteSeen(ns, name string, reached bool, heartbeat string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]sighting{}
	}
	key := ns + "/" + name
	prev, known := r.seen[key]
	if !known || reached || heartbeat != prev.heartbeat {
		r.seen[key] = sighting{heartbeat: heartbeat, at: r.now()}
	}
}

// lastSeen is when an instance last showed a sign of life (now when never
// noted).
func (r *PostgresReconciler) lastSeen(ns, name string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.seen[ns+"/"+name]; ok {
		return s.at
	}
	return r.now()
}
