package bench

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/cmd/hub/app"
)

// floorParallelism is how many objects the bare client applies to one member at once:
// as many as member sync does (its applyParallelism).
const floorParallelism = 8

// floor applies one service's member objects to every member as a bare client would,
// with none of the hub's work around it: no service to place, one server-side apply per
// object, floorParallelism at once per member, every member at once; with read, each
// apply after a read of the object, as the hub reads one it does not hold in its cache
// (to never write over an object it does not own). The harness is cluster-admin, so
// role bindings need not wait for their roles. It is the physical limit of the
// one-service propagation on this machine. The objects carry none of the hub's labels
// (the hub never sees them) and are deleted afterwards.
func (b *fleetBench) floor(run int, read bool) float64 {
	ctx := context.Background()
	name := fmt.Sprintf("bench-floor-r%d", run+1)
	if read {
		name += "-read"
	}
	svc := b.service(name)
	clients := map[string]client.Client{}
	batches := map[string][]*unstructured.Unstructured{}
	for _, m := range b.names {
		cfg := rest.CopyConfig(b.lf.Members[m].Local.RESTConfig())
		cfg.QPS = -1 // no client-side limit, as the hub's member clients
		c, err := client.New(cfg, client.Options{Scheme: app.Scheme()})
		if err != nil {
			b.t.Fatal(err)
		}
		clients[m] = c
		objs := b.render(svc, m)
		us := make([]*unstructured.Unstructured, 0, len(objs))
		for _, obj := range objs {
			kinds, err := memberGVKs([]client.Object{obj})
			if err != nil {
				b.t.Fatal(err)
			}
			raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
			if err != nil {
				b.t.Fatal(err)
			}
			u := &unstructured.Unstructured{Object: raw}
			u.SetGroupVersionKind(kinds[0])
			u.SetLabels(map[string]string{"bench": "floor"})
			unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
			unstructured.RemoveNestedField(u.Object, "status")
			us = append(us, u)
		}
		batches[m] = us
	}
	start := time.Now()
	var all errgroup.Group
	for _, m := range b.names {
		all.Go(func() error {
			var g errgroup.Group
			g.SetLimit(floorParallelism)
			for _, u := range batches[m] {
				g.Go(func() error {
					if read {
						live := &unstructured.Unstructured{}
						live.SetGroupVersionKind(u.GroupVersionKind())
						if err := clients[m].Get(ctx, client.ObjectKeyFromObject(u), live); client.IgnoreNotFound(err) != nil {
							return fmt.Errorf("%s: get %s %s: %w", m, u.GetKind(), u.GetName(), err)
						}
					}
					if err := clients[m].Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("bench-floor"), client.ForceOwnership); err != nil {
						return fmt.Errorf("%s: apply %s %s: %w", m, u.GetKind(), u.GetName(), err)
					}
					return nil
				})
			}
			return g.Wait()
		})
	}
	if err := all.Wait(); err != nil {
		b.t.Fatal(err)
	}
	took := time.Since(start)
	for _, m := range b.names {
		for _, u := range batches[m] {
			if err := clients[m].Delete(ctx, u); client.IgnoreNotFound(err) != nil {
				b.t.Fatalf("%s: delete %s %s: %v", m, u.GetKind(), u.GetName(), err)
			}
		}
	}
	return round(took.Seconds())
}
