package controllers_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/inferfleet/inferfleet/e2e/framework"
)

// TestMemberCachesStartAtEngage: a member's caches for every kind the hub watches there
// start when the member is engaged, before any service is placed on it, so that the first
// service is applied from warm caches. The member's API server counts the watches open on
// it; a fresh one has no other client but itself, whose own watches are counted before
// the member is registered.
func TestMemberCachesStartAtEngage(t *testing.T) {
	f := startFleet(t)
	ctx := context.Background()
	member := framework.Start(t, framework.CRDs())
	watched := []string{"deployments", "inferencepools", "configmaps", "services", "secrets", "serviceaccounts", "roles", "rolebindings"}

	before, err := openWatches(ctx, member.Config)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := framework.Kubeconfig(member.Config, "west")
	if err != nil {
		t.Fatal(err)
	}
	if err := framework.RegisterMember(ctx, f.hub.Client, "west", "europe-west3", nil, kc); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the hub watching every owned kind in the member it engaged", func() error {
		now, err := openWatches(ctx, member.Config)
		if err != nil {
			return err
		}
		for _, r := range watched {
			if now[r] <= before[r] {
				return fmt.Errorf("%s: %v open watches, %v before the member was registered", r, now[r], before[r])
			}
		}
		return nil
	})
	// The hub has its caches for the member, and they are synced.
	cl, err := f.mgr.GetCluster(ctx, "west")
	if err != nil {
		t.Fatal(err)
	}
	syncCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if !cl.GetCache().WaitForCacheSync(syncCtx) {
		t.Error("the member's caches did not sync")
	}
}

// openWatches is apiserver_longrunning_requests{verb="WATCH"} of an API server, by
// resource.
func openWatches(ctx context.Context, cfg *rest.Config) (map[string]float64, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	raw, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	f, ok := families["apiserver_longrunning_requests"]
	if !ok {
		return nil, fmt.Errorf("the API server exports no apiserver_longrunning_requests")
	}
	out := map[string]float64{}
	for _, m := range f.GetMetric() {
		var verb, resource string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "verb":
				verb = l.GetValue()
			case "resource":
				resource = l.GetValue()
			}
		}
		if verb == "WATCH" {
			out[resource] += m.GetGauge().GetValue()
		}
	}
	return out, nil
}
