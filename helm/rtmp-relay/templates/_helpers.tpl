{{/* Chart name, truncated to 63 characters (a DNS label). */}}
{{- define "rtmp-relay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name; objects are named "<fullname>-<component>". */}}
{{- define "rtmp-relay.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "rtmp-relay.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "rtmp-relay.labels" -}}
helm.sh/chart: {{ include "rtmp-relay.chart" . }}
{{ include "rtmp-relay.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rtmp-relay
{{- end }}

{{/* Selector labels of the relay's pods (both roles); add app.kubernetes.io/component for one role. */}}
{{- define "rtmp-relay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rtmp-relay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rtmp-relay.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rtmp-relay.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rtmp-relay.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Name of the Secret with API_TOKEN, PUBLISH_SECRET, PLAY_SECRET. */}}
{{- define "rtmp-relay.authSecretName" -}}
{{- default (printf "%s-auth" (include "rtmp-relay.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{- define "rtmp-relay.redisUrl" -}}
{{- if .Values.redis.enabled }}
{{- printf "redis://%s-redis:6379" (include "rtmp-relay.fullname" .) }}
{{- else }}
{{- .Values.externalRedis.url }}
{{- end }}
{{- end }}

{{- define "rtmp-relay.natsUrl" -}}
{{- if .Values.nats.enabled }}
{{- printf "nats://%s-nats:4222" (include "rtmp-relay.fullname" .) }}
{{- else }}
{{- .Values.externalNats.url }}
{{- end }}
{{- end }}

{{/* Refuses settings that cannot work together. */}}
{{- define "rtmp-relay.validate" -}}
{{- if and (not .Values.redis.enabled) (not .Values.externalRedis.url) (not .Values.externalRedis.existingSecret) }}
{{- fail "Redis is required: enable redis (bundled) or set externalRedis.url or externalRedis.existingSecret" }}
{{- end }}
{{- if and (not .Values.nats.enabled) (not .Values.externalNats.url) }}
{{- fail "NATS is required: enable nats (bundled) or set externalNats.url" }}
{{- end }}
{{- if and .Values.auth.requirePlayToken (not .Values.auth.playSecret) (not .Values.auth.existingSecret) }}
{{- fail "auth.requirePlayToken needs auth.playSecret (or auth.existingSecret with PLAY_SECRET)" }}
{{- end }}
{{- range $role := list "origin" "edge" }}
{{- $r := index $.Values $role }}
{{- $needed := add $.Values.preStopSleepSeconds (div (add $.Values.config.drainDelayMs $r.shutdownTimeoutMs 999) 1000) }}
{{- if le (int $r.terminationGracePeriodSeconds) (int $needed) }}
{{- fail (printf "%s.terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + (config.drainDelayMs + %s.shutdownTimeoutMs) / 1000 = %d" $role (int $r.terminationGracePeriodSeconds) $role (int $needed)) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The pod template of one role: call with (dict "root" $ "role" "origin"|"edge").
*/}}
{{- define "rtmp-relay.podTemplate" -}}
{{- $root := .root }}
{{- $role := .role }}
{{- $r := index $root.Values $role }}
metadata:
  labels:
    {{- include "rtmp-relay.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $role }}
    {{- with $r.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # Settings and secrets changes roll the pods.
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    checksum/auth: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
    {{- with $r.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "rtmp-relay.serviceAccountName" $root }}
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: {{ $r.terminationGracePeriodSeconds }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $r.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  {{- with $r.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $r.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  affinity:
    {{- if $r.affinity }}
    {{- toYaml $r.affinity | nindent 4 }}
    {{- else }}
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- include "rtmp-relay.selectorLabels" $root | nindent 16 }}
                app.kubernetes.io/component: {{ $role }}
    {{- end }}
  topologySpreadConstraints:
    {{- if $r.topologySpreadConstraints }}
    {{- toYaml $r.topologySpreadConstraints | nindent 4 }}
    {{- else }}
    - maxSkew: 1
      topologyKey: topology.kubernetes.io/zone
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "rtmp-relay.selectorLabels" $root | nindent 10 }}
          app.kubernetes.io/component: {{ $role }}
    {{- end }}
  containers:
    - name: rtmp-relay
      image: {{ include "rtmp-relay.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args: [{{ $role | quote }}]
      ports:
        - name: rtmp
          containerPort: 1935
          protocol: TCP
        - name: http
          containerPort: 8080
          protocol: TCP
      envFrom:
        - configMapRef:
            name: {{ include "rtmp-relay.fullname" $root }}
        - secretRef:
            name: {{ include "rtmp-relay.authSecretName" $root }}
      env:
        - name: RTMP_PORT
          value: "1935"
        - name: HTTP_PORT
          value: "8080"
        - name: SHUTDOWN_TIMEOUT_MS
          value: {{ $r.shutdownTimeoutMs | int | quote }}
        # Other nodes reach this one at the pod IP it registers (edges pull from the owning origin's pod).
        - name: ADVERTISE_HOST
          valueFrom:
            fieldRef:
              fieldPath: status.podIP
        {{- if and (not $root.Values.redis.enabled) $root.Values.externalRedis.existingSecret }}
        - name: REDIS_URL
          valueFrom:
            secretKeyRef:
              name: {{ $root.Values.externalRedis.existingSecret }}
              key: {{ $root.Values.externalRedis.existingSecretKey }}
        {{- end }}
        {{- range $k, $v := $r.extraEnv }}
        - name: {{ $k }}
          value: {{ include "rtmp-relay.envValue" $v }}
        {{- end }}
      startupProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 2
        failureThreshold: 30
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 10
        timeoutSeconds: 3
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        periodSeconds: 2
        timeoutSeconds: 2
        failureThreshold: 1
        successThreshold: 1
      lifecycle:
        preStop:
          exec:
            command: ["sleep", {{ $root.Values.preStopSleepSeconds | int | quote }}]
      resources:
        {{- toYaml $r.resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
{{- end }}

{{/* An environment value: integers stay integers (Helm reads numbers as float64: 1048576 would print 1.048576e+06). */}}
{{- define "rtmp-relay.envValue" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) }}{{ int64 . | toString | quote }}{{ else }}{{ toString . | quote }}{{ end }}
{{- end }}
