package localfleet

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// RemoveNodes simulates losing accelerator capacity while the cluster's API stays up: it
// deletes the fake nodes whose labels match, and their pods at once (the pod garbage
// collector would wait out its quarantine), so replacement pods stay Pending. It returns
// the names removed.
func (c *Cluster) RemoveNodes(ctx context.Context, selector map[string]string) ([]string, error) {
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		return nil, err
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(selector).String()})
	if err != nil {
		return nil, fmt.Errorf("%s: list nodes: %w", c.Name, err)
	}
	var removed []string
	for _, n := range nodes.Items {
		if err := cs.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{}); err != nil {
			return removed, fmt.Errorf("%s: delete node %s: %w", c.Name, n.Name, err)
		}
		pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + n.Name})
		if err != nil {
			return removed, fmt.Errorf("%s: list pods on %s: %w", c.Name, n.Name, err)
		}
		for _, p := range pods.Items {
			_ = cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
		}
		removed = append(removed, n.Name)
	}
	return removed, nil
}

// RestoreNodes brings the cluster's fake nodes back (those RemoveNodes deleted) and waits
// until kwok reports them Ready.
func (c *Cluster) RestoreNodes(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		return err
	}
	since := time.Now()
	if err := ensureNodes(ctx, cs, c.Nodes); err != nil {
		return fmt.Errorf("%s: %w", c.Name, err)
	}
	return waitNodesReady(ctx, cs, c.Nodes, since.Add(-5*time.Second), func() error { return nil })
}
