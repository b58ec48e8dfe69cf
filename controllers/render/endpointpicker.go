// Endpoint picker (EPP) objects of one member cluster.
//
// endpointPicker mirrors what the `inferencepool` Helm chart of
// sigs.k8s.io/gateway-api-inference-extension v1.5.0 (config/charts/inferencepool, with its
// library chart config/charts/epplib) renders for release name svc.Name, release namespace
// svc.Namespace and these values:
//
//	inferencePool.modelServers.matchLabels: {app: <svc.Name>}
//	inferencePool.targetPorts: [{number: <spec.model.server.port>}]
//	inferencePool.modelServerType: vllm, inferencePool.modelServerProtocol: http
//	inferenceExtension.image: <spec.endpointPicker.image> (taken whole)
//	inferenceExtension.replicas: <spec.endpointPicker.replicas>
//	inferenceExtension.failureMode: <spec.endpointPicker.failureMode>
//	provider.name: gke when spec.gateway.provider is GKE, else none
//	inferenceExtension.monitoring.prometheus.enabled: true when
//	  spec.endpointPicker.monitoring.gke is true (provider GKE only), else false
//	everything else: the chart's values.yaml defaults (so monitoring.prometheus.auth.enabled
//	  is true, monitoring.interval is "10s" and provider.gke.autopilot is false).
//
// spec.endpointPicker.monitoring.gke maps to prometheus.enabled, not to the chart's
// inferenceExtension.monitoring.gke.enabled: v1.5.0 reads that value nowhere (it is only
// listed as deprecated in the README), and the GKE monitoring objects render from
// provider gke with prometheus.enabled and prometheus.auth.enabled.
//
// Templates mirrored (everything the chart renders under those values except the
// InferencePool, InferenceObjectives and HTTPRoute, which other renderers own):
//
//   - inferencepool/templates/rbac.yaml: Role and RoleBinding <epp>-non-sa, then
//     epplib _rbac.yaml: Role and RoleBinding <epp>-sa and the ServiceAccount <epp>, and,
//     with monitoring, its ClusterRole and ClusterRoleBinding "<svc.Name>-<ns>-epp"
//     (tokenreviews and subjectaccessreviews create, nonResourceURL /metrics get: the
//     EPP checks the bearer token of whoever scrapes its metrics);
//   - epplib _leader-election-rbac.yaml: Role <epp>-leader-election and RoleBinding
//     <epp>-leader-election-binding, only when replicas > 1;
//   - epplib _config.yaml: ConfigMap <epp> with default-plugins.yaml (the sidecar and
//     latency-predictor ConfigMaps are off by default);
//   - epplib _deployment.yaml: Deployment <epp> (one "epp" container: the sidecar and the
//     latency-predictor containers are off by default). Monitoring changes nothing here:
//     with prometheus.auth.enabled the chart adds no --metrics-endpoint-auth=false;
//   - epplib _service.yaml: Service <epp>;
//   - inferencepool/templates/gke.yaml (provider gke only): HealthCheckPolicy and
//     GCPBackendPolicy <svc.Name> targeting the InferencePool;
//   - epplib _gke.yaml (included by gke.yaml; provider gke with monitoring only): the
//     Managed Prometheus scrape of the EPP's metrics with a token:
//     ServiceAccount <svc.Name>-metrics-reader-sa and its token Secret
//     <svc.Name>-metrics-reader-secret (kubernetes.io/service-account-token), ClusterRole
//     <ns>-<svc.Name>-metrics-reader (/metrics get) and ClusterRoleBinding
//     <ns>-<svc.Name>-metrics-reader-role-binding granting it to that ServiceAccount, Role
//     <svc.Name>-metrics-reader-secret-read (get/list/watch on that Secret only) and
//     RoleBinding gmp-system:collector:<ns>-<svc.Name>-metrics-reader-secret-read
//     granting it to the GMP collector (ServiceAccount collector in gmp-system), and
//     PodMonitoring <svc.Name> (monitoring.googleapis.com/v1) scraping the EPP pods'
//     "metrics" container port at /metrics every 10s with that Secret's token.
//     _sa-token-secret.yaml and _servicemonitor.yaml (the Prometheus Operator path) need a
//     provider other than gke; istio.yaml needs provider istio.
//
// <epp> is EndpointPickerName(svc), "<svc.Name>-epp", the chart's
// "gateway-api-inference-extension.name" (whose default/lower/trim change nothing for a
// valid name).
//
// Differences on purpose:
//   - every object also carries the hub's ownership labels (withLabels), including those
//     the chart leaves unlabelled (ConfigMap, RoleBindings, the metrics-reader
//     ServiceAccount, ClusterRoles, ClusterRoleBindings and Role); the Deployment's
//     selector and pod template labels are exactly the chart's, without ownership labels.
//     The cluster-scoped objects carry them too (their namespace label says whose they are);
//   - app.kubernetes.io/version is "v1.5.0": the chart's source Chart.yaml says "0.0.0",
//     but the published chart is packaged with --app-version v1.5.0 (hack/push-chart.sh);
//   - the chart cuts the release name to 40 characters before adding "-epp"; we do not,
//     because the InferencePool's endpointPickerRef (member.go) names EndpointPickerName(svc)
//     and the two must agree. They differ from the chart only for names of 41 to 58
//     characters, whose "-epp" names (at most 62) are still valid DNS-1035 labels. To be
//     chart-exact there, truncate in EndpointPickerName, which both use;
//   - for the same reason, and so that services in namespaces sharing their first 40
//     characters do not share a cluster-scoped name, the ClusterRole/ClusterRoleBinding
//     "<svc.Name>-<ns>-epp" cuts neither the name nor the namespace to 40 characters as the
//     chart's "cluster-rbac-name" does (which then quotes the result and cuts it to 84
//     characters, cutting off the closing quote, and so breaking the chart's output, when
//     the two together exceed 77). Identical to the chart for names and namespaces of at
//     most 40 characters;
//   - the Role <svc.Name>-metrics-reader-secret-read has no namespace in _gke.yaml (Helm
//     installs it into the release namespace): we render it in svc.Namespace, where the
//     RoleBinding that references it and the Secret it names live;
//   - the Service's ports carry targetPort = port (the API server's default, which the
//     chart relies on): a typed ServicePort would otherwise send targetPort 0;
//   - inferenceExtension.failureMode only reaches the InferencePool (not rendered here), so
//     spec.endpointPicker.failureMode changes none of these objects.
//
// Cluster-scoped names: the two ClusterRoles and ClusterRoleBindings are named after both
// the service and its namespace, so the same service name in two namespaces gets distinct
// objects. Like the chart's, the names join the two with "-", so a service "a-b" in
// namespace "c" and a service "a" in namespace "b-c" would want the same names: the
// second one's apply then reports a conflict (the objects carry the first one's ownership
// labels) rather than overwriting them.
//
// Not rendered: provider.gke.autopilot (the GMP collector of Autopilot clusters lives in
// gke-gmp-system, which would change the collector RoleBinding's name and subject
// namespace) has no field in our API, so the collector binding always names gmp-system.
//
// Objects come in a fixed order: ServiceAccount, with monitoring the metrics-reader
// ServiceAccount and its token Secret (after the ServiceAccount it names, which the token
// controller needs), RBAC (then, with monitoring, the cluster and metrics-reader RBAC),
// ConfigMap, Deployment, Service, then the GKE policies and, with monitoring, the
// PodMonitoring.

package render

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/inferfleet/inferfleet/api/v1alpha1"
)

const (
	// eppChartAppVersion is app.kubernetes.io/version: the published chart's appVersion.
	eppChartAppVersion = "v1.5.0"

	eppContainerName         = "epp"
	eppImagePullPolicy       = corev1.PullAlways // values.yaml inferenceExtension.image.pullPolicy
	eppExtProcPort     int32 = 9002              // values.yaml inferenceExtension.extProcPort
	eppHealthPort      int32 = 9003              // _deployment.yaml grpc-health
	eppMetricsPort     int32 = 9090              // _service.yaml metricsPort default
	// eppPluginsConfigFile is values.yaml inferenceExtension.pluginsConfigFile, a key of
	// the ConfigMap mounted at eppConfigMountPath.
	eppPluginsConfigFile = "default-plugins.yaml"
	eppConfigMountPath   = "/config"
	eppConfigVolume      = "plugins-config-volume"
	eppPoolGroup         = "inference.networking.k8s.io"
	eppTerminationGrace  = int64(130)

	// eppModeLabel is the chart's "modeLabels" key; eppModeInferencePool its value
	// when the chart renders an InferencePool (not standalone).
	eppModeLabel         = "inference.networking.k8s.io/igw-mode"
	eppModeInferencePool = "inferencepool"
	// eppSelectorLabel is the chart's "selectorLabels" key in inferencepool mode.
	eppSelectorLabel = "inferencepool"

	// eppHealthCheckPath is gke.yaml's HealthCheckPolicy requestPath (http protocol).
	eppHealthCheckPath = "/health"
	// eppBackendTimeoutSec is gke.yaml's GCPBackendPolicy timeoutSec.
	eppBackendTimeoutSec = int64(300)

	// eppMetricsPortName is _deployment.yaml's name of the metrics container port, which
	// _gke.yaml's PodMonitoring scrapes (the Service names the same port http-metrics).
	eppMetricsPortName = "metrics"
	// eppMetricsPath is _gke.yaml's PodMonitoring path, the EPP's metrics endpoint.
	eppMetricsPath = "/metrics"
	// eppMonitoringInterval is values.yaml inferenceExtension.monitoring.interval.
	eppMonitoringInterval = "10s"
	// eppGMPNamespace is _gke.yaml's namespace of the Managed Prometheus collector when
	// provider.gke.autopilot is false (the only case our API has).
	eppGMPNamespace = "gmp-system"
	// eppGMPCollector is the collector's ServiceAccount in eppGMPNamespace.
	eppGMPCollector = "collector"
)

// eppPluginsConfig is default-plugins.yaml as _config.yaml renders it for a vllm model
// server over http (no parser plugin), with the latency predictor off and the default
// metricsDataSource (scheme "http", path "/metrics", insecureSkipVerify true).
const eppPluginsConfig = `apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
- type: metrics-data-source
  parameters:
    scheme: "http"
    path: "/metrics"
    insecureSkipVerify: true
- type: core-metrics-extractor
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: kv-cache-utilization-scorer
    weight: 2
  - pluginRef: prefix-cache-scorer
    weight: 3
`

// endpointPicker returns the endpoint picker objects of svc (already defaulted) for a
// member cluster: what the inferencepool chart renders besides the InferencePool,
// InferenceObjectives and HTTPRoute. See the comment at the top of this file.
func endpointPicker(svc *v1alpha1.FleetInferenceService) []client.Object {
	name := EndpointPickerName(svc)
	ns := svc.Namespace
	replicas := svc.Spec.EndpointPicker.Replicas
	if replicas == 0 { // `.Values.inferenceExtension.replicas | default 1`
		replicas = 1
	}
	ha := replicas > 1 // `gt (.Values.inferenceExtension.replicas | int) 1`

	labels := func() map[string]string { return withLabels(svc, eppChartLabels(name)) }
	saSubject := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}
	getWatchList := func() []string { return []string{"get", "watch", "list"} }

	objs := []client.Object{
		// epplib _rbac.yaml
		&corev1.ServiceAccount{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels()},
		},
	}
	monitoring := eppGKEMonitoring(svc)
	if monitoring {
		// epplib _gke.yaml: the metrics reader and its token, the Secret after the
		// ServiceAccount it names.
		objs = append(objs, eppMetricsReader(svc, name)...)
	}
	objs = append(objs,
		// inferencepool/templates/rbac.yaml
		eppRole(name+"-non-sa", ns, labels(), []rbacv1.PolicyRule{
			{APIGroups: []string{"inference.networking.x-k8s.io"}, Resources: []string{"inferenceobjectives", "inferencemodelrewrites"}, Verbs: getWatchList()},
			{APIGroups: []string{eppPoolGroup}, Resources: []string{"inferencepools"}, Verbs: getWatchList()},
		}),
		// The chart gives the RoleBindings no labels: ours carry only the ownership labels.
		eppRoleBinding(name+"-non-sa", ns, withLabels(svc, nil), name+"-non-sa", saSubject),
		// epplib _rbac.yaml
		eppRole(name+"-sa", ns, labels(), []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: getWatchList()},
		}),
		eppRoleBinding(name+"-sa", ns, withLabels(svc, nil), name+"-sa", saSubject),
	)
	if ha {
		// epplib _leader-election-rbac.yaml. Its subject has no namespace, as in the
		// chart: a RoleBinding's ServiceAccount subject defaults to the binding's namespace.
		objs = append(objs,
			eppRole(name+"-leader-election", ns, labels(), []rbacv1.PolicyRule{
				{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
				{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
			}),
			eppRoleBinding(name+"-leader-election-binding", ns, withLabels(svc, nil), name+"-leader-election",
				rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: name}),
		)
	}
	if monitoring {
		objs = append(objs, eppMonitoringRBAC(svc, name, saSubject)...)
	}
	objs = append(objs,
		// epplib _config.yaml: no labels in the chart.
		&corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: withLabels(svc, nil)},
			Data:       map[string]string{eppPluginsConfigFile: eppPluginsConfig},
		},
		eppDeployment(svc, name, replicas, ha),
		eppService(svc, name),
	)
	if svc.Spec.Gateway.Provider == v1alpha1.ProviderGKE {
		objs = append(objs, eppGKEPolicies(svc, name)...)
	}
	if monitoring {
		objs = append(objs, eppPodMonitoring(svc, name))
	}
	return objs
}

// eppGKEMonitoring reports whether svc's endpoint picker metrics go to Managed
// Prometheus: the chart's provider gke with monitoring.prometheus.enabled. Validation
// rejects monitoring.gke without provider GKE; the provider is checked here too because
// the chart renders none of these objects for another provider.
func eppGKEMonitoring(svc *v1alpha1.FleetInferenceService) bool {
	m := svc.Spec.EndpointPicker.Monitoring
	return m != nil && m.GKE && svc.Spec.Gateway.Provider == v1alpha1.ProviderGKE
}

// Names of the epplib _gke.yaml objects, as the template's variables build them.
func eppMetricsReaderSA(svc *v1alpha1.FleetInferenceService) string {
	return svc.Name + "-metrics-reader-sa"
}

func eppMetricsReaderSecret(svc *v1alpha1.FleetInferenceService) string {
	return svc.Name + "-metrics-reader-secret"
}

func eppMetricsReaderRole(svc *v1alpha1.FleetInferenceService) string {
	return svc.Namespace + "-" + svc.Name + "-metrics-reader"
}

func eppSecretReadRole(svc *v1alpha1.FleetInferenceService) string {
	return svc.Name + "-metrics-reader-secret-read"
}

// eppClusterRBACName is the chart's "gateway-api-inference-extension.cluster-rbac-name",
// without its truncations (see the comment at the top of this file).
func eppClusterRBACName(svc *v1alpha1.FleetInferenceService) string {
	return svc.Name + "-" + svc.Namespace + "-epp"
}

// eppMetricsReader is the ServiceAccount and token Secret of epplib _gke.yaml. The
// ServiceAccount has no labels in the chart: ours carries only the ownership labels.
func eppMetricsReader(svc *v1alpha1.FleetInferenceService, name string) []client.Object {
	sa := eppMetricsReaderSA(svc)
	return []client.Object{
		&corev1.ServiceAccount{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: svc.Namespace, Labels: withLabels(svc, nil)},
		},
		&corev1.Secret{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{
				Name:        eppMetricsReaderSecret(svc),
				Namespace:   svc.Namespace,
				Labels:      withLabels(svc, eppChartLabels(name)),
				Annotations: map[string]string{corev1.ServiceAccountNameKey: sa},
			},
			Type: corev1.SecretTypeServiceAccountToken,
		},
	}
}

// eppMonitoringRBAC is the cluster RBAC of epplib _rbac.yaml (ClusterRole and
// ClusterRoleBinding "<svc.Name>-<ns>-epp" for the EPP's ServiceAccount) followed by the
// RBAC of epplib _gke.yaml: the metrics reader's ClusterRole and ClusterRoleBinding, and
// the Role and RoleBinding that let the GMP collector read its token. Only the first
// ClusterRole is labelled in the chart; every object carries the ownership labels.
func eppMonitoringRBAC(svc *v1alpha1.FleetInferenceService, name string, eppSubject rbacv1.Subject) []client.Object {
	ns := svc.Namespace
	clusterName := eppClusterRBACName(svc)
	readerRole := eppMetricsReaderRole(svc)
	secretRead := eppSecretReadRole(svc)
	metricsGet := rbacv1.PolicyRule{NonResourceURLs: []string{eppMetricsPath}, Verbs: []string{"get"}}
	return []client.Object{
		// epplib _rbac.yaml
		&rbacv1.ClusterRole{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{Name: clusterName, Labels: withLabels(svc, eppChartLabels(name))},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
				{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
				metricsGet,
			},
		},
		eppClusterRoleBinding(clusterName, withLabels(svc, nil), clusterName, eppSubject),
		// epplib _gke.yaml
		&rbacv1.ClusterRole{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{Name: readerRole, Labels: withLabels(svc, nil)},
			Rules:      []rbacv1.PolicyRule{metricsGet},
		},
		eppClusterRoleBinding(readerRole+"-role-binding", withLabels(svc, nil), readerRole,
			rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: eppMetricsReaderSA(svc), Namespace: ns}),
		// No namespace in _gke.yaml: Helm puts it in the release namespace.
		eppRole(secretRead, ns, withLabels(svc, nil), []rbacv1.PolicyRule{{
			APIGroups:     []string{""},
			Resources:     []string{"secrets"},
			Verbs:         []string{"get", "list", "watch"},
			ResourceNames: []string{eppMetricsReaderSecret(svc)},
		}}),
		eppRoleBinding(eppGMPNamespace+":"+eppGMPCollector+":"+ns+"-"+secretRead, ns, withLabels(svc, nil), secretRead,
			rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: eppGMPCollector, Namespace: eppGMPNamespace}),
	}
}

func eppClusterRoleBinding(name string, labels map[string]string, role string, subject rbacv1.Subject) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Subjects:   []rbacv1.Subject{subject},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
	}
}

// eppPodMonitoring is epplib _gke.yaml's PodMonitoring: Managed Prometheus scrapes the
// EPP pods (the Deployment's selector labels) on their "metrics" container port, with
// the metrics reader's token as bearer credentials.
func eppPodMonitoring(svc *v1alpha1.FleetInferenceService, name string) *unstructured.Unstructured {
	matchLabels := map[string]interface{}{}
	for k, v := range eppSelectorLabels(name) {
		matchLabels[k] = v
	}
	u := &unstructured.Unstructured{Object: map[string]interface{}{
		"spec": map[string]interface{}{
			"endpoints": []interface{}{map[string]interface{}{
				"port":     eppMetricsPortName,
				"scheme":   "http",
				"interval": eppMonitoringInterval,
				"path":     eppMetricsPath,
				"authorization": map[string]interface{}{
					"type": "Bearer",
					"credentials": map[string]interface{}{
						"secret": map[string]interface{}{
							"name": eppMetricsReaderSecret(svc),
							"key":  corev1.ServiceAccountTokenKey,
						},
					},
				},
			}},
			"selector": map[string]interface{}{"matchLabels": matchLabels},
		},
	}}
	u.SetGroupVersionKind(GVKPodMonitoring)
	u.SetName(svc.Name)
	u.SetNamespace(svc.Namespace)
	u.SetLabels(withLabels(svc, eppChartLabels(name)))
	return u
}

// eppChartLabels are the chart's "gateway-api-inference-extension.labels".
func eppChartLabels(name string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":    name,
		"app.kubernetes.io/version": eppChartAppVersion,
	}
}

// eppSelectorLabels are the chart's "gateway-api-inference-extension.selectorLabels" in
// inferencepool mode: the Deployment's selector and the Service's.
// EndpointPickerSelector selects the endpoint picker's pods in a member.
func EndpointPickerSelector(svc *v1alpha1.FleetInferenceService) labels.Selector {
	return labels.SelectorFromSet(eppSelectorLabels(EndpointPickerName(svc)))
}

// EndpointPickerMetricsPort is the port of the endpoint picker's /metrics.
const EndpointPickerMetricsPort = eppMetricsPort

func eppSelectorLabels(name string) map[string]string {
	return map[string]string{eppSelectorLabel: name}
}

func eppRole(name, ns string, labels map[string]string, rules []rbacv1.PolicyRule) *rbacv1.Role {
	return &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Rules:      rules,
	}
}

func eppRoleBinding(name, ns string, labels map[string]string, role string, subject rbacv1.Subject) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Subjects:   []rbacv1.Subject{subject},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role},
	}
}

// eppDeployment is epplib _deployment.yaml.
func eppDeployment(svc *v1alpha1.FleetInferenceService, name string, replicas int32, ha bool) *appsv1.Deployment {
	args := []string{
		"--pool-name", svc.Name,
		"--pool-namespace", svc.Namespace,
		"--pool-group", eppPoolGroup,
		// modelServerType vllm: no legacy metric flags.
		"--zap-encoder", "json",
		"--config-file", eppConfigMountPath + "/" + eppPluginsConfigFile,
	}
	if ha {
		args = append(args, "--ha-enable-leader-election")
	}
	args = append(args,
		"--v", "1", // values.yaml inferenceExtension.flags (a single key, so no ordering question)
		"--tracing=false",
	)
	if svc.Spec.ScalesToZero() {
		// monitoring.prometheus.auth.enabled false: the hub reads the picker's request
		// counters through the member's pods/proxy, which does not pass its token on, to
		// see the first request at zero servers.
		args = append(args, "--metrics-endpoint-auth=false")
	}

	liveness, readiness := "inference-extension", "inference-extension"
	if ha {
		liveness, readiness = "liveness", "readiness"
	}

	podLabels := eppSelectorLabels(name)
	podLabels[eppModeLabel] = eppModeInferencePool
	depLabels := eppChartLabels(name)
	depLabels[eppModeLabel] = eppModeInferencePool

	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: appsv1.SchemeGroupVersion.String(), Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: svc.Namespace, Labels: withLabels(svc, depLabels)},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Selector: &metav1.LabelSelector{MatchLabels: eppSelectorLabels(name)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{
					ServiceAccountName:            name,
					TerminationGracePeriodSeconds: ptr.To(eppTerminationGrace),
					Containers: []corev1.Container{{
						Name:            eppContainerName,
						Image:           svc.Spec.EndpointPicker.Image,
						ImagePullPolicy: eppImagePullPolicy,
						Args:            args,
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{
								corev1.ResourceCPU:    resource.MustParse("4"),
								corev1.ResourceMemory: resource.MustParse("8Gi"),
							},
							Limits: corev1.ResourceList{
								corev1.ResourceMemory: resource.MustParse("16Gi"),
							},
						},
						Ports: []corev1.ContainerPort{
							{Name: "grpc", ContainerPort: eppExtProcPort},
							{Name: "grpc-health", ContainerPort: eppHealthPort},
							{Name: eppMetricsPortName, ContainerPort: eppMetricsPort},
						},
						LivenessProbe: &corev1.Probe{
							ProbeHandler:        corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: eppHealthPort, Service: ptr.To(liveness)}},
							InitialDelaySeconds: 5,
							PeriodSeconds:       10,
						},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: eppHealthPort, Service: ptr.To(readiness)}},
							PeriodSeconds: 2,
						},
						Env: []corev1.EnvVar{
							{Name: "NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
							{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: eppConfigVolume, MountPath: eppConfigMountPath}},
					}},
					Volumes: []corev1.Volume{{
						Name: eppConfigVolume,
						VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: name},
						}},
					}},
				},
			},
		},
	}
}

// eppService is epplib _service.yaml. The chart sets no appProtocol on its ports, nor
// targetPort: we set targetPort to the port, as the API server defaults it, because the
// typed ServicePort would otherwise send targetPort 0 (IntOrString is not omitted when zero).
func eppService(svc *v1alpha1.FleetInferenceService, name string) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: svc.Namespace, Labels: withLabels(svc, eppChartLabels(name))},
		Spec: corev1.ServiceSpec{
			Selector: eppSelectorLabels(name),
			Ports: []corev1.ServicePort{
				{Name: "grpc-ext-proc", Protocol: corev1.ProtocolTCP, Port: eppExtProcPort, TargetPort: intstr.FromInt32(eppExtProcPort)},
				{Name: "http-metrics", Protocol: corev1.ProtocolTCP, Port: eppMetricsPort, TargetPort: intstr.FromInt32(eppMetricsPort)},
			},
			Type: corev1.ServiceTypeClusterIP,
		},
	}
}

// eppGKEPolicies is inferencepool/templates/gke.yaml for an http model server: a
// HealthCheckPolicy probing targetPorts[0] (the server port) at /health and a
// GCPBackendPolicy with a 300s timeout and logging, both named after and targeting the
// InferencePool (the release name, not truncated).
func eppGKEPolicies(svc *v1alpha1.FleetInferenceService, name string) []client.Object {
	targetRef := func() map[string]interface{} {
		return map[string]interface{}{
			"group": GVKInferencePool.Group,
			"kind":  GVKInferencePool.Kind,
			"name":  svc.Name,
		}
	}
	hcp := &unstructured.Unstructured{Object: map[string]interface{}{
		"spec": map[string]interface{}{
			"targetRef": targetRef(),
			"default": map[string]interface{}{
				"timeoutSec":       int64(2),
				"checkIntervalSec": int64(2),
				"config": map[string]interface{}{
					"type": "HTTP",
					"httpHealthCheck": map[string]interface{}{
						"requestPath": eppHealthCheckPath,
						"port":        int64(svc.Spec.Model.Server.Port),
					},
				},
			},
		},
	}}
	bp := &unstructured.Unstructured{Object: map[string]interface{}{
		"spec": map[string]interface{}{
			"targetRef": targetRef(),
			"default": map[string]interface{}{
				"timeoutSec": eppBackendTimeoutSec,
				"logging":    map[string]interface{}{"enabled": true},
			},
		},
	}}
	hcp.SetGroupVersionKind(GVKHealthCheckPolicy)
	bp.SetGroupVersionKind(GVKGCPBackendPolicy)
	for _, u := range []*unstructured.Unstructured{hcp, bp} {
		u.SetName(svc.Name)
		u.SetNamespace(svc.Namespace)
		u.SetLabels(withLabels(svc, eppChartLabels(name)))
	}
	return []client.Object{hcp, bp}
}
