package fleet

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// PickerRequestMetrics are the endpoint picker's counters of the requests it received
// (gateway-api-inference-extension pkg/epp/metrics): those it scheduled, and those it
// failed, which at zero model servers is every one.
var PickerRequestMetrics = []string{"inference_objective_request_total", "inference_objective_request_error_total"}

// ErrNoPicker is returned when no endpoint picker of the service runs in a cluster.
var ErrNoPicker = errors.New("no endpoint picker running")

// ReadPickerRequests is the sum of PickerRequestMetrics over every running endpoint-picker
// pod selector matches, read from /metrics on port through the member's API server
// (pods/proxy). Every running picker must answer: a partial sum would look like a counter
// reset.
func ReadPickerRequests(ctx context.Context, pods corev1client.PodInterface, selector labels.Selector, port int32) (float64, error) {
	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return 0, fmt.Errorf("list endpoint picker pods: %w", err)
	}
	var sum float64
	running := 0
	for _, p := range list.Items {
		if !p.DeletionTimestamp.IsZero() || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
			continue
		}
		running++
		raw, err := pods.ProxyGet("http", p.Name, strconv.Itoa(int(port)), "metrics", nil).DoRaw(ctx)
		if err != nil {
			return 0, fmt.Errorf("endpoint picker %s: %w", p.Name, err)
		}
		families, err := parseExposition(raw)
		if err != nil {
			return 0, fmt.Errorf("endpoint picker %s: /metrics: %w", p.Name, err)
		}
		for _, name := range PickerRequestMetrics {
			for _, m := range families[name].GetMetric() {
				sum += sampleValue(m)
			}
		}
	}
	if running == 0 {
		return 0, fmt.Errorf("%w (%s)", ErrNoPicker, selector)
	}
	return sum, nil
}

// CounterIncrease is how much a counter rose from prev to now, as Prometheus's increase()
// takes it: a counter that went down was reset, and counts from zero.
func CounterIncrease(prev, now float64) float64 {
	if now < prev {
		return now
	}
	return now - prev
}
