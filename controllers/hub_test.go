package controllers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	mcmanager "sigs.k8s.io/multicluster-runtime/pkg/manager"
	"sigs.k8s.io/multicluster-runtime/pkg/multicluster"

	"github.com/inferfleet/inferfleet/cmd/hub/app"
)

// TestHubRateLimits: the hub's client-side rate limits reach the rest.Config of the hub and
// of every member it engages (a member registered by kubeconfig has none of its own, and
// client-go's default of 5 per second would queue a busy member's writes).
func TestHubRateLimits(t *testing.T) {
	f := startFleetWith(t, app.HubOptions{HubQPS: 11, HubBurst: 13, MemberQPS: 7, MemberBurst: 9, MemberTimeout: 4 * time.Second}, "gke-west")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c := f.mgr.GetLocalManager().GetConfig(); c.QPS != 11 || c.Burst != 13 {
		t.Errorf("hub rest.Config QPS %v burst %d, want 11 and 13", c.QPS, c.Burst)
	}
	member := engagedConfig(ctx, t, f.mgr, "gke-west")
	if member.QPS != 7 || member.Burst != 9 || member.Timeout != 4*time.Second {
		t.Errorf("member rest.Config QPS %v burst %d timeout %s, want 7, 9 and 4s", member.QPS, member.Burst, member.Timeout)
	}
	// The caller's rest.Config is not changed.
	if f.hub.Config.QPS == 11 {
		t.Error("NewHub changed the rest.Config it was given")
	}

	// Unset, the hub keeps its rest.Config's limit and members have none.
	o := app.HubOptions{MetricsAddr: "0", ProbeAddr: "0", SeveralPerProcess: true}
	own := rest.CopyConfig(f.hub.Config)
	own.QPS, own.Burst = 3, 4
	mgr, err := app.NewHub(ctx, own, o)
	if err != nil {
		t.Fatal(err)
	}
	if c := mgr.GetLocalManager().GetConfig(); c.QPS != 3 || c.Burst != 4 {
		t.Errorf("a config's own limits: %v/%d, want 3/4", c.QPS, c.Burst)
	}
	g := startFleetWith(t, app.HubOptions{}, "gke-east")
	member = engagedConfig(ctx, t, g.mgr, "gke-east")
	if member.QPS >= 0 {
		t.Errorf("member rest.Config QPS %v by default, want the client-side limit off (< 0)", member.QPS)
	}

	o.MemberBurst = -1
	if _, err := app.NewHub(ctx, f.hub.Config, o); err == nil || !strings.Contains(err.Error(), "must not be negative") {
		t.Errorf("negative member burst: %v", err)
	}
}

// engagedConfig waits until the hub has engaged a member and returns its rest.Config.
func engagedConfig(ctx context.Context, t *testing.T, mgr mcmanager.Manager, name string) *rest.Config {
	t.Helper()
	var cfg *rest.Config
	eventually(t, 20*time.Second, name+" engaged", func() error {
		cl, err := mgr.GetCluster(ctx, multicluster.ClusterName(name))
		if err != nil {
			return err
		}
		cfg = cl.GetConfig()
		return nil
	})
	return cfg
}
