package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// KVCacheMetrics are the gauges of KV-cache use (0 to 1) a vLLM server exports on /metrics,
// in the order they are looked for: vLLM 0.10 renamed the second to the first.
var KVCacheMetrics = []string{VLLMKVCacheMetric, VLLMKVCacheMetricOld}

// ErrNoKVCache is returned when no model server of a cluster reported its KV-cache use.
var ErrNoKVCache = errors.New("no model server reported KV-cache use")

// KVCache is the KV-cache use a cluster's model servers report.
type KVCache struct {
	// Utilization is the mean over the servers that reported, from 0 to 1.
	Utilization float64
	// Servers is how many servers reported.
	Servers int
}

// ServerReading is one model server's load as last read from its /metrics.
type ServerReading struct {
	Pod string
	// Ready: the pod is running and Ready. A server that is starting is read too, but its
	// load does not count as a ready server's.
	Ready bool
	// Values are the vLLM gauges it exports (the mean over its series), by metric name.
	Values map[string]float64
	// Err is why it could not be read (Values is then empty).
	Err error
}

// KVCache is the server's KV-cache use, by the first name in KVCacheMetrics it exports.
func (r ServerReading) KVCache() (float64, bool) {
	for _, m := range KVCacheMetrics {
		if v, ok := r.Values[m]; ok {
			return v, true
		}
	}
	return 0, false
}

// Servers are the model servers of one service in one cluster: those read, and how many
// more are not running yet.
type Servers struct {
	Read []ServerReading
	// Pending are pods not running yet (scheduling, pulling, starting containers).
	Pending int
}

// ReadServers scrapes /metrics on port of every running pod that selector matches, through
// the member's API server (pods/proxy): the hub reaches members only there, and a pod's
// address is rarely routable from the config cluster. It fails only when the pods cannot
// be listed; a server that does not answer has its Err.
func ReadServers(ctx context.Context, pods corev1client.PodInterface, selector labels.Selector, port int32) (Servers, error) {
	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return Servers{}, fmt.Errorf("list model server pods: %w", err)
	}
	var out Servers
	for _, p := range list.Items {
		if !p.DeletionTimestamp.IsZero() || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
			out.Pending++
			continue
		}
		r := ServerReading{Pod: p.Name, Ready: podReady(&p)}
		raw, err := pods.ProxyGet("http", p.Name, strconv.Itoa(int(port)), "metrics", nil).DoRaw(ctx)
		if err != nil {
			r.Err = err
		} else {
			r.Values = gaugeMeans(raw, vllmGauges)
		}
		out.Read = append(out.Read, r)
	}
	return out, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ErrNoServerAnswered is returned when none of a cluster's running model servers answered.
var ErrNoServerAnswered = errors.New("no model server answered")

// Unanswered is nil when a running server answered (with or without the metrics looked
// for), or when none is running yet; otherwise it wraps ErrNoServerAnswered with their
// reasons.
func (s Servers) Unanswered() error {
	var why []string
	for _, r := range s.Read {
		if r.Err == nil {
			return nil
		}
		why = append(why, fmt.Sprintf("%s: %v", r.Pod, r.Err))
	}
	if len(why) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrNoServerAnswered, strings.Join(why, "; "))
}

// ReadKVCache is the mean KV-cache use of the servers ReadServers reads; when none
// reports it, the error wraps ErrNoKVCache with their reasons.
func ReadKVCache(ctx context.Context, pods corev1client.PodInterface, selector labels.Selector, port int32) (KVCache, error) {
	servers, err := ReadServers(ctx, pods, selector, port)
	if err != nil {
		return KVCache{}, err
	}
	return servers.KVCache(selector)
}

// KVCache is the mean KV-cache use over the servers that report it.
func (s Servers) KVCache(selector labels.Selector) (KVCache, error) {
	var sum float64
	var n int
	var why []string
	for _, r := range s.Read {
		if r.Err != nil {
			why = append(why, fmt.Sprintf("%s: %v", r.Pod, r.Err))
			continue
		}
		v, ok := r.KVCache()
		if !ok {
			why = append(why, fmt.Sprintf("%s: no %s in /metrics", r.Pod, KVCacheMetrics[0]))
			continue
		}
		sum += v
		n++
	}
	if n == 0 {
		if len(why) == 0 {
			why = append(why, "no running pod matches "+selector.String())
		}
		return KVCache{}, fmt.Errorf("%w: %s", ErrNoKVCache, strings.Join(why, "; "))
	}
	return KVCache{Utilization: sum / float64(n), Servers: n}, nil
}

// vllmGauges are the gauges read from each server.
var vllmGauges = []string{VLLMKVCacheMetric, VLLMKVCacheMetricOld, VLLMWaitingMetric, VLLMRunningMetric}

// gaugeMeans reads the named gauges from a Prometheus text exposition: per name, the mean
// of its series (one per model a server runs). An exposition that does not parse yields
// nothing.
func gaugeMeans(exposition []byte, names []string) map[string]float64 {
	out := map[string]float64{}
	families, err := parseExposition(exposition)
	if err != nil {
		return out
	}
	for _, name := range names {
		f := families[name]
		if f == nil || len(f.GetMetric()) == 0 {
			continue
		}
		var sum float64
		for _, m := range f.GetMetric() {
			sum += sampleValue(m)
		}
		out[name] = sum / float64(len(f.GetMetric()))
	}
	return out
}

// parseExposition parses a Prometheus text exposition (vLLM's metric names hold colons,
// which the UTF-8 scheme accepts as the legacy one does).
func parseExposition(exposition []byte) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(bytes.NewReader(exposition))
}

// sampleValue is a gauge's, counter's or untyped sample's value.
func sampleValue(m *dto.Metric) float64 {
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	default:
		return m.GetUntyped().GetValue()
	}
}
