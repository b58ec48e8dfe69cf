package controllers

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/inferfleet/inferfleet/controllers/render"
)

// TestReleaseNamespace: a namespace the hub created goes once no Deployment of the hub's is
// left in it but those the caller is removing, whichever of the hub's objects they are (a
// service's model servers, a Gateway's body-based router); one it did not create never goes.
func TestReleaseNamespace(t *testing.T) {
	ns := func(created bool) *corev1.Namespace {
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "serving"}}
		if created {
			n.Annotations = map[string]string{render.AnnotationCreatedNamespace: "true"}
		}
		return n
	}
	deployment := func(name string, labels map[string]string, deleting bool) *appsv1.Deployment {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "serving", Labels: labels}}
		if deleting {
			d.DeletionTimestamp = &metav1.Time{Time: time.Now()}
			d.Finalizers = []string{"test/hold"}
		}
		return d
	}
	model := func(service string) map[string]string {
		return map[string]string{render.LabelManagedBy: render.ManagedBy, render.LabelService: service, render.LabelRole: render.RoleMember}
	}
	router := render.GatewayLabels("inference-gateway")
	alphaLeaving := func(o *unstructured.Unstructured) bool { return o.GetLabels()[render.LabelService] == "alpha" }
	none := func(*unstructured.Unstructured) bool { return false }
	cases := []struct {
		name    string
		objs    []client.Object
		leaving func(*unstructured.Unstructured) bool
		want    bool
	}{
		{"nothing left", []client.Object{ns(true)}, none, true},
		{"only the leaving service's model servers", []client.Object{ns(true), deployment("alpha", model("alpha"), false)}, alphaLeaving, true},
		{"another service's model servers", []client.Object{ns(true), deployment("beta", model("beta"), false)}, alphaLeaving, false},
		{"a Gateway's body-based router", []client.Object{ns(true), deployment("inference-gateway-bbr", router, false)}, alphaLeaving, false},
		{"a router being deleted", []client.Object{ns(true), deployment("inference-gateway-bbr", router, true)}, none, true},
		{"a user's Deployment does not keep it", []client.Object{ns(true), deployment("mine", nil, false)}, none, true},
		{"not created by the hub", []client.Object{ns(false)}, none, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(tc.objs...).Build()
			got, err := releaseNamespace(ctx, c, c, "serving", tc.leaving)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Get(ctx, client.ObjectKey{Name: "serving"}, &corev1.Namespace{})
			if got != tc.want || got != apierrors.IsNotFound(err) {
				t.Errorf("released %v (namespace get: %v), want %v", got, err, tc.want)
			}
		})
	}
	t.Run("no namespace", func(t *testing.T) {
		c := fake.NewClientBuilder().WithScheme(scheme.Scheme).Build()
		if got, err := releaseNamespace(context.Background(), c, c, "serving", none); got || err != nil {
			t.Errorf("released %v, %v", got, err)
		}
	})
}
