package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/controllers/render"
)

// releaseNamespace deletes a member namespace the hub created once none of the hub's
// Deployments remains in it but those leaving says are on their way out. It reports
// whether it deleted the namespace.
//
// Both member sync (a service's model servers) and route sync (a regional Gateway's
// body-based router) call it after deleting their own objects. Each deletes first and
// then lists live, so of two cleanups running together at least one sees the other's
// Deployments gone: the namespace never outlives the last of them. A cached list could
// still hold them, and then neither would delete it.
func releaseNamespace(ctx context.Context, c client.Client, live client.Reader, namespace string, leaving func(*unstructured.Unstructured) bool) (bool, error) {
	ns := &corev1.Namespace{}
	if err := c.Get(ctx, client.ObjectKey{Name: namespace}, ns); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	if ns.Annotations[render.AnnotationCreatedNamespace] != "true" || !ns.DeletionTimestamp.IsZero() {
		return false, nil
	}
	others := &unstructured.UnstructuredList{}
	others.SetGroupVersionKind(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DeploymentList"})
	if err := live.List(ctx, others, client.InNamespace(namespace), client.MatchingLabels{render.LabelManagedBy: render.ManagedBy}); err != nil {
		return false, err
	}
	for i := range others.Items {
		if o := &others.Items[i]; o.GetDeletionTimestamp() == nil && !leaving(o) {
			return false, nil
		}
	}
	if err := c.Delete(ctx, ns); err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("delete namespace %s: %w", namespace, err)
	}
	return true, nil
}

// CleanMember deletes from a member every object the hub wrote there for any service (its
// member objects: label app.kubernetes.io/managed-by=inferfleet-hub and role member), then
// each namespace the hub created in which nothing of the hub's remains. It is `fleetctl
// cluster unjoin --cleanup`, run with the member's own credentials once the hub no longer
// manages it. It returns what it deleted.
func CleanMember(ctx context.Context, c client.Client) ([]string, error) {
	sel := client.MatchingLabels{render.LabelManagedBy: render.ManagedBy, render.LabelRole: render.RoleMember}
	deleted, err := deleteUnkept(ctx, c, sel, metav1.NamespaceAll, memberKinds, clusterScopedKinds, nil, func(client.Object) bool { return true })
	if err != nil {
		return deleted, err
	}
	var namespaces corev1.NamespaceList
	if err := c.List(ctx, &namespaces, client.MatchingLabels{render.LabelManagedBy: render.ManagedBy}); err != nil {
		return deleted, fmt.Errorf("list namespaces: %w", err)
	}
	for _, ns := range namespaces.Items {
		released, err := releaseNamespace(ctx, c, c, ns.Name, func(*unstructured.Unstructured) bool { return false })
		if err != nil {
			return deleted, fmt.Errorf("namespace %s: %w", ns.Name, err)
		}
		if released {
			deleted = append(deleted, "Namespace/"+ns.Name)
		}
	}
	return deleted, nil
}
