{{/* The chart name, at most 63 characters. */}}
{{- define "foodfast.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* "<release>-<chart>" (or the release name when it already holds the
chart name), at most 63 characters: the prefix of every resource name. */}}
{{- define "foodfast.fullname" -}}
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

{{/* Name of a component's resources: (dict "ctx" $ "component" "server"). */}}
{{- define "foodfast.componentName" -}}
{{- printf "%s-%s" (include "foodfast.fullname" .ctx | trunc 54 | trimSuffix "-") .component }}
{{- end }}

{{- define "foodfast.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource: (dict "ctx" $ "component" "server"). */}}
{{- define "foodfast.labels" -}}
helm.sh/chart: {{ include "foodfast.chart" .ctx }}
{{ include "foodfast.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: foodfast
{{- end }}

{{/* Labels a component's Service, PDB and ServiceMonitor select its pods by. */}}
{{- define "foodfast.selectorLabels" -}}
app.kubernetes.io/name: {{ include "foodfast.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{- define "foodfast.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}

{{- define "foodfast.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "foodfast.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret the pods read; the migration hook reads its own copy unless
existingSecret is set (see migrate-job.yaml). */}}
{{- define "foodfast.secretName" -}}
{{- default (include "foodfast.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* The server's non-secret environment, as a YAML map: the ConfigMap's data
and, rendered from this same definition, the migration Job's env. */}}
{{- define "foodfast.serverConfig" -}}
FOODFAST_LOG: {{ .Values.config.log | quote }}
FOODFAST_LOG_FORMAT: {{ .Values.config.logFormat | quote }}
FOODFAST_SCYLLA_CONTACT_POINTS: {{ required "config.scylla.contactPoints must name at least one node" (join "," .Values.config.scylla.contactPoints) | quote }}
FOODFAST_SCYLLA_KEYSPACE: {{ .Values.config.scylla.keyspace | quote }}
FOODFAST_SCYLLA_REPLICATION: {{ .Values.config.scylla.replication | quote }}
FOODFAST_SCYLLA_TLS_MODE: {{ .Values.config.scylla.tlsMode | quote }}
{{- with .Values.config.scylla.tlsCaCert }}
FOODFAST_SCYLLA_TLS_CA: {{ . | quote }}
{{- end }}
{{- with .Values.config.scylla.username }}
FOODFAST_SCYLLA_USERNAME: {{ . | quote }}
{{- end }}
{{- with .Values.config.redisTlsCaCert }}
FOODFAST_REDIS_TLS_CA: {{ . | quote }}
{{- end }}
FOODFAST_SHUTDOWN_GRACE: {{ .Values.server.shutdownGrace | quote }}
FOODFAST_GRPC_MAX_OPEN_STREAMS: {{ .Values.server.maxOpenStreams | quote }}
{{- with .Values.config.notificationsUrl }}
FOODFAST_NOTIFICATIONS_URL: {{ . | quote }}
{{- end }}
{{- with .Values.config.paymentsUrl }}
FOODFAST_PAYMENTS_URL: {{ . | quote }}
{{- end }}
{{- with .Values.config.zones }}
FOODFAST_ZONES: {{ include "foodfast.zones" . | quote }}
{{- end }}
{{- with .Values.config.dispatchBatchCities }}
FOODFAST_DISPATCH_BATCH_CITIES: {{ join "," . | quote }}
{{- end }}
FOODFAST_OBJECTS_URL: {{ required "config.objects.url must name the bucket every replica shares" .Values.config.objects.url | quote }}
{{- with .Values.config.objects.publicUrl }}
FOODFAST_OBJECTS_PUBLIC_URL: {{ . | quote }}
{{- end }}
FOODFAST_MEDIA_WORKERS: {{ .Values.config.mediaWorkers | quote }}
{{- with .Values.otlp.endpoint }}
FOODFAST_OTLP_ENDPOINT: {{ . | quote }}
{{- end }}
{{- end }}

{{/* config.zones in the server's inline form: [{name="paris", south=48.7, ...}, ...]. */}}
{{- define "foodfast.zones" -}}
[
{{- range $i, $zone := . -}}
{{- if $i }}, {{ end -}}
{name={{ required "every zone needs a name" $zone.name | quote }}, south={{ $zone.south }}, west={{ $zone.west }}, north={{ $zone.north }}, east={{ $zone.east }}}
{{- end -}}
]
{{- end }}

{{/* The gateway's non-secret environment, as a YAML map. */}}
{{- define "foodfast.gatewayConfig" -}}
FOODFAST_GATEWAY_UPSTREAM: {{ default (printf "http://%s:%v" (include "foodfast.componentName" (dict "ctx" . "component" "server")) .Values.server.ports.grpc) .Values.gateway.upstream | quote }}
FOODFAST_LOG: {{ .Values.gateway.log | quote }}
{{- with .Values.gateway.corsOrigins }}
FOODFAST_GATEWAY_CORS_ORIGINS: {{ join "," . | quote }}
{{- end }}
{{- with .Values.otlp.endpoint }}
FOODFAST_GATEWAY_OTLP_ENDPOINT: {{ . | quote }}
{{- end }}
{{- end }}

{{/* The chart-managed Secret's data (base64), only the keys that are set;
FOODFAST_AUTH_KEYS is checked here so that a short key fails the install
instead of the pods. */}}
{{- define "foodfast.secretData" -}}
{{- with .Values.secrets.authKeys }}
{{- range $key := splitList "," . }}
{{- $parts := splitn ":" 2 (trim $key) }}
{{- if or (not $parts._0) (lt (len (default "" $parts._1)) 32) }}
{{- fail (printf "secrets.authKeys: every key is kid:secret with a secret of 32 characters or more (%q is not)" (default "" $parts._0)) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $name, $value := dict "FOODFAST_DATABASE_URL" .Values.secrets.databaseUrl "FOODFAST_REDIS_URL" .Values.secrets.redisUrl "FOODFAST_AUTH_KEYS" .Values.secrets.authKeys "FOODFAST_PAYMENTS_API_KEY" .Values.secrets.paymentsApiKey "FOODFAST_SCYLLA_PASSWORD" .Values.secrets.scyllaPassword }}
{{- if $value }}
{{ $name }}: {{ $value | b64enc | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* env entries reading secret keys: (dict "secret" NAME "keys" (list ...)).
optional: a key the Secret lacks leaves the variable unset. */}}
{{- define "foodfast.secretEnv" -}}
{{- range .keys }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ $.secret }}
      key: {{ . }}
      optional: true
{{- end }}
{{- end }}

{{/* The stores' TLS files (databaseTls, scyllaTls, redisTls), each a Secret
mounted read-only where the configuration names its files. */}}
{{- define "foodfast.storeTls" -}}
{{- range $name, $tls := dict "database-tls" .Values.databaseTls "scylla-tls" .Values.scyllaTls "redis-tls" .Values.redisTls }}
{{- if $tls.secretName }}
{{ $name }}: {{ $tls | toJson }}
{{- end }}
{{- end }}
{{- end }}

{{- define "foodfast.storeTlsMounts" -}}
{{- range $name, $tls := include "foodfast.storeTls" . | fromYaml }}
- name: {{ $name }}
  mountPath: {{ $tls.mountPath }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "foodfast.storeTlsVolumes" -}}
{{- range $name, $tls := include "foodfast.storeTls" . | fromYaml }}
- name: {{ $name }}
  secret:
    secretName: {{ $tls.secretName }}
    # Owned by the pod's fsGroup: readable by its user, nobody else.
    defaultMode: 0440
{{- end }}
{{- end }}
