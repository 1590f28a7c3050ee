{{- /* The ServiceMonitor of one component: Prometheus scrapes its metrics port (see components.yaml). */}}
{{- define "ragfleet.component.serviceMonitor" -}}
{{- $root := .root }}
{{- if include "ragfleet.optionalApi" (dict "root" $root "switch" $root.Values.metrics.serviceMonitor.enabled "api" "monitoring.coreos.com/v1/ServiceMonitor") }}
{{- $labelArgs := dict "root" $root "name" .name }}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "ragfleet.componentName" $labelArgs }}
  labels:
    {{- include "ragfleet.labels" $labelArgs | nindent 4 }}
    {{- with $root.Values.metrics.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "ragfleet.selectorLabels" $labelArgs | nindent 6 }}
  endpoints:
    - port: metrics
      path: /metrics
      interval: {{ $root.Values.metrics.serviceMonitor.interval }}
{{- end }}
{{- end }}
