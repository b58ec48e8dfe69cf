package fleet

import corev1 "k8s.io/api/core/v1"

// Node labels and extended resources GKE puts on accelerator nodes: rendered model servers
// select on them, and the local fleet's fake nodes carry them.
const (
	LabelGKEAccelerator    = "cloud.google.com/gke-accelerator"
	LabelGKETPUAccelerator = "cloud.google.com/gke-tpu-accelerator"
	LabelGKETPUTopology    = "cloud.google.com/gke-tpu-topology"
	LabelComputeClass      = "cloud.google.com/compute-class"

	ResourceGPU corev1.ResourceName = "nvidia.com/gpu"
	ResourceTPU corev1.ResourceName = "google.com/tpu"
)

// The gauges of KV-cache use (0 to 1) a vLLM server exports on /metrics: the current name
// (vLLM 0.10.2 and later) and the one before it (0.6.2 and later).
const (
	VLLMKVCacheMetric    = "vllm:kv_cache_usage_perc"
	VLLMKVCacheMetricOld = "vllm:gpu_cache_usage_perc"
)

// The gauges of a vLLM server's requests: queued for a free slot, and being run.
const (
	VLLMWaitingMetric = "vllm:num_requests_waiting"
	VLLMRunningMetric = "vllm:num_requests_running"
)
