{{- /*
Replica count and disruption: a CPU HPA by default (it needs only metrics-server); with
autoscaling.keda on, a KEDA ScaledObject instead (CPU plus the component's own metric: queue
depth for the worker, in-flight requests for the gateway). Never both on one workload: KEDA makes
the HPA of its ScaledObject itself. The VPA only recommends unless asked, and moves only memory
next to a CPU autoscaler so that the two never fight.
*/}}

{{- /* "true" when an autoscaler (HPA or ScaledObject) owns this component's replica count. */}}
{{- define "ragfleet.autoscaled" -}}
{{- if .c.autoscaling.enabled }}true{{ end }}
{{- end }}

{{- define "ragfleet.keda" -}}
{{- if .c.autoscaling.enabled }}
{{- include "ragfleet.optionalApi" (dict "root" .root "switch" .c.autoscaling.keda.enabled "api" "keda.sh/v1alpha1/ScaledObject") }}
{{- end }}
{{- end }}

{{- define "ragfleet.component.autoscaler" -}}
{{- if include "ragfleet.autoscaled" . }}
{{- if include "ragfleet.keda" . }}
{{- include "ragfleet.component.scaledObject" . }}
{{- else }}
{{- include "ragfleet.component.hpa" . }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ragfleet.scalingBehavior" -}}
scaleDown:
  stabilizationWindowSeconds: {{ .scaleDownStabilizationSeconds }}
  policies:
    - type: Pods
      value: 1
      periodSeconds: 60
scaleUp:
  stabilizationWindowSeconds: 0
  policies:
    - type: Percent
      value: 100
      periodSeconds: 30
{{- end }}

{{- define "ragfleet.component.hpa" -}}
{{- $labelArgs := dict "root" .root "name" .name }}
{{- $objName := include "ragfleet.componentName" $labelArgs }}
{{- $a := .c.autoscaling }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $objName }}
  labels:
    {{- include "ragfleet.labels" $labelArgs | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $objName }}
  minReplicas: {{ $a.minReplicas }}
  maxReplicas: {{ $a.maxReplicas }}
  # CPU only: metrics-server serves it on every cluster (kind included). Application metrics go
  # through KEDA (autoscaling.keda) or prometheus-adapter rules (docs/deploy.md).
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $a.targetCPUUtilizationPercentage }}
  behavior:
    {{- include "ragfleet.scalingBehavior" $a | nindent 4 }}
{{- end }}

{{- define "ragfleet.component.scaledObject" -}}
{{- $root := .root }}
{{- $labelArgs := dict "root" $root "name" .name }}
{{- $objName := include "ragfleet.componentName" $labelArgs }}
{{- $a := .c.autoscaling }}
{{- $redisAuth := include "ragfleet.redisPasswordRef" (dict "root" $root "role" "state") | fromYaml }}
{{- $queue := eq .name "ingestion-worker" }}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ $objName }}
  labels:
    {{- include "ragfleet.labels" $labelArgs | nindent 4 }}
spec:
  scaleTargetRef:
    name: {{ $objName }}
  minReplicaCount: {{ $a.minReplicas }}
  maxReplicaCount: {{ $a.maxReplicas }}
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        {{- include "ragfleet.scalingBehavior" $a | nindent 8 }}
  triggers:
    - type: cpu
      metricType: Utilization
      metadata:
        value: {{ $a.targetCPUUtilizationPercentage | quote }}
    {{- if $queue }}
    {{- /* Both lanes: a backlog of small documents needs more workers as much as one of long ones. */}}
    {{- range $list := list $a.keda.queueName (printf "%s.small" $a.keda.queueName) }}
    # Tasks waiting in a Celery queue (a Redis list on the state Redis), per worker.
    - type: redis
      metadata:
        address: {{ include "ragfleet.stateRedisAddress" $root | quote }}
        listName: {{ $list | quote }}
        listLength: {{ $a.keda.target | quote }}
      {{- if $redisAuth.name }}
      authenticationRef:
        name: {{ $objName }}
      {{- end }}
    {{- end }}
    {{- else if eq .name "gateway" }}
    # Requests being served, summed over the gateway pods, per pod.
    - type: prometheus
      metadata:
        serverAddress: {{ $root.Values.keda.prometheusServerAddress | quote }}
        query: {{ printf "sum(ragfleet_http_requests_in_flight{namespace=%q, job=%q})" $root.Release.Namespace $objName | quote }}
        threshold: {{ $a.keda.target | quote }}
    {{- end }}
{{- if and $queue $redisAuth.name }}
---
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata:
  name: {{ $objName }}
  labels:
    {{- include "ragfleet.labels" $labelArgs | nindent 4 }}
spec:
  secretTargetRef:
    - parameter: password
      name: {{ $redisAuth.name }}
      key: {{ $redisAuth.key }}
{{- end }}
{{- end }}

{{- /* host:port of the state Redis for KEDA's list-length trigger. */}}
{{- define "ragfleet.stateRedisAddress" -}}
{{- if .Values.keda.stateRedisAddress }}
{{- .Values.keda.stateRedisAddress }}
{{- else if .Values.redis.state.bundled.enabled }}
{{- printf "%s.%s.svc:6379" (include "ragfleet.componentName" (dict "root" . "name" "redis-state")) .Release.Namespace }}
{{- else }}
{{- fail "autoscaling.keda on the worker with an external state Redis: set keda.stateRedisAddress (host:port)" }}
{{- end }}
{{- end }}

{{- define "ragfleet.component.pdb" -}}
{{- $labelArgs := dict "root" .root "name" .name }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "ragfleet.componentName" $labelArgs }}
  labels:
    {{- include "ragfleet.labels" $labelArgs | nindent 4 }}
spec:
  maxUnavailable: {{ .c.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "ragfleet.selectorLabels" $labelArgs | nindent 6 }}
{{- end }}

{{- define "ragfleet.component.vpa" -}}
{{- if include "ragfleet.optionalApi" (dict "root" .root "switch" .root.Values.vpa.enabled "api" "autoscaling.k8s.io/v1/VerticalPodAutoscaler") }}
{{- $labelArgs := dict "root" .root "name" .name }}
{{- $objName := include "ragfleet.componentName" $labelArgs }}
---
apiVersion: autoscaling.k8s.io/v1
kind: VerticalPodAutoscaler
metadata:
  name: {{ $objName }}
  labels:
    {{- include "ragfleet.labels" $labelArgs | nindent 4 }}
spec:
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $objName }}
  updatePolicy:
    updateMode: {{ .root.Values.vpa.updateMode | quote }}
  resourcePolicy:
    containerPolicies:
      - containerName: {{ .name }}
        {{- if include "ragfleet.autoscaled" . }}
        # An autoscaler scales on CPU: letting the VPA also move CPU would make them fight.
        controlledResources: [memory]
        {{- else }}
        controlledResources: [cpu, memory]
        {{- end }}
{{- end }}
{{- end }}
