{{/* The hub's name: <release>-hub, or inferfleet-hub for a release named inferfleet. */}}
{{- define "inferfleet.hub" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- printf "%s-hub" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s-hub" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Where member registrations (Secrets) live. */}}
{{- define "inferfleet.clusterNamespace" -}}
{{- .Values.clusterNamespace | default .Release.Namespace -}}
{{- end -}}

{{- define "inferfleet.serviceAccount" -}}
{{- .Values.serviceAccount.name | default (include "inferfleet.hub" .) -}}
{{- end -}}

{{/* Labels of every object; the selector labels are the ones config/manager uses. */}}
{{- define "inferfleet.selectorLabels" -}}
app.kubernetes.io/name: inferfleet-hub
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "inferfleet.labels" -}}
{{ include "inferfleet.selectorLabels" . }}
app.kubernetes.io/part-of: inferfleet
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The port of a bind address such as ":8080" or "0.0.0.0:8080". */}}
{{- define "inferfleet.port" -}}
{{- $port := regexFind "[0-9]+$" . -}}
{{- if not $port -}}{{- fail (printf "bind address %q has no port" .) -}}{{- end -}}
{{- $port -}}
{{- end -}}

{{/* The hub's flags, from the values. */}}
{{- define "inferfleet.args" -}}
{{- $sources := .Values.clusterSources -}}
{{- if not $sources -}}{{- fail "clusterSources must name at least one source (kubeconfig, gkehub, kind, clusterprofile)" -}}{{- end -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "replicas > 1 needs leaderElection.enabled: without it every replica reconciles" -}}
{{- end -}}
{{- if .Values.leaderElection.enabled }}
- --leader-elect
- --leader-election-namespace={{ .Release.Namespace }}
{{- end }}
- --metrics-bind-address={{ .Values.metrics.bindAddress }}
{{- if not .Values.metrics.secure }}
- --metrics-secure=false
{{- end }}
- --health-probe-bind-address={{ .Values.healthProbe.bindAddress }}
- --cluster-namespace={{ include "inferfleet.clusterNamespace" . }}
- --cluster-source={{ join "," $sources }}
{{- if has "gkehub" $sources }}
- --gke-project={{ required "gke.project is required when clusterSources has gkehub" .Values.gke.project }}
{{- with .Values.gke.projectNumber }}
- --gke-project-number={{ . }}
{{- end }}
{{- with .Values.gke.location }}
- --gke-location={{ . }}
{{- end }}
{{- with .Values.gke.selector }}
- --gke-selector={{ . }}
{{- end }}
{{- if .Values.gke.useEndpoint }}
- --gke-endpoint
{{- end }}
{{- end }}
{{- if has "kind" $sources }}
{{- with .Values.kind.prefix }}
- --kind-prefix={{ . }}
{{- end }}
{{- end }}
{{- if has "clusterprofile" $sources }}
- --clusterprofile-namespace={{ required "clusterProfile.namespace is required when clusterSources has clusterprofile" .Values.clusterProfile.namespace }}
- --clusterprofile-consumer={{ .Values.clusterProfile.consumer }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . }}
{{- end }}
{{- end -}}
