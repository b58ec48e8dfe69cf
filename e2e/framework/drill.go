package framework

import (
	"context"
	"testing"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	mcmanager "sigs.k8s.io/multicluster-runtime/pkg/manager"

	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/controllers"
)

// StartDrillController runs the hub's drill controller alone on env until the test ends:
// tests then play member sync's part by writing the services' status by hand.
func StartDrillController(t testing.TB, env *Env) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	// A nil provider makes a manager of the local cluster only.
	mgr, err := mcmanager.New(env.Config, nil, manager.Options{
		Scheme:                 app.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	local := mgr.GetLocalManager()
	r := &controllers.DrillReconciler{Hub: local.GetClient(), Recorder: local.GetEventRecorder("drill-test"), SkipNameValidation: true}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ManagerStopped(t, "manager", mgr.Start(ctx))
	}()
	t.Cleanup(func() { cancel(); <-done })
}
