{{/* Names, labels and the values computed from several others. */}}

{{- define "llmcache.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's base name; every object's name starts with it (at most 63 characters). */}}
{{- define "llmcache.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* A component's object name: fullname-component, cut so that it stays a DNS label. */}}
{{- define "llmcache.componentName" -}}
{{- $root := index . 0 }}{{ $component := index . 1 -}}
{{- printf "%s-%s" (include "llmcache.fullname" $root | trunc (int (sub 62 (len $component)))) $component | trimSuffix "-" }}
{{- end }}

{{- define "llmcache.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object. `app.kubernetes.io/part-of: llmcache` is also what the webhook's
objectSelector and the operator use to leave llmcache's own pods alone.
*/}}
{{- define "llmcache.labels" -}}
{{- $root := index . 0 }}{{ $component := index . 1 -}}
helm.sh/chart: {{ include "llmcache.chart" $root }}
{{ include "llmcache.selectorLabels" (list $root $component) }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: llmcache
{{- end }}

{{- define "llmcache.selectorLabels" -}}
{{- $root := index . 0 }}{{ $component := index . 1 -}}
app.kubernetes.io/name: {{ include "llmcache.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ $component }}
{{- end }}

{{- define "llmcache.operator.image" -}}
{{- printf "%s:%s" .Values.operator.image.repository (default .Chart.AppVersion .Values.operator.image.tag) }}
{{- end }}

{{- define "llmcache.sidecar.image" -}}
{{- printf "%s:%s" .Values.sidecar.image.repository (default .Chart.AppVersion .Values.sidecar.image.tag) }}
{{- end }}

{{- define "llmcache.redirect.image" -}}
{{- printf "%s:%s" .Values.transparent.redirectImage.repository (default .Chart.AppVersion .Values.transparent.redirectImage.tag) }}
{{- end }}

{{- define "llmcache.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "llmcache.componentName" (list . "operator")) .Values.operator.serviceAccount.name }}
{{- else }}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "llmcache.webhook.serviceName" -}}
{{- include "llmcache.componentName" (list . "webhook") }}
{{- end }}

{{- define "llmcache.webhook.tlsSecretName" -}}
{{- include "llmcache.componentName" (list . "webhook-tls") }}
{{- end }}

{{/* kopf serves each admission handler at /<handler id>; the operator's is inject-sidecar. */}}
{{- define "llmcache.webhook.path" -}}
/inject-sidecar
{{- end }}

{{/* The host of webhook.url, without a port or IPv6 brackets ("" when no URL is set). */}}
{{- define "llmcache.webhook.urlHost" -}}
{{- with .Values.webhook.url }}
{{- $host := (urlParse .).host }}
{{- if hasPrefix "[" $host }}
{{- regexReplaceAll "^\\[([^]]*)\\].*$" $host "${1}" }}
{{- else }}
{{- regexReplaceAll ":[0-9]+$" $host "" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The names the webhook's serving certificate must carry: the Service's DNS names, and the URL's host. */}}
{{- define "llmcache.webhook.hosts" -}}
{{- $svc := include "llmcache.webhook.serviceName" . }}
{{- $ns := .Release.Namespace }}
{{- $hosts := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) }}
{{- with include "llmcache.webhook.urlHost" . }}
{{- $hosts = append $hosts . }}
{{- end }}
{{- join "," (uniq $hosts) }}
{{- end }}

{{/* Namespaces the operator never injects into: the system ones, the release's own, and the user's. */}}
{{- define "llmcache.excludedNamespaces" -}}
{{- $names := concat (list "kube-system" "kube-public" "kube-node-lease" .Release.Namespace) .Values.webhook.excludedNamespaces }}
{{- join "," (uniq $names) }}
{{- end }}

{{- define "llmcache.redis.name" -}}
{{- include "llmcache.componentName" (list . "redis") }}
{{- end }}

{{/* The bundled Redis's redis.conf, given the password: (list $root $password). */}}
{{- define "llmcache.redis.conf" -}}
{{- $root := index . 0 }}{{ $password := index . 1 -}}
port 6379
dir /data
requirepass {{ $password }}
maxmemory {{ $root.Values.redis.maxmemory }}
maxmemory-policy allkeys-lru
save ""
appendonly {{ ternary "yes" "no" $root.Values.redis.persistence.enabled }}
{{- end }}

{{- define "llmcache.redis.url" -}}
{{- printf "redis://%s.%s.svc.%s:6379/0" (include "llmcache.redis.name" .) .Release.Namespace .Values.clusterDomain }}
{{- end }}

{{/* The restricted container securityContext every container of the chart runs with. */}}
{{- define "llmcache.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "llmcache.embedder.name" -}}
{{- include "llmcache.componentName" (list . "embedder") }}
{{- end }}

{{- define "llmcache.embedder.image" -}}
{{- printf "%s:%s" .Values.embedder.image.repository (default .Chart.AppVersion .Values.embedder.image.tag) }}
{{- end }}

{{/* The in-cluster embeddings URL an LLMCache's semantic.embedding.url takes (/embeddings is appended). */}}
{{- define "llmcache.embedder.url" -}}
{{- printf "http://%s.%s.svc.%s:%d/v1" (include "llmcache.embedder.name" .) .Release.Namespace .Values.clusterDomain (int .Values.embedder.service.port) }}
{{- end }}
