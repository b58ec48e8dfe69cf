package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
	"github.com/inferfleet/inferfleet/controllers/render"
)

// FieldManager is the one field manager of every write the hub makes.
const FieldManager = "inferfleet-hub"

// AnnotationAppliedHash records the hash of what the hub last applied, so a changed
// desired object is applied even where a subset comparison would not notice (a removed
// map key, for example).
const AnnotationAppliedHash = "fleet.inferfleet.dev/applied-hash"

// Outcome is what applying one object did.
type Outcome int

const (
	// Unchanged: the live object already matched; nothing was written.
	Unchanged Outcome = iota
	// Applied: the object was created or updated.
	Applied
	// Conflict: an object of that name exists and is not ours; it was left alone.
	Conflict
)

// ConflictError names an object the hub refuses to overwrite.
type ConflictError struct {
	GVK  schema.GroupVersionKind
	Key  client.ObjectKey
	Held string
}

func (e *ConflictError) Error() string {
	if e.GVK.Kind == "" {
		return "objects exist that this service does not own" + e.Held
	}
	return kindKey(e.GVK, e.Key) + " exists and is not owned by this service" + e.Held + ": left unchanged"
}

// NotServedError says a cluster lacks the kind of an object the hub applies: its CRD is
// not installed there.
type NotServedError struct {
	GVK schema.GroupVersionKind
	Err error
}

func (e *NotServedError) Error() string {
	return fmt.Sprintf("the cluster does not serve %s (%s): install its CRD there (config/crd/external and config/crd/third-party hold them)", e.GVK.Kind, e.GVK.GroupVersion())
}

func (e *NotServedError) Unwrap() error { return e.Err }

// IsConflict reports whether err is a ConflictError.
func IsConflict(err error) bool {
	_, ok := err.(*ConflictError)
	return ok
}

// toUnstructured converts a rendered object (TypeMeta set) into the form the hub applies,
// stamped with the hash of its content.
func toUnstructured(obj client.Object) (*unstructured.Unstructured, error) {
	var u *unstructured.Unstructured
	if uu, ok := obj.(*unstructured.Unstructured); ok {
		u = uu.DeepCopy()
	} else {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return nil, err
		}
		u = &unstructured.Unstructured{Object: m}
	}
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	if u.GetKind() == "" || u.GetAPIVersion() == "" {
		return nil, fmt.Errorf("rendered %T %s has no apiVersion/kind", obj, obj.GetName())
	}
	raw, err := json.Marshal(u.Object)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	ann := u.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AnnotationAppliedHash] = hex.EncodeToString(sum[:12])
	u.SetAnnotations(ann)
	return u, nil
}

// applyOwned makes desired exist in a cluster through c, which must read live (uncached)
// unstructured objects. It writes nothing when the live object already matches, and
// never touches an object that svc does not own.
//
// cache, when not nil, holds desired's kind (typed, as the cluster's informers do): an
// object it shows as svc's and already matching is Unchanged without a request.
func applyOwned(ctx context.Context, c client.Client, cache client.Reader, svc *v1alpha1.FleetInferenceService, desired client.Object) (Outcome, *unstructured.Unstructured, error) {
	return applyObject(ctx, c, cache, desired, func(live client.Object) bool { return render.OwnedBy(live, svc) })
}

// applyObject is applyOwned with the ownership test given: ours(live) says whether an
// existing object of that name may be written.
func applyObject(ctx context.Context, c client.Client, cache client.Reader, desired client.Object, ours func(live client.Object) bool) (Outcome, *unstructured.Unstructured, error) {
	u, err := toUnstructured(desired)
	if err != nil {
		return Unchanged, nil, err
	}
	if cache != nil {
		if live, ok := cachedUnchanged(ctx, cache, desired, u, ours); ok {
			return Unchanged, live, nil
		}
	}
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(u.GroupVersionKind())
	key := client.ObjectKeyFromObject(u)
	switch err := c.Get(ctx, key, live); {
	case meta.IsNoMatchError(err):
		return Unchanged, nil, &NotServedError{GVK: u.GroupVersionKind(), Err: err}
	case apierrors.IsNotFound(err):
		// create below
	case err != nil:
		return Unchanged, nil, fmt.Errorf("get %s %s: %w", u.GetKind(), key, err)
	case !ours(live):
		held := ""
		if s := live.GetLabels()[render.LabelService]; s != "" {
			held = fmt.Sprintf(" (it belongs to service %s/%s)", live.GetLabels()[render.LabelNamespace], s)
		}
		return Conflict, live, &ConflictError{GVK: u.GroupVersionKind(), Key: key, Held: held}
	case live.GetAnnotations()[AnnotationAppliedHash] == u.GetAnnotations()[AnnotationAppliedHash] && covers(live.Object, u.Object):
		return Unchanged, live, nil
	}
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
			// An apply creates what is missing: NotFound means the kind is.
			return Unchanged, nil, &NotServedError{GVK: u.GroupVersionKind(), Err: err}
		}
		return Unchanged, nil, fmt.Errorf("apply %s %s: %w", u.GetKind(), key, err)
	}
	return Applied, u, nil
}

// cachedUnchanged reports whether cache shows desired's object as ours and already
// holding u (desired as the hub applies it), and returns it. Anything else (not in the
// cache, not ours, changed, or a cache that lags a write) goes to the API server: the
// cache only spares reads, and a write is never decided on it. A cached object that
// lags a change in the member is read again when that change's event arrives.
func cachedUnchanged(ctx context.Context, cache client.Reader, desired client.Object, u *unstructured.Unstructured, ours func(client.Object) bool) (*unstructured.Unstructured, bool) {
	if _, ok := desired.(*unstructured.Unstructured); ok {
		return nil, false
	}
	obj, ok := reflect.New(reflect.TypeOf(desired).Elem()).Interface().(client.Object)
	if !ok || cache.Get(ctx, client.ObjectKeyFromObject(u), obj) != nil || !ours(obj) ||
		obj.GetAnnotations()[AnnotationAppliedHash] != u.GetAnnotations()[AnnotationAppliedHash] {
		return nil, false
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, false
	}
	// Typed objects from an informer carry no apiVersion and kind.
	live := &unstructured.Unstructured{Object: m}
	live.SetGroupVersionKind(u.GroupVersionKind())
	if !covers(live.Object, u.Object) {
		return nil, false
	}
	return live, true
}

// covers reports whether live holds every value desired sets. Maps may hold more keys
// (API server defaults, other managers' fields); lists must match element by element, so
// a removed list entry counts as drift.
func covers(live, desired any) bool {
	switch d := desired.(type) {
	case map[string]any:
		l, ok := live.(map[string]any)
		if !ok {
			return len(d) == 0 && live == nil
		}
		for k, dv := range d {
			if !covers(l[k], dv) {
				return false
			}
		}
		return true
	case []any:
		l, ok := live.([]any)
		if !ok || len(l) != len(d) {
			return len(d) == 0 && live == nil
		}
		for i := range d {
			if !covers(l[i], d[i]) {
				return false
			}
		}
		return true
	case int64:
		switch l := live.(type) {
		case int64:
			return l == d
		case float64:
			return l == float64(d)
		}
		return false
	case nil:
		return true
	default:
		return reflect.DeepEqual(live, desired)
	}
}

// deleteOwned deletes svc's objects of one role and the given kinds in a cluster, except those in keep
// (keyed by kindKey). Kinds the cluster does not serve are skipped. It returns what it
// deleted.
func deleteOwned(ctx context.Context, c client.Client, svc *v1alpha1.FleetInferenceService, role string, kinds []schema.GroupVersionKind, clusterScoped map[schema.GroupVersionKind]bool, keep map[string]bool) ([]string, error) {
	sel := client.MatchingLabels{render.LabelService: svc.Name, render.LabelNamespace: svc.Namespace, render.LabelManagedBy: render.ManagedBy, render.LabelRole: role}
	return deleteUnkept(ctx, c, sel, svc.Namespace, kinds, clusterScoped, keep, func(client.Object) bool { return true })
}

// deleteUnkept deletes the objects of the given kinds that sel matches (namespaced ones in
// ns) and ours accepts, except those in keep. Kinds the cluster does not serve are
// skipped. It returns what it deleted.
func deleteUnkept(ctx context.Context, c client.Client, sel client.MatchingLabels, ns string, kinds []schema.GroupVersionKind, clusterScoped map[schema.GroupVersionKind]bool, keep map[string]bool, ours func(client.Object) bool) ([]string, error) {
	var deleted []string
	for _, gvk := range kinds {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		opts := []client.ListOption{sel}
		if !clusterScoped[gvk] {
			opts = append(opts, client.InNamespace(ns))
		}
		if err := c.List(ctx, list, opts...); err != nil {
			if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
				continue
			}
			return deleted, fmt.Errorf("list %s: %w", gvk.Kind, err)
		}
		for i := range list.Items {
			obj := &list.Items[i]
			obj.SetGroupVersionKind(gvk)
			k := kindKey(gvk, client.ObjectKeyFromObject(obj))
			if keep[k] || obj.GetDeletionTimestamp() != nil || !ours(obj) {
				continue
			}
			if err := c.Delete(ctx, obj, client.PropagationPolicy("Background")); err != nil && !apierrors.IsNotFound(err) {
				return deleted, fmt.Errorf("delete %s: %w", k, err)
			}
			deleted = append(deleted, k)
		}
	}
	return deleted, nil
}

// applySet applies objs, each only where ours accepts the live object, and returns the
// kindKeys of all of them (to keep when pruning). Objects held by others are gathered into
// one ConflictError once the rest are applied; a kind the cluster does not serve stops it.
func applySet(ctx context.Context, c client.Client, objs []client.Object, ours func(client.Object) bool) (map[string]bool, error) {
	keep := map[string]bool{}
	var conflicts []string
	for _, obj := range objs {
		gvk := obj.GetObjectKind().GroupVersionKind()
		keep[kindKey(gvk, client.ObjectKeyFromObject(obj))] = true
		_, _, err := applyObject(ctx, c, nil, obj, ours)
		switch {
		case IsConflict(err):
			conflicts = append(conflicts, err.Error())
		case errors.As(err, new(*NotServedError)):
			return keep, err
		case err != nil:
			return keep, err
		}
	}
	if len(conflicts) > 0 {
		return keep, &ConflictError{Held: ": " + strings.Join(conflicts, "; ")}
	}
	return keep, nil
}

func kindKey(gvk schema.GroupVersionKind, key client.ObjectKey) string {
	if key.Namespace == "" {
		return gvk.Kind + " " + key.Name
	}
	return gvk.Kind + " " + key.String()
}

// ensureFinalizer adds a reconciler's finalizer to a service that lacks it. Its patch is
// conditional on the service's resourceVersion: a merge patch replaces the whole list, so
// one written over another reconciler's concurrent change (adding or removing its own
// finalizer) would undo it. A conflict is the caller's to retry on a newer copy.
func ensureFinalizer(ctx context.Context, c client.Client, svc *v1alpha1.FleetInferenceService, finalizer string) error {
	if controllerutil.ContainsFinalizer(svc, finalizer) {
		return nil
	}
	patch := client.MergeFromWithOptions(svc.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.AddFinalizer(svc, finalizer)
	if err := c.Patch(ctx, svc, patch); err != nil {
		return fmt.Errorf("add finalizer %s: %w", finalizer, err)
	}
	return nil
}

// removeFinalizer takes a reconciler's finalizer off a service, on the same condition as
// ensureFinalizer.
func removeFinalizer(ctx context.Context, c client.Client, svc *v1alpha1.FleetInferenceService, finalizer string) error {
	if !controllerutil.ContainsFinalizer(svc, finalizer) {
		return nil
	}
	patch := client.MergeFromWithOptions(svc.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(svc, finalizer)
	if err := c.Patch(ctx, svc, patch); err != nil {
		return fmt.Errorf("remove finalizer %s: %w", finalizer, err)
	}
	return nil
}
