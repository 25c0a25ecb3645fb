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
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
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

{{/* Name of the Secret with API_TOKEN, CLUSTER_SECRET, PUBLISH_SECRET, PLAY_SECRET. */}}
{{- define "rtmp-relay.authSecretName" -}}
{{- default (printf "%s-auth" (include "rtmp-relay.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{/*
One base64 value of the generated auth Secret: call with (list <value from values> <old Secret data> <key>).
The value given in values wins; else the one already in the Secret (upgrades keep it); else 48 random characters.
*/}}
{{- define "rtmp-relay.secretValue" -}}
{{- $given := index . 0 }}
{{- $old := index . 1 }}
{{- $key := index . 2 }}
{{- if $given }}{{ $given | b64enc }}
{{- else if hasKey $old $key }}{{ index $old $key }}
{{- else }}{{ randAlphaNum 48 | b64enc }}
{{- end }}
{{- end }}

{{/* Non-empty when the generated Secret holds PUBLISH_SECRET (given, or generated: no hook, not anonymous). */}}
{{- define "rtmp-relay.publishSecretWanted" -}}
{{- if or .Values.auth.publishSecret (and .Values.auth.generatePublishSecret (not .Values.hooks.onPublish) (not .Values.auth.allowAnonymousPublish)) }}true{{ end }}
{{- end }}

{{/* Non-empty when publishes must carry a signed token: PUBLISH_SECRET is then a required key of the Secret. */}}
{{- define "rtmp-relay.publishSecretRequired" -}}
{{- if and (not .Values.hooks.onPublish) (not .Values.auth.allowAnonymousPublish) }}true{{ end }}
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
{{- $a := .Values.auth }}
{{- if not (or $a.publishSecret $a.existingSecret $a.generatePublishSecret .Values.hooks.onPublish $a.allowAnonymousPublish) }}
{{- fail "publishing needs a credential: set auth.publishSecret, auth.existingSecret (with PUBLISH_SECRET), hooks.onPublish, or auth.generatePublishSecret: true; to let anyone who reaches an origin publish, set auth.allowAnonymousPublish: true explicitly" }}
{{- end }}
{{- if and $a.allowAnonymousPublish $a.publishSecret }}
{{- fail "auth.allowAnonymousPublish: true contradicts auth.publishSecret: choose one" }}
{{- end }}
{{- if and .Values.rtmps.enabled (not .Values.rtmps.tlsSecret) }}
{{- fail "rtmps.enabled needs rtmps.tlsSecret: a kubernetes.io/tls Secret with tls.crt and tls.key (e.g. a cert-manager Certificate's secretName)" }}
{{- end }}
{{- $xr := .Values.externalRedis }}
{{- if and $xr.tls.caSecret $xr.tls.caConfigMap }}
{{- fail "externalRedis.tls: set caSecret or caConfigMap, not both" }}
{{- end }}
{{- $xn := .Values.externalNats }}
{{- if and $xn.tls.caSecret $xn.tls.caConfigMap }}
{{- fail "externalNats.tls: set caSecret or caConfigMap, not both" }}
{{- end }}
{{- if and $xn.passwordSecret (not $xn.user) (not $xn.userKey) }}
{{- fail "externalNats.passwordSecret needs a user: externalNats.user or externalNats.userKey" }}
{{- end }}
{{- if and (or $xn.user $xn.userKey) (not $xn.passwordSecret) }}
{{- fail "externalNats.user/userKey needs externalNats.passwordSecret (the password)" }}
{{- end }}
{{- if and $xr.usernameKey (not $xr.passwordSecret) }}
{{- fail "externalRedis.usernameKey reads the user from externalRedis.passwordSecret: set it" }}
{{- end }}
{{- if or (and .Values.redis.enabled (or $xr.passwordSecret $xr.username $xr.tls.caSecret $xr.tls.caConfigMap)) (and .Values.nats.enabled (or $xn.passwordSecret $xn.user $xn.tokenSecret $xn.credsSecret $xn.tls.caSecret $xn.tls.caConfigMap $xn.tls.clientSecret)) }}
{{- fail "externalRedis/externalNats credentials and TLS apply to external servers: disable the bundled redis/nats (redis.enabled, nats.enabled: false)" }}
{{- end }}
{{- $as := .Values.edge.autoscaling }}
{{- if and $as.enabled (gt (int $as.minReplicas) (int $as.maxReplicas)) }}
{{- fail (printf "edge.autoscaling.minReplicas (%d) must not exceed edge.autoscaling.maxReplicas (%d)" (int $as.minReplicas) (int $as.maxReplicas)) }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.edge.service.httpPort) }}
{{- fail "ingress.enabled routes to the edge Service's HTTP port: set edge.service.httpPort" }}
{{- end }}
{{- range $role := list "origin" "edge" }}
{{- $r := index $.Values $role }}
{{- $ru := $r.strategy.rollingUpdate | default dict }}
{{- if and (eq $r.strategy.type "RollingUpdate") (eq (toString ($ru.maxSurge | default 0)) "0") (eq (toString ($ru.maxUnavailable | default 0)) "0") }}
{{- fail (printf "%s.strategy.rollingUpdate: maxSurge and maxUnavailable cannot both be 0 (the rollout could never progress)" $role) }}
{{- end }}
{{- /* An origin's drain moves its streams before the connections' wait: at most 2 x min(shutdownTimeoutMs, 5 s) (paced E-RTMP ReconnectRequests, then the wait for moves). */}}
{{- $moves := 0 }}
{{- if eq $role "origin" }}{{- $moves = mul 2 (min (int $r.shutdownTimeoutMs) 5000) }}{{- end }}
{{- $needed := add $.Values.preStopSleepSeconds (div (add $.Values.config.drainDelayMs $r.shutdownTimeoutMs $moves 999) 1000) }}
{{- if le (int $r.terminationGracePeriodSeconds) (int $needed) }}
{{- fail (printf "%s.terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + (config.drainDelayMs + %s.shutdownTimeoutMs%s) / 1000 = %d" $role (int $r.terminationGracePeriodSeconds) $role (ternary " + the origin's stream moves (2 x min(shutdownTimeoutMs, 5000))" "" (eq $role "origin")) (int $needed)) }}
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
    # Of the auth values, not of the rendered Secret: generated values are random on every render but kept by the
    # Secret across upgrades, so hashing them would roll the pods for nothing.
    checksum/auth: {{ toJson $root.Values.auth | sha256sum }}
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
        - name: admin
          containerPort: {{ $root.Values.admin.port }}
          protocol: TCP
        {{- if $root.Values.rtmps.enabled }}
        - name: rtmps
          containerPort: 1936
          protocol: TCP
        {{- end }}
      envFrom:
        - configMapRef:
            name: {{ include "rtmp-relay.fullname" $root }}
        {{- with $r.extraEnvFrom }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      env:
        - name: RTMP_PORT
          value: "1935"
        - name: HTTP_PORT
          value: "8080"
        # /metrics and /api only here (the api Service, ClusterIP), not on the HTTP port a LoadBalancer may expose.
        - name: ADMIN_PORT
          value: {{ $root.Values.admin.port | int | quote }}
        {{- include "rtmp-relay.authEnv" $root | nindent 8 }}
        {{- if $root.Values.rtmps.enabled }}
        - name: RTMPS_PORT
          value: "1936"
        # The mounted Secret (no subPath, so kubelet swaps in renewed certificates; the node reloads changed files).
        - name: TLS_CERT_FILE
          value: /etc/rtmp-relay/tls/tls.crt
        - name: TLS_KEY_FILE
          value: /etc/rtmp-relay/tls/tls.key
        {{- end }}
        {{- include "rtmp-relay.backendEnv" $root | nindent 8 }}
        - name: SHUTDOWN_TIMEOUT_MS
          value: {{ $r.shutdownTimeoutMs | int | quote }}
        # Other nodes reach this one at the pod IP it registers (edges pull from the owning origin's pod).
        - name: ADVERTISE_HOST
          valueFrom:
            fieldRef:
              fieldPath: status.podIP
        {{- range $k, $v := $r.extraEnv }}
        - name: {{ $k }}
          {{- if kindIs "map" $v }}
          {{- /* {valueFrom: {secretKeyRef|configMapKeyRef|fieldRef|resourceFieldRef: ...}} */}}
          {{- toYaml $v | nindent 10 }}
          {{- else }}
          value: {{ include "rtmp-relay.envValue" $v }}
          {{- end }}
        {{- end }}
      {{- /* The endpoints are the node's; the timings are values (probes.*). */}}
      startupProbe:
        httpGet:
          path: /healthz
          port: http
        {{- toYaml $root.Values.probes.startup | nindent 8 }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        {{- toYaml $root.Values.probes.liveness | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        {{- toYaml $root.Values.probes.readiness | nindent 8 }}
      lifecycle:
        {{- /* The preStop sleep lets endpoints and load balancers drop the pod before SIGTERM; lifecycle.preStop replaces it. */}}
        {{- $hooks := dict "preStop" (dict "exec" (dict "command" (list "sleep" ($root.Values.preStopSleepSeconds | int | toString)))) }}
        {{- toYaml (merge (deepCopy $root.Values.lifecycle) $hooks) | nindent 8 }}
      resources:
        {{- toYaml $r.resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- range $v := include "rtmp-relay.secretVolumes" $root | fromYamlArray }}
        - name: {{ $v.name }}
          mountPath: {{ $v.mountPath }}
          readOnly: true
        {{- end }}
        {{- with $r.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    {{- with $r.sidecars }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $r.initContainers }}
  initContainers:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- range $v := include "rtmp-relay.secretVolumes" $root | fromYamlArray }}
    - name: {{ $v.name }}
      {{- if $v.secret }}
      secret:
        secretName: {{ $v.secret }}
      {{- else }}
      configMap:
        name: {{ $v.configMap }}
      {{- end }}
        # 0440: the node (group fsGroup) reads, nobody writes.
        defaultMode: 288
        {{- with $v.items }}
        items:
          {{- toYaml . | nindent 10 }}
        {{- end }}
    {{- end }}
    {{- with $r.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* API_TOKEN, CLUSTER_SECRET (required), PUBLISH_SECRET (required unless a hook or anonymous), PLAY_SECRET. */}}
{{- define "rtmp-relay.authEnv" -}}
{{- $secret := include "rtmp-relay.authSecretName" . }}
- name: API_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: API_TOKEN
- name: CLUSTER_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: CLUSTER_SECRET
{{- if not .Values.auth.allowAnonymousPublish }}
- name: PUBLISH_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: PUBLISH_SECRET
      {{- if not (include "rtmp-relay.publishSecretRequired" .) }}
      optional: true
      {{- end }}
{{- end }}
- name: PLAY_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: PLAY_SECRET
      {{- if not .Values.auth.requirePlayToken }}
      optional: true
      {{- end }}
{{- end }}

{{/* A secretKeyRef env entry: (list <env name> <secret> <key>). */}}
{{- define "rtmp-relay.secretEnv" -}}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ index . 1 }}
      key: {{ index . 2 }}
{{- end }}

{{/* Credentials and TLS files of the external Redis and NATS. */}}
{{- define "rtmp-relay.backendEnv" -}}
{{- $xr := .Values.externalRedis }}
{{- $xn := .Values.externalNats }}
{{- if and (not .Values.redis.enabled) $xr.existingSecret }}
{{ include "rtmp-relay.secretEnv" (list "REDIS_URL" $xr.existingSecret $xr.existingSecretKey) }}
{{- end }}
{{- if not .Values.redis.enabled }}
{{- if $xr.usernameKey }}
{{ include "rtmp-relay.secretEnv" (list "REDIS_USERNAME" $xr.passwordSecret $xr.usernameKey) }}
{{- else if $xr.username }}
- name: REDIS_USERNAME
  value: {{ $xr.username | quote }}
{{- end }}
{{- if $xr.passwordSecret }}
{{ include "rtmp-relay.secretEnv" (list "REDIS_PASSWORD" $xr.passwordSecret $xr.passwordKey) }}
{{- end }}
{{- if or $xr.tls.caSecret $xr.tls.caConfigMap }}
- name: REDIS_TLS_CA_FILE
  value: /etc/rtmp-relay/redis-ca/ca.crt
{{- end }}
{{- end }}
{{- if not .Values.nats.enabled }}
{{- if $xn.userKey }}
{{ include "rtmp-relay.secretEnv" (list "NATS_USER" $xn.passwordSecret $xn.userKey) }}
{{- else if $xn.user }}
- name: NATS_USER
  value: {{ $xn.user | quote }}
{{- end }}
{{- if $xn.passwordSecret }}
{{ include "rtmp-relay.secretEnv" (list "NATS_PASSWORD" $xn.passwordSecret $xn.passwordKey) }}
{{- end }}
{{- if $xn.tokenSecret }}
{{ include "rtmp-relay.secretEnv" (list "NATS_TOKEN" $xn.tokenSecret $xn.tokenKey) }}
{{- end }}
{{- if $xn.credsSecret }}
- name: NATS_CREDS_FILE
  value: /etc/rtmp-relay/nats-creds/nats.creds
{{- end }}
{{- if or $xn.tls.caSecret $xn.tls.caConfigMap }}
- name: NATS_TLS_CA_FILE
  value: /etc/rtmp-relay/nats-ca/ca.crt
{{- end }}
{{- if $xn.tls.clientSecret }}
- name: NATS_TLS_CERT_FILE
  value: /etc/rtmp-relay/nats-client/tls.crt
- name: NATS_TLS_KEY_FILE
  value: /etc/rtmp-relay/nats-client/tls.key
{{- end }}
{{- end }}
{{- end }}

{{/*
Read-only volumes of the relay's pods, as a YAML list of {name, mountPath, secret | configMap, items}: the RTMPS
certificate, and the CA bundles, creds file and client certificate of the external Redis and NATS. Files are
projected under fixed names (ca.crt, nats.creds) whatever the source key, so the env paths above never change.
*/}}
{{- define "rtmp-relay.secretVolumes" -}}
{{- $out := list }}
{{- if .Values.rtmps.enabled }}
{{- $out = append $out (dict "name" "rtmps-tls" "mountPath" "/etc/rtmp-relay/tls" "secret" .Values.rtmps.tlsSecret "items" (list (dict "key" "tls.crt" "path" "tls.crt") (dict "key" "tls.key" "path" "tls.key"))) }}
{{- end }}
{{- $xr := .Values.externalRedis }}
{{- $xn := .Values.externalNats }}
{{- if not .Values.redis.enabled }}
{{- if or $xr.tls.caSecret $xr.tls.caConfigMap }}
{{- $out = append $out (dict "name" "redis-ca" "mountPath" "/etc/rtmp-relay/redis-ca" "secret" $xr.tls.caSecret "configMap" $xr.tls.caConfigMap "items" (list (dict "key" $xr.tls.caKey "path" "ca.crt"))) }}
{{- end }}
{{- end }}
{{- if not .Values.nats.enabled }}
{{- if or $xn.tls.caSecret $xn.tls.caConfigMap }}
{{- $out = append $out (dict "name" "nats-ca" "mountPath" "/etc/rtmp-relay/nats-ca" "secret" $xn.tls.caSecret "configMap" $xn.tls.caConfigMap "items" (list (dict "key" $xn.tls.caKey "path" "ca.crt"))) }}
{{- end }}
{{- if $xn.credsSecret }}
{{- $out = append $out (dict "name" "nats-creds" "mountPath" "/etc/rtmp-relay/nats-creds" "secret" $xn.credsSecret "items" (list (dict "key" $xn.credsKey "path" "nats.creds"))) }}
{{- end }}
{{- if $xn.tls.clientSecret }}
{{- $out = append $out (dict "name" "nats-client-tls" "mountPath" "/etc/rtmp-relay/nats-client" "secret" $xn.tls.clientSecret "items" (list (dict "key" "tls.crt" "path" "tls.crt") (dict "key" "tls.key" "path" "tls.key"))) }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/* An environment value: integers stay integers (Helm reads numbers as float64: 1048576 would print 1.048576e+06). */}}
{{- define "rtmp-relay.envValue" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) }}{{ int64 . | toString | quote }}{{ else }}{{ toString . | quote }}{{ end }}
{{- end }}
