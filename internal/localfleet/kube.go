package localfleet

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/inferfleet/inferfleet/fleet"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
)

// EnsureNamespace creates namespace ns and its "default" ServiceAccount if they are missing.
// Local clusters run no token controller, and the hub no ServiceAccount controller at all.
func EnsureNamespace(ctx context.Context, cfg *rest.Config, ns string) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	_, err = cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create service account %s/default: %w", ns, err)
	}
	return nil
}

// nodeDefaults fill in what a NodeSpec leaves out, so any pod without large requests fits.
var nodeDefaults = corev1.ResourceList{
	corev1.ResourceCPU:    resource.MustParse("32"),
	corev1.ResourceMemory: resource.MustParse("256Gi"),
	corev1.ResourcePods:   resource.MustParse("110"),
}

// nodeFor builds the i-th fake node of a cluster. Its InternalIP (10.128.x.y) stays clear of
// the service range (10.0.0.0/16) and kwok's pod range (10.244.0.0/16).
func nodeFor(spec NodeSpec, i int) *corev1.Node {
	capacity := nodeDefaults.DeepCopy()
	maps.Copy(capacity, spec.Capacity)
	labels := map[string]string{
		"kubernetes.io/hostname": spec.Name,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     "amd64",
		"type":                   "kwok",
	}
	maps.Copy(labels, spec.Labels)
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        spec.Name,
			Labels:      labels,
			Annotations: map[string]string{KwokNodeAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
		},
		Spec: corev1.NodeSpec{Taints: slices.Clone(spec.Taints)},
		// Status is kept on create (kubelets register this way); kwok's node-initialize stage
		// keeps capacity/allocatable that are already set.
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity.DeepCopy(),
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("10.128.%d.%d", i/250, i%250+2)},
				{Type: corev1.NodeHostName, Address: spec.Name},
			},
		},
	}
}

// ensureNodes creates the fake nodes, or brings existing ones (a restarted fleet) in line.
func ensureNodes(ctx context.Context, cs kubernetes.Interface, specs []NodeSpec) error {
	api := cs.CoreV1().Nodes()
	for i, spec := range specs {
		want := nodeFor(spec, i)
		_, err := api.Create(ctx, want, metav1.CreateOptions{})
		if err == nil {
			continue
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", spec.Name, err)
		}
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := api.Get(ctx, spec.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if cur.Labels == nil {
				cur.Labels = map[string]string{}
			}
			if cur.Annotations == nil {
				cur.Annotations = map[string]string{}
			}
			maps.Copy(cur.Labels, want.Labels)
			maps.Copy(cur.Annotations, want.Annotations)
			cur.Spec.Taints = want.Spec.Taints
			cur.Spec.Unschedulable = false
			if cur, err = api.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
				return err
			}
			if cur.Status.Capacity == nil {
				cur.Status.Capacity = corev1.ResourceList{}
			}
			if cur.Status.Allocatable == nil {
				cur.Status.Allocatable = corev1.ResourceList{}
			}
			maps.Copy(cur.Status.Capacity, want.Status.Capacity)
			maps.Copy(cur.Status.Allocatable, want.Status.Allocatable)
			cur.Status.Addresses = want.Status.Addresses
			_, err = api.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			return fmt.Errorf("update node %s: %w", spec.Name, err)
		}
	}
	return nil
}

// clearNodeLeases deletes the node leases a previous kwok held, so a fleet restarted in the same
// Dir is taken over at once instead of after the old leases expire.
func clearNodeLeases(ctx context.Context, cs kubernetes.Interface, specs []NodeSpec) error {
	for _, s := range specs {
		err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Delete(ctx, s.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete stale lease of node %s: %w", s.Name, err)
		}
	}
	return nil
}

// waitNodesReady waits until every node is Ready and its lease was renewed after since, which
// proves this fleet's kwok manages it (a node left Ready by an earlier run would not). alive
// fails fast if a component died.
func waitNodesReady(ctx context.Context, cs kubernetes.Interface, specs []NodeSpec, since time.Time, alive func() error) error {
	if len(specs) == 0 {
		return nil
	}
	for {
		pending, err := nodesPending(ctx, cs, specs, since)
		if err == nil {
			if len(pending) == 0 {
				return nil
			}
			err = fmt.Errorf("not Ready: %s", strings.Join(pending, ", "))
		}
		if aerr := alive(); aerr != nil {
			return aerr
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for nodes: %w (%v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func nodesPending(ctx context.Context, cs kubernetes.Interface, specs []NodeSpec, since time.Time) ([]string, error) {
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	leases, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	ready := map[string]bool{}
	for _, n := range nodes.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready[n.Name] = true
			}
		}
	}
	renewed := map[string]bool{}
	for _, l := range leases.Items {
		// Second granularity on the wire: allow for the truncation.
		if l.Spec.RenewTime != nil && !l.Spec.RenewTime.Time.Before(since.Add(-time.Second)) {
			renewed[l.Name] = true
		}
	}
	var pending []string
	for _, s := range specs {
		if !ready[s.Name] || !renewed[s.Name] {
			pending = append(pending, s.Name)
		}
	}
	return pending, nil
}

// register records member m in the hub as package fleet expects: a Secret named after the
// member in fleet.RegistrationNamespace, labelled, holding a kubeconfig that reaches it.
func (f *Fleet) register(ctx context.Context, m *Cluster) error {
	if err := EnsureNamespace(ctx, f.Hub.restConfig, fleet.RegistrationNamespace); err != nil {
		return fmt.Errorf("register %s: %w", m.Name, err)
	}
	cs, err := kubernetes.NewForConfig(f.Hub.restConfig)
	if err != nil {
		return err
	}
	want := fleet.RegistrationSecret(m.Name, fleet.RegistrationNamespace, m.Region, m.kubeconfig, m.Labels)
	api := cs.CoreV1().Secrets(fleet.RegistrationNamespace)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		_, err := api.Create(ctx, want, metav1.CreateOptions{})
		if !apierrors.IsAlreadyExists(err) {
			return err
		}
		// A fleet restarted in the same Dir: ports changed, so the kubeconfig must be replaced.
		cur, err := api.Get(ctx, m.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		upd := want.DeepCopy()
		upd.ResourceVersion = cur.ResourceVersion
		_, err = api.Update(ctx, upd, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("register %s in hub: %w", m.Name, err)
	}
	m.logf("%s: registered in hub (%s/%s)", m.Name, fleet.RegistrationNamespace, m.Name)
	return nil
}
