package sync

import (
	"strings"
	"testing"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

func TestComputeStatusOfOperatorKinds(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       status.Status
		message    string
	}{
		{"new Postgres, no status yet", `
apiVersion: homeostat.dev/v1alpha1
kind: Postgres
metadata: {name: db, generation: 1}
`, status.InProgressStatus, "observe Postgres generation 1"},
		{"Postgres status of an older generation", `
apiVersion: homeostat.dev/v1alpha1
kind: Postgres
metadata: {name: db, generation: 2}
status:
  observedGeneration: 1
  conditions: [{type: Ready, status: "True", reason: ReconciliationSucceeded}]
`, status.InProgressStatus, "generation"},
		{"Postgres bootstrapping", `
apiVersion: homeostat.dev/v1alpha1
kind: Postgres
metadata: {name: db, generation: 1}
status:
  observedGeneration: 1
  conditions:
  - {type: Ready, status: "False", reason: Bootstrapping, message: initdb running}
  - {type: Reconciling, status: "True", reason: Bootstrapping, message: initdb running}
`, status.InProgressStatus, "initdb running"},
		{"Pipeline observed without conditions", `
apiVersion: homeostat.dev/v1alpha1
kind: Pipeline
metadata: {name: shop, generation: 1}
status: {observedGeneration: 1}
`, status.InProgressStatus, "no Ready condition"},
		{"Pipeline not Ready", `
apiVersion: homeostat.dev/v1alpha1
kind: Pipeline
metadata: {name: shop, generation: 2}
status:
  observedGeneration: 2
  conditions: [{type: Ready, status: "False", reason: PollFailed, message: ls-remote failed}]
`, status.InProgressStatus, "ls-remote failed"},
		{"a new App is left to kstatus (its Deployment is waited for)", `
apiVersion: homeostat.dev/v1alpha1
kind: App
metadata: {name: shop, generation: 1}
`, status.CurrentStatus, ""},
		{"Postgres stalled", `
apiVersion: homeostat.dev/v1alpha1
kind: Postgres
metadata: {name: db, generation: 1}
status:
  observedGeneration: 1
  conditions:
  - {type: Stalled, status: "True", reason: SecretNotFound, message: secret s3-creds not found}
  - {type: Ready, status: "False", reason: SecretNotFound}
`, status.FailedStatus, "s3-creds"},
		{"Pipeline Ready", `
apiVersion: homeostat.dev/v1alpha1
kind: Pipeline
metadata: {name: shop, generation: 4}
status:
  observedGeneration: 4
  conditions: [{type: Ready, status: "True", reason: Polling}]
`, status.CurrentStatus, ""},
		{"Sync is left to kstatus (it may apply itself)", `
apiVersion: homeostat.dev/v1alpha1
kind: Sync
metadata: {name: self, generation: 1}
`, status.CurrentStatus, ""},
		{"a ConfigMap is Current once it exists", `
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
`, status.CurrentStatus, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &unstructured.Unstructured{}
			if err := utilyaml.Unmarshal([]byte(tt.yaml), &u.Object); err != nil {
				t.Fatal(err)
			}
			res, err := computeStatus(u)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tt.want || !strings.Contains(res.Message, tt.message) {
				t.Fatalf("got %s %q, want %s containing %q", res.Status, res.Message, tt.want, tt.message)
			}
		})
	}
}
