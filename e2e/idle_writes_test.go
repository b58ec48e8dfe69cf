package e2e

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/inferfleet/inferfleet/cmd/hub/app"
	"github.com/inferfleet/inferfleet/e2e/framework"
	"github.com/inferfleet/inferfleet/fleet"
	"github.com/inferfleet/inferfleet/internal/localfleet"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

// TestNoOpReconcilesWriteNothing: once a service is Ready and its status has settled, the
// reconciles that an unrelated change wakes (an annotation on the service, and on a
// member's registration Secret, which placement, member sync and route sync all watch)
// change nothing and so write nothing: no apply, no status write, no event, to the hub or
// to any member. Writes are counted on the client side of this process (the hub runs in
// it), by API server. Then the hub restarts, as a new pod would, with nothing changed: it
// confirms the service in sync on every member and writes nothing either.
func TestNoOpReconcilesWriteNothing(t *testing.T) {
	lf := framework.StartLocalFleet(t, localfleet.DefaultMembers())
	stopHub := lf.StartHub(t, app.HubOptions{})
	ctx := context.Background()
	hub := lf.Hub.Client
	svc := createTwoRegionSample(ctx, t, hub)
	key := client.ObjectKeyFromObject(svc)
	framework.Eventually(t, 2*time.Minute, "the sample Ready", func() error {
		return serviceReady(getService(ctx, t, hub, key))
	})
	hubURL, err := url.Parse(lf.Fleet.Hub.Server)
	if err != nil {
		t.Fatal(err)
	}

	// Quiet: the hub has written nothing for 3 s (replicas ready, status settled).
	var before testenv.RequestCounts
	framework.Eventually(t, time.Minute, "the hub idle", func() error {
		a, err := testenv.ReadRequestCounts()
		if err != nil {
			return err
		}
		time.Sleep(3 * time.Second)
		b, err := testenv.ReadRequestCounts()
		if err != nil {
			return err
		}
		if w := b.WritesSince(a); len(w) > 0 {
			return fmt.Errorf("still writing: %v", w)
		}
		before = b
		return nil
	})
	events := eventVersions(ctx, t, hub)
	reconciles := reconcileTotals(t)

	// Two writes of the test's own wake every controller.
	touch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"e2e.inferfleet.dev/touched":"1"}}}`))
	if err := hub.Patch(ctx, svc, touch); err != nil {
		t.Fatal(err)
	}
	reg := &corev1.Secret{}
	reg.Namespace, reg.Name = fleet.RegistrationNamespace, "gke-west"
	if err := hub.Patch(ctx, reg, touch); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 30*time.Second, "placement, member sync and route sync reconciled", func() error {
		now := reconcileTotals(t)
		for _, c := range []string{"placement", "member-sync", "route-sync"} {
			if now[c] <= reconciles[c] {
				return fmt.Errorf("%s: %v reconciles, %v before", c, now[c], reconciles[c])
			}
		}
		return nil
	})
	// Status writes are batched (200 ms, at most one a second) and events are sent in the
	// background: give both time to show.
	time.Sleep(3 * time.Second)
	after, err := testenv.ReadRequestCounts()
	if err != nil {
		t.Fatal(err)
	}
	writes := after.WritesSince(before)
	if writes[hubURL.Host] != 2 {
		t.Errorf("%d writes to the hub, want only the test's own 2: %v", writes[hubURL.Host], writes)
	}
	for host, n := range writes {
		if host != hubURL.Host {
			t.Errorf("%d writes to member %s", n, host)
		}
	}
	sameEvents(t, events, eventVersions(ctx, t, hub))

	t.Run("a restarted hub writes nothing", func(t *testing.T) {
		stopHub()
		statusBefore := getService(ctx, t, hub, key).Status
		regsBefore := registrations(ctx, t, hub)
		events := eventVersions(ctx, t, hub)
		pairs, err := testenv.SyncedPairs()
		if err != nil {
			t.Fatal(err)
		}
		before, err := testenv.ReadRequestCounts()
		if err != nil {
			t.Fatal(err)
		}
		stopHub = lf.StartHub(t, app.HubOptions{})
		members := len(getService(ctx, t, hub, key).Status.Clusters)
		framework.Eventually(t, time.Minute, "the new hub in sync with every member", func() error {
			n, err := testenv.SyncedPairs()
			if err != nil {
				return err
			}
			if n-pairs < members {
				return fmt.Errorf("%d of %d members confirmed", n-pairs, members)
			}
			return nil
		})
		// Its health monitor probes every member (each second) and records what changed.
		time.Sleep(3 * time.Second)
		after, err := testenv.ReadRequestCounts()
		if err != nil {
			t.Fatal(err)
		}
		writes := after.WritesSince(before)
		for host, n := range writes {
			t.Errorf("%d writes to %s (the hub is %s)", n, host, hubURL.Host)
		}
		if d := cmp.Diff(statusBefore, getService(ctx, t, hub, key).Status); d != "" {
			t.Errorf("status changed (-before +after):\n%s", d)
		}
		if d := cmp.Diff(regsBefore, registrations(ctx, t, hub)); d != "" {
			t.Errorf("registrations changed (-before +after):\n%s", d)
		}
		sameEvents(t, events, eventVersions(ctx, t, hub))
	})
}

// sameEvents fails t when events were written between two eventVersions.
func sameEvents(t *testing.T, before, now map[string]string) {
	t.Helper()
	if len(now) != len(before) {
		t.Errorf("events changed: %d before, %d after", len(before), len(now))
		return
	}
	for k, v := range now {
		if before[k] != v {
			t.Errorf("event %s was written again (a series count, say)", k)
		}
	}
}

// registrations are the annotations of the members' registration Secrets, by name.
func registrations(ctx context.Context, t *testing.T, hub client.Client) map[string]map[string]string {
	t.Helper()
	var list corev1.SecretList
	if err := hub.List(ctx, &list, client.InNamespace(fleet.RegistrationNamespace)); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for _, s := range list.Items {
		out[s.Name] = s.Annotations
	}
	return out
}

// eventVersions are the resourceVersions of the hub's events, by namespace/name.
func eventVersions(ctx context.Context, t *testing.T, hub client.Client) map[string]string {
	t.Helper()
	var list corev1.EventList
	if err := hub.List(ctx, &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range list.Items {
		out[e.Namespace+"/"+e.Name] = e.ResourceVersion
	}
	return out
}

// reconcileTotals is controller_runtime_reconcile_total by controller, in this process.
func reconcileTotals(t *testing.T) map[string]float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}
