package fleet

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Registry lists the member clusters registered with the hub: kubeconfig Secrets and the
// records discovery sources keep.
type Registry struct {
	Reader    client.Reader
	Namespace string
}

// List returns the registered clusters sorted by name.
func (r *Registry) List(ctx context.Context) ([]Cluster, error) {
	var secrets corev1.SecretList
	if err := r.Reader.List(ctx, &secrets, client.InNamespace(r.Namespace)); err != nil {
		return nil, fmt.Errorf("list cluster registrations in %s: %w", r.Namespace, err)
	}
	out := make([]Cluster, 0, len(secrets.Items))
	for i := range secrets.Items {
		if secrets.Items[i].DeletionTimestamp != nil || !IsRegistration(secrets.Items[i].Labels) {
			continue
		}
		out = append(out, ClusterFromSecret(&secrets.Items[i]))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Registers reports whether obj is a cluster registration of this registry.
func (r *Registry) Registers(obj client.Object) bool {
	return obj.GetNamespace() == r.Namespace && IsRegistration(obj.GetLabels())
}

// ClusterFromSecret reads a cluster's name, region and labels from its registration Secret.
// The region is also a label, so selectors can match on it.
func ClusterFromSecret(s *corev1.Secret) Cluster {
	c := Cluster{Name: s.Name, Region: s.Labels[RegionLabel], Labels: map[string]string{}}
	_, c.Cordoned = s.Annotations[AnnotationCordoned]
	c.SourceUnhealthy = s.Annotations[AnnotationSourceUnhealthy]
	for k, v := range s.Labels {
		if k == KubeconfigLabel || strings.HasPrefix(k, LabelPrefix) {
			continue
		}
		c.Labels[k] = v
	}
	return c
}

// Select returns the clusters a placement picks: by name (in the given order, with the
// names that are not registered), or by label selector.
func Select(all []Cluster, names []string, selector *metav1.LabelSelector) (picked []Cluster, missing []string, err error) {
	if selector != nil {
		sel, err := metav1.LabelSelectorAsSelector(selector)
		if err != nil {
			return nil, nil, fmt.Errorf("placement.clusterSelector: %w", err)
		}
		for _, c := range all {
			if sel.Matches(labels.Set(c.Labels)) {
				picked = append(picked, c)
			}
		}
		return picked, nil, nil
	}
	byName := make(map[string]Cluster, len(all))
	for _, c := range all {
		byName[c.Name] = c
	}
	for _, n := range names {
		if c, ok := byName[n]; ok {
			picked = append(picked, c)
		} else {
			missing = append(missing, n)
		}
	}
	return picked, missing, nil
}
