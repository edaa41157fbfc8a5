{{- define "og.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "og.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "og.labels" -}}
app.kubernetes.io/name: {{ include "og.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Every pod of the release: the NetworkPolicy's peer set. */}}
{{- define "og.instanceLabels" -}}
app.kubernetes.io/name: {{ include "og.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* One group's pods: the workload's, PDB's and HPA's selector. Call with (list $ "serve"). */}}
{{- define "og.groupSelector" -}}
{{- $ := index . 0 -}}
{{ include "og.instanceLabels" $ }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "og.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "og.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "og.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "og.seeds" -}}
{{- if .Values.cluster.seedsOverride -}}
{{- toJson .Values.cluster.seedsOverride -}}
{{- else -}}
{{- list (printf "%s-gossip.%s.svc.cluster.local:%d" (include "og.fullname" .) .Release.Namespace (int .Values.ports.gossip)) | toJson -}}
{{- end -}}
{{- end -}}

{{/*
A group's node.toml. Everything that differs between pods (the pod IP, the node id) comes
from the environment instead (OMNIGRAPH_CLOUD_* overrides), so one file serves the group.
Call with (list $ "serve" $group).
*/}}
{{- define "og.nodeToml" -}}
{{- $ := index . 0 -}}
{{- $g := index . 2 -}}
{{- $v := $.Values -}}
{{- $isControl := has "control" $g.roles -}}
# omnigraph-cloud node, group "{{ index . 1 }}" of release {{ $.Release.Name }}.
# Rendered by the Helm chart; advertise addresses and node.id come from the environment.
[node]
roles = {{ toJson $g.roles }}

[server]
bind = "0.0.0.0:{{ $v.ports.http }}"
metrics_bind = "0.0.0.0:{{ $v.ports.metrics }}"
body_limit_bytes = {{ int64 $v.server.bodyLimitBytes }}
load_body_limit_bytes = {{ int64 $v.server.loadBodyLimitBytes }}
drain_delay = "{{ int $v.server.drainDelaySeconds }}s"
shutdown_grace = "{{ int $v.server.shutdownGraceSeconds }}s"

[storage]
root = {{ required "storage.root is required (s3://bucket/prefix)" $v.storage.root | quote }}

[cache]
enabled = {{ $v.cache.enabled }}
dir = "/var/cache/omnigraph"
disk_bytes = {{ int64 $v.cache.diskBytes }}

[cluster]
name = {{ $v.cluster.name | quote }}
reads = {{ $v.cluster.reads | quote }}
{{- if $v.cluster.secret.existingSecret }}
secret_file = "/etc/omnigraph/secrets/cluster/{{ $v.cluster.secret.key }}"
{{- end }}
{{- if $g.gossip }}
gossip_bind = "0.0.0.0:{{ $v.ports.gossip }}"
seeds = {{ include "og.seeds" $ }}
{{- end }}

[auth]
{{- with $v.auth.mode }}
mode = {{ . | quote }}
{{- end }}
{{- if $v.auth.tokens.existingSecret }}
tokens_file = "/etc/omnigraph/secrets/tokens/{{ $v.auth.tokens.key }}"
{{- end }}
{{- if $v.auth.policies.existingConfigMap }}
policy_dir = "/etc/omnigraph/policies"
{{- end }}
{{- with $v.auth.bundle }}
{{- if .source }}

[auth.bundle]
{{- if eq .source "root" }}
source = "root"
{{- else if eq .source "file" }}
source = "/etc/omnigraph/bundle/{{ .key }}"
{{- else }}
{{- fail "auth.bundle.source must be \"\", \"root\" or \"file\"" }}
{{- end }}
public_key = {{ required "auth.bundle.publicKey is required with auth.bundle.source" .publicKey | quote }}
sync_interval = {{ .syncInterval | quote }}
{{- end }}
{{- end }}
{{- range $v.auth.oidc }}

[[auth.oidc]]
issuer = {{ .issuer | quote }}
audiences = {{ toJson .audiences }}
{{- with .jwksUrl }}
jwks_url = {{ . | quote }}
{{- end }}
{{- with .jwksFile }}
jwks_file = "/etc/omnigraph/jwks/{{ . }}"
{{- end }}
{{- with .tenantClaim }}
tenant_claim = {{ . | quote }}
{{- end }}
{{- with .tenant }}
tenant = {{ . | quote }}
{{- end }}
{{- with .actorClaim }}
actor_claim = {{ . | quote }}
{{- end }}
{{- with .groupsClaim }}
groups_claim = {{ . | quote }}
{{- end }}
{{- with .allowedActors }}
allowed_actors = {{ toJson . }}
{{- end }}
{{- end }}
{{- if $isControl }}

[control]
operator_tokens_file = "/etc/omnigraph/secrets/control/{{ $v.control.operatorTokensKey }}"
bundle_key_file = "/etc/omnigraph/secrets/control/{{ $v.control.bundleKeyKey }}"
{{- end }}

[log]
filter = {{ $v.log.filter | quote }}
format = {{ $v.log.format | quote }}
{{- with $v.extraConfig }}

{{ . }}
{{- end }}
{{- end -}}
