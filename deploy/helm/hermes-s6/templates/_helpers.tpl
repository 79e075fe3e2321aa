{{/* Names and labels. */}}
{{- define "hermes-s6.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hermes-s6.fullname" -}}
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

{{- define "hermes-s6.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hermes-s6.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "hermes-s6.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "hermes-s6.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "hermes-s6.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* A loopback dashboard host: nothing outside the pod reaches it. */}}
{{- define "hermes-s6.dashboardLoopback" -}}
{{- $h := toString .Values.dashboard.host }}
{{- if or (eq $h "localhost") (eq $h "::1") (hasPrefix "127." $h) }}true{{ end }}
{{- end }}

{{/* Does the Service publish the dashboard? */}}
{{- define "hermes-s6.dashboardPublished" -}}
{{- if and .Values.dashboard.enabled (not (include "hermes-s6.dashboardLoopback" .)) }}true{{ end }}
{{- end }}

{{/*
Validation: every values mistake the chart can see fails rendering with one
line that names the value, what is wrong and what is expected.
*/}}
{{- define "hermes-s6.port" -}}
{{- $what := index . 0 }}{{ $v := index . 1 }}
{{- if not (regexMatch "^[0-9]+$" (toString $v)) }}
{{- fail (printf "%s must be a port number between 1 and 65535, got %v" $what $v) }}
{{- end }}
{{- if or (lt (int $v) 1) (gt (int $v) 65535) }}
{{- fail (printf "%s must be a port number between 1 and 65535, got %v" $what $v) }}
{{- end }}
{{- end }}

{{- define "hermes-s6.validate" -}}
{{- include "hermes-s6.port" (list "apiServer.port" .Values.apiServer.port) }}
{{- include "hermes-s6.port" (list "dashboard.port" .Values.dashboard.port) }}
{{- $ports := dict (toString .Values.apiServer.port) "apiServer.port" }}
{{- if .Values.dashboard.enabled }}
{{- if hasKey $ports (toString .Values.dashboard.port) }}
{{- fail (printf "dashboard.port %v is already used by %s" .Values.dashboard.port (get $ports (toString .Values.dashboard.port))) }}
{{- end }}
{{- $_ := set $ports (toString .Values.dashboard.port) "dashboard.port" }}
{{- if and (not (include "hermes-s6.dashboardLoopback" .)) (not .Values.dashboard.auth.existingSecret) (not .Values.envSecret.existingSecret) }}
{{- $auth := false }}
{{- range .Values.extraEnv }}
{{- if regexMatch "^HERMES_DASHBOARD_(BASIC_AUTH|OAUTH|OIDC)_" (toString .name) }}{{ $auth = true }}{{ end }}
{{- end }}
{{- if not $auth }}
{{- fail (printf "dashboard.host %q is not loopback, and the agent refuses to serve the dashboard there without an auth provider: set dashboard.auth.existingSecret to a Secret with HERMES_DASHBOARD_BASIC_AUTH_USERNAME and HERMES_DASHBOARD_BASIC_AUTH_PASSWORD (or OAuth/OIDC settings), or dashboard.host=127.0.0.1 and use kubectl port-forward" (toString .Values.dashboard.host)) }}
{{- end }}
{{- end }}
{{- end }}
{{- $names := dict }}
{{- range $i, $p := .Values.profiles }}
{{- if not (kindIs "map" $p) }}
{{- fail (printf "profiles[%d] must be a map with name and apiPort, got %v" $i $p) }}
{{- end }}
{{- $n := toString $p.name }}
{{- if not (regexMatch "^[a-z0-9][a-z0-9_-]{0,62}$" $n) }}
{{- fail (printf "profiles[%d].name %q is not a valid profile name: it must match ^[a-z0-9][a-z0-9_-]{0,62}$ (lower-case letters, digits, - and _, starting with a letter or digit, at most 63 characters)" $i $n) }}
{{- end }}
{{- if eq $n "default" }}
{{- fail (printf "profiles[%d].name: default is the built-in profile (apiServer.port), do not list it" $i) }}
{{- end }}
{{- if hasKey $names $n }}
{{- fail (printf "profiles[%d].name %q is listed twice" $i $n) }}
{{- end }}
{{- $_ := set $names $n true }}
{{- include "hermes-s6.port" (list (printf "profiles[%d].apiPort" $i) $p.apiPort) }}
{{- if hasKey $ports (toString $p.apiPort) }}
{{- fail (printf "profiles[%d].apiPort %v is already used by %s" $i $p.apiPort (get $ports (toString $p.apiPort))) }}
{{- end }}
{{- $_ := set $ports (toString $p.apiPort) (printf "profiles[%d].apiPort" $i) }}
{{- end }}
{{- if not (regexMatch "^[0-9]+$" (toString .Values.stopTimeoutMs)) }}
{{- fail (printf "stopTimeoutMs must be a whole number of milliseconds, got %v" .Values.stopTimeoutMs) }}
{{- end }}
{{- if not (regexMatch "^[0-9]+$" (toString .Values.terminationGraceMarginSeconds)) }}
{{- fail (printf "terminationGraceMarginSeconds must be a whole number of seconds, got %v" .Values.terminationGraceMarginSeconds) }}
{{- end }}
{{- end }}

{{/* ceil(stopTimeoutMs / 1000) + terminationGraceMarginSeconds */}}
{{- define "hermes-s6.terminationGracePeriodSeconds" -}}
{{- add (div (add (int64 .Values.stopTimeoutMs) 999) 1000) (int64 .Values.terminationGraceMarginSeconds) }}
{{- end }}
