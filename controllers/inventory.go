package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/controllers/render"
)

// inventoryTTL is how long one listing of a member namespace serves first prunes.
const inventoryTTL = 30 * time.Second

// inventories list, once per member and namespace, every member object the hub owns
// there, for the first prune of each (service, member) pair after the hub starts. That
// prune must find what an earlier hub left behind (a spec changed while no hub ran), so it
// lists every kind the hub may own; done per pair, a restarted hub would list each kind
// once per service, most of its requests at a hundred services.
//
// A listing is good for a pair that this hub has not synced before: the only objects of
// the pair it cannot show were created after it, by this pair's own sync, which keeps
// them. A later prune (a changed set of objects, or a first sync that failed before its
// prune) lists for itself.
type inventories struct {
	m sync.Map // "<member>/<namespace>" -> *inventory
}

type inventory struct {
	mu    sync.Mutex
	taken time.Time
	owned map[string][]ownedRef // by service name
}

// ownedRef is one object an inventory found.
type ownedRef struct {
	gvk schema.GroupVersionKind
	key client.ObjectKey
	uid types.UID
}

// of returns the hub's member objects of the services in namespace ns of member, by
// service name, listed within inventoryTTL. c must read from the API server: a cached
// client would start an informer per kind for these lists.
func (s *inventories) of(ctx context.Context, c client.Reader, member, ns string) (map[string][]ownedRef, error) {
	v, _ := s.m.LoadOrStore(member+"/"+ns, &inventory{})
	inv := v.(*inventory)
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.owned != nil && time.Since(inv.taken) < inventoryTTL {
		return inv.owned, nil
	}
	taken := time.Now()
	owned := map[string][]ownedRef{}
	sel := client.MatchingLabels{render.LabelManagedBy: render.ManagedBy, render.LabelRole: render.RoleMember, render.LabelNamespace: ns}
	for _, gvk := range memberKinds {
		// Metadata only: the labels are what the hub reads.
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		opts := []client.ListOption{sel}
		if !clusterScopedKinds[gvk] {
			opts = append(opts, client.InNamespace(ns))
		}
		if err := c.List(ctx, list, opts...); err != nil {
			if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("list %s: %w", gvk.Kind, err)
		}
		for i := range list.Items {
			obj := &list.Items[i]
			if obj.GetDeletionTimestamp() != nil {
				continue
			}
			svc := obj.GetLabels()[render.LabelService]
			owned[svc] = append(owned[svc], ownedRef{gvk: gvk, key: client.ObjectKeyFromObject(obj), uid: obj.GetUID()})
		}
	}
	inv.owned, inv.taken = owned, taken
	// Nothing holds a listing past its time.
	time.AfterFunc(inventoryTTL, func() {
		inv.mu.Lock()
		defer inv.mu.Unlock()
		if inv.taken.Equal(taken) {
			inv.owned = nil
		}
	})
	return owned, nil
}

// forget drops member's listings.
func (s *inventories) forget(member string) {
	s.m.Range(func(k, _ any) bool {
		if m, _, _ := strings.Cut(k.(string), "/"); m == member {
			s.m.Delete(k)
		}
		return true
	})
}

// deleteListed deletes the listed objects but those in keep, each only if it is still the
// object listed (its UID): one made since is not what the listing saw.
func deleteListed(ctx context.Context, c client.Writer, refs []ownedRef, keep map[string]bool) ([]string, error) {
	var deleted []string
	for _, ref := range refs {
		k := kindKey(ref.gvk, ref.key)
		if keep[k] {
			continue
		}
		obj := &unstructured.Unstructured{}
		obj.SetGroupVersionKind(ref.gvk)
		obj.SetNamespace(ref.key.Namespace)
		obj.SetName(ref.key.Name)
		uid := ref.uid
		err := c.Delete(ctx, obj, client.PropagationPolicy("Background"), client.Preconditions{UID: &uid})
		switch {
		case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
			// Gone since, or replaced.
			continue
		case err != nil:
			return deleted, fmt.Errorf("delete %s: %w", k, err)
		}
		deleted = append(deleted, k)
	}
	return deleted, nil
}
