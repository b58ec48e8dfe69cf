package controllers

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/controllers/render"
)

// TestApplyObjectCache: a cache that shows the object as the hub's and already applied
// spares the API server; anything else is read from it (and written when it differs),
// never decided on the cache.
func TestApplyObjectCache(t *testing.T) {
	svc := &v1alpha1.FleetInferenceService{ObjectMeta: metav1.ObjectMeta{Name: "chat", Namespace: "team"}}
	desired := func() *corev1.ConfigMap {
		return &corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{Name: "chat-adapters", Namespace: "team", Labels: render.OwnerLabels(svc)},
			Data:       map[string]string{"adapters": "a,b"},
		}
	}
	// applied is desired as the hub stores it: with its hash, as the cluster's cache has it.
	applied := func(t *testing.T, edit func(*corev1.ConfigMap)) *corev1.ConfigMap {
		u, err := toUnstructured(desired())
		if err != nil {
			t.Fatal(err)
		}
		cm := &corev1.ConfigMap{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, cm); err != nil {
			t.Fatal(err)
		}
		cm.ResourceVersion = "7"
		if edit != nil {
			edit(cm)
		}
		return cm
	}
	foreign := func(cm *corev1.ConfigMap) {
		cm.Labels = map[string]string{render.LabelManagedBy: render.ManagedBy, render.LabelService: "other", render.LabelNamespace: "team"}
	}
	cases := []struct {
		name string
		// cached and live are the object in the cache and in the API server (nil: absent).
		cached, live *corev1.ConfigMap
		noCache      bool
		want         Outcome
		wantReads    int
		wantWrites   int
	}{
		{name: "cached and unchanged: no request", cached: applied(t, nil), live: applied(t, nil), want: Unchanged},
		{name: "no cache given: read", noCache: true, live: applied(t, nil), want: Unchanged, wantReads: 1},
		{name: "not cached yet: read, then created", want: Applied, wantReads: 1, wantWrites: 1},
		{name: "cache lags a write the server has: read, unchanged", cached: applied(t, func(cm *corev1.ConfigMap) { cm.Data["adapters"] = "a" }), live: applied(t, nil), want: Unchanged, wantReads: 1},
		{name: "edited in the member: read, applied", cached: applied(t, func(cm *corev1.ConfigMap) { cm.Data["adapters"] = "x" }), live: applied(t, func(cm *corev1.ConfigMap) { cm.Data["adapters"] = "x" }), want: Applied, wantReads: 1, wantWrites: 1},
		{name: "another hash (an older spec): read, applied", cached: applied(t, func(cm *corev1.ConfigMap) { cm.Annotations[AnnotationAppliedHash] = "old" }), live: applied(t, func(cm *corev1.ConfigMap) { cm.Annotations[AnnotationAppliedHash] = "old" }), want: Applied, wantReads: 1, wantWrites: 1},
		{name: "another service's: read, left alone", cached: applied(t, foreign), live: applied(t, foreign), want: Conflict, wantReads: 1},
		// The cache lags a change on the server: nothing is written, and the change's own
		// event brings the next sync, which the updated cache sends to the server.
		{name: "cache lags a change on the server: nothing written", cached: applied(t, nil), live: applied(t, func(cm *corev1.ConfigMap) { cm.Labels = nil; cm.Data["adapters"] = "x" }), want: Unchanged},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			cache := fake.NewClientBuilder().Build()
			if tc.cached != nil {
				cache = fake.NewClientBuilder().WithObjects(tc.cached).Build()
			}
			var live client.WithWatch = fake.NewClientBuilder().Build()
			if tc.live != nil {
				live = fake.NewClientBuilder().WithObjects(tc.live).Build()
			}
			reads, writes := 0, 0
			c := interceptor.NewClient(live, interceptor.Funcs{
				Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
					reads++
					return c.Get(ctx, key, obj, opts...)
				},
				Apply: func(context.Context, client.WithWatch, runtime.ApplyConfiguration, ...client.ApplyOption) error {
					writes++
					return nil
				},
			})
			var reader client.Reader = cache
			if tc.noCache {
				reader = nil
			}
			got, obj, err := applyOwned(ctx, c, reader, svc, desired())
			if tc.want == Conflict {
				if !IsConflict(err) {
					t.Fatalf("err %v, want a conflict", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("outcome %d, want %d", got, tc.want)
			}
			if reads != tc.wantReads || writes != tc.wantWrites {
				t.Errorf("%d reads and %d writes to the API server, want %d and %d", reads, writes, tc.wantReads, tc.wantWrites)
			}
			if got == Unchanged && (obj == nil || obj.GetKind() != "ConfigMap" || obj.GetName() != "chat-adapters") {
				t.Errorf("unchanged object returned as %v, want the ConfigMap with its kind", obj)
			}
		})
	}

	t.Run("unstructured objects are never read from the cache", func(t *testing.T) {
		u, err := toUnstructured(desired())
		if err != nil {
			t.Fatal(err)
		}
		cache := fake.NewClientBuilder().WithObjects(applied(t, nil)).Build()
		if live, ok := cachedUnchanged(context.Background(), cache, u, u, func(client.Object) bool { return true }); ok {
			t.Errorf("cachedUnchanged(unstructured) = %v, want a read from the server", live)
		}
	})
}
