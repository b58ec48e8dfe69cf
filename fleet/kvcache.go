package fleet

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

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

// ReadKVCache scrapes /metrics on port of every running pod that selector matches, through
// the member's API server (pods/proxy): the hub reaches members only there, and a pod's
// address is rarely routable from the config cluster. Pods that fail or lack the metric are
// left out; when none reports, the error wraps ErrNoKVCache with their reasons.
func ReadKVCache(ctx context.Context, pods corev1client.PodInterface, selector labels.Selector, port int32) (KVCache, error) {
	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return KVCache{}, fmt.Errorf("list model server pods: %w", err)
	}
	var sum float64
	var n int
	var why []string
	for _, p := range list.Items {
		if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" || !p.DeletionTimestamp.IsZero() {
			continue
		}
		raw, err := pods.ProxyGet("http", p.Name, strconv.Itoa(int(port)), "metrics", nil).DoRaw(ctx)
		if err != nil {
			why = append(why, fmt.Sprintf("%s: %v", p.Name, err))
			continue
		}
		v, ok := kvCacheValue(raw)
		if !ok {
			why = append(why, fmt.Sprintf("%s: no %s in /metrics", p.Name, KVCacheMetrics[0]))
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

// kvCacheValue reads the KV-cache gauge from a Prometheus text exposition: the mean of its
// series (one per model a server runs), by the first name in KVCacheMetrics present.
func kvCacheValue(exposition []byte) (float64, bool) {
	values := map[string][]float64{}
	sc := bufio.NewScanner(bytes.NewReader(exposition))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if !isKVCacheMetric(name) {
			continue
		}
		if strings.HasPrefix(rest, "{") {
			// Label values may hold spaces and braces, but not an unescaped quote.
			end := closingBrace(rest)
			if end < 0 {
				continue
			}
			rest = rest[end+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			values[name] = append(values[name], v)
		}
	}
	for _, m := range KVCacheMetrics {
		if vs := values[m]; len(vs) > 0 {
			var sum float64
			for _, v := range vs {
				sum += v
			}
			return sum / float64(len(vs)), true
		}
	}
	return 0, false
}

func isKVCacheMetric(name string) bool {
	for _, m := range KVCacheMetrics {
		if name == m {
			return true
		}
	}
	return false
}

// closingBrace finds the brace that closes a label set, skipping quoted values.
func closingBrace(s string) int {
	quoted, escaped := false, false
	for i, r := range s {
		switch {
		case escaped:
			escaped = false
		case r == '\\':
			escaped = true
		case r == '"':
			quoted = !quoted
		case r == '}' && !quoted:
			return i
		}
	}
	return -1
}
