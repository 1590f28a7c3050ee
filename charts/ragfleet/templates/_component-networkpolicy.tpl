{{- /*
The NetworkPolicy of one component: who may call its http port, Prometheus (the monitoring
namespace) on its metrics port alone, and what it may call (DNS, its Redis roles, the components
it uses, Weaviate, the LLM upstreams, the OTLP collector). Policies work per port, not per path,
which is why metrics have a port of their own.
*/}}
{{- define "ragfleet.component.networkPolicy" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $components := .components }}
{{- $np := $root.Values.networkPolicy }}
{{- if $np.enabled }}
{{- $labelArgs := dict "root" $root "name" $name }}
{{- $weaviate := eq $root.Values.retrieval.backend "weaviate" }}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "ragfleet.componentName" $labelArgs }}
  labels:
    {{- include "ragfleet.labels" $labelArgs | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "ragfleet.selectorLabels" $labelArgs | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    {{- if .c.meta.http }}
    {{- /* Who may call this component. */}}
    {{- $callers := list }}
    {{- if eq $name "retrieval" }}{{ $callers = list "gateway" "ingestion-api" "ingestion-worker" }}{{ end }}
    {{- if eq $name "llm-proxy" }}{{ $callers = list "gateway" }}{{ end }}
    {{- if eq $name "ingestion-api" }}{{ $callers = list "gateway" }}{{ end }}
    - from:
        {{- if eq $name "gateway" }}
        - namespaceSelector:
            matchLabels:
              {{- toYaml $np.ingressNamespaceSelector | nindent 14 }}
        {{- end }}
        {{- range $callers }}
        - podSelector:
            matchLabels:
              {{- include "ragfleet.selectorLabels" (dict "root" $root "name" .) | nindent 14 }}
        {{- end }}
        {{- if $root.Values.tests.enabled }}
        - podSelector:
            matchLabels:
              {{- include "ragfleet.selectorLabels" (dict "root" $root "name" "test") | nindent 14 }}
        {{- end }}
        {{- if and $root.Values.benchmark.enabled (eq $name "gateway") }}
        # The benchmark's load.
        - podSelector:
            matchLabels:
              {{- include "ragfleet.selectorLabels" (dict "root" $root "name" "benchmark") | nindent 14 }}
        {{- end }}
      ports:
        - port: http
          protocol: TCP
    {{- end }}
    - from:
        - namespaceSelector:
            matchLabels:
              {{- toYaml $np.monitoringNamespaceSelector | nindent 14 }}
        {{- if and $root.Values.benchmark.enabled (has $name (list "gateway" "retrieval")) }}
        # The benchmark's cache hit-rate scrape of each gateway and retrieval pod.
        - podSelector:
            matchLabels:
              {{- include "ragfleet.selectorLabels" (dict "root" $root "name" "benchmark") | nindent 14 }}
        {{- end }}
      ports:
        - port: metrics
          protocol: TCP
  egress:
    {{- include "ragfleet.dnsEgress" $root | nindent 4 }}
    {{- include "ragfleet.redisEgress" $root | nindent 4 }}
    {{- $callees := list }}
    {{- if eq $name "gateway" }}{{ $callees = list "retrieval" "llm-proxy" "ingestion-api" }}{{ end }}
    {{- if hasPrefix "ingestion" $name }}{{ $callees = list "retrieval" }}{{ end }}
    {{- range $callee := $callees }}
    {{- if hasKey $components $callee }}
    - to:
        - podSelector:
            matchLabels:
              {{- include "ragfleet.selectorLabels" (dict "root" $root "name" $callee) | nindent 14 }}
      ports:
        - port: {{ (get $components $callee).port }}
          protocol: TCP
    {{- end }}
    {{- end }}
    {{- if and (eq $name "retrieval") $weaviate }}
    {{- if $root.Values.weaviate.bundled.enabled }}
    - to:
        - podSelector:
            matchLabels:
              {{- include "ragfleet.selectorLabels" (dict "root" $root "name" "weaviate") | nindent 14 }}
      ports:
        - port: 8080
          protocol: TCP
        - port: 50051
          protocol: TCP
    {{- else }}
    - ports:
        - port: {{ $root.Values.weaviate.external.port }}
          protocol: TCP
        - port: 50051
          protocol: TCP
    {{- end }}
    {{- end }}
    {{- if eq $name "llm-proxy" }}
    # The LLM upstreams (hosted APIs or in-cluster servers).
    - to:
        {{- range $np.llmEgressCidrs }}
        - ipBlock:
            cidr: {{ . }}
        {{- end }}
      ports:
        {{- range $np.llmEgressPorts }}
        - port: {{ . }}
          protocol: TCP
        {{- end }}
    {{- end }}
    {{- if $root.Values.otlpEndpoint }}
    - ports:
        - port: {{ $np.otlpPort }}
          protocol: TCP
    {{- end }}
{{- end }}
{{- end }}

{{- /* The DNS egress rule every pod needs (networkPolicy.dns); call with the root context. */}}
{{- define "ragfleet.dnsEgress" -}}
# DNS.
- to:
    {{- toYaml .Values.networkPolicy.dns.to | nindent 4 }}
  ports:
    {{- toYaml .Values.networkPolicy.dns.ports | nindent 4 }}
{{- end }}

{{- /* Egress to both Redis roles: the bundled pods, or an external server's port. */}}
{{- define "ragfleet.redisEgress" -}}
{{- $ports := list }}
{{- range $role := list "state" "cache" }}
{{- $r := get $.Values.redis $role }}
{{- if $r.bundled.enabled }}
- to:
    - podSelector:
        matchLabels:
          {{- include "ragfleet.selectorLabels" (dict "root" $ "name" (printf "redis-%s" $role)) | nindent 10 }}
  ports:
    - port: 6379
      protocol: TCP
{{- else if not (has $r.external.port $ports) }}
{{- $ports = append $ports $r.external.port }}
# The external {{ $role }} Redis: its address is not known here, so the port is what is allowed.
- ports:
    - port: {{ $r.external.port }}
      protocol: TCP
{{- end }}
{{- end }}
{{- end }}
