package controllers

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/internal/testenv"
)

// TestFinalizersKeepEachOther: placement and route sync each hold their own finalizer on a
// service, and may read it at the same moment. The second to write from that same copy
// must not undo the first's change, adding or removing: its patch is refused as a
// conflict instead, and goes through once made from a fresh copy.
func TestFinalizersKeepEachOther(t *testing.T) {
	env := testenv.Start(t, testenv.CRDs())
	ctx := context.Background()
	c := env.Client
	svc := createService(ctx, t, c, 2, v1alpha1.PlacementSpec{ClusterSelector: &metav1.LabelSelector{}})
	key := client.ObjectKeyFromObject(svc)
	read := func() *v1alpha1.FleetInferenceService {
		t.Helper()
		got := &v1alpha1.FleetInferenceService{}
		if err := c.Get(ctx, key, got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := func(finalizers ...string) {
		t.Helper()
		got := read().Finalizers
		slices.Sort(got)
		slices.Sort(finalizers)
		if !slices.Equal(got, finalizers) {
			t.Fatalf("finalizers %v, want %v", got, finalizers)
		}
	}

	// Adding.
	placement, routes := read(), read()
	if err := ensureFinalizer(ctx, c, placement, Finalizer); err != nil {
		t.Fatal(err)
	}
	if err := ensureFinalizer(ctx, c, routes, RoutesFinalizer); !apierrors.IsConflict(err) {
		t.Fatalf("adding a finalizer from a stale copy: %v, want a conflict", err)
	}
	want(Finalizer)
	if err := ensureFinalizer(ctx, c, read(), RoutesFinalizer); err != nil {
		t.Fatal(err)
	}
	want(Finalizer, RoutesFinalizer)

	// Removing.
	placement, routes = read(), read()
	if err := removeFinalizer(ctx, c, placement, Finalizer); err != nil {
		t.Fatal(err)
	}
	if err := removeFinalizer(ctx, c, routes, RoutesFinalizer); !apierrors.IsConflict(err) {
		t.Fatalf("removing a finalizer from a stale copy: %v, want a conflict", err)
	}
	want(RoutesFinalizer)
	if err := removeFinalizer(ctx, c, read(), RoutesFinalizer); err != nil {
		t.Fatal(err)
	}
	want()

	// A finalizer already held, or one not held, is not written again.
	if err := ensureFinalizer(ctx, c, read(), Finalizer); err != nil {
		t.Fatal(err)
	}
	before := read()
	if err := ensureFinalizer(ctx, c, before, Finalizer); err != nil {
		t.Fatal(err)
	}
	if err := removeFinalizer(ctx, c, before, RoutesFinalizer); err != nil {
		t.Fatal(err)
	}
	if after := read(); after.ResourceVersion != before.ResourceVersion {
		t.Errorf("nothing to change, yet the service was written (resourceVersion %s -> %s)", before.ResourceVersion, after.ResourceVersion)
	}
}

// createService creates the namespace serving and a service llama there, of replicas
// placed as placement says.
func createService(ctx context.Context, t *testing.T, c client.Client, replicas int32, placement v1alpha1.PlacementSpec) *v1alpha1.FleetInferenceService {
	t.Helper()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "serving"}}); err != nil {
		t.Fatal(err)
	}
	svc := &v1alpha1.FleetInferenceService{
		ObjectMeta: metav1.ObjectMeta{Name: "llama", Namespace: "serving"},
		Spec: v1alpha1.FleetInferenceServiceSpec{
			Model:     v1alpha1.ModelSpec{Name: "meta-llama/Llama-3.1-8B-Instruct"},
			Replicas:  replicas,
			Placement: placement,
		},
	}
	if err := c.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	return svc
}
