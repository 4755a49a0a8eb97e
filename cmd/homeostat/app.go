package main

import (
	ctrl "sigs.k8s.io/controller-runtime"

	"homeostat.dev/homeostat/operators/app"
)

func init() {
	controllerSetups = append(controllerSetups, func(mgr ctrl.Manager) error {
		return (&app.Reconciler{Client: mgr.GetClient()}).SetupWithManager(mgr)
	})
}
