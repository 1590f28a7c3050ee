{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "ragfleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource-name prefix: release-chart, or the release name alone when it already holds the chart name. */}}
{{- define "ragfleet.fullname" -}}
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

{{- define "ragfleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of one component's objects: <fullname>-<component>, kept under 63 characters. */}}
{{- define "ragfleet.componentName" -}}
{{- printf "%s-%s" (include "ragfleet.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; call with (dict "root" $ "name" "<component>"). */}}
{{- define "ragfleet.labels" -}}
helm.sh/chart: {{ include "ragfleet.chart" .root }}
{{ include "ragfleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: ragfleet
{{- end }}

{{/* Selector labels: only the immutable name, instance and component. */}}
{{- define "ragfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ragfleet.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/*
Deep merge of two maps returned as YAML: maps merge key by key, anything else in `over`
replaces `base`. Written out because sprig's merge/mergeOverwrite treat false, 0 and "" as
"unset", so a component could never turn off what `default:` turns on.
*/}}
{{- define "ragfleet.merge" -}}
{{- $out := deepCopy .base }}
{{- range $key, $value := .over }}
{{- $current := get $out $key }}
{{- if and (kindIs "map" $value) (kindIs "map" $current) }}
{{- $_ := set $out $key (include "ragfleet.merge" (dict "base" $current "over" $value) | fromYaml) }}
{{- else }}
{{- $_ := set $out $key $value }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/*
The resolved settings of every enabled component, as YAML: a map of component name to its
values merged over `components.default`, plus what the chart derives (service, module,
env prefix, image, the name of its metrics-port setting). The one table every template reads; call with the root context.
*/}}
{{- define "ragfleet.components" -}}
{{- $known := dict
  "gateway" (dict "service" "gateway" "module" "ragfleet.gateway" "prefix" "RAGFLEET_GATEWAY_" "http" true)
  "retrieval" (dict "service" "retrieval" "module" "ragfleet.retrieval" "prefix" "RAGFLEET_RETRIEVAL_" "http" true)
  "llm-proxy" (dict "service" "llm-proxy" "module" "ragfleet.llm_proxy" "prefix" "RAGFLEET_LLM_PROXY_" "http" true)
  "ingestion-api" (dict "service" "ingestion" "module" "ragfleet.ingestion" "prefix" "RAGFLEET_INGESTION_" "http" true)
  "ingestion-worker" (dict "service" "ingestion" "module" "ragfleet.ingestion.worker" "prefix" "RAGFLEET_INGESTION_" "http" false "metricsPortEnv" "RAGFLEET_INGESTION_WORKER_METRICS_PORT")
}}
{{- $result := dict }}
{{- range $name, $meta := $known }}
{{- $over := get $.Values.components $name | default dict }}
{{- $c := include "ragfleet.merge" (dict "base" $.Values.components.default "over" $over) | fromYaml }}
{{- if $c.enabled }}
{{- $_ := set $c "name" $name }}
{{- $_ := set $c "meta" $meta }}
{{- $repository := $c.image.repository | default (printf "%s/ragfleet-%s" $.Values.image.registry $meta.service) }}
{{- $tag := $c.image.tag | default $.Values.image.tag | default $.Chart.AppVersion }}
{{- $digest := $c.image.digest }}
{{- $_ := set $c "imageRef" (include "ragfleet.imageRef" (dict "repository" $repository "tag" $tag "digest" $digest)) }}
{{- if and (eq $name "retrieval") (eq $.Values.retrieval.backend "embedded") (eq $.Values.retrieval.embedded.accessMode "ReadWriteOnce") }}
{{- /* One writer on a ReadWriteOnce volume: one pod, replaced (not rolled) on updates. */}}
{{- $_ := set $c "replicas" 1 }}
{{- $_ := set $c.autoscaling "enabled" false }}
{{- $_ := set $c "singleWriter" true }}
{{- end }}
{{- $_ := set $result $name $c }}
{{- end }}
{{- end }}
{{- toYaml $result }}
{{- end }}

{{/*
"true" when an optional API's object is to be rendered, "" when not; call with
(dict "root" $ "switch" <true|false|"auto"> "api" "<group/version/Kind>"). `auto` renders it only
when the cluster serves the API (`helm template` serves none unless given --api-versions), so a
default install on a cluster with only the core APIs never meets a kind it does not know.
*/}}
{{- define "ragfleet.optionalApi" -}}
{{- $switch := toString .switch }}
{{- if eq $switch "true" }}true
{{- else if and (eq $switch "auto") (.root.Capabilities.APIVersions.Has .api) }}true
{{- end }}
{{- end }}

{{/* An image reference: repository:tag, or repository:tag@digest when a digest is given. */}}
{{- define "ragfleet.imageRef" -}}
{{- .repository }}:{{ .tag }}{{ with .digest }}@{{ . }}{{ end }}
{{- end }}

{{/*
One Redis role's connection (role "state" or "cache"): its URL and its password env entries for
a service whose settings use env prefix <prefix>. Call with
(dict "root" $ "role" "state" "prefix" "RAGFLEET_GATEWAY_").
*/}}
{{- define "ragfleet.redisEnv" -}}
{{- $r := get .root.Values.redis .role }}
{{- $upper := upper .role }}
- name: {{ .prefix }}{{ $upper }}_REDIS_URL
{{- if $r.bundled.enabled }}
  value: {{ printf "redis://%s:6379/0" (include "ragfleet.componentName" (dict "root" .root "name" (printf "redis-%s" .role))) | quote }}
{{- else if $r.external.existingSecret }}
  valueFrom:
    secretKeyRef:
      name: {{ $r.external.existingSecret }}
      key: {{ $r.external.existingSecretKey }}
{{- else if $r.external.url }}
  value: {{ $r.external.url | quote }}
{{- else }}
{{- fail (printf "redis.%s: enable redis.%s.bundled, or set redis.%s.external.existingSecret (or .url)" .role .role .role) }}
{{- end }}
{{- $password := include "ragfleet.redisPasswordRef" (dict "root" .root "role" .role) | fromYaml }}
{{- if $password.name }}
- name: {{ .prefix }}{{ $upper }}_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      {{- toYaml $password | nindent 6 }}
{{- end }}
{{- with $r.auth.username }}
- name: {{ $.prefix }}{{ $upper }}_REDIS_USERNAME
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{/*
Where one Redis role's password lives, as a secretKeyRef body (name, key); empty for an external
Redis without auth.existingSecret (its URL may carry the password). The bundled Redis always has
one: from redis.<role>.auth.existingSecret, else the chart's credentials Secret.
*/}}
{{- define "ragfleet.redisPasswordRef" -}}
{{- $r := get .root.Values.redis .role }}
{{- if $r.auth.existingSecret }}
name: {{ $r.auth.existingSecret }}
key: {{ $r.auth.existingSecretKey }}
{{- else if $r.bundled.enabled }}
name: {{ include "ragfleet.credentialsSecret" .root }}
key: {{ printf "%s-redis-password" .role }}
{{- end }}
{{- end }}

{{/* The Secret holding the generated credentials (or the user's own, credentials.existingSecret). */}}
{{- define "ragfleet.credentialsSecret" -}}
{{- .Values.credentials.existingSecret | default (include "ragfleet.componentName" (dict "root" . "name" "credentials")) }}
{{- end }}

{{/* The Redis roles whose servers this release runs, for the NetworkPolicies and the Secret. */}}
{{- define "ragfleet.bundledRedisRoles" -}}
{{- $roles := list }}
{{- range $role := list "state" "cache" }}
{{- if (get $.Values.redis $role).bundled.enabled }}{{ $roles = append $roles $role }}{{ end }}
{{- end }}
{{- toJson $roles }}
{{- end }}

{{/* The Weaviate URL the retrieval service uses; call with the root context. */}}
{{- define "ragfleet.weaviateUrl" -}}
{{- if .Values.weaviate.bundled.enabled }}
{{- printf "http://%s-weaviate:8080" (include "ragfleet.fullname" .) }}
{{- else if .Values.weaviate.external.url }}
{{- .Values.weaviate.external.url }}
{{- else }}
{{- fail "retrieval.backend=weaviate: enable weaviate.bundled or set weaviate.external.url" }}
{{- end }}
{{- end }}

{{/*
The restricted container security context (Pod Security Standards "restricted"); pods also
set runAsNonRoot and the RuntimeDefault seccomp profile.
*/}}
{{- define "ragfleet.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Pod security context; call with the uid the image runs as. */}}
{{- define "ragfleet.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
fsGroup: {{ . }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Soft spread over nodes and zones; call with (dict "root" $ "name" "<component>" "spread" <values>). */}}
{{- define "ragfleet.topologySpread" -}}
{{- range .spread.topologyKeys }}
- maxSkew: {{ $.spread.maxSkew }}
  topologyKey: {{ . }}
  whenUnsatisfiable: {{ $.spread.whenUnsatisfiable }}
  labelSelector:
    matchLabels:
      {{- include "ragfleet.selectorLabels" (dict "root" $.root "name" $.name) | nindent 6 }}
{{- end }}
{{- end }}

{{/*
A CPU quantity ("250m", "1", 0.5) in millicores, as a number string; a missing one is 0.
Used by the guard rails to add up what the release may request.
*/}}
{{- define "ragfleet.cpuMillis" -}}
{{- $q := toString (. | default 0) }}
{{- if hasSuffix "m" $q }}{{ trimSuffix "m" $q | float64 }}{{ else }}{{ mulf (float64 $q) 1000 }}{{ end }}
{{- end }}

{{/* A memory or storage quantity ("512Mi", "1Gi", "256M", bytes) in MiB, as a number string; missing is 0. */}}
{{- define "ragfleet.mebibytes" -}}
{{- $q := toString (. | default 0) }}
{{- $factors := dict "Ki" (divf 1 1024) "Mi" 1.0 "Gi" 1024.0 "Ti" 1048576.0 "k" (divf 1000 1048576) "M" (divf 1000000 1048576) "G" (divf 1000000000 1048576) "T" (divf 1000000000000 1048576) "m" (divf 0.001 1048576) }}
{{- $result := "" }}
{{- range $suffix, $factor := $factors }}
{{- if and (not $result) (hasSuffix $suffix $q) (regexMatch "^[0-9.]+$" (trimSuffix $suffix $q)) }}
{{- $result = toString (mulf (trimSuffix $suffix $q | float64) $factor) }}
{{- end }}
{{- end }}
{{- $result | default (toString (divf (float64 $q) 1048576)) }}
{{- end }}
