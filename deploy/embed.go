// Package deploy holds homeostat's installation manifests — the CRDs, RBAC
// and the controller Deployment, a kustomize base — and embeds them in the
// binary so `homeostat install` applies exactly what `kubectl apply -k deploy/`
// would.
package deploy

import "embed"

// CRDs are the generated CustomResourceDefinitions, one file per kind.
//
//go:embed crds/*.yaml
var CRDs embed.FS
