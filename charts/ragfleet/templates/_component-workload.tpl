{{- /* The ServiceAccount, Deployment, Service and index volume of one component (see components.yaml). */}}

{{- define "ragfleet.component.serviceAccount" -}}
{{- $labelArgs := dict "root" .root "name" .name }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "ragfleet.componentName" $labelArgs }}
  labels:
    {{- include "ragfleet.labels" $labelArgs | nindent 4 }}
  {{- with .c.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
# No service uses the Kubernetes API, so no token is mounted into the pods.
automountServiceAccountToken: false
{{- end }}

{{- define "ragfleet.component.deployment" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $c := .c }}
{{- $labelArgs := dict "root" $root "name" $name }}
{{- $objName := include "ragfleet.componentName" $labelArgs }}
{{- $embeddedIndex := and (eq $name "retrieval") (eq $root.Values.retrieval.backend "embedded") }}
{{- /* The chart's own labels win over podLabels: the selector must keep matching. */}}
{{- $podLabels := mustMergeOverwrite (deepCopy ($c.podLabels | default dict)) (include "ragfleet.labels" $labelArgs | fromYaml) }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $objName }}
  labels:
    {{- include "ragfleet.labels" $labelArgs | nindent 4 }}
spec:
  {{- if not (include "ragfleet.autoscaled" .) }}
  replicas: {{ $c.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "ragfleet.selectorLabels" $labelArgs | nindent 6 }}
  {{- if $c.singleWriter }}
  # The embedded index sits on a ReadWriteOnce volume: the old pod lets go before the new one mounts it.
  strategy:
    type: Recreate
  {{- else }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  {{- end }}
  template:
    metadata:
      labels:
        {{- toYaml $podLabels | nindent 8 }}
      {{- with $c.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ $objName }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ $c.terminationGracePeriodSeconds }}
      securityContext:
        {{- include "ragfleet.podSecurityContext" 10001 | nindent 8 }}
      {{- with $root.Values.image.pullSecrets }}
      imagePullSecrets:
        {{- range . }}
        - name: {{ . }}
        {{- end }}
      {{- end }}
      {{- with $c.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $c.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      topologySpreadConstraints:
        {{- include "ragfleet.topologySpread" (dict "root" $root "name" $name "spread" $c.topologySpread) | trim | nindent 8 }}
      containers:
        - name: {{ $name }}
          image: {{ $c.imageRef }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command:
            {{- if $c.command }}
            {{- toYaml $c.command | nindent 12 }}
            {{- else }}
            - python
            - -m
            - {{ $c.meta.module }}
            {{- end }}
          ports:
            {{- if $c.meta.http }}
            - name: http
              containerPort: {{ $c.port }}
              protocol: TCP
            {{- end }}
            # Prometheus only: the Ingress/HTTPRoute route the http port alone, and the
            # NetworkPolicy opens this one to the monitoring namespace alone.
            - name: metrics
              containerPort: {{ $root.Values.metrics.port }}
              protocol: TCP
          env:
            {{- include "ragfleet.component.env" . | trim | nindent 12 }}
          {{- if or $c.envFromSecrets $c.envFrom }}
          envFrom:
            {{- range $c.envFromSecrets }}
            - secretRef:
                name: {{ . }}
            {{- end }}
            {{- with $c.envFrom }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- end }}
          {{- range $kind, $probe := $c.probes }}
          {{ $kind }}Probe:
            {{- /* An exec probe replaces the default HTTP one. */}}
            {{- if $probe.exec }}
            exec:
              command:
                {{- toYaml $probe.exec.command | nindent 16 }}
            {{- else }}
            httpGet:
              path: {{ $probe.httpGet.path }}
              port: {{ $probe.httpGet.port | default "http" }}
            {{- end }}
            {{- with $probe.initialDelaySeconds }}
            initialDelaySeconds: {{ . }}
            {{- end }}
            periodSeconds: {{ $probe.periodSeconds | default 10 }}
            timeoutSeconds: {{ $probe.timeoutSeconds | default 1 }}
            failureThreshold: {{ $probe.failureThreshold | default 3 }}
          {{- end }}
          {{- if gt (int $c.preStopSleepSeconds) 0 }}
          lifecycle:
            # Endpoints and the ingress take a few seconds to stop sending here; keep serving
            # until they have, then SIGTERM starts the graceful drain of open streams.
            preStop:
              sleep:
                seconds: {{ $c.preStopSleepSeconds }}
          {{- end }}
          resources:
            {{- toYaml $c.resources | nindent 12 }}
          securityContext:
            {{- include "ragfleet.containerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            - name: run
              mountPath: /var/run/ragfleet
            {{- if $embeddedIndex }}
            - name: index
              mountPath: /var/lib/ragfleet/index
            {{- end }}
      volumes:
        # The root filesystem is read-only: scratch space and metrics files live here.
        - name: tmp
          emptyDir:
            sizeLimit: 512Mi
        - name: run
          emptyDir:
            sizeLimit: 256Mi
        {{- if $embeddedIndex }}
        - name: index
          persistentVolumeClaim:
            claimName: {{ $objName }}-index
        {{- end }}
{{- end }}

{{- /*
The environment of one component's container. ENVIRONMENT and LOG_LEVEL stay the first two
entries (kubernetes/overlays/dev patches them by index).
*/}}
{{- define "ragfleet.component.env" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $c := .c }}
{{- $components := .components }}
{{- $prefix := $c.meta.prefix }}
{{- $fullname := include "ragfleet.fullname" $root }}
- name: {{ $prefix }}ENVIRONMENT
  value: {{ $root.Values.environment | quote }}
- name: {{ $prefix }}LOG_LEVEL
  value: {{ $root.Values.logLevel | quote }}
- name: {{ $prefix }}REPLICA_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- /* API keys, the Celery queue, job records: the state Redis; caches and buckets: the cache Redis. */}}
{{ include "ragfleet.redisEnv" (dict "root" $root "role" "state" "prefix" $prefix) }}
{{ include "ragfleet.redisEnv" (dict "root" $root "role" "cache" "prefix" $prefix) }}
# Internal calls carry this token (X-Ragfleet-Service-Token); the tenant header is trusted only with it.
- name: {{ $prefix }}SERVICE_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "ragfleet.credentialsSecret" $root }}
      key: service-token
- name: {{ $prefix }}GRACEFUL_SHUTDOWN_S
  value: {{ $c.gracefulShutdownSeconds | quote }}
# A subdirectory of the emptyDir: the service empties and recreates it at start.
- name: {{ $prefix }}METRICS_DIR
  value: /var/run/ragfleet/metrics
# Inside a pod the service must listen on every interface, not loopback.
- name: {{ $prefix }}HOST
  value: "0.0.0.0"
# Prometheus on its own port (named metrics); the main port then answers /metrics with 404.
- name: {{ $c.meta.metricsPortEnv | default (printf "%sMETRICS_PORT" $prefix) }}
  value: {{ $root.Values.metrics.port | quote }}
{{- if $c.meta.http }}
- name: {{ $prefix }}PORT
  value: {{ $c.port | quote }}
- name: {{ $prefix }}WORKERS
  value: {{ $c.workers | quote }}
- name: {{ $prefix }}DOCS_ENABLED
  value: {{ $c.docsEnabled | quote }}
{{- end }}
{{- if eq $name "gateway" }}
{{- /* Only the components this release runs: a disabled one's URL is never configured. */}}
{{- range $callee, $setting := dict "retrieval" "RETRIEVAL_URL" "llm-proxy" "LLM_PROXY_URL" "ingestion-api" "INGESTION_URL" }}
{{- if hasKey $components $callee }}
- name: RAGFLEET_GATEWAY_{{ $setting }}
  value: {{ printf "http://%s-%s:%v" $fullname $callee (get $components $callee).port | quote }}
{{- end }}
{{- end }}
{{- with $root.Values.credentials.adminKey.existingSecret }}
# An admin key seeded at start, so an empty state Redis is never a lockout.
- name: RAGFLEET_GATEWAY_ADMIN_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $root.Values.credentials.adminKey.existingSecretKey }}
      # Optional: a gateway whose Secret is not there yet starts without a seed.
      optional: true
{{- end }}
{{- end }}
{{- if eq $name "retrieval" }}
- name: RAGFLEET_RETRIEVAL_BACKEND
  value: {{ $root.Values.retrieval.backend | quote }}
{{- if eq $root.Values.retrieval.backend "weaviate" }}
- name: RAGFLEET_RETRIEVAL_WEAVIATE_URL
  value: {{ include "ragfleet.weaviateUrl" $root | quote }}
{{- if and (not $root.Values.weaviate.bundled.enabled) $root.Values.weaviate.external.existingSecret }}
- name: RAGFLEET_RETRIEVAL_WEAVIATE_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.weaviate.external.existingSecret }}
      key: {{ $root.Values.weaviate.external.existingSecretKey }}
{{- end }}
{{- else }}
- name: RAGFLEET_RETRIEVAL_DATA_DIR
  value: /var/lib/ragfleet/index
{{- end }}
{{- end }}
{{- if and (hasPrefix "ingestion" $name) (hasKey $components "retrieval") }}
- name: RAGFLEET_INGESTION_RETRIEVAL_URL
  value: {{ printf "http://%s-retrieval:%v" $fullname (get $components "retrieval").port | quote }}
{{- end }}
{{- with $root.Values.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- range $key, $value := $c.env }}
- name: {{ $key }}
  value: {{ $value | quote }}
{{- end }}
{{- with $c.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "ragfleet.component.service" -}}
{{- $labelArgs := dict "root" .root "name" .name }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "ragfleet.componentName" $labelArgs }}
  labels:
    {{- include "ragfleet.labels" $labelArgs | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "ragfleet.selectorLabels" $labelArgs | nindent 4 }}
  ports:
    {{- if .c.meta.http }}
    - name: http
      port: {{ .c.port }}
      targetPort: http
      protocol: TCP
      appProtocol: http
    {{- end }}
    # Scraped by the ServiceMonitor (the worker's Service exists for this port alone).
    - name: metrics
      port: {{ .root.Values.metrics.port }}
      targetPort: metrics
      protocol: TCP
      appProtocol: http
{{- end }}

{{- define "ragfleet.component.indexClaim" -}}
{{- if and (eq .name "retrieval") (eq .root.Values.retrieval.backend "embedded") }}
{{- $labelArgs := dict "root" .root "name" .name }}
{{- $embedded := .root.Values.retrieval.embedded }}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ include "ragfleet.componentName" $labelArgs }}-index
  labels:
    {{- include "ragfleet.labels" $labelArgs | nindent 4 }}
  annotations:
    # The index takes a while to rebuild: uninstalling the release leaves it in place.
    helm.sh/resource-policy: keep
spec:
  accessModes:
    - {{ $embedded.accessMode }}
  {{- with $embedded.storageClassName }}
  storageClassName: {{ . }}
  {{- end }}
  resources:
    requests:
      storage: {{ $embedded.size }}
{{- end }}
{{- end }}
